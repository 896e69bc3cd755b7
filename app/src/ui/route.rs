//! Which page shows, and moving between pages without reloading the app.
//!
//! The address bar is the state: [`Page::from_path`] reads it. A click on a link to one of
//! the app's own pages changes it with `history.pushState` instead of loading the page
//! again, and back/forward (`popstate`) are followed. Everything else — other sites, the
//! node's API and feeds, downloads, links opened in a new tab, `#fragment` links — is left
//! to the browser. (Four pages did not need a router library: this replaced
//! `leptos_router`, whose generic code was a fifth of the interface's share of the wasm.)

use std::cell::Cell;

use ibis_shared::model::list_query::ListQuery;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

thread_local! {
    /// The address bar's path, as [`start`] follows it.
    static PATH: Cell<Option<RwSignal<String>>> = const { Cell::new(None) };
}

/// The app's pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    List,
    /// `/practices/{id}`: the id as written (the page says if it is not a practice).
    Practice(String),
    Events,
    Organizations,
    /// `/map`: the node's page (drawn there, with the world map that ships with the node);
    /// the app shows it only offline, to say so.
    Map,
    NotFound,
}

impl Page {
    pub fn from_path(path: &str) -> Page {
        let path = match path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        match path {
            "/" | "/index.html" => Page::List,
            "/events" => Page::Events,
            "/organizations" => Page::Organizations,
            "/map" => Page::Map,
            p => match p.strip_prefix("/practices/") {
                Some(id) if !id.is_empty() && !id.contains('/') => Page::Practice(id.to_owned()),
                _ => Page::NotFound,
            },
        }
    }

    /// Whether the app shows this page: its links are followed within the app, and it
    /// takes the node's page over. The map and addresses it does not know are the node's.
    pub fn is_the_apps(&self) -> bool {
        !matches!(self, Page::Map | Page::NotFound)
    }
}

/// The page for the address bar, kept current by link clicks and back/forward.
pub fn start() -> Memo<Page> {
    let path = RwSignal::new(location_path());
    PATH.with(|p| p.set(Some(path)));
    let back_or_forward = window_event_listener(leptos::ev::popstate, move |_| {
        path.set(location_path());
    });
    let clicks = window_event_listener(leptos::ev::click, move |ev| {
        if let Some(to) = in_app_target(&ev) {
            ev.prevent_default();
            navigate(&to, false);
        }
    });
    on_cleanup(move || {
        back_or_forward.remove();
        clicks.remove();
    });
    Memo::new(move |_| Page::from_path(&path.get()))
}

/// Shows another of the app's pages, as a link to it would; `replace`: instead of this
/// one in the history (a page that moved).
pub fn navigate(to: &str, replace: bool) {
    let Ok(history) = window().history() else {
        return;
    };
    let url = Some(to);
    let moved = if replace {
        history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", url)
    } else {
        history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", url)
    };
    if let (Ok(()), Some(path)) = (moved, PATH.with(Cell::get)) {
        path.set(location_path());
        window().scroll_to_with_x_and_y(0.0, 0.0);
    }
}

/// The address bar's query parameters, decoded (`+` is a space), 64 at most.
pub fn address_params() -> Vec<(String, String)> {
    let search = window().location().search().unwrap_or_default();
    let decode = |text: &str| {
        js_sys::decode_uri_component(&text.replace('+', " "))
            .ok()
            .and_then(|s| s.as_string())
    };
    search
        .trim_start_matches('?')
        .split('&')
        .take(64)
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(key)?, decode(value)?))
        })
        .collect()
}

/// The search the address bar holds (`/?q=housing&country=FR`): a shared link, or the
/// server's list page the app took over, opens on the same search.
pub fn search_in_address() -> ListQuery {
    let params = address_params();
    ListQuery::from_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Writes `query` into the address bar (replacing the entry: typing is not history),
/// keeping a chosen language; the list shows more rows instead of pages, so no page.
pub fn show_search_in_address(query: &ListQuery) {
    let lang = address_params().into_iter().find(|(k, _)| k == "lang");
    let pairs = query
        .search_pairs()
        .into_iter()
        .chain(lang.map(|(_, v)| ("lang", v)));
    let parameters = query_string(pairs);
    let url = if parameters.is_empty() {
        location_path()
    } else {
        format!("{}?{parameters}", location_path())
    };
    let current = window().location().search().unwrap_or_default();
    if url != format!("{}{current}", location_path()) {
        if let Ok(history) = window().history() {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
    }
}

/// Parameters as an address writes them (`q=community%20guides&theme=housing`).
pub fn query_string(pairs: impl Iterator<Item = (&'static str, String)>) -> String {
    let encode = |text: &str| String::from(js_sys::encode_uri_component(text));
    pairs
        .map(|(key, value)| format!("{key}={}", encode(&value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn location_path() -> String {
    window().location().pathname().unwrap_or_default()
}

/// Where a click should take the app, if it is a plain click on a link to one of its pages.
fn in_app_target(ev: &web_sys::MouseEvent) -> Option<String> {
    // Until the app takes over, the visitor is on the node's page: its links load pages.
    if !super::takeover::taken_over()
        || ev.default_prevented()
        || ev.button() != 0
        || ev.ctrl_key()
        || ev.meta_key()
        || ev.shift_key()
        || ev.alt_key()
    {
        return None;
    }
    let anchor: web_sys::HtmlAnchorElement = ev
        .target()?
        .dyn_into::<web_sys::Element>()
        .ok()?
        .closest("a[href]")
        .ok()??
        .dyn_into()
        .ok()?;
    if anchor.has_attribute("download") || !matches!(anchor.target().as_str(), "" | "_self") {
        return None;
    }
    let url = web_sys::Url::new(&anchor.href()).ok()?;
    let location = window().location();
    if url.origin() != location.origin().ok()? {
        return None;
    }
    let path = url.pathname();
    let same_page = path == location.pathname().ok()? && url.search() == location.search().ok()?;
    if (same_page && !url.hash().is_empty()) || !Page::from_path(&path).is_the_apps() {
        return None;
    }
    Some(format!("{path}{}{}", url.search(), url.hash()))
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn paths_name_pages() {
        assert_eq!(Page::from_path("/"), Page::List);
        assert_eq!(Page::from_path(""), Page::List);
        assert_eq!(Page::from_path("/events/"), Page::Events);
        assert_eq!(Page::from_path("/organizations"), Page::Organizations);
        assert_eq!(
            Page::from_path("/practices/abc"),
            Page::Practice("abc".into())
        );
        assert_eq!(Page::from_path("/practices/"), Page::NotFound);
        assert_eq!(Page::from_path("/practices/a/b"), Page::NotFound);
        assert_eq!(Page::from_path("/api/practices.csv"), Page::NotFound);
        assert_eq!(Page::from_path("/map"), Page::Map);
        assert!(!Page::Map.is_the_apps() && !Page::NotFound.is_the_apps());
        assert!(Page::List.is_the_apps());
    }
}
