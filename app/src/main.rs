//! The ibis app: browse, search and co-edit the catalogue of good practices, offline too.
//!
//! - `replica/`: the shared sync engine hosted on IndexedDB and a WebSocket.
//! - `node_api.rs`: who the node and the user are; login. `json.rs`: reading JSON.
//! - `i18n.rs`: interface strings in English, French and Spanish.
//! - `ui/`: the pages.

mod i18n;
mod json;
mod node_api;
mod replica;
mod ui;

fn main() {
    console_error_panic_hook::set_once();
    register_service_worker();
    ui::mount();
}

/// The service worker keeps the app itself cached, so it starts offline.
fn register_service_worker() {
    if let Some(window) = web_sys::window() {
        let container = window.navigator().service_worker();
        let _ = container.register("/sw.js");
    }
}
