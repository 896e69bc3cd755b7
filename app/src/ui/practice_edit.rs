//! Editing a practice: a draft in its internal practice, a published one live in its
//! public practice (in the organization's name), and its contact in the internal practice —
//! and in the public one only with consent.

use ibis_shared::model::practice::{
    apply_edit, Contact, PracticeEdit, Resource, ScalarField, TagField, TextField,
};
use ibis_shared::model::taxonomy::{
    self, ACTOR_LEVELS, EVIDENCE_LEVELS, GCM_OBJECTIVES, SDG_GOALS, TARGET_GROUPS, THEMES,
};
use ibis_shared::model::ModelError;
use ibis_shared::DocumentId;
use leptos::prelude::*;

use super::editor::CollabText;
use ibis_shared::model::display::LONG_TEXTS;

use super::practice::Current;
use super::{ctx, publishing, route::navigate};
use crate::replica::{now_ms, replica};

/// Applies an edit to a practice document as one change: in the person's name, or in a
/// public practice (which never names a person) in their organization's.
pub fn apply_to(id: DocumentId, edit: &PracticeEdit) -> Result<(), String> {
    let ctx = ctx();
    let replica = replica().ok_or("storage is not ready")?;
    replica
        .change(id, |doc| {
            let author = ctx
                .author_for(doc)
                .ok_or_else(|| ModelError::Forbidden("log in to edit".into()))?;
            apply_edit(doc, edit, &author, now_ms() as i64)
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// A contact edited on the page of `shown`: kept in the internal practice (`internal`),
/// and in a public practice only with consent. Withdrawing the consent a public practice
/// was published with withdraws that practice (its history holds the contact) and
/// republishes it without the contact, under a new id: returned then.
fn edit_contact(
    shown: &Current,
    internal: Option<DocumentId>,
    contact: Contact,
) -> Result<Option<DocumentId>, String> {
    if shown.practice.is_internal() {
        return apply_to(shown.id, &PracticeEdit::Contact(contact)).map(|()| None);
    }
    let internal = internal.ok_or("the practice's internal record is not here yet")?;
    if shown.practice.contact != Contact::default() && !contact.consent {
        if !ctx().role().is_some_and(|r| r.can_review()) {
            return Err("only reviewers and admins may withdraw a published contact".into());
        }
        apply_to(internal, &PracticeEdit::Contact(contact))?;
        return publishing::withdraw(shown.id, internal, true, "the contact withdrew consent")
            .map(Some);
    }
    let public = contact
        .consent
        .then(|| PracticeEdit::Contact(contact.clone()));
    apply_to(internal, &PracticeEdit::Contact(contact))?;
    match public {
        Some(edit) => apply_to(shown.id, &edit).map(|()| None),
        None => Ok(None),
    }
}

/// The form: `id` is the document the page shows, `internal` the internal practice (the
/// same document, for a draft).
#[component]
pub fn EditForm(
    id: DocumentId,
    practice: Memo<Option<Current>>,
    internal: Memo<Option<Current>>,
    problem: RwSignal<String>,
) -> impl IntoView {
    let ctx = ctx();
    let p = move || practice.get().map(|c| c.practice);
    let apply = move |e: PracticeEdit| problem.set(apply_to(id, &e).err().unwrap_or_default());
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
            <Coordinates p apply problem/>
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
            <ContactFields practice internal problem/>
            <label>{move || ctx.t("Resources")}
                <textarea rows="3" data-testid="edit-resources"
                    prop:value=move || p().map(|p| p.resources.iter().map(|r| format!("{} | {}", r.title, r.url)).collect::<Vec<_>>().join("\n")).unwrap_or_default()
                    on:change=move |ev| apply(PracticeEdit::Resources(event_target_value(&ev).lines().filter(|l| !l.trim().is_empty()).map(|l| {
                        let (title, url) = l.rsplit_once('|').unwrap_or(("", l));
                        Resource { title: title.trim().to_owned(), url: url.trim().to_owned() }
                    }).collect()))></textarea>
            </label>
        </section>
    }
}

/// The contact, which lives in the internal practice (members of the organization only).
#[component]
fn ContactFields(
    practice: Memo<Option<Current>>,
    internal: Memo<Option<Current>>,
    problem: RwSignal<String>,
) -> impl IntoView {
    let ctx = ctx();
    let contact = move || {
        internal
            .get()
            .map(|c| c.practice.contact)
            .unwrap_or_default()
    };
    let change = move |c: Contact| {
        let Some(shown) = practice.get_untracked() else {
            return;
        };
        let internal = internal.get_untracked().map(|c| c.id);
        match edit_contact(&shown, internal, c) {
            Ok(Some(new)) => navigate(&format!("/practices/{new}"), true),
            Ok(None) => problem.set(String::new()),
            Err(e) => problem.set(e),
        }
    };
    let field = move |text: &'static str,
                      testid: &'static str,
                      kind: &'static str,
                      get: fn(&Contact) -> &String,
                      set: fn(&mut Contact) -> &mut String| {
        view! {
            <label>{move || ctx.t(text)}
                <input type=kind data-testid=testid prop:value=move || get(&contact()).clone()
                    on:change=move |ev| { let mut c = contact(); *set(&mut c) = event_target_value(&ev); change(c); }/>
            </label>
        }
    };
    // Unchecking consent on a published practice republishes it: say so beforehand.
    let published_contact = move || {
        practice
            .get()
            .is_some_and(|c| !c.practice.is_internal() && c.practice.contact != Contact::default())
    };
    view! {
        <Show when=move || internal.get().is_some()>
            <fieldset data-testid="edit-contact">
                <legend>{move || ctx.t("Contact")}</legend>
                {field("Name", "edit-contact-name", "text", |c| &c.name, |c| &mut c.name)}
                {field("Role", "edit-contact-role", "text", |c| &c.role, |c| &mut c.role)}
                {field("Email", "edit-contact-email", "email", |c| &c.email, |c| &mut c.email)}
                {field("Phone", "edit-contact-phone", "text", |c| &c.phone, |c| &mut c.phone)}
                <label class="check"><input type="checkbox" data-testid="edit-consent" prop:checked=move || contact().consent
                    on:change=move |ev| { let mut c = contact(); c.consent = event_target_checked(&ev); change(c); }/>
                    {move || ctx.t("Share contact publicly")}</label>
                <Show when=published_contact>
                    <p class="hint" data-testid="consent-note">{move || ctx.t("Unchecking this withdraws the published practice, whose history holds the contact, and republishes it without the contact at a new address.")}</p>
                </Show>
            </fieldset>
        </Show>
    }
}

/// Where the practice is: two number fields the browser reads (the app then carries no
/// decimal parsing or printing of its own: its size budget). Both, or neither.
#[component]
fn Coordinates(
    p: impl Fn() -> Option<ibis_shared::model::Practice> + Copy + Send + Sync + 'static,
    apply: impl Fn(PracticeEdit) + Copy + Send + Sync + 'static,
    problem: RwSignal<String>,
) -> impl IntoView {
    let ctx = ctx();
    let lat = NodeRef::<leptos::html::Input>::new();
    let lon = NodeRef::<leptos::html::Input>::new();
    let shown = move |of: fn(&ibis_shared::model::practice::Coordinates) -> f64| {
        move || {
            p().and_then(|p| p.coordinates)
                .map(|c| wasm_bindgen::JsValue::from_f64(of(&c)))
                .unwrap_or_else(|| wasm_bindgen::JsValue::from_str(""))
        }
    };
    let changed = move |_| {
        let read = |field: NodeRef<leptos::html::Input>| {
            field
                .get_untracked()
                .map(|i| i.value_as_number())
                .filter(|n| !n.is_nan())
        };
        match (read(lat), read(lon)) {
            (Some(lat), Some(lon)) => apply(PracticeEdit::Coordinates(Some(
                ibis_shared::model::practice::Coordinates { lat, lon },
            ))),
            (None, None) => apply(PracticeEdit::Coordinates(None)),
            _ => problem.set(ctx.t("latitude and longitude go together").into()),
        }
    };
    // The node's gazetteer places the practice by its city, as an import would.
    let owner = Owner::current();
    let from_city = move |_| {
        let Some(p) = p() else { return };
        let owner = owner.clone();
        leptos::task::spawn_local(async move {
            let found = crate::node_api::place(&p.country, &p.city).await;
            if problem.is_disposed() {
                return; // the editor was closed meanwhile
            }
            let answer = move || match found {
                Some(at) => apply(PracticeEdit::Coordinates(Some(at))),
                None => problem.set(ctx.t("the node does not know where this city is").into()),
            };
            match owner {
                Some(owner) => owner.with(answer),
                None => answer(),
            }
        });
    };
    view! {
        <fieldset class="row" data-testid="edit-coordinates">
            <legend>{move || ctx.t("Coordinates")}</legend>
            <label>{move || ctx.t("Latitude")}
                <input type="number" step="any" min="-90" max="90" node_ref=lat
                    data-testid="edit-latitude" prop:value=shown(|c| c.lat) on:change=changed/>
            </label>
            <label>{move || ctx.t("Longitude")}
                <input type="number" step="any" min="-180" max="180" node_ref=lon
                    data-testid="edit-longitude" prop:value=shown(|c| c.lon) on:change=changed/>
            </label>
            <button type="button" data-testid="edit-locate" on:click=from_city
                disabled=move || !ctx.signals.online.get()>
                {move || ctx.t("From the city")}
            </button>
        </fieldset>
    }
}
