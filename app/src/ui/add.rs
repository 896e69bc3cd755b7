//! "Add a practice": the essentials, then the practice page for everything else.

use ibis_shared::model::catalogue::Entry;
use ibis_shared::model::countries::COUNTRIES;
use ibis_shared::model::practice::Coordinates;
use ibis_shared::model::taxonomy::THEMES;
use ibis_shared::model::validation::{check_complete, FieldError};
use ibis_shared::model::{DocumentKind, ModelError, Practice, TagSet};
use ibis_shared::DocumentId;
use leptos::prelude::*;

use super::publishing::{add_published, publish_new};
use super::{ctx, list_in, route::navigate};
use crate::replica::{now_ms, replica};

/// How long saving a new practice waits for the node to place its city (ms).
const PLACE_WAIT_MS: i32 = 800;

#[component]
pub fn AddPractice(done: impl Fn() + Copy + 'static) -> impl IntoView {
    let ctx = ctx();
    let title = RwSignal::new(String::new());
    let city = RwSignal::new(String::new());
    let country = RwSignal::new(String::new());
    let summary = RwSignal::new(String::new());
    let theme = RwSignal::new(String::new());
    let can_publish = move || ctx.role().is_some_and(|r| r.can_review());
    let publish = RwSignal::new(true);
    let errors = RwSignal::new(Vec::<FieldError>::new());
    // Where the city is (asked of the node once city and country are chosen; offline,
    // nothing): the practice is placed on the map as an import would place it. Kept with
    // the city and country it answers for.
    let located = RwSignal::new(None::<(String, String, Coordinates)>);
    let locate = move || {
        let (place, land) = (city.get_untracked(), country.get_untracked());
        let place = place.trim().to_owned();
        if place.is_empty() || land.is_empty() {
            return;
        }
        leptos::task::spawn_local(async move {
            if let Some(at) = crate::node_api::place(&land, &place).await {
                // (The form may have been saved and closed meanwhile.)
                located.try_set(Some((land, place, at)));
            }
        });
    };
    let error_for = move |field: &'static str| {
        move || {
            errors
                .get()
                .iter()
                .filter(|e| e.field == field)
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        }
    };

    let save = move |coordinates: Option<Coordinates>| {
        let Some(author) = ctx.author() else {
            errors.set(vec![FieldError::new("form", "log in to add practices")]);
            return;
        };
        let now = now_ms() as i64;
        let mut practice = Practice::new(
            title.get_untracked().trim(),
            city.get_untracked().trim(),
            &country.get_untracked(),
            &author,
            now,
        );
        practice.summary = summary.get_untracked().trim().into();
        practice.coordinates = coordinates;
        let chosen = theme.get_untracked();
        if !chosen.is_empty() {
            practice.themes = TagSet::from_iter([chosen]);
        }
        let publishing = can_publish() && publish.get_untracked();
        // Everything the form asks for is required, so the practice can be submitted or
        // published as soon as it is saved.
        let mut problems = check_complete(&practice);
        problems.extend(ibis_shared::model::validation::check_practice(&practice));
        if !problems.is_empty() {
            errors.set(problems);
            return;
        }
        // The internal practice (listed in the workspace), and, published now, its public
        // practice (listed in the catalogue).
        let mut doc = match practice.create(&author, now) {
            Ok(doc) => doc,
            Err(ModelError::Invalid(problems)) => {
                errors.set(problems);
                return;
            }
            Err(e) => {
                errors.set(vec![FieldError::new("form", e.to_string())]);
                return;
            }
        };
        let published = if publishing {
            match publish_new(&mut doc) {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.set(vec![FieldError::new("form", e)]);
                    return;
                }
            }
        } else {
            None
        };
        let id = DocumentId::random();
        let saved = replica()
            .ok_or_else(|| "storage is not ready".to_owned())
            .and_then(|r| r.insert(id, doc).map_err(|e| e.to_string()))
            .and_then(|()| list_in(DocumentKind::Workspace, Entry::Practice, id, &author))
            .and_then(|()| published.map(add_published).transpose());
        let public = match saved {
            Ok(public) => public,
            Err(e) => {
                errors.set(vec![FieldError::new("form", e)]);
                return;
            }
        };
        errors.set(Vec::new());
        for s in [title, city, country, summary, theme] {
            s.set(String::new());
        }
        done();
        if let Some(public) = public {
            navigate(&format!("/practices/{public}"), false);
        }
    };

    // Saved with its place: asked of the node when city and country were chosen, or else
    // now (waiting a moment at most: offline or slow, the practice is saved without it).
    // Saving reads the app's context: it runs under the form's owner, after the wait.
    let owner = Owner::current();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let owner = owner.clone();
        let (place, land) = (city.get_untracked(), country.get_untracked());
        let place = place.trim().to_owned();
        let known = located.with_untracked(|l| {
            l.as_ref()
                .filter(|(l, p, _)| *l == land && *p == place)
                .map(|(_, _, at)| at.clone())
        });
        leptos::task::spawn_local(async move {
            let coordinates = match known {
                Some(at) => Some(at),
                None if place.is_empty() || land.is_empty() => None,
                None => {
                    let asked = Box::pin(crate::node_api::place(&land, &place));
                    let waited = Box::pin(crate::replica::sleep(PLACE_WAIT_MS));
                    match futures::future::select(asked, waited).await {
                        futures::future::Either::Left((at, _)) => at,
                        futures::future::Either::Right(_) => None,
                    }
                }
            };
            match owner {
                Some(owner) => owner.with(|| save(coordinates)),
                None => save(coordinates),
            }
        });
    };

    view! {
        <form class="add" on:submit=submit aria-labelledby="add-heading">
            <h2 id="add-heading">{move || ctx.t("Add a practice")}</h2>
            <label>{move || ctx.t("Title")}
                <input data-testid="add-title" required maxlength="300"
                    prop:value=title on:input=move |ev| title.set(event_target_value(&ev))/>
            </label>
            <FieldProblem text=error_for("title")/>
            <div class="row">
                <label>{move || ctx.t("City")}
                    <input data-testid="add-city" required maxlength="200"
                        prop:value=city on:input=move |ev| city.set(event_target_value(&ev))
                        on:change=move |_| locate()/>
                </label>
                <label>{move || ctx.t("Country")}
                    <select data-testid="add-country" required
                        on:change=move |ev| {
                            country.set(event_target_value(&ev));
                            locate();
                        }>
                        <option value="" selected=move || country.get().is_empty()>{move || ctx.t("Choose…")}</option>
                        {COUNTRIES
                            .iter()
                            .map(|(code, name)| view! {
                                <option value=*code selected=move || country.get() == *code>{*name}</option>
                            })
                            .collect_view()}
                    </select>
                </label>
            </div>
            <FieldProblem text=error_for("city")/>
            <FieldProblem text=error_for("country")/>
            <label>{move || ctx.t("Summary")}
                <textarea data-testid="add-summary" rows="3" maxlength="3000"
                    prop:value=summary on:input=move |ev| summary.set(event_target_value(&ev))></textarea>
            </label>
            <FieldProblem text=error_for("summary")/>
            <label>{move || ctx.t("Theme")}
                <select data-testid="add-theme" on:change=move |ev| theme.set(event_target_value(&ev))>
                    <option value="" selected=move || theme.get().is_empty()>{move || ctx.t("Choose…")}</option>
                    {THEMES
                        .iter()
                        .map(|t| view! {
                            <option value=t.key selected=move || theme.get() == t.key>
                                {move || t.label(ctx.lang.get())}
                            </option>
                        })
                        .collect_view()}
                </select>
            </label>
            <FieldProblem text=error_for("themes")/>
            <Show when=can_publish>
                <label class="check">
                    <input type="checkbox" data-testid="add-publish" prop:checked=publish
                        on:change=move |ev| publish.set(event_target_checked(&ev))/>
                    {move || ctx.t("Publish now")}
                </label>
            </Show>
            <FieldProblem text=error_for("form")/>
            <div class="actions">
                <button type="submit" class="primary" data-testid="add-submit">{move || ctx.t("Save")}</button>
                <button type="button" on:click=move |_| done()>{move || ctx.t("Cancel")}</button>
            </div>
        </form>
    }
}

#[component]
pub fn FieldProblem(text: impl Fn() -> String + Send + Sync + 'static) -> impl IntoView {
    let text = Signal::derive(text);
    view! {
        <Show when=move || !text.get().is_empty()>
            <p class="field-error" data-testid="field-error" role="alert">{move || text.get()}</p>
        </Show>
    }
}
