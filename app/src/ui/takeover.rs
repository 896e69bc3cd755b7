//! Taking over the node's page. The node renders every public page itself (the visitor
//! reads it at once, JavaScript or not); the app is built hidden beside it and replaces
//! it once it can show at least as much — its replica holding every row the server's page
//! listed — so there is no blank page and no list that shrinks and grows again.
//!
//! Why mount over the page rather than hydrate it: the app's truth is its local replica,
//! which is not ready at page load (a first visit has nothing yet), and hydrating would
//! mean embedding the page's data twice and rendering it with the same components on the
//! node. Until the replica can show the page, the server's page is the better one; after,
//! the replica's is (live, offline, editable).

use std::cell::Cell;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::route::Page;
use super::Ctx;

/// After this long the app takes over even if it shows less than the server's page (a
/// replica that cannot get everything should not keep the app from working).
const AT_THE_LATEST_MS: i32 = 30_000;

thread_local! {
    static TAKEN_OVER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the app is what the visitor sees (its links then move within the app).
pub fn taken_over() -> bool {
    TAKEN_OVER.with(Cell::get)
}

fn document() -> Option<web_sys::Document> {
    web_sys::window().and_then(|w| w.document())
}

/// Starts the app: hidden beside the node's page if there is one, else filling the page.
pub fn mount<F, N>(app: F)
where
    F: FnOnce() -> N + 'static,
    N: IntoView,
{
    let server_page = document().and_then(|d| d.get_element_by_id("ssr"));
    let root = server_page.and_then(|_| {
        let document = document()?;
        let root = document.create_element("div").ok()?;
        root.set_id("app");
        root.set_attribute("hidden", "").ok()?;
        document.body()?.append_child(&root).ok()?;
        root.dyn_into::<web_sys::HtmlElement>().ok()
    });
    match root {
        Some(root) => leptos::mount::mount_to(root, app).forget(),
        None => {
            TAKEN_OVER.with(|t| t.set(true));
            leptos::mount::mount_to_body(app);
        }
    }
}

/// How many rows (practices, events, organizations; one practice) the server's page
/// showed: the app takes over once it shows as many.
fn server_rows() -> usize {
    document()
        .and_then(|d| d.query_selector("#ssr [data-total]").ok().flatten())
        .and_then(|e| e.get_attribute("data-total"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Replaces the server's page with the app once the app's page shows what it showed
/// (`ctx.shown`), or at the latest after [`AT_THE_LATEST_MS`]. Pages the app does not
/// have (an organization's, an event's) stay the server's.
pub fn watch(ctx: Ctx, page: Memo<Page>) {
    if taken_over() {
        return;
    }
    let needed = server_rows();
    let late = RwSignal::new(false);
    leptos::task::spawn_local(async move {
        crate::replica::sleep(AT_THE_LATEST_MS).await;
        late.set(true);
    });
    Effect::new(move |_| {
        if taken_over() || !page.get().is_the_apps() || !ctx.ready.get() {
            return;
        }
        let shown = ctx.shown.get().unwrap_or(0);
        if shown >= needed.max(1) || (needed == 0 && ctx.shown.get().is_some()) || late.get() {
            take_over();
        }
    });
}

fn take_over() {
    TAKEN_OVER.with(|t| t.set(true));
    let Some(document) = document() else { return };
    if let Some(server_page) = document.get_element_by_id("ssr") {
        server_page.remove();
    }
    if let Some(root) = document.get_element_by_id("app") {
        let _ = root.remove_attribute("hidden");
    }
    crate::replica::mark_once("ibis:app-took-over");
}
