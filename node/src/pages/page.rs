//! What every server-rendered page has: its language, its `<head>`, the app's shell
//! around it, and HTTP caching.

use std::path::Path;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use ibis_shared::i18n::{self, tr, Lang};

use super::caching::{cached, Audience};
use super::html::{escape, json_ld, query};
use crate::server::AppState;

/// The app's `index.html` (Trunk's build, with its script and stylesheet) with places for
/// a page's language, head and body; or, for a node that serves no app, a plain page.
#[derive(Debug, Clone)]
pub struct Shell {
    template: String,
}

const LANG: &str = "{{ibis:lang}}";
const HEAD: &str = "{{ibis:head}}";
const BODY: &str = "{{ibis:body}}";

const PLAIN: &str = "<!doctype html>\n<html lang=\"{{ibis:lang}}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<link rel=\"icon\" href=\"data:,\">\n{{ibis:head}}</head>\n<body>{{ibis:body}}</body>\n</html>\n";

impl Shell {
    /// The shell from the app's directory, if it has an `index.html` this can fill in.
    pub fn new(app_dir: Option<&Path>) -> Self {
        let Some(dir) = app_dir else {
            return Self::plain();
        };
        let path = dir.join("index.html");
        match std::fs::read_to_string(&path) {
            Ok(index) => Self::from_index(&index).unwrap_or_else(|| {
                tracing::warn!(path = %path.display(), "the app's index.html has no <head> and empty <body> to fill; pages are served without the app");
                Self::plain()
            }),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the app's index.html; pages are served without the app");
                Self::plain()
            }
        }
    }

    fn plain() -> Self {
        Self {
            template: PLAIN.to_owned(),
        }
    }

    /// The app's page with its own title and description taken out (each page has its
    /// own) and places for ours.
    fn from_index(index: &str) -> Option<Self> {
        let mut t = index.to_owned();
        t = remove_between(&t, "<title>", "</title>");
        t = remove_between(&t, "<meta name=\"description\"", ">");
        t = t.replacen("<html lang=\"en\">", &format!("<html lang=\"{LANG}\">"), 1);
        let head_end = t.find("</head>")?;
        t.insert_str(head_end, HEAD);
        let body = t.find("<body></body>")?;
        t.replace_range(
            body..body + "<body></body>".len(),
            &format!("<body>{BODY}</body>"),
        );
        t.contains(LANG).then_some(Self { template: t })
    }

    fn render(&self, lang: Lang, head: &str, body: &str) -> String {
        self.template
            .replacen(LANG, lang.code(), 1)
            .replacen(HEAD, head, 1)
            .replacen(BODY, body, 1)
    }
}

/// `text` without the first `start`…`end` span (both included).
fn remove_between(text: &str, start: &str, end: &str) -> String {
    let Some(from) = text.find(start) else {
        return text.to_owned();
    };
    let Some(len) = text[from..].find(end) else {
        return text.to_owned();
    };
    let mut out = text.to_owned();
    out.replace_range(from..from + len + end.len(), "");
    out
}

/// The language a page is in: `?lang=`, then the browser's `Accept-Language`, then
/// English. `explicit` when the address chose it (links then keep it).
#[derive(Debug, Clone, Copy)]
pub struct PageLang {
    pub lang: Lang,
    pub explicit: bool,
}

impl PageLang {
    pub fn of(params: &[(String, String)], headers: &HeaderMap) -> Self {
        if let Some(lang) = params
            .iter()
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::from_code(v))
        {
            return Self {
                lang,
                explicit: true,
            };
        }
        let lang = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(i18n::from_accept_language)
            .unwrap_or_default();
        Self {
            lang,
            explicit: false,
        }
    }

    pub fn t(&self, english: &'static str) -> &'static str {
        tr(self.lang, english)
    }

    /// A link to one of the pages, in this language when the address chose it.
    pub fn link(&self, path: &str, params: &[(&str, &str)]) -> String {
        let mut pairs = params.to_vec();
        if self.explicit {
            pairs.push(("lang", self.lang.code()));
        }
        format!("{path}{}", query(&pairs))
    }
}

/// One page, ready to be sent.
pub struct Page {
    pub status: StatusCode,
    pub lang: PageLang,
    /// The page's path, and the query parameters (other than `lang`) that make it what it
    /// is: its canonical address and its language alternates are built from them.
    pub path: String,
    pub params: Vec<(String, String)>,
    pub title: String,
    pub description: String,
    /// Open Graph's type: `website` or `article`.
    pub og_type: &'static str,
    pub json_ld: Option<serde_json::Value>,
    /// Kept out of search engines (a 404, a search result page).
    pub noindex: bool,
    /// What `<main>` holds.
    pub main: String,
}

impl Page {
    pub fn new(lang: PageLang, path: &str, title: String, description: String) -> Self {
        Self {
            status: StatusCode::OK,
            lang,
            path: path.to_owned(),
            params: Vec::new(),
            title,
            description,
            og_type: "website",
            json_ld: None,
            noindex: false,
            main: String::new(),
        }
    }

    /// The page, in the shell, with its caching headers; `304 Not Modified` when the
    /// client holds this very page.
    pub fn respond(self, state: &AppState, shell: &Shell, request: &HeaderMap) -> Response {
        let base = state.config.node.public_url.trim_end_matches('/');
        let head = self.head(base, &state.info.organization_name);
        let body = self.body(&state.info.organization_name);
        let html = shell.render(self.lang.lang, &head, &body);
        cached(
            self.status,
            "text/html; charset=utf-8",
            html,
            request,
            Audience::Everyone {
                lang: Some(self.lang.lang),
            },
        )
    }

    fn address(&self, base: &str, lang: Option<Lang>) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(lang) = lang {
            pairs.push(("lang", lang.code()));
        }
        format!("{base}{}{}", self.path, query(&pairs))
    }

    fn head(&self, base: &str, organization: &str) -> String {
        let title = format!("{} — ibis", self.title);
        let mut h = String::new();
        let meta = |h: &mut String, attr: &str, key: &str, value: &str| {
            h.push_str(&format!(
                "<meta {attr}=\"{key}\" content=\"{}\">\n",
                escape(value)
            ));
        };
        h.push_str(&format!("<title>{}</title>\n", escape(&title)));
        meta(&mut h, "name", "description", &self.description);
        if self.noindex {
            meta(&mut h, "name", "robots", "noindex");
        }
        let canonical = self.address(base, self.lang.explicit.then_some(self.lang.lang));
        h.push_str(&format!(
            "<link rel=\"canonical\" href=\"{}\">\n",
            escape(&canonical)
        ));
        for lang in Lang::ALL {
            h.push_str(&format!(
                "<link rel=\"alternate\" hreflang=\"{}\" href=\"{}\">\n",
                lang.code(),
                escape(&self.address(base, Some(lang)))
            ));
        }
        h.push_str(&format!(
            "<link rel=\"alternate\" hreflang=\"x-default\" href=\"{}\">\n",
            escape(&self.address(base, None))
        ));
        h.push_str(&format!(
            "<link rel=\"alternate\" type=\"application/atom+xml\" href=\"{}/feed.atom\" title=\"{}\">\n",
            escape(base),
            escape(organization)
        ));
        meta(&mut h, "property", "og:type", self.og_type);
        meta(&mut h, "property", "og:title", &self.title);
        meta(&mut h, "property", "og:description", &self.description);
        meta(
            &mut h,
            "property",
            "og:site_name",
            &format!("ibis · {organization}"),
        );
        meta(&mut h, "property", "og:locale", og_locale(self.lang.lang));
        if !base.is_empty() {
            meta(&mut h, "property", "og:url", &canonical);
        }
        meta(&mut h, "name", "twitter:card", "summary");
        meta(&mut h, "name", "twitter:title", &self.title);
        meta(&mut h, "name", "twitter:description", &self.description);
        if let Some(value) = &self.json_ld {
            h.push_str(&json_ld(value));
            h.push('\n');
        }
        h
    }

    fn body(&self, organization: &str) -> String {
        let l = &self.lang;
        let here: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let languages: String = Lang::ALL
            .into_iter()
            .map(|lang| {
                let mut pairs = here.clone();
                pairs.push(("lang", lang.code()));
                let current = if lang == l.lang {
                    " aria-current=\"true\""
                } else {
                    ""
                };
                format!(
                    "<a href=\"{}\" hreflang=\"{code}\" lang=\"{code}\"{current}>{}</a>",
                    escape(&format!("{}{}", self.path, query(&pairs))),
                    lang.name(),
                    code = lang.code(),
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "<div id=\"ssr\">\
<a class=\"skip\" href=\"#content\">{skip}</a>\
<header class=\"top\"><div class=\"brand\"><a href=\"{home}\"><strong>ibis</strong></a>\
<span class=\"tagline\">{tagline}</span><span class=\"org\">{org}</span></div>\
<nav aria-label=\"main\"><a href=\"{home}\">{practices}</a><a href=\"{events_link}\">{events}</a>\
<a href=\"{orgs_link}\">{orgs}</a><a href=\"{map_link}\">{map}</a></nav>\
<div class=\"tools\"><nav class=\"languages\" aria-label=\"{language}\">{languages}</nav></div></header>\
<main id=\"content\">{main}</main></div>",
            skip = l.t("Skip to content"),
            home = escape(&l.link("/", &[])),
            tagline = l.t("Good practices for migrant integration"),
            org = escape(organization),
            practices = l.t("Practices"),
            events_link = escape(&l.link("/events", &[])),
            events = l.t("Events"),
            orgs_link = escape(&l.link("/organizations", &[])),
            map_link = escape(&l.link("/map", &[])),
            map = l.t("Map"),
            orgs = l.t("Organizations"),
            language = l.t("Language"),
            main = self.main,
        )
    }
}

fn og_locale(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en_GB",
        Lang::Fr => "fr_FR",
        Lang::Es => "es_ES",
    }
}

/// The page for an address that is not one: a real 404, in the visitor's language, with
/// the app's shell (the app then shows its own "not found").
pub async fn not_found(visit: super::visit::Visit, uri: axum::http::Uri) -> Response {
    visit.missing(uri.path())
}

impl Page {
    /// A 404 page at `path`.
    pub fn not_found(lang: PageLang, path: &str) -> Self {
        let mut page = Page::new(
            lang,
            path,
            lang.t("Not found").to_owned(),
            lang.t("Not found").to_owned(),
        );
        page.status = StatusCode::NOT_FOUND;
        page.noindex = true;
        page.main = format!(
            "<h1>{}</h1><p><a href=\"{}\">{}</a></p>",
            lang.t("Not found"),
            escape(&lang.link("/", &[])),
            lang.t("Practices")
        );
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUNK_INDEX: &str = "<!doctype html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\" />\n    <meta name=\"description\" content=\"ibis: a shared clearinghouse\" />\n    <title>ibis — good practices</title>\n    <link rel=\"stylesheet\" href=\"/style-1.css\"/>\n<script type=\"module\">import init from '/ibis-app-1.js';</script>\n</head>\n  <body></body>\n</html>\n";

    #[test]
    fn the_apps_index_gets_the_pages_language_head_and_body() {
        let shell = Shell::from_index(TRUNK_INDEX).expect("fillable");
        let html = shell.render(Lang::Fr, "<title>T</title>", "<div id=\"ssr\">B</div>");
        assert!(html.contains("<html lang=\"fr\">"));
        assert_eq!(html.matches("<title>").count(), 1);
        assert!(!html.contains("a shared clearinghouse"));
        assert!(html.contains("<title>T</title></head>"));
        assert!(html.contains("<body><div id=\"ssr\">B</div></body>"));
        assert!(html.contains("/ibis-app-1.js"), "the app still loads");
    }

    #[test]
    fn an_index_without_an_empty_body_is_not_filled() {
        assert!(Shell::from_index("<html><head></head><body><p>x</p></body></html>").is_none());
    }
}
