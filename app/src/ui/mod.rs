//! The interface: the shell (header, status, routes) and shared helpers.
//!
//! - `list.rs`: browse, search, facets, export.
//! - `add.rs`: the "add a practice" form.
//! - `practice.rs`: one practice — every field, history, presence; `practice_edit.rs` its
//!   editing, `review.rs` its review and, for its organization, its internal side.
//! - `publishing.rs`: publishing, withdrawing and republishing (two documents each).
//! - `editor.rs`: collaborative text fields.
//! - `events.rs`: events and the organization directory.
//! - `route.rs`: which page shows; in-app links and back/forward without reloading.

mod add;
mod editor;
mod events;
mod list;
mod practice;
mod practice_edit;
mod publishing;
mod review;
pub mod route;
mod takeover;

use automerge::Automerge;
use ibis_shared::model::catalogue::{new_listing, set_entry, Entry};
use ibis_shared::model::publication::organization_author;
use ibis_shared::model::{kind_of, Author, DocumentKind, ModelError, Role};
use ibis_shared::DocumentId;
use leptos::prelude::*;

use crate::i18n::{self, tr, Lang};
use crate::node_api::{self, NodeInfo};
use crate::replica::{now_ms, replica, Replica, Signals};
pub use route::address_params;
use route::Page;

/// What every component can reach.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub lang: RwSignal<Lang>,
    pub node: RwSignal<Option<NodeInfo>>,
    pub signals: Signals,
    /// The replica has started (storage opened).
    pub ready: RwSignal<bool>,
    /// How many rows the current page shows (see `takeover.rs`), once it knows.
    pub shown: RwSignal<Option<usize>>,
    pub problem: RwSignal<Option<String>>,
}

impl Ctx {
    pub fn t(&self, english: &'static str) -> &'static str {
        tr(self.lang.get(), english)
    }

    /// Who edits from this browser, if they may.
    pub fn author(&self) -> Option<Author> {
        let node = self.node.get_untracked()?;
        let user = node.user.as_ref()?;
        Some(Author {
            name: user.name.clone(),
            organization: node.organization.id.clone(),
            role: user.role()?,
        })
    }

    pub fn role(&self) -> Option<Role> {
        self.node.get().and_then(|n| n.role())
    }

    /// Who a change to `doc` is made by: the person, or in a public document (which never
    /// names a person) their organization.
    pub fn author_for(&self, doc: &Automerge) -> Option<Author> {
        let author = self.author()?;
        if kind_of(doc) != Some(DocumentKind::Practice) {
            return Some(author);
        }
        let node = self.node.get_untracked()?;
        Some(organization_author(&author, &node.organization.name))
    }
}

pub fn ctx() -> Ctx {
    expect_context::<Ctx>()
}

/// Lists a document in this organization's workspace or catalogue.
pub fn list_in(
    kind: DocumentKind,
    entry: Entry,
    id: DocumentId,
    author: &Author,
) -> Result<(), String> {
    change_listing(kind, |doc| {
        set_entry(doc, kind, entry, id, true, author, now_ms() as i64)
    })
}

/// Changes this organization's workspace or catalogue, creating the listing from its
/// shared genesis if this browser has never seen it.
pub fn change_listing(
    kind: DocumentKind,
    f: impl FnOnce(&mut Automerge) -> Result<(), ModelError>,
) -> Result<(), String> {
    let node = ctx()
        .node
        .get_untracked()
        .ok_or("not connected to a node yet")?;
    let listing = match kind {
        DocumentKind::Workspace => node.workspace_id().ok_or("only members have a workspace")?,
        _ => node.catalogue_id().ok_or("the node gave no catalogue")?,
    };
    let replica = replica().ok_or("storage is not ready")?;
    if replica.with_doc(&listing, |_| ()).is_none() {
        let genesis = new_listing(kind, &node.organization.id).map_err(|e| e.to_string())?;
        replica
            .insert(listing, genesis)
            .map_err(|e| e.to_string())?;
    }
    replica
        .change(listing, f)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Downloads text as a file.
pub fn download(name: &str, mime: &str, text: &str) {
    use wasm_bindgen::JsCast;
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Some(a) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("a").ok())
        .and_then(|e| e.dyn_into::<web_sys::HtmlAnchorElement>().ok())
    {
        a.set_href(&url);
        a.set_download(name);
        a.click();
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

async fn start(ctx: Ctx) {
    match node_api::node_info().await {
        Ok((info, _)) => ctx.node.set(Some(info)),
        Err(e) => ctx.problem.set(Some(e.to_string())),
    }
    match Replica::start(ctx.signals).await {
        Ok(replica) => {
            ctx.ready.set(true);
            open_roots(&replica, ctx.node.get_untracked().as_ref());
        }
        Err(e) => ctx.problem.set(Some(e.to_string())),
    }
}

fn open_roots(replica: &Replica, node: Option<&NodeInfo>) {
    let Some(node) = node else { return };
    for id in [
        node.directory_id(),
        node.catalogue_id(),
        node.workspace_id(),
    ]
    .into_iter()
    .flatten()
    {
        replica.open(id);
    }
}

/// Starts the app (over the node's page, if it rendered one).
pub fn mount() {
    takeover::mount(App);
}

#[component]
pub fn App() -> impl IntoView {
    let lang = RwSignal::new(i18n::initial_lang());
    let ctx = Ctx {
        lang,
        node: RwSignal::new(None),
        signals: Signals::new(),
        ready: RwSignal::new(false),
        shown: RwSignal::new(None),
        problem: RwSignal::new(None),
    };
    provide_context(ctx);
    leptos::task::spawn_local(start(ctx));
    // Back online after an offline start: learn who we are, and open the roots.
    Effect::new(move |_| {
        if ctx.signals.online.get() && ctx.node.get_untracked().is_none() {
            leptos::task::spawn_local(async move {
                if let Ok((info, _)) = node_api::node_info().await {
                    if let Some(replica) = replica() {
                        open_roots(&replica, Some(&info));
                    }
                    ctx.node.set(Some(info));
                    ctx.problem.set(None);
                }
            });
        }
    });
    Effect::new(move |_| {
        let lang = lang.get();
        i18n::remember(lang);
        if let Some(html) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
        {
            let _ = html.set_attribute("lang", lang.code());
        }
    });
    let page = route::start();
    takeover::watch(ctx, page);
    view! {
        <a class="skip" href="#main">{move || ctx.t("Skip to content")}</a>
        <Header/>
        <main id="main">
            <Problem/>
            {move || match page.get() {
                Page::List => view! { <list::ListPage/> }.into_any(),
                Page::Practice(id) => view! { <practice::PracticePage id=id/> }.into_any(),
                Page::Events => view! { <events::EventsPage/> }.into_any(),
                Page::Organizations => view! { <events::DirectoryPage/> }.into_any(),
                Page::Map => view! {
                    <p data-testid="map-offline">
                        {move || ctx.t("The map is drawn by the node: it shows again when the node can be reached.")}
                        " " <a href="/">{move || ctx.t("Show as a list")}</a>
                    </p>
                }.into_any(),
                Page::NotFound => view! { <p>{move || ctx.t("Not found")}</p> }.into_any(),
            }}
        </main>
    }
}

#[component]
fn Problem() -> impl IntoView {
    let ctx = ctx();
    view! {
        <Show when=move || ctx.problem.get().is_some() && ctx.node.get().is_none()>
            <p class="notice" role="alert">
                {move || ctx.problem.get().unwrap_or_default()} " — "
                {move || ctx.t("Connect to your node once to load the catalogue.")}
            </p>
        </Show>
        <Show when=move || ctx.signals.notice.get().is_some()>
            <p class="notice" role="alert" data-testid="notice">
                {move || ctx.signals.notice.get().unwrap_or_default()}
                <button on:click=move |_| ctx.signals.notice.set(None) aria-label="dismiss">"×"</button>
            </p>
        </Show>
    }
}

#[component]
fn Header() -> impl IntoView {
    let ctx = ctx();
    let on_lang = move |ev: leptos::ev::Event| {
        if let Some(l) = Lang::from_code(&event_target_value(&ev)) {
            ctx.lang.set(l);
        }
    };
    view! {
        <header class="top">
            <div class="brand">
                <a href="/"><strong>"ibis"</strong></a>
                <span class="tagline">{move || ctx.t("Good practices for migrant integration")}</span>
                <span class="org">{move || ctx.node.get().map(|n| n.organization.name).unwrap_or_default()}</span>
            </div>
            <nav aria-label="main">
                <a href="/">{move || ctx.t("Practices")}</a>
                <a href="/events">{move || ctx.t("Events")}</a>
                <a href="/organizations">{move || ctx.t("Organizations")}</a>
                // The node's page (the app has no map): a link the browser follows.
                <a href="/map">{move || ctx.t("Map")}</a>
            </nav>
            <div class="tools">
                <label class="visually-hidden" for="lang">{move || ctx.t("Language")}</label>
                <select id="lang" data-testid="lang" on:change=on_lang>
                    {Lang::ALL
                        .into_iter()
                        .map(|l| view! {
                            <option value=l.code() selected=move || ctx.lang.get() == l>{l.name()}</option>
                        })
                        .collect_view()}
                </select>
                <Status/>
                <Account/>
            </div>
        </header>
    }
}

#[component]
fn Status() -> impl IntoView {
    let ctx = ctx();
    let s = ctx.signals;
    let text = move || {
        let waiting = s.waiting.get();
        let changes = if waiting == 0 {
            ctx.t("all changes saved").to_owned()
        } else {
            format!("{waiting} {}", ctx.t("changes waiting"))
        };
        if s.online.get() {
            format!("{} · {changes}", ctx.t("Online"))
        } else if ctx.ready.get() {
            format!("{} — {changes}", ctx.t("Offline"))
        } else {
            ctx.t("Connecting…").to_owned()
        }
    };
    view! {
        <span class="status" class:offline=move || !s.online.get() data-testid="sync-status" role="status">
            {text}
        </span>
        <Show when=move || { let (d, t) = s.progress.get(); t > 0 && d < t }>
            <label class="progress">
                {move || ctx.t("Syncing")} " "
                <progress data-testid="sync-progress"
                    max=move || s.progress.get().1
                    value=move || s.progress.get().0></progress>
            </label>
        </Show>
    }
}

#[component]
fn Account() -> impl IntoView {
    let ctx = ctx();
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let accounts = move || ctx.node.get().is_some_and(|n| n.auth == "accounts");
    let user = move || ctx.node.get().and_then(|n| n.user);
    let refresh = move || {
        leptos::task::spawn_local(async move {
            if let Ok((info, _)) = node_api::node_info().await {
                if let Some(replica) = replica() {
                    // The sync connection carries the credentials it was opened with.
                    replica.reconnect();
                    open_roots(&replica, Some(&info));
                }
                ctx.node.set(Some(info));
            }
        })
    };
    let login = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        leptos::task::spawn_local(async move {
            match node_api::login(&name.get_untracked(), &password.get_untracked()).await {
                Ok(_) => {
                    error.set(None);
                    password.set(String::new());
                    refresh();
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    // What the organization keeps private leaves this browser with the person: then the
    // page starts again, as a visitor's.
    let logout = move |_| {
        leptos::task::spawn_local(async move {
            if let Err(e) = node_api::logout().await {
                ctx.signals.notice.set(Some(e.to_string()));
                return;
            }
            let workspace = ctx.node.get_untracked().and_then(|n| n.workspace_id());
            if let Some(replica) = replica() {
                replica.forget_private(workspace).await;
            }
            if let Some(window) = web_sys::window() {
                let _ = window.location().reload();
            }
        });
    };
    view! {
        <Show when=move || user().is_some()>
            <span class="user" data-testid="user">
                {move || user().map(|u| format!("{} ({})", u.name, u.role)).unwrap_or_default()}
            </span>
            <Show when=accounts>
                <button data-testid="logout" on:click=logout>{move || ctx.t("Log out")}</button>
            </Show>
        </Show>
        <Show when=move || user().is_none() && accounts()>
            <form class="login" on:submit=login>
                <label>{move || ctx.t("Name")}
                    <input data-testid="login-name" autocomplete="username"
                        on:input=move |ev| name.set(event_target_value(&ev)) prop:value=name/>
                </label>
                <label>{move || ctx.t("Password")}
                    <input type="password" data-testid="login-password" autocomplete="current-password"
                        on:input=move |ev| password.set(event_target_value(&ev)) prop:value=password/>
                </label>
                <button type="submit" data-testid="login-submit">{move || ctx.t("Log in")}</button>
                <span class="error" role="alert">{move || error.get().unwrap_or_default()}</span>
            </form>
        </Show>
    }
}
