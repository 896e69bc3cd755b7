//! One practice: every field, related practices and events, its history, who else has it
//! open, and — for members — editing and the review flow.

use ibis_shared::model::catalogue::Entry;
use ibis_shared::model::facets::Facet;
use ibis_shared::model::practice::{
    apply_edit, Contact, PracticeEdit, ScalarField, TagField, TextField,
};
use ibis_shared::model::review::{ReviewAction, ReviewState};
use ibis_shared::model::taxonomy::{
    self, ACTOR_LEVELS, EVIDENCE_LEVELS, GCM_OBJECTIVES, SDG_GOALS, TARGET_GROUPS, THEMES,
};
use ibis_shared::model::{history, DocumentKind, Practice};
use ibis_shared::DocumentId;
use leptos::prelude::*;

use super::editor::CollabText;
use super::list::{actor_label, facet_label};
use super::{ctx, list_in};
use crate::replica::{now_ms, replica, sleep};

const LONG_TEXTS: [(TextField, &str); 5] = [
    (TextField::Context, "Context"),
    (TextField::Process, "Process and activities"),
    (TextField::Outcomes, "Outcomes"),
    (TextField::Transferability, "Transferability"),
    (TextField::Funding, "Funding"),
];

/// A practice as loaded, identified by its heads (so the page re-renders only when the
/// document actually changed).
#[derive(Clone)]
pub struct Current {
    pub id: DocumentId,
    pub heads: Vec<automerge::ChangeHash>,
    pub practice: Practice,
}

impl PartialEq for Current {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.heads == other.heads
    }
}

#[component]
pub fn PracticePage(
    /// The id from the address bar, as written.
    id: String,
) -> impl IntoView {
    let ctx = ctx();
    let parsed = DocumentId::parse(&id).ok();
    let id = Memo::new(move |_| parsed);
    Effect::new(move |_| {
        if let (true, Some(id)) = (ctx.ready.get(), id.get()) {
            if let Some(r) = replica() {
                r.open(id);
            }
        }
    });
    let practice = Memo::new(move |_| {
        ctx.signals.revision.track();
        let id = id.get()?;
        replica()?
            .with_doc(&id, |doc| {
                Practice::load(doc).ok().map(|practice| Current {
                    id,
                    heads: doc.get_heads(),
                    practice,
                })
            })
            .flatten()
    });
    let missing = move || {
        ctx.signals.revision.track();
        id.get()
            .is_none_or(|id| replica().is_some_and(|r| r.is_unavailable(&id)))
    };
    // Rebuild the page only when a different practice is loaded, not on every change to
    // this one (which would, among other things, throw away edit mode mid-keystroke).
    let loaded = Memo::new(move |_| practice.with(|p| p.as_ref().map(|c| c.id)));
    view! {
        <p><a href="/">{move || ctx.t("Back to the list")}</a></p>
        {move || match loaded.get() {
            Some(id) => view! { <PracticeView id practice/> }.into_any(),
            None if missing() => view! { <p data-testid="not-found">{ctx.t("Not found")}</p> }.into_any(),
            None => view! { <p>{ctx.t("Loading…")}</p> }.into_any(),
        }}
    }
}

fn edit(id: DocumentId, edit: PracticeEdit) -> Result<(), String> {
    let author = ctx().author().ok_or("log in to edit")?;
    let replica = replica().ok_or("storage is not ready")?;
    replica
        .change(id, |doc| apply_edit(doc, &edit, &author, now_ms() as i64))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

#[component]
fn PracticeView(id: DocumentId, practice: Memo<Option<Current>>) -> impl IntoView {
    let ctx = ctx();
    let p = move || practice.get().map(|c| c.practice);
    let editing = RwSignal::new(false);
    let problem = RwSignal::new(String::new());
    let can_edit = move || ctx.role().is_some();
    // Presence: say we are here now and every 10 s; show who else is.
    leptos::task::spawn_local(async move {
        for _ in 0..360 {
            if let (Some(r), Some(a)) = (replica(), ctx.author()) {
                r.announce_presence(
                    id,
                    &a.name,
                    if editing.get_untracked() {
                        "editing"
                    } else {
                        ""
                    },
                );
            }
            sleep(10_000).await;
        }
    });
    let present = move || {
        ctx.signals.presence.track();
        replica().map(|r| r.present(&id)).unwrap_or_default()
    };
    let lang = move || ctx.lang.get();
    let facts = move || {
        let Some(p) = p() else { return Vec::new() };
        let l = lang();
        let label = |vocab, key: &str| {
            taxonomy::find(vocab, key)
                .map(|t| t.label(l).to_owned())
                .unwrap_or_else(|| key.to_owned())
        };
        let mut rows: Vec<(&'static str, String)> = vec![
            ("Lead organization", p.lead_organization.clone()),
            ("Partners", p.partners.join(", ")),
            (
                "Themes",
                p.themes
                    .iter()
                    .map(|k| label(THEMES, k))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "Target groups",
                p.target_groups
                    .iter()
                    .map(|k| label(TARGET_GROUPS, k))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "GCM objectives",
                p.gcm_objectives
                    .iter()
                    .map(|k| facet_label(Facet::GcmObjective, k, l))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            (
                "SDG goals",
                p.sdg_goals
                    .iter()
                    .map(|k| {
                        let t = k
                            .parse::<usize>()
                            .ok()
                            .and_then(|n| SDG_GOALS.get(n.wrapping_sub(1)))
                            .copied()
                            .unwrap_or("");
                        format!("{k}. {t}")
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ("Actor level", actor_label(&p.actor_level, l)),
            ("Start date", p.start_date.clone()),
            ("End date", p.end_date.clone()),
            ("Evidence level", label(EVIDENCE_LEVELS, &p.evidence_level)),
            ("Language", p.language.clone()),
        ];
        rows.retain(|(_, v)| !v.trim().is_empty());
        rows
    };
    let state = move || p().map(|p| p.state()).unwrap_or_default();
    view! {
        <article class="practice-page" data-testid="practice-page">
            <header>
                <h1 data-testid="practice-heading">{move || p().map(|p| p.title.as_str().to_owned()).unwrap_or_default()}</h1>
                <p class="where">
                    <span data-testid="field-city">{move || p().map(|p| p.city).unwrap_or_default()}</span> ", "
                    <span data-testid="field-country">{move || p().map(|p| facet_label(Facet::Country, &p.country, lang())).unwrap_or_default()}</span>
                    " · " <span class="badge" data-testid="field-state">{move || ctx.t(match state() {
                        ReviewState::Draft => "draft",
                        ReviewState::Submitted => "submitted",
                        ReviewState::Published => "published",
                        ReviewState::Archived => "archived",
                    })}</span>
                </p>
                <Show when=move || !present().is_empty()>
                    <p class="presence" data-testid="presence">
                        {move || ctx.t("Also here now")} ": "
                        {move || present().into_iter().map(|p| if p.field.is_empty() { p.name } else { format!("{} ({})", p.name, p.field) }).collect::<Vec<_>>().join(", ")}
                    </p>
                </Show>
                <Show when=can_edit>
                    <button data-testid="edit" on:click=move |_| editing.update(|e| *e = !*e)>
                        {move || if editing.get() { ctx.t("Done") } else { ctx.t("Edit") }}
                    </button>
                </Show>
            </header>
            <Show when=move || !problem.get().is_empty()>
                <p class="field-error" data-testid="field-error" role="alert">{move || problem.get()}</p>
            </Show>
            <Show when=move || editing.get() fallback=move || view! {
                <section>
                    <p class="summary" data-testid="field-summary">{move || p().map(|p| p.summary.as_str().to_owned()).unwrap_or_default()}</p>
                    {LONG_TEXTS.into_iter().map(|(field, title)| {
                        let text = move || p().map(|p| field.of(&p).as_str().to_owned()).unwrap_or_default();
                        view! {
                            <Show when=move || !text().is_empty()>
                                <h2>{move || ctx.t(title)}</h2>
                                <p class="long" data-testid=format!("field-{}", field.key())>{text}</p>
                            </Show>
                        }
                    }).collect_view()}
                    <dl class="facts">
                        <For each=facts key=|(k, v)| (*k, v.clone()) let:row>
                            <dt>{move || ctx.t(row.0)}</dt><dd>{row.1.clone()}</dd>
                        </For>
                    </dl>
                    <Contacts practice/>
                </section>
            }>
                <EditForm id practice problem/>
            </Show>
            <Review id practice problem/>
            <Related id practice/>
            <History id/>
            <p class="ids"><small>{id.url()}</small></p>
        </article>
    }
}

#[component]
fn Contacts(practice: Memo<Option<Current>>) -> impl IntoView {
    let ctx = ctx();
    let shown = move || {
        let p = practice.get()?.practice;
        let c = p.contact.clone();
        // Contact details are public only with consent; members of the home organization see them.
        let member = ctx.node.get().is_some_and(|n| {
            n.user.is_some() && n.organization.id == p.provenance.home_organization
        });
        (c.consent || member)
            .then_some(c)
            .filter(|c| !c.name.is_empty() || !c.email.is_empty())
    };
    let resources = move || {
        practice
            .get()
            .map(|c| c.practice.resources)
            .unwrap_or_default()
    };
    view! {
        <Show when=move || shown().is_some()>
            <h2>{move || ctx.t("Contact")}</h2>
            <p data-testid="field-contact">{move || shown().map(|c| [c.name, c.role, c.email, c.phone].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" · ")).unwrap_or_default()}</p>
        </Show>
        <Show when=move || !resources().is_empty()>
            <h2>{move || ctx.t("Resources")}</h2>
            <ul>
                {move || resources().into_iter().map(|r| view! {
                    <li><a href=r.url.clone() rel="noopener noreferrer" target="_blank">{if r.title.is_empty() { r.url.clone() } else { r.title.clone() }}</a></li>
                }).collect_view()}
            </ul>
        </Show>
    }
}

#[component]
fn EditForm(
    id: DocumentId,
    practice: Memo<Option<Current>>,
    problem: RwSignal<String>,
) -> impl IntoView {
    let ctx = ctx();
    let p = move || practice.get().map(|c| c.practice);
    let apply = move |e: PracticeEdit| problem.set(edit(id, e).err().unwrap_or_default());
    let scalar = move |field: ScalarField, label: &'static str| {
        let value = move || p().map(|p| field.of(&p).to_owned()).unwrap_or_default();
        view! {
            <label>{move || ctx.t(label)}
                <input data-testid=format!("edit-{}", field.key()) prop:value=value
                    on:change=move |ev| apply(PracticeEdit::Scalar { field, value: event_target_value(&ev) })/>
            </label>
        }
    };
    let choice = move |field: ScalarField,
                       label: &'static str,
                       vocab: &'static [taxonomy::Term]| {
        let value = move || p().map(|p| field.of(&p).to_owned()).unwrap_or_default();
        view! {
            <label>{move || ctx.t(label)}
                <select data-testid=format!("edit-{}", field.key())
                    on:change=move |ev| apply(PracticeEdit::Scalar { field, value: event_target_value(&ev) })>
                    <option value="" selected=move || value().is_empty()>{move || ctx.t("Choose…")}</option>
                    {vocab.iter().map(|t| view! {
                        <option value=t.key selected=move || value() == t.key>{move || t.label(ctx.lang.get())}</option>
                    }).collect_view()}
                </select>
            </label>
        }
    };
    let tagbox = move |field: TagField, label: &'static str, options: Vec<(String, String)>| {
        view! {
            <fieldset class="tags" data-testid=format!("edit-{}", field.key())>
                <legend>{move || ctx.t(label)}</legend>
                {options.into_iter().map(|(key, text)| {
                    let k = key.clone();
                    let checked = move || p().is_some_and(|p| field.of(&p).contains(&k));
                    view! {
                        <label class="check">
                            <input type="checkbox" prop:checked=checked
                                on:change=move |ev| apply(PracticeEdit::Tag { field, key: key.clone(), on: event_target_checked(&ev) })/>
                            {text}
                        </label>
                    }
                }).collect_view()}
            </fieldset>
        }
    };
    let lang = ctx.lang.get_untracked();
    let vocab = |v: &'static [taxonomy::Term]| {
        v.iter()
            .map(|t| (t.key.to_owned(), t.label(lang).to_owned()))
            .collect::<Vec<_>>()
    };
    let numbered = |v: &[&str]| {
        v.iter()
            .enumerate()
            .map(|(i, t)| ((i + 1).to_string(), format!("{}. {t}", i + 1)))
            .collect::<Vec<_>>()
    };
    let contact = move || p().map(|p| p.contact).unwrap_or_default();
    let set_contact = move |f: fn(&mut Contact, String), v: String| {
        let mut c = contact();
        f(&mut c, v);
        apply(PracticeEdit::Contact(c));
    };
    view! {
        <section class="edit" data-testid="editor">
            <CollabText id field=TextField::Title label="Title" rows=1/>
            <CollabText id field=TextField::Summary label="Summary" rows=3/>
            {LONG_TEXTS.into_iter().map(|(field, label)| view! { <CollabText id field label rows=6/> }).collect_view()}
            <div class="row">
                {scalar(ScalarField::City, "City")}
                {scalar(ScalarField::Country, "Country")}
                {scalar(ScalarField::LeadOrganization, "Lead organization")}
            </div>
            <label>{move || ctx.t("Partners")}
                <input data-testid="edit-partners" prop:value=move || p().map(|p| p.partners.join(", ")).unwrap_or_default()
                    on:change=move |ev| apply(PracticeEdit::Partners(event_target_value(&ev).split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()))/>
            </label>
            <div class="row">
                {choice(ScalarField::ActorLevel, "Actor level", ACTOR_LEVELS)}
                {choice(ScalarField::EvidenceLevel, "Evidence level", EVIDENCE_LEVELS)}
                {scalar(ScalarField::StartDate, "Start date")}
                {scalar(ScalarField::EndDate, "End date")}
                {scalar(ScalarField::Language, "Language")}
            </div>
            {tagbox(TagField::Themes, "Themes", vocab(THEMES))}
            {tagbox(TagField::TargetGroups, "Target groups", vocab(TARGET_GROUPS))}
            {tagbox(TagField::GcmObjectives, "GCM objectives", numbered(&GCM_OBJECTIVES))}
            {tagbox(TagField::SdgGoals, "SDG goals", numbered(&SDG_GOALS))}
            <fieldset>
                <legend>{move || ctx.t("Contact")}</legend>
                <label>{move || ctx.t("Name")}<input prop:value=move || contact().name on:change=move |ev| set_contact(|c, v| c.name = v, event_target_value(&ev))/></label>
                <label>{move || ctx.t("Role")}<input prop:value=move || contact().role on:change=move |ev| set_contact(|c, v| c.role = v, event_target_value(&ev))/></label>
                <label>{move || ctx.t("Email")}<input type="email" prop:value=move || contact().email on:change=move |ev| set_contact(|c, v| c.email = v, event_target_value(&ev))/></label>
                <label>{move || ctx.t("Phone")}<input prop:value=move || contact().phone on:change=move |ev| set_contact(|c, v| c.phone = v, event_target_value(&ev))/></label>
                <label class="check"><input type="checkbox" prop:checked=move || contact().consent
                    on:change=move |ev| { let mut c = contact(); c.consent = event_target_checked(&ev); apply(PracticeEdit::Contact(c)); }/>
                    {move || ctx.t("Share contact publicly")}</label>
            </fieldset>
            <label>{move || ctx.t("Resources")}
                <textarea rows="3" data-testid="edit-resources"
                    prop:value=move || p().map(|p| p.resources.iter().map(|r| format!("{} | {}", r.title, r.url)).collect::<Vec<_>>().join("\n")).unwrap_or_default()
                    on:change=move |ev| apply(PracticeEdit::Resources(event_target_value(&ev).lines().filter(|l| !l.trim().is_empty()).map(|l| {
                        let (title, url) = l.rsplit_once('|').unwrap_or(("", l));
                        ibis_shared::model::practice::Resource { title: title.trim().to_owned(), url: url.trim().to_owned() }
                    }).collect()))></textarea>
            </label>
        </section>
    }
}

#[component]
fn Review(
    id: DocumentId,
    practice: Memo<Option<Current>>,
    problem: RwSignal<String>,
) -> impl IntoView {
    let ctx = ctx();
    let comment = RwSignal::new(String::new());
    let state = move || {
        practice
            .get()
            .map(|c| c.practice.state())
            .unwrap_or_default()
    };
    let comments = move || {
        practice
            .get()
            .map(|c| c.practice.review.comments)
            .unwrap_or_default()
    };
    let act = move |action: ReviewAction| {
        let result = edit(
            id,
            PracticeEdit::Review {
                action,
                comment: comment.get_untracked(),
            },
        );
        let result = result.and_then(|()| {
            // Published practices are listed in the organization's shared catalogue.
            match (action, ctx.author()) {
                (ReviewAction::Publish, Some(author)) => {
                    list_in(DocumentKind::Catalogue, Entry::Practice, id, &author)
                }
                _ => Ok(()),
            }
        });
        match result {
            Ok(()) => {
                comment.set(String::new());
                problem.set(String::new());
            }
            Err(e) => problem.set(e),
        }
    };
    let allowed = move |action: ReviewAction| {
        ctx.role().is_some_and(|role| {
            ibis_shared::model::review::transition(state(), action, role, "x").is_ok()
        })
    };
    let buttons = [
        (ReviewAction::Submit, "Submit for review"),
        (ReviewAction::Publish, "Publish"),
        (ReviewAction::SendBack, "Send back"),
        (ReviewAction::Archive, "Archive"),
        (ReviewAction::Restore, "Restore"),
        (ReviewAction::Comment, "Comment"),
    ];
    view! {
        <section class="review" aria-labelledby="review-heading">
            <h2 id="review-heading">{move || ctx.t("Review")}</h2>
            <ul class="comments" data-testid="review-comments">
                {move || comments().into_iter().map(|c| view! {
                    <li><strong>{c.author}</strong> " · " {c.action} " · " <time>{js_date(c.at)}</time>
                        {(!c.text.is_empty()).then(|| view! { <p>{c.text.clone()}</p> })}</li>
                }).collect_view()}
            </ul>
            <Show when=move || ctx.role().is_some()>
                <label>{move || ctx.t("Comment")}
                    <textarea data-testid="review-comment" rows="2" prop:value=comment
                        on:input=move |ev| comment.set(event_target_value(&ev))></textarea>
                </label>
                <div class="actions">
                    {buttons.into_iter().map(|(action, label)| view! {
                        <Show when=move || allowed(action)>
                            <button data-testid=format!("review-{}", action.key()) on:click=move |_| act(action)>{move || ctx.t(label)}</button>
                        </Show>
                    }).collect_view()}
                </div>
            </Show>
        </section>
    }
}

#[component]
fn Related(id: DocumentId, practice: Memo<Option<Current>>) -> impl IntoView {
    let ctx = ctx();
    let related = move || {
        ctx.signals.revision.track();
        let Some(p) = practice.get().map(|c| c.practice) else {
            return Vec::new();
        };
        let Some(r) = replica() else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = p
            .replicated_by
            .iter()
            .filter_map(|url| {
                let other = ibis_shared::AutomergeUrl::parse(url).ok()?.document_id;
                r.summary(&other).map(|s| (other.to_string(), s.title))
            })
            .collect();
        let themes: Vec<&str> = p.themes.iter().collect();
        for s in r.summaries() {
            let s = &s.record;
            if out.len() >= 6 {
                break;
            }
            let sid = s.id.clone().unwrap_or_default();
            if sid == id.url() || out.iter().any(|(i, _)| sid.ends_with(i.as_str())) {
                continue;
            }
            if s.themes.iter().any(|t| themes.contains(&t.as_str())) {
                out.push((
                    sid.trim_start_matches("automerge:").to_owned(),
                    s.title.clone(),
                ));
            }
        }
        out
    };
    let events = move || {
        ctx.signals.revision.track();
        let Some(r) = replica() else {
            return Vec::new();
        };
        let key = id.to_string();
        r.events()
            .into_iter()
            .filter(|(_, e)| e.related_practices.contains(&key))
            .map(|(_, e)| (e.title.as_str().to_owned(), e.date))
            .collect::<Vec<_>>()
    };
    view! {
        <Show when=move || !related().is_empty()>
            <h2>{move || ctx.t("Practices")}</h2>
            <ul data-testid="related-practices">
                {move || related().into_iter().map(|(id, title)| view! { <li><a href=format!("/practices/{id}")>{title}</a></li> }).collect_view()}
            </ul>
        </Show>
        <Show when=move || !events().is_empty()>
            <h2>{move || ctx.t("Related events")}</h2>
            <ul data-testid="related-events">
                {move || events().into_iter().map(|(title, date)| view! { <li>{date} " — " {title}</li> }).collect_view()}
            </ul>
        </Show>
    }
}

#[component]
fn History(id: DocumentId) -> impl IntoView {
    let ctx = ctx();
    let entries = move || {
        ctx.signals.revision.track();
        replica()
            .and_then(|r| r.with_doc(&id, history))
            .unwrap_or_default()
            .into_iter()
            .take(50)
            .collect::<Vec<_>>()
    };
    view! {
        <details class="history">
            <summary>{move || ctx.t("History")}</summary>
            <ol data-testid="history">
                {move || entries().into_iter().map(|h| view! {
                    <li><time>{js_date(h.time * 1000)}</time> " — " {h.what} " " {ctx.t("by")} " " {h.by}</li>
                }).collect_view()}
            </ol>
        </details>
    }
}

/// A date and time for people, in the browser's locale.
pub fn js_date(ms: i64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    d.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED)
        .into()
}
