//! Browse: search and facets over the local replica (over the node's index until the
//! replica holds the whole catalogue), the results, and exports of what is shown.

use std::sync::Arc;

use ibis_shared::model::facets::{facet_label, facet_title, state_word, Facet};
use ibis_shared::model::record::{PracticeRecord, CSV_COLUMNS};
use ibis_shared::model::review::ReviewState;
use leptos::prelude::*;

use super::{add::AddPractice, ctx, download};
use crate::node_api::NodeSearch;
use crate::replica::{mark_once, replica};
use ibis_shared::search::{Index, Query};

/// Practices shown at first, and added by each "Show more".
const PAGE: usize = 50;

fn to_csv(records: &[PracticeRecord]) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for r in records {
        out.push_str(
            &r.csv_fields()
                .iter()
                .map(|f| field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

/// A value shared by reference; equal only to itself, so a memo holding it changes
/// whenever it is recomputed.
pub struct Shared<T>(pub Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[component]
pub fn ListPage() -> impl IntoView {
    let ctx = ctx();
    // The search is the address's (a shared link, the server's page), and the address
    // follows the search.
    let query = RwSignal::new(super::route::search_in_address());
    Effect::new(move |_| query.with(super::route::show_search_in_address));
    // The index is rebuilt when documents change, not on every keystroke.
    let index = Memo::new(move |_| {
        ctx.signals.revision.track();
        ctx.ready.track();
        Shared(Arc::new(Index::new(
            replica().map(|r| r.summaries()).unwrap_or_default(),
        )))
    });
    let local = Memo::new(move |_| Shared(Arc::new(index.get().0.search(&query.get()))));
    // The list shows a page at a time; a new search starts again at the first page.
    let limit = RwSignal::new(PAGE);
    Effect::watch(move || query.track(), move |_, _, _| limit.set(PAGE), false);
    // Until the replica finds what the node finds (a first visit, its catalogue still
    // arriving), the node answers: a search covers every practice from the first second.
    // Once the replica has caught up (the catalogue loaded, and a search of it as long as
    // the node's), the replica answers alone: live, offline, with no request.
    let node_answer: RwSignal<Option<Shared<NodeSearch>>> = RwSignal::new(None);
    let caught_up = RwSignal::new(false);
    // A returning browser's replica is its catalogue from the first moment (its stored
    // practices are listed before it is ready): the node's answer, which may still list
    // what this browser already saw withdrawn, is never shown to it.
    Effect::new(move |_| {
        if ctx.ready.get() && ctx.signals.settled.get_untracked() {
            caught_up.set(true);
        }
    });
    // Asked again as the replica changes (at most every two seconds), so an answer the
    // node's index gave a moment before a withdrawal does not outlive it.
    let asked_at = StoredValue::new(0u64);
    Effect::new(move |_| {
        if caught_up.get() {
            return;
        }
        let (asked, wanted) = (query.get(), limit.get());
        let now = crate::replica::now_ms();
        let same = node_answer.with_untracked(|a| a.as_ref().is_some_and(|a| a.0.query == asked));
        ctx.signals.revision.track();
        if same && now.saturating_sub(asked_at.get_value()) < 2_000 {
            return;
        }
        asked_at.set_value(now);
        leptos::task::spawn_local(async move {
            if let Ok(found) = crate::node_api::search(&asked, wanted).await {
                if query.with_untracked(|now| *now == asked) {
                    node_answer.set(Some(Shared(Arc::new(found))));
                }
            }
        });
    });
    let answer = move || {
        let local_hits = local.with(|l| l.0.hits.len());
        node_answer.get().filter(|a| {
            !caught_up.get() && a.0.total > local_hits && query.with(|q| a.0.query == *q)
        })
    };
    Effect::new(move |_| {
        let behind = node_answer.with(|a| {
            a.as_ref().is_none_or(|a| {
                query.with(|q| a.0.query != *q) || a.0.total > local.with(|l| l.0.hits.len())
            })
        });
        if ctx.signals.settled.get() && !behind {
            caught_up.set(true);
        }
    });
    // (Closures rather than memos: each memo type adds its own code to the app.)
    let from_node = move || answer().is_some();
    let total = move || match answer() {
        Some(a) => a.0.total,
        None => local.get().0.hits.len(),
    };
    let counts = Callback::new(move |at: usize| {
        match answer() {
            Some(a) => a.0.facets.get(at).cloned(),
            None => local.get().0.facets.get(at).cloned(),
        }
        .unwrap_or_default()
    });
    Effect::new(move |_| ctx.shown.set(Some(total())));
    // The first `n` matching records.
    let first = move |n: usize| match answer() {
        Some(a) => a.0.records.iter().take(n).cloned().collect::<Vec<_>>(),
        None => {
            let index = index.get().0;
            local
                .get()
                .0
                .hits
                .iter()
                .take(n)
                .map(|&i| index.record(i).clone())
                .collect()
        }
    };
    let matching = move || first(usize::MAX);
    let shown = move || first(limit.get());
    let more = move || total().saturating_sub(limit.get());
    // Points in the page's timeline: the first rows, and the whole stored catalogue shown.
    Effect::new(move |_| {
        if total() > 0 {
            mark_once("ibis:list-first-rows");
            if ctx.signals.settled.get() && !from_node() {
                mark_once("ibis:list-complete");
            }
        }
    });
    let export_csv = move |_| download("practices.csv", "text/csv", &to_csv(&matching()));
    let export_json = move |_| {
        let text = serde_json::to_string_pretty(&matching()).unwrap_or_default();
        download("practices.json", "application/json", &text);
    };
    let adding = RwSignal::new(false);
    view! {
        <section class="browse">
            <div class="search">
                <label for="search">{move || ctx.t("Search practices")}</label>
                <input id="search" type="search" data-testid="search"
                    prop:value=move || query.get().text
                    on:input=move |ev| query.update(|q| q.text = event_target_value(&ev))/>
                <span data-testid="result-count" class="count">
                    {total} " " {move || ctx.t("practices")}
                </span>
                // Exports are of the whole result, which only the replica holds.
                <button data-testid="export-csv" disabled=from_node on:click=export_csv>{move || ctx.t("Export CSV")}</button>
                <button data-testid="export-json" disabled=from_node on:click=export_json>{move || ctx.t("Export JSON")}</button>
                <Show when=move || ctx.author().is_some() || ctx.role().is_some()>
                    <button data-testid="add-open" class="primary"
                        on:click=move |_| adding.update(|a| *a = !*a)>{move || ctx.t("Add a practice")}</button>
                </Show>
            </div>
            <Show when=move || adding.get()>
                <AddPractice done=move || adding.set(false)/>
            </Show>
            <div class="columns">
                <aside class="facets" aria-label="filters">
                    <Show when=move || !query.get().filters.is_empty()>
                        <button on:click=move |_| query.update(|q| q.filters.clear())>{move || ctx.t("Clear filters")}</button>
                    </Show>
                    {Facet::ALL
                        .into_iter()
                        .map(|facet| view! { <FacetBox facet query counts/> })
                        .collect_view()}
                </aside>
                <div class="results">
                    <Show when=move || ctx.ready.get() && total() == 0>
                        <p>{move || ctx.t("No practices match.")}</p>
                    </Show>
                    <ul data-testid="practice-list" class="practices"
                        data-source=move || if from_node() { "node" } else { "replica" }>
                        <For each=shown key=|r| (r.id.clone(), r.updated_at, r.title.clone()) let:r>
                            <PracticeRow record=r/>
                        </For>
                    </ul>
                    <Show when=move || { more() > 0 }>
                        <button data-testid="show-more" class="more"
                            on:click=move |_| limit.update(|l| *l += PAGE)>
                            {move || ctx.t("Show more")} " (" {more} ")"
                        </button>
                    </Show>
                </div>
            </div>
        </section>
    }
}

#[component]
fn FacetBox(
    facet: Facet,
    query: RwSignal<Query>,
    /// The facet's (value, count) pairs, by the facet's place in `Facet::ALL`.
    counts: Callback<usize, Vec<(String, usize)>>,
) -> impl IntoView {
    let ctx = ctx();
    let at = Facet::ALL
        .iter()
        .position(|f| *f == facet)
        .unwrap_or_default();
    let values = move || {
        let mut values = counts.run(at);
        // Keep selected values visible even when they match nothing now.
        for v in query.get().selected(facet) {
            if !values.iter().any(|(x, _)| x == v) {
                values.push((v.clone(), 0));
            }
        }
        values.truncate(30);
        values
    };
    view! {
        <Show when=move || !values().is_empty()>
            <fieldset data-testid=format!("facet-{}", facet.key())>
                <legend>{move || ctx.t(facet_title(facet))}</legend>
                <For each=values key=|(v, n)| (v.clone(), *n) let:item>
                    {
                        let (value, count) = item;
                        let v = value.clone();
                        let checked = move || query.get().is_selected(facet, &v);
                        let toggle_value = value.clone();
                        let label_value = value.clone();
                        view! {
                            <label class="facet-option" data-testid="facet-option" data-value=value.clone() data-count=count>
                                <input type="checkbox" prop:checked=checked
                                    on:change=move |_| query.update(|q| q.toggle(facet, &toggle_value))/>
                                {move || facet_label(facet, &label_value, ctx.lang.get())}
                                " " <span class="n">{count}</span>
                            </label>
                        }
                    }
                </For>
            </fieldset>
        </Show>
    }
}

#[component]
fn PracticeRow(record: PracticeRecord) -> impl IntoView {
    let ctx = ctx();
    let path = format!(
        "/practices/{}",
        record
            .id
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches("automerge:")
    );
    let country = record.country.clone();
    let state = record.review_state.clone();
    let public = ReviewState::from_key(&state).is_some_and(|s| s.is_public());
    view! {
        <li class="practice" data-testid="practice-row">
            <a href=path>
                // The node's page marks its first title so; the app's titles too, for when
                // the app takes over before the node's page was painted.
                {view! { <span data-testid="practice-title">{record.title.clone()}</span> }
                    .attr("elementtiming", "first-practice")}
            </a>
            <span class="where">
                <span data-testid="practice-city">{record.city.clone()}</span> ", "
                <span data-testid="practice-country" title=move || facet_label(Facet::Country, &country, ctx.lang.get())>
                    {record.country.clone()}
                </span>
            </span>
            <Show when=move || !public>
                <span class="badge" data-testid="practice-state">
                    {let s = state.clone(); move || ctx.t(state_word(&s))}
                </span>
            </Show>
            <p class="summary">{record.summary.chars().take(240).collect::<String>()}</p>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let r = PracticeRecord {
            title: "Desks, \"one-stop\"".into(),
            summary: "line one\nline two".into(),
            ..PracticeRecord::default()
        };
        let csv = to_csv(&[r]);
        assert!(csv.starts_with("id,title,summary,"));
        assert!(csv.contains("\"Desks, \"\"one-stop\"\"\""));
        assert!(csv.contains("\"line one\nline two\""));
    }
}
