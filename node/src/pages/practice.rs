//! `/practices/{id}`: one practice, as a visitor may see it — every public field, the
//! contact only with consent — with the head a search engine and a link preview read.

use axum::extract::Path;
use axum::response::Response;
use ibis_shared::model::display::{contact_line, facts, long_text, LONG_TEXTS};
use ibis_shared::model::facets::{facet_label, Facet};
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::review::ReviewState;
use ibis_shared::model::taxonomy::{self, THEMES};
use ibis_shared::DocumentId;
use serde_json::json;

use super::html::{escape, excerpt};
use super::page::{Page, PageLang};
use super::visit::Visit;
use super::{failed, VISIBLE};
use crate::server::practices::rfc3339;

/// The page's address for a record (its id without the `automerge:` scheme).
pub fn practice_path(r: &PracticeRecord) -> String {
    let id = r.id.as_deref().unwrap_or_default();
    format!("/practices/{}", id.strip_prefix("automerge:").unwrap_or(id))
}

pub async fn page(visit: Visit, Path(id): Path<String>) -> Response {
    let (state, lang) = (&visit.state, visit.lang);
    let path = format!("/practices/{id}");
    let Some(id) = DocumentId::parse_id_or_url(&id).ok() else {
        return visit.missing(&path);
    };
    let index = state.index.clone();
    let record = match tokio::task::spawn_blocking(move || index.get(&id, VISIBLE)).await {
        Ok(Ok(Some(record))) => record,
        Ok(Ok(None)) => return visit.missing(&path),
        Ok(Err(e)) => return failed(&e.to_string()),
        Err(e) => return failed(&e.to_string()),
    };
    let description = if record.summary.trim().is_empty() {
        excerpt(&record.context, 200)
    } else {
        excerpt(&record.summary, 200)
    };
    let mut page = Page::new(
        lang,
        &practice_path(&record),
        record.title.clone(),
        description,
    );
    page.og_type = "article";
    let base = state.config.node.public_url.trim_end_matches('/');
    page.json_ld = Some(json_ld(&record, base, &lang));
    page.main = render(&lang, &record);
    visit.respond(page)
}

fn render(lang: &PageLang, r: &PracticeRecord) -> String {
    let mut m = String::from("<article class=\"practice-page\" data-total=\"1\">");
    let country = facet_label(Facet::Country, &r.country, lang.lang);
    let place = [r.city.as_str(), country.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(escape)
        .collect::<Vec<_>>()
        .join(", ");
    m.push_str(&format!(
        "<header><h1>{}</h1><p class=\"where\">{place} · <span class=\"badge\">{}</span></p></header>",
        escape(&r.title),
        lang.t(ibis_shared::model::facets::state_word(&r.review_state)),
    ));
    m.push_str("<section>");
    if !r.summary.is_empty() {
        m.push_str(&format!("<p class=\"summary\">{}</p>", escape(&r.summary)));
    }
    for (field, heading) in LONG_TEXTS {
        let text = long_text(r, field);
        if !text.trim().is_empty() {
            m.push_str(&format!(
                "<h2>{}</h2><p class=\"long\">{}</p>",
                lang.t(heading),
                escape(text)
            ));
        }
    }
    m.push_str("<dl class=\"facts\">");
    for (heading, value) in facts(r, lang.lang) {
        m.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>",
            lang.t(heading),
            escape(&value)
        ));
    }
    m.push_str("</dl>");
    if let Some(contact) = contact_line(r) {
        m.push_str(&format!(
            "<h2>{}</h2><p>{}</p>",
            lang.t("Contact"),
            escape(&contact)
        ));
    }
    if !r.resources.is_empty() {
        m.push_str(&format!("<h2>{}</h2><ul>", lang.t("Resources")));
        for link in &r.resources {
            let title = if link.title.is_empty() {
                &link.url
            } else {
                &link.title
            };
            m.push_str(&format!(
                "<li><a href=\"{}\" rel=\"noopener noreferrer\">{}</a></li>",
                escape(&safe_url(&link.url)),
                escape(title)
            ));
        }
        m.push_str("</ul>");
    }
    m.push_str("</section>");
    m.push_str(&format!(
        "<p><a href=\"{}\">{}</a></p>",
        escape(&lang.link("/", &[])),
        lang.t("Back to the list")
    ));
    if let Some(id) = &r.id {
        m.push_str(&format!(
            "<p class=\"ids\"><small>{}</small></p>",
            escape(id)
        ));
    }
    m.push_str("</article>");
    m
}

/// A link only when it is http(s): a record's resource is whatever its writer typed, and
/// `javascript:` must not become a link.
pub fn safe_url(url: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        url.trim().to_owned()
    } else {
        "#".to_owned()
    }
}

/// schema.org's description of the practice: an article about a place, by its lead
/// organization.
fn json_ld(r: &PracticeRecord, base: &str, lang: &PageLang) -> serde_json::Value {
    let keywords: Vec<String> = r
        .themes
        .iter()
        .map(|k| {
            taxonomy::find(THEMES, k)
                .map(|t| t.label(lang.lang).to_owned())
                .unwrap_or_else(|| k.clone())
        })
        .collect();
    let mut value = json!({
        "@context": "https://schema.org",
        "@type": "Article",
        "headline": r.title,
        "name": r.title,
        "description": excerpt(&r.summary, 300),
        "keywords": keywords.join(", "),
        "spatialCoverage": {
            "@type": "Place",
            "address": {
                "@type": "PostalAddress",
                "addressLocality": r.city,
                "addressCountry": r.country,
            },
        },
        "identifier": r.id,
    });
    if !r.lead_organization.is_empty() {
        value["author"] = json!({ "@type": "Organization", "name": r.lead_organization });
    }
    if !base.is_empty() {
        value["url"] = json!(format!("{base}{}", practice_path(r)));
    }
    if let (Some(lat), Some(lon)) = (r.latitude, r.longitude) {
        value["spatialCoverage"]["geo"] =
            json!({ "@type": "GeoCoordinates", "latitude": lat, "longitude": lon });
    }
    if r.updated_at > 0 {
        value["dateModified"] = json!(rfc3339(r.updated_at));
    }
    if !r.language.is_empty() {
        value["inLanguage"] = json!(r.language);
    }
    if r.review_state == ReviewState::Archived.key() {
        value["creativeWorkStatus"] = json!("archived");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_links_become_links() {
        assert_eq!(safe_url(" https://example.org/a "), "https://example.org/a");
        assert_eq!(safe_url("javascript:alert(1)"), "#");
        assert_eq!(safe_url("JaVaScRiPt:alert(1)"), "#");
    }
}
