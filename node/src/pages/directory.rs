//! The network's public directory: `/organizations` and `/organizations/{id}` (from the
//! directory document), `/events` and `/events/{id}` (events each organization lists in
//! its catalogue).

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::response::Response;
use ibis_shared::model::catalogue::Listing;
use ibis_shared::model::directory::{Directory, Organization};
use ibis_shared::model::event::Event;
use ibis_shared::model::facets::{facet_label, Facet};
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::taxonomy::{self, EVENT_KINDS, ORGANIZATION_KINDS};
use ibis_shared::model::DocumentKind;
use ibis_shared::DocumentId;
use serde_json::json;

use super::html::{escape, excerpt};
use super::page::{Page, PageLang};
use super::practice::{practice_path, safe_url};
use super::visit::Visit;
use super::{failed, VISIBLE};
use crate::server::AppState;

/// Most events a page or the sitemap lists.
const MAX_EVENTS: usize = 2_000;
/// Most practices an organization's page lists.
const MAX_ORGANIZATION_PRACTICES: usize = 500;

/// What the public directory holds: the organizations, and the events their catalogues
/// list (newest first).
#[derive(Debug, Default)]
pub struct Network {
    pub organizations: BTreeMap<String, Organization>,
    pub events: Vec<ListedEvent>,
    /// Each organization's catalogued practices.
    pub practices: BTreeMap<String, Vec<DocumentId>>,
}

#[derive(Debug)]
pub struct ListedEvent {
    pub id: DocumentId,
    pub event: Event,
    /// The organization whose catalogue lists it.
    pub organization: String,
}

/// Reads the directory and every member's catalogue and events from storage (not from
/// the engine: a page must not keep documents in memory). A catalogue counts for an
/// organization only if it is the one the directory names and it says it is that
/// organization's.
pub async fn network(state: &AppState) -> Option<Network> {
    let directory_id = DocumentId::parse_id_or_url(&state.info.directory).ok()?;
    let index = state.index.clone();
    let read = move || -> Result<Network, crate::index::IndexError> {
        let mut network = Network::default();
        let Some(directory) = index
            .stored_document(&directory_id)?
            .and_then(|doc| Directory::load(&doc).ok())
        else {
            return Ok(network);
        };
        for (org_id, organization) in &directory.organizations {
            let Some(catalogue) = organization.catalogue_id() else {
                continue;
            };
            let listing = index
                .stored_document(&catalogue)?
                .and_then(|doc| Listing::load(&doc, DocumentKind::Catalogue).ok())
                .filter(|l| l.organization == *org_id);
            let Some(listing) = listing else { continue };
            network
                .practices
                .insert(org_id.clone(), listing.practice_ids().collect());
            for id in listing.event_ids() {
                if network.events.len() >= MAX_EVENTS {
                    break;
                }
                if let Some(event) = index
                    .stored_document(&id)?
                    .and_then(|doc| Event::load(&doc).ok())
                {
                    network.events.push(ListedEvent {
                        id,
                        event,
                        organization: org_id.clone(),
                    });
                }
            }
        }
        network.organizations = directory.organizations;
        network
            .events
            .sort_by(|a, b| b.event.date.cmp(&a.event.date).then(a.id.cmp(&b.id)));
        Ok(network)
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(network)) => Some(network),
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot read the directory");
            None
        }
        Err(_) => None,
    }
}

pub async fn organizations(visit: Visit) -> Response {
    let lang = visit.lang;
    let Some(network) = network(&visit.state).await else {
        return unreadable();
    };
    let title = lang.t("Organizations").to_owned();
    let description = format!(
        "{} {} — {}",
        network.organizations.len(),
        lang.t("Organizations").to_lowercase(),
        lang.t("Good practices for migrant integration")
    );
    let mut page = Page::new(lang, "/organizations", title, description);
    let mut m = format!(
        "<section class=\"directory\" data-total=\"{}\"><h1>{}</h1><ul class=\"organizations\">",
        network.organizations.len(),
        lang.t("Organizations")
    );
    let mut sorted: Vec<(&String, &Organization)> = network.organizations.iter().collect();
    sorted.sort_by_key(|(_, o)| o.name.to_lowercase());
    for (id, o) in sorted {
        m.push_str(&format!(
            "<li class=\"organization\"><a href=\"{}\"><strong>{}</strong></a> <span class=\"meta\">{}</span></li>",
            escape(&lang.link(&organization_path(id), &[])),
            escape(&o.name),
            escape(&organization_meta(o, &lang)),
        ));
    }
    m.push_str("</ul></section>");
    page.main = m;
    visit.respond(page)
}

fn unreadable() -> Response {
    failed("the directory is not readable")
}

pub fn organization_path(id: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/organizations/{encoded}")
}

fn organization_meta(o: &Organization, lang: &PageLang) -> String {
    let kind = taxonomy::find(ORGANIZATION_KINDS, &o.kind)
        .map(|t| t.label(lang.lang).to_owned())
        .unwrap_or_default();
    let country = facet_label(Facet::Country, &o.country, lang.lang);
    [
        kind,
        o.city.clone(),
        if o.country.is_empty() {
            String::new()
        } else {
            country
        },
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" · ")
}

pub async fn organization(visit: Visit, Path(id): Path<String>) -> Response {
    let (state, lang) = (&visit.state, visit.lang);
    let Some(mut network) = network(state).await else {
        return unreadable();
    };
    let path = organization_path(&id);
    let Some(o) = network.organizations.remove(&id) else {
        return visit.missing(&path);
    };
    let ids: Vec<DocumentId> = network
        .practices
        .remove(&id)
        .unwrap_or_default()
        .into_iter()
        .take(MAX_ORGANIZATION_PRACTICES)
        .collect();
    let index = state.index.clone();
    let practices = match tokio::task::spawn_blocking(move || {
        let mut records: Vec<PracticeRecord> = Vec::new();
        for id in ids {
            if let Some(r) = index.get(&id, VISIBLE)? {
                records.push(r);
            }
        }
        records.sort_by_key(|r| r.title.to_lowercase());
        Ok::<_, crate::index::IndexError>(records)
    })
    .await
    {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => return failed(&e.to_string()),
        Err(e) => return failed(&e.to_string()),
    };
    let meta = organization_meta(&o, &lang);
    let description = if meta.is_empty() {
        o.name.clone()
    } else {
        format!("{} — {meta}", o.name)
    };
    let mut page = Page::new(lang, &path, o.name.clone(), description);
    let mut ld = json!({
        "@context": "https://schema.org",
        "@type": "Organization",
        "name": o.name,
        "address": {
            "@type": "PostalAddress",
            "addressLocality": o.city,
            "addressCountry": o.country,
        },
    });
    if !o.website.is_empty() {
        ld["url"] = json!(o.website);
    }
    page.json_ld = Some(ld);
    let mut m = format!(
        "<article class=\"organization-page\"><h1>{}</h1><p class=\"meta\">{}</p>",
        escape(&o.name),
        escape(&meta)
    );
    if !o.website.is_empty() {
        m.push_str(&format!(
            "<p><a href=\"{}\" rel=\"noopener noreferrer\">{}</a></p>",
            escape(&safe_url(&o.website)),
            escape(&o.website)
        ));
    }
    m.push_str(&format!(
        "<h2>{}</h2><ul class=\"practices\">",
        lang.t("Practices")
    ));
    for r in &practices {
        m.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>",
            escape(&lang.link(&practice_path(r), &[])),
            escape(&r.title)
        ));
    }
    m.push_str("</ul>");
    let events: Vec<&ListedEvent> = network
        .events
        .iter()
        .filter(|e| e.organization == id)
        .collect();
    if !events.is_empty() {
        m.push_str(&format!("<h2>{}</h2><ul>", lang.t("Events")));
        for e in events {
            m.push_str(&event_row(e, &lang));
        }
        m.push_str("</ul>");
    }
    m.push_str("</article>");
    page.main = m;
    visit.respond(page)
}

pub async fn events(visit: Visit) -> Response {
    let lang = visit.lang;
    let Some(network) = network(&visit.state).await else {
        return unreadable();
    };
    let title = lang.t("Events").to_owned();
    let description = format!(
        "{} — {}",
        lang.t("Events"),
        lang.t("Good practices for migrant integration")
    );
    let mut page = Page::new(lang, "/events", title, description);
    let mut m = format!(
        "<section class=\"events\" data-total=\"{}\"><h1>{}</h1>",
        network.events.len(),
        lang.t("Events")
    );
    if network.events.is_empty() {
        m.push_str(&format!("<p>{}</p>", lang.t("No events yet.")));
    }
    m.push_str("<ul>");
    for e in &network.events {
        m.push_str(&event_row(e, &lang));
    }
    m.push_str("</ul></section>");
    page.main = m;
    visit.respond(page)
}

pub fn event_path(id: &DocumentId) -> String {
    format!("/events/{id}")
}

fn event_kind(e: &Event, lang: &PageLang) -> String {
    taxonomy::find(EVENT_KINDS, &e.event_kind)
        .map(|t| t.label(lang.lang).to_owned())
        .unwrap_or_default()
}

fn event_row(e: &ListedEvent, lang: &PageLang) -> String {
    let meta = [
        e.event.date.clone(),
        event_kind(&e.event, lang),
        e.event.place.clone(),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" · ");
    format!(
        "<li class=\"event\"><a href=\"{}\"><strong>{}</strong></a> <span class=\"meta\">{}</span></li>",
        escape(&lang.link(&event_path(&e.id), &[])),
        escape(e.event.title.as_str()),
        escape(&meta)
    )
}

pub async fn event(visit: Visit, Path(id): Path<String>) -> Response {
    let (state, lang) = (&visit.state, visit.lang);
    let path = format!("/events/{id}");
    let Some(network) = network(state).await else {
        return unreadable();
    };
    let Some(listed) = DocumentId::parse_id_or_url(&id)
        .ok()
        .and_then(|id| network.events.into_iter().find(|e| e.id == id))
    else {
        return visit.missing(&path);
    };
    let e = &listed.event;
    let related: Vec<DocumentId> = e.related_ids().take(100).collect();
    let index = state.index.clone();
    let practices = tokio::task::spawn_blocking(move || {
        related
            .iter()
            .filter_map(|id| index.get(id, VISIBLE).ok().flatten())
            .collect::<Vec<PracticeRecord>>()
    })
    .await
    .unwrap_or_default();
    let organizer = network
        .organizations
        .get(&listed.organization)
        .map(|o| o.name.clone())
        .unwrap_or_default();
    let kind = event_kind(e, &lang);
    let description = excerpt(
        &format!(
            "{} · {kind} · {} — {}",
            e.date,
            organizer,
            e.description.as_str()
        ),
        200,
    );
    let mut page = Page::new(
        lang,
        &event_path(&listed.id),
        e.title.as_str().to_owned(),
        description,
    );
    let mut ld = json!({
        "@context": "https://schema.org",
        "@type": "Event",
        "name": e.title.as_str(),
        "startDate": e.date,
        "description": excerpt(e.description.as_str(), 300),
        "organizer": { "@type": "Organization", "name": organizer },
    });
    match (e.place.is_empty(), e.online_link.is_empty()) {
        (false, true) => {
            ld["eventAttendanceMode"] = json!("https://schema.org/OfflineEventAttendanceMode");
            ld["location"] = json!({ "@type": "Place", "name": e.place });
        }
        (true, false) => {
            ld["eventAttendanceMode"] = json!("https://schema.org/OnlineEventAttendanceMode");
            ld["location"] = json!({ "@type": "VirtualLocation", "url": e.online_link });
        }
        (false, false) => {
            ld["eventAttendanceMode"] = json!("https://schema.org/MixedEventAttendanceMode");
            ld["location"] = json!([
                { "@type": "Place", "name": e.place },
                { "@type": "VirtualLocation", "url": e.online_link },
            ]);
        }
        (true, true) => {}
    }
    page.json_ld = Some(ld);
    let mut m = format!(
        "<article class=\"event-page\"><h1>{}</h1><p class=\"meta\">{}</p>",
        escape(e.title.as_str()),
        escape(
            &[e.date.clone(), kind, e.place.clone(), organizer]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" · ")
        )
    );
    if !e.description.as_str().is_empty() {
        m.push_str(&format!(
            "<p class=\"long\">{}</p>",
            escape(e.description.as_str())
        ));
    }
    for (url, label) in [(&e.online_link, "Online link"), (&e.recording, "Recording")] {
        if !url.is_empty() {
            m.push_str(&format!(
                "<p><a href=\"{}\" rel=\"noopener noreferrer\">{}</a></p>",
                escape(&safe_url(url)),
                lang.t(label)
            ));
        }
    }
    if !practices.is_empty() {
        m.push_str(&format!("<h2>{}</h2><ul>", lang.t("Practices")));
        for r in &practices {
            m.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape(&lang.link(&practice_path(r), &[])),
                escape(&r.title)
            ));
        }
        m.push_str("</ul>");
    }
    m.push_str("</article>");
    page.main = m;
    visit.respond(page)
}
