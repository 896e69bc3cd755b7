//! One practice: every field, related practices and events, its history, who else has it
//! open, and — for members of its organization — editing (`practice_edit.rs`) and the
//! review (`review.rs`).
//!
//! A page shows one document: a public practice (to anyone), or an internal practice that
//! is not published (a draft, to members of its organization). On a public practice's page,
//! members of its organization also see its internal side: the contact whether or not it
//! consented, the review comments, and what they may do. A withdrawn practice's page leads
//! to what replaced it.

use ibis_shared::model::display::{self, LONG_TEXTS};
use ibis_shared::model::facets::Facet;
use ibis_shared::model::practice::Contact;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::review::ReviewState;
use ibis_shared::model::{history, Practice};
use ibis_shared::DocumentId;
use leptos::prelude::*;

use super::practice_edit::EditForm;
use super::review::Review;
use super::{ctx, route::navigate};
use crate::replica::{replica, sleep};
use ibis_shared::model::facets::facet_label;

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

/// The practice document `id()` names, as it is now (opened when the replica is ready).
pub fn follow_practice(
    id: impl Fn() -> Option<DocumentId> + Copy + Send + Sync + 'static,
) -> Memo<Option<Current>> {
    let ctx = ctx();
    Effect::new(move |_| {
        if let (true, Some(id)) = (ctx.ready.get(), id()) {
            if let Some(r) = replica() {
                r.open(id);
            }
        }
    });
    Memo::new(move |_| {
        ctx.signals.revision.track();
        let id = id()?;
        replica()?
            .with_doc(&id, |doc| {
                Practice::load(doc).ok().map(|practice| Current {
                    id,
                    heads: doc.get_heads(),
                    practice,
                })
            })
            .flatten()
    })
}

#[component]
pub fn PracticePage(
    /// The id from the address bar, as written.
    id: String,
) -> impl IntoView {
    let ctx = ctx();
    let parsed = DocumentId::parse_id_or_url(&id).ok();
    // Withdrawn by its organization: `Some(new)` if republished as `new`.
    let replaced = Memo::new(move |_| {
        ctx.signals.revision.track();
        ctx.ready.track();
        replica().and_then(|r| r.replacement(&parsed?))
    });
    Effect::new(move |_| {
        if let Some(Some(new)) = replaced.get() {
            navigate(&format!("/practices/{new}"), true);
        }
    });
    let practice = follow_practice(move || parsed);
    let missing = move || {
        ctx.signals.revision.track();
        parsed.is_none_or(|id| replica().is_some_and(|r| r.is_unavailable(&id)))
    };
    // Rebuild the page only when a different practice is loaded, not on every change to
    // this one (which would, among other things, throw away edit mode mid-keystroke).
    let loaded = Memo::new(move |_| practice.with(|p| p.as_ref().map(|c| c.id)));
    Effect::new(move |_| ctx.shown.set(Some(usize::from(loaded.get().is_some()))));
    view! {
        <p><a href="/">{move || ctx.t("Back to the list")}</a></p>
        {move || match loaded.get() {
            Some(id) => view! { <PracticeView id practice/> }.into_any(),
            None if replaced.get().is_some() => view! {
                <p data-testid="withdrawn">{ctx.t("This practice was withdrawn by its organization.")}</p>
            }.into_any(),
            None if missing() => view! { <p data-testid="not-found">{ctx.t("Not found")}</p> }.into_any(),
            None => view! { <p>{ctx.t("Loading…")}</p> }.into_any(),
        }}
    }
}

#[component]
fn PracticeView(id: DocumentId, practice: Memo<Option<Current>>) -> impl IntoView {
    let ctx = ctx();
    let p = move || practice.get().map(|c| c.practice);
    // Members of the practice's organization: its internal practice (this one, for a
    // draft; for a public practice, the one that published it, if it is here).
    let home = Memo::new(move |_| {
        let member = practice.with(|c| {
            c.as_ref().is_some_and(|c| {
                ctx.node
                    .get()
                    .is_some_and(|n| n.member_of(&c.practice.provenance.home_organization))
            })
        });
        let draft = practice.with(|c| c.as_ref().is_some_and(|c| c.practice.is_internal()));
        ctx.signals.revision.track();
        match (member, draft) {
            (false, _) => None,
            (true, true) => Some(id),
            (true, false) => replica().and_then(|r| r.internal_of(&id)),
        }
    });
    let internal = follow_practice(move || home.get());
    let editing = RwSignal::new(false);
    let problem = RwSignal::new(String::new());
    // Other organizations' practices are theirs to change (their node would refuse us); a
    // published one, by editors too unless the organization leaves that to reviewers; a
    // draft, until it is published (then its public practice is what is edited).
    let can_edit = move || {
        let Some(p) = p() else { return false };
        ctx.node.get().is_some_and(|n| {
            n.member_of(&p.provenance.home_organization)
                && n.role().is_some()
                && if p.is_internal() {
                    p.public_id().is_none()
                } else {
                    n.may_edit_published()
                }
        })
    };
    // Presence: say we are here now and every 10 s; show who else is.
    leptos::task::spawn_local(async move {
        for _ in 0..360 {
            // On a public practice, presence names the organization, not the person:
            // visitors receive it too.
            let who = replica().and_then(|r| r.with_doc(&id, |doc| ctx.author_for(doc)).flatten());
            if let (Some(r), Some(a)) = (replica(), who) {
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
        p().map(|p| display::facts(&PracticeRecord::from_practice(None, &p, true), lang()))
            .unwrap_or_default()
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
                    <Contacts practice internal/>
                </section>
            }>
                <EditForm id practice internal problem/>
            </Show>
            <Review id practice internal problem/>
            <Related id practice/>
            <History id/>
            <p class="ids"><small>{id.url()}</small></p>
        </article>
    }
}

#[component]
fn Contacts(practice: Memo<Option<Current>>, internal: Memo<Option<Current>>) -> impl IntoView {
    let ctx = ctx();
    // A public practice holds its contact only with consent; members of its organization
    // see the internal practice's, consented or not.
    let shown = move || {
        internal
            .get()
            .or_else(|| practice.get())
            .map(|c| c.practice.contact)
            .filter(|c: &Contact| !c.name.is_empty() || !c.email.is_empty())
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
