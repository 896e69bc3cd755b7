//! `/map`: where the practices are — countries drawn from the world map the node ships
//! ([`crate::geo::world_map`]), a point per place (a city of a country) sized by its
//! practices and linking to the list of them; the same search, facets and `?lang=` as
//! the list's address (`/map?theme=housing`), and the places as a plain list below the
//! map for readers who do not see it.

use axum::response::Response;
use ibis_shared::model::facets::{facet_label, Facet};
use ibis_shared::model::list_query::ListQuery;

use super::html::escape;
use super::list::index_query;
use super::page::{Page, PageLang};
use super::visit::Visit;
use super::{failed, VISIBLE};
use crate::geo::world_map;
use crate::index::Place;

/// Places listed below the map (the most practices first).
const LISTED_PLACES: usize = 500;

pub async fn page(visit: Visit) -> Response {
    let (state, lang) = (&visit.state, visit.lang);
    let asked = ListQuery::from_pairs(visit.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut q = index_query(&asked);
    q.visible = VISIBLE.to_vec();
    let index = state.index.clone();
    let (places, unplaced) = match tokio::task::spawn_blocking(move || index.places(&q)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return failed(&e.to_string()),
        Err(e) => return failed(&e.to_string()),
    };
    let title = lang.t("Practices on a map").to_owned();
    let placed: usize = places.iter().map(|p| p.practices).sum();
    let description = format!("{} {} — {title}", placed + unplaced, lang.t("practices"));
    let mut page = Page::new(lang, "/map", title.clone(), description);
    page.params = asked
        .search_pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    page.noindex = !asked.is_empty();
    page.main = render(&lang, &asked, &title, &places, unplaced);
    visit.respond(page)
}

/// The list of the search's practices at `place`.
fn place_link(lang: &PageLang, asked: &ListQuery, place: &Place) -> String {
    let mut at = asked.clone();
    at.page = 1;
    for (facet, value) in [(Facet::Country, &place.country), (Facet::City, &place.city)] {
        if !value.is_empty() && !at.is_selected(facet, value) {
            at.filters.push((facet, value.clone()));
        }
    }
    let pairs = at.search_pairs();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    lang.link("/", &pairs)
}

fn place_name(lang: &PageLang, place: &Place) -> String {
    let country = facet_label(Facet::Country, &place.country, lang.lang);
    match (place.city.is_empty(), place.country.is_empty()) {
        (false, false) => format!("{}, {country}", place.city),
        (false, true) => place.city.clone(),
        _ => country,
    }
}

fn render(
    lang: &PageLang,
    asked: &ListQuery,
    title: &str,
    places: &[Place],
    unplaced: usize,
) -> String {
    let pairs = asked.search_pairs();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let placed: usize = places.iter().map(|p| p.practices).sum();
    let mut m = format!(
        "<section class=\"map\"><h1>{title}</h1><p><a href=\"{list}\">{as_list}</a> · \
<span data-testid=\"placed\">{placed}</span> {practices}",
        title = escape(title),
        list = escape(&lang.link("/", &pairs)),
        as_list = lang.t("Show as a list"),
        practices = lang.t("practices"),
    );
    if unplaced > 0 {
        m.push_str(&format!(
            ", <span data-testid=\"unplaced\">{unplaced}</span> {}",
            lang.t("without coordinates")
        ));
    }
    m.push_str("</p>");
    // Presentation attributes rather than a style sheet: the page's policy allows none
    // inline, and the map needs no other styles. The picture is for the eye and the
    // mouse; the places listed below it carry the same links for keyboards and screen
    // readers (hundreds of points would be as many tab stops).
    m.push_str(&format!(
        "<svg class=\"world\" viewBox=\"0 0 {w} {h:.0}\" width=\"100%\" aria-hidden=\"true\" \
focusable=\"false\"><g fill=\"#dfe6ee\" stroke=\"#ffffff\" stroke-width=\"0.5\">{countries}</g>\
<g fill=\"#b03a2e\" fill-opacity=\"0.8\" stroke=\"#ffffff\" stroke-width=\"0.8\">",
        w = world_map::WIDTH,
        h = world_map::height(),
        countries = world_map::countries(),
    ));
    for place in places {
        let (x, y) = world_map::project(place.lat, place.lon);
        let r = (2.5 + (place.practices as f64).sqrt() * 1.5).min(14.0);
        m.push_str(&format!(
            "<a href=\"{href}\" tabindex=\"-1\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\" data-testid=\"place\">\
<title>{name}: {n} {practices}</title></circle></a>",
            href = escape(&place_link(lang, asked, place)),
            name = escape(&place_name(lang, place)),
            n = place.practices,
            practices = lang.t("practices"),
        ));
    }
    m.push_str("</g></svg>");
    // The data's licences ask for credit (GeoNames: CC BY 4.0; Natural Earth: none).
    m.push_str(&format!(
        "<p class=\"credit\"><small>{}: Natural Earth · {}: \
<a href=\"https://www.geonames.org\">GeoNames</a> (CC BY 4.0)</small></p>",
        lang.t("Map"),
        lang.t("Places")
    ));
    if !places.is_empty() {
        m.push_str(&format!(
            "<h2>{}</h2><ul class=\"places\">",
            lang.t("Places")
        ));
        for place in places.iter().take(LISTED_PLACES) {
            m.push_str(&format!(
                "<li><a href=\"{}\">{}</a> <span class=\"n\">{}</span></li>",
                escape(&place_link(lang, asked, place)),
                escape(&place_name(lang, place)),
                place.practices
            ));
        }
        m.push_str("</ul>");
    }
    m.push_str("</section>");
    m
}
