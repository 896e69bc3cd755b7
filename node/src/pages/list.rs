//! `/`: the catalogue — search, facets and paging as query parameters, so that a filtered
//! view is a link one can share (`/?q=housing&country=FR&page=2`).

use std::collections::BTreeSet;

use axum::response::Response;
use ibis_shared::model::facets::{facet_label, facet_title, Facet};
use ibis_shared::model::list_query::{ListQuery, MAX_PAGE};
use ibis_shared::model::record::PracticeRecord;
use serde_json::json;

use super::html::{escape, excerpt};
use super::page::{Page, PageLang};
use super::practice::practice_path;
use super::public_search;
use super::visit::Visit;
use crate::index;

/// Practices on one page of the list.
pub const PAGE_SIZE: usize = 20;
/// Values shown for each facet (the most frequent).
const FACET_VALUES: usize = 12;

/// The index's search for one page of a list query.
pub(super) fn index_query(asked: &ListQuery) -> index::Query {
    let mut q = index::Query {
        text: asked.text.clone(),
        limit: PAGE_SIZE,
        offset: (asked.page - 1) * PAGE_SIZE,
        ..index::Query::default()
    };
    for (facet, value) in &asked.filters {
        q.filters.entry(*facet).or_default().insert(value.clone());
    }
    q
}

pub async fn page(visit: Visit) -> Response {
    let (state, lang) = (&visit.state, visit.lang);
    let asked = ListQuery::from_pairs(visit.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let result = match public_search(state, index_query(&asked)).await {
        Ok(result) => result,
        Err(response) => return response,
    };
    let title = lang.t("Good practices for migrant integration").to_owned();
    let description = format!(
        "{} {} — {}",
        result.total,
        lang.t("practices"),
        lang.t("Good practices for migrant integration")
    );
    let mut page = Page::new(lang, "/", title, description);
    page.params = asked
        .to_pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    page.noindex = !asked.text.is_empty();
    let base = state.config.node.public_url.trim_end_matches('/');
    if asked.is_empty() && asked.page == 1 && !base.is_empty() {
        page.json_ld = Some(json!({
            "@context": "https://schema.org",
            "@type": "WebSite",
            "name": format!("ibis · {}", state.info.organization_name),
            "url": format!("{base}/"),
            "potentialAction": {
                "@type": "SearchAction",
                "target": format!("{base}/?q={{search_term_string}}"),
                "query-input": "required name=search_term_string",
            },
        }));
    }
    page.main = render(&lang, &asked, &result);
    visit.respond(page)
}

fn render(lang: &PageLang, asked: &ListQuery, result: &index::SearchResult) -> String {
    let mut m = String::new();
    m.push_str(&format!(
        "<section class=\"browse\" data-total=\"{}\"><h1 class=\"visually-hidden\">{}</h1>",
        result.total,
        lang.t("Practices")
    ));
    // The search form: a GET to this page, so it works without script.
    let filters: String = asked
        .filters
        .iter()
        .map(|(facet, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                facet.key(),
                escape(value)
            )
        })
        .chain(lang.explicit.then(|| {
            format!(
                "<input type=\"hidden\" name=\"lang\" value=\"{}\">",
                lang.lang.code()
            )
        }))
        .collect();
    m.push_str(&format!(
        "<form class=\"search\" role=\"search\" method=\"get\" action=\"/\">\
<label for=\"ssr-q\">{label}</label> <input id=\"ssr-q\" type=\"search\" name=\"q\" value=\"{value}\">\
{filters}<span class=\"count\">{total} {practices}</span><button type=\"submit\">{search}</button></form>",
        label = lang.t("Search practices"),
        value = escape(&asked.text),
        search = lang.t("Search"),
        total = result.total,
        practices = lang.t("practices"),
    ));
    m.push_str("<div class=\"columns\">");
    m.push_str(&facets(lang, asked, result));
    m.push_str("<div class=\"results\">");
    let pairs = asked.search_pairs();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    m.push_str(&format!(
        "<p><a href=\"{}\">{}</a>",
        escape(&lang.link("/map", &pairs)),
        lang.t("Show on a map")
    ));
    if !asked.is_empty() {
        m.push_str(&format!(
            " · <a href=\"{}\">{}</a>",
            escape(&lang.link("/", &[])),
            lang.t("Clear filters")
        ));
    }
    m.push_str("</p>");
    if result.results.is_empty() {
        m.push_str(&format!("<p>{}</p>", lang.t("No practices match.")));
    }
    m.push_str("<ul class=\"practices\">");
    for (i, record) in result.results.iter().enumerate() {
        m.push_str(&row(lang, record, i == 0));
    }
    m.push_str("</ul>");
    m.push_str(&pages(lang, asked, result.total));
    m.push_str("</div></div></section>");
    m
}

fn facets(lang: &PageLang, asked: &ListQuery, result: &index::SearchResult) -> String {
    let chosen: BTreeSet<(Facet, &str)> = asked
        .filters
        .iter()
        .map(|(f, v)| (*f, v.as_str()))
        .collect();
    let mut out = format!(
        "<aside class=\"facets\" aria-label=\"{}\">",
        lang.t("Filters")
    );
    for facet in Facet::ALL {
        let Some(values) = result.facets.get(facet.key()).filter(|v| !v.is_empty()) else {
            continue;
        };
        out.push_str(&format!(
            "<fieldset><legend>{}</legend>",
            lang.t(facet_title(facet))
        ));
        for (value, count) in values.iter().take(FACET_VALUES) {
            let on = chosen.contains(&(facet, value.as_str()));
            let mut next = asked.clone();
            next.toggle(facet, value);
            out.push_str(&format!(
                "<a class=\"facet-option{}\" href=\"{}\">{} <span class=\"n\">{count}</span></a>",
                if on { " on\" aria-current=\"true" } else { "" },
                escape(&link(lang, &next)),
                escape(&facet_label(facet, value, lang.lang)),
            ));
        }
        out.push_str("</fieldset>");
    }
    out.push_str("</aside>");
    out
}

/// One practice in the list; the first is marked for the browser's element timing (when
/// the first title was painted: what the benchmark reads).
fn row(lang: &PageLang, r: &PracticeRecord, first: bool) -> String {
    let place = [
        r.city.as_str(),
        &facet_label(Facet::Country, &r.country, lang.lang),
    ]
    .iter()
    .filter(|s| !s.is_empty())
    .map(|s| escape(s))
    .collect::<Vec<_>>()
    .join(", ");
    format!(
        "<li class=\"practice\"><a href=\"{}\"{}>{}</a> <span class=\"where\">{place}</span>\
<p class=\"summary\">{}</p></li>",
        escape(&lang.link(&practice_path(r), &[])),
        if first {
            " elementtiming=\"first-practice\""
        } else {
            ""
        },
        escape(&r.title),
        escape(&excerpt(&r.summary, 240)),
    )
}

fn pages(lang: &PageLang, asked: &ListQuery, total: usize) -> String {
    let last = total.div_ceil(PAGE_SIZE).clamp(1, MAX_PAGE);
    if last == 1 {
        return String::new();
    }
    let mut out = format!("<nav class=\"pages\" aria-label=\"{}\">", lang.t("Pages"));
    if asked.page > 1 {
        out.push_str(&format!(
            "<a rel=\"prev\" href=\"{}\">← {}</a> ",
            escape(&link(
                lang,
                &ListQuery {
                    page: asked.page - 1,
                    ..asked.clone()
                }
            )),
            lang.t("Previous")
        ));
    }
    out.push_str(&format!(
        "<span>{} {} / {last}</span>",
        lang.t("Page"),
        asked.page.min(last)
    ));
    if asked.page < last {
        out.push_str(&format!(
            " <a rel=\"next\" href=\"{}\">{} →</a>",
            escape(&link(
                lang,
                &ListQuery {
                    page: asked.page + 1,
                    ..asked.clone()
                }
            )),
            lang.t("Next")
        ));
    }
    out.push_str("</nav>");
    out
}

/// The list's address for a search.
fn link(lang: &PageLang, asked: &ListQuery) -> String {
    let params = asked.to_pairs();
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    lang.link("/", &pairs)
}
