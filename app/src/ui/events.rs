//! Events (webinars, roundtables, city-to-city exchanges) and the member organizations.

use ibis_shared::model::catalogue::Entry;
use ibis_shared::model::directory::Directory;
use ibis_shared::model::event::Event;
use ibis_shared::model::taxonomy::{self, EVENT_KINDS, ORGANIZATION_KINDS};
use ibis_shared::model::{DocumentKind, ModelError};
use ibis_shared::DocumentId;
use leptos::prelude::*;

use super::{add::FieldProblem, ctx, list_in};
use crate::replica::{now_ms, replica};

#[component]
pub fn EventsPage() -> impl IntoView {
    let ctx = ctx();
    let events = move || {
        ctx.signals.revision.track();
        let list = replica().map(|r| r.events()).unwrap_or_default();
        ibis_shared::search::sorted(list, &|a, b| b.1.date.cmp(&a.1.date))
    };
    Effect::new(move |_| ctx.shown.set(Some(events().len())));
    let adding = RwSignal::new(false);
    view! {
        <section class="events">
            <h1>{move || ctx.t("Events")}</h1>
            <Show when=move || ctx.role().is_some()>
                <button data-testid="event-open" on:click=move |_| adding.update(|a| *a = !*a)>{move || ctx.t("Add an event")}</button>
            </Show>
            <Show when=move || adding.get()>
                <AddEvent done=move || adding.set(false)/>
            </Show>
            <Show when=move || events().is_empty()>
                <p>{move || ctx.t("No events yet.")}</p>
            </Show>
            <ul data-testid="event-list">
                {move || events().into_iter().map(|(_, e)| {
                    let kind = taxonomy::find(EVENT_KINDS, &e.event_kind).map(|t| t.label(ctx.lang.get()).to_owned()).unwrap_or_default();
                    let related = e.related_ids().filter_map(|id| replica().and_then(|r| r.summary(&id)).map(|s| (id, s.title))).collect::<Vec<_>>();
                    view! {
                        <li class="event" data-testid="event-row">
                            <strong>{e.title.as_str().to_owned()}</strong>
                            <span class="meta">{e.date.clone()} " · " {kind} {(!e.place.is_empty()).then(|| format!(" · {}", e.place))}</span>
                            {(!e.online_link.is_empty()).then(|| view! { <a href=e.online_link.clone() rel="noopener noreferrer">{ctx.t("Online link")}</a> })}
                            {(!e.recording.is_empty()).then(|| view! { " " <a href=e.recording.clone() rel="noopener noreferrer">{ctx.t("Recording")}</a> })}
                            <p>{e.description.as_str().to_owned()}</p>
                            <ul>{related.into_iter().map(|(id, title)| view! {
                                <li><a href=format!("/practices/{id}")>{title}</a></li>
                            }).collect_view()}</ul>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    }
}

#[component]
fn AddEvent(done: impl Fn() + Copy + 'static) -> impl IntoView {
    let ctx = ctx();
    let title = RwSignal::new(String::new());
    let kind = RwSignal::new(String::new());
    let date = RwSignal::new(String::new());
    let place = RwSignal::new(String::new());
    let link = RwSignal::new(String::new());
    let problem = RwSignal::new(String::new());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(author) = ctx.author() else {
            problem.set("log in to add events".into());
            return;
        };
        let mut event = Event::new(
            title.get_untracked().trim(),
            &kind.get_untracked(),
            &date.get_untracked(),
            &author,
        );
        event.place = place.get_untracked().trim().to_owned();
        event.online_link = link.get_untracked().trim().to_owned();
        let created = event.create(&author, now_ms() as i64);
        let doc = match created {
            Ok(doc) => doc,
            Err(ModelError::Invalid(errors)) => {
                problem.set(ibis_shared::model::validation::summarize(&errors));
                return;
            }
            Err(e) => {
                problem.set(e.to_string());
                return;
            }
        };
        let id = DocumentId::random();
        let outcome = replica()
            .ok_or_else(|| "storage is not ready".to_owned())
            .and_then(|r| r.insert(id, doc).map_err(|e| e.to_string()))
            .and_then(|()| list_in(DocumentKind::Catalogue, Entry::Event, id, &author));
        match outcome {
            Ok(()) => done(),
            Err(e) => problem.set(e),
        }
    };
    view! {
        <form class="add" on:submit=submit>
            <label>{move || ctx.t("Title")}<input data-testid="event-title" required prop:value=title on:input=move |ev| title.set(event_target_value(&ev))/></label>
            <div class="row">
                <label>{move || ctx.t("Kind")}
                    <select data-testid="event-kind" required on:change=move |ev| kind.set(event_target_value(&ev))>
                        <option value="">{move || ctx.t("Choose…")}</option>
                        {EVENT_KINDS.iter().map(|t| view! { <option value=t.key>{move || t.label(ctx.lang.get())}</option> }).collect_view()}
                    </select>
                </label>
                <label>{move || ctx.t("Date")}<input type="date" data-testid="event-date" required prop:value=date on:input=move |ev| date.set(event_target_value(&ev))/></label>
            </div>
            <label>{move || ctx.t("Place")}<input prop:value=place on:input=move |ev| place.set(event_target_value(&ev))/></label>
            <label>{move || ctx.t("Online link")}<input type="url" prop:value=link on:input=move |ev| link.set(event_target_value(&ev))/></label>
            <FieldProblem text=move || problem.get()/>
            <div class="actions">
                <button type="submit" class="primary" data-testid="event-submit">{move || ctx.t("Save")}</button>
                <button type="button" on:click=move |_| done()>{move || ctx.t("Cancel")}</button>
            </div>
        </form>
    }
}

#[component]
pub fn DirectoryPage() -> impl IntoView {
    let ctx = ctx();
    let organizations = move || {
        ctx.signals.revision.track();
        let id = ctx.node.get().and_then(|n| n.directory_id())?;
        replica()?
            .with_doc(&id, |doc| Directory::load(doc).ok())
            .flatten()
    };
    Effect::new(move |_| {
        ctx.shown
            .set(Some(organizations().map_or(0, |d| d.organizations.len())));
    });
    view! {
        <section class="directory">
            <h1>{move || organizations().map(|d| d.name).filter(|n| !n.is_empty()).unwrap_or_else(|| ctx.t("Organizations").to_owned())}</h1>
            <table data-testid="organizations">
                <thead><tr>
                    <th scope="col">{move || ctx.t("Name")}</th>
                    <th scope="col">{move || ctx.t("Kind")}</th>
                    <th scope="col">{move || ctx.t("City")}</th>
                    <th scope="col">{move || ctx.t("Country")}</th>
                    <th scope="col">{move || ctx.t("Website")}</th>
                </tr></thead>
                <tbody>
                    {move || organizations().map(|d| d.organizations.into_values().map(|o| {
                        let kind = taxonomy::find(ORGANIZATION_KINDS, &o.kind).map(|t| t.label(ctx.lang.get()).to_owned()).unwrap_or_default();
                        view! {
                            <tr data-testid="organization-row">
                                <td>{if o.node_url.is_empty() { view! { <span>{o.name.clone()}</span> }.into_any() } else { view! { <a href=o.node_url.clone()>{o.name.clone()}</a> }.into_any() }}</td>
                                <td>{kind}</td><td>{o.city.clone()}</td><td>{o.country.clone()}</td>
                                <td>{(!o.website.is_empty()).then(|| view! { <a href=o.website.clone() rel="noopener noreferrer">{o.website.clone()}</a> })}</td>
                            </tr>
                        }
                    }).collect_view())}
                </tbody>
            </table>
        </section>
    }
}
