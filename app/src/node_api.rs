//! What the app asks its node over HTTP: who the node and the user are (`/api/node`, kept
//! in localStorage so the app can start offline), and logging in and out. Documents never
//! travel this way; they come over `/sync`.

use crate::json::Json;
use ibis_shared::model::facets::Facet;
use ibis_shared::model::list_query::ListQuery;
use ibis_shared::model::practice::Coordinates;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::Role;
use ibis_shared::DocumentId;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

const CACHE_KEY: &str = "ibis.node";

#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub role: String,
}

impl User {
    pub fn role(&self) -> Option<Role> {
        Role::from_key(&self.role)
    }

    fn from_json(v: &Json) -> Option<Self> {
        Some(Self {
            name: v.get("name").text()?,
            role: v.get("role").text()?,
        })
    }
}

/// The node's answers are read field by field (see `json.rs`).
fn json(text: &str) -> Result<Json, ApiError> {
    Json::parse(text).ok_or_else(|| ApiError::Malformed("not JSON".into()))
}

/// `/api/node`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub organization: Organization,
    pub directory: String,
    pub catalogue: String,
    pub workspace: Option<String>,
    pub auth: String,
    pub user: Option<User>,
    /// Who may change a published practice: "editors" (every member) or "reviewers".
    pub published_edits: String,
}

impl NodeInfo {
    fn parse(answer: &str) -> Result<Self, ApiError> {
        let v = json(answer)?;
        let missing = |what: &str| ApiError::Malformed(format!("no {what}"));
        let org = v.get("organization");
        Ok(Self {
            organization: Organization {
                id: org
                    .get("id")
                    .text()
                    .ok_or_else(|| missing("organization id"))?,
                name: org
                    .get("name")
                    .text()
                    .ok_or_else(|| missing("organization name"))?,
            },
            directory: v
                .get("directory")
                .text()
                .ok_or_else(|| missing("directory"))?,
            catalogue: v
                .get("catalogue")
                .text()
                .ok_or_else(|| missing("catalogue"))?,
            workspace: v.get("workspace").text(),
            auth: v.string("auth"),
            user: User::from_json(&v.get("user")),
            published_edits: v.string("published_edits"),
        })
    }

    fn id(url: &str) -> Option<DocumentId> {
        DocumentId::parse_id_or_url(url).ok()
    }
    pub fn directory_id(&self) -> Option<DocumentId> {
        Self::id(&self.directory)
    }
    pub fn catalogue_id(&self) -> Option<DocumentId> {
        Self::id(&self.catalogue)
    }
    pub fn workspace_id(&self) -> Option<DocumentId> {
        self.workspace.as_deref().and_then(Self::id)
    }
    /// The user's role, if they are a member here.
    pub fn role(&self) -> Option<Role> {
        self.user.as_ref().and_then(User::role)
    }
    /// Whether the user is a member of the organization `home` (this node's).
    pub fn member_of(&self, home: &str) -> bool {
        self.user.is_some() && self.organization.id == home
    }
    /// Whether the user may change this organization's published practices.
    pub fn may_edit_published(&self) -> bool {
        self.role()
            .is_some_and(|r| r.can_review() || self.published_edits != "reviewers")
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("the node cannot be reached")]
    Offline,
    #[error("{0}")]
    Refused(String),
    #[error("the node's answer is not what this app expects: {0}")]
    Malformed(String),
}

fn js_text(v: JsValue) -> String {
    v.as_string().unwrap_or_else(|| format!("{v:?}"))
}

async fn fetch(method: &str, path: &str, body: Option<String>) -> Result<(u16, String), ApiError> {
    let window = web_sys::window().ok_or(ApiError::Offline)?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    if let Some(body) = &body {
        init.set_body(&JsValue::from_str(body));
        let headers = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&headers, &"content-type".into(), &"application/json".into());
        init.set_headers(&headers);
    }
    let response = JsFuture::from(window.fetch_with_str_and_init(path, &init))
        .await
        .map_err(|_| ApiError::Offline)?
        .dyn_into::<web_sys::Response>()
        .map_err(|_| ApiError::Offline)?;
    let status = response.status();
    let text = JsFuture::from(
        response
            .text()
            .map_err(|e| ApiError::Malformed(js_text(e)))?,
    )
    .await
    .map_err(|_| ApiError::Offline)?
    .as_string()
    .unwrap_or_default();
    Ok((status, text))
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Who the node and the user are; from the node if it answers, else from the last visit.
pub async fn node_info() -> Result<(NodeInfo, bool), ApiError> {
    match fetch("GET", "/api/node", None).await {
        Ok((200, text)) => {
            let info = NodeInfo::parse(&text)?;
            if let Some(s) = storage() {
                let _ = s.set_item(CACHE_KEY, &text);
            }
            Ok((info, true))
        }
        Ok((status, text)) => Err(ApiError::Refused(format!("{status}: {text}"))),
        Err(ApiError::Offline) => {
            let cached = storage()
                .and_then(|s| s.get_item(CACHE_KEY).ok().flatten())
                .ok_or(ApiError::Offline)?;
            Ok((NodeInfo::parse(&cached)?, false))
        }
        Err(e) => Err(e),
    }
}

pub async fn login(name: &str, password: &str) -> Result<User, ApiError> {
    // JSON made by the browser's own `JSON.stringify`.
    let fields = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&fields, &"name".into(), &name.into());
    let _ = js_sys::Reflect::set(&fields, &"password".into(), &password.into());
    let body = js_sys::JSON::stringify(&fields)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| ApiError::Malformed("cannot write the login as JSON".into()))?;
    let (status, text) = fetch("POST", "/api/login", Some(body)).await?;
    if status == 200 {
        User::from_json(&json(&text)?)
            .ok_or_else(|| ApiError::Malformed("the login's answer names no user".into()))
    } else {
        let message = json(&text)
            .ok()
            .and_then(|v| v.get("error").text())
            .unwrap_or(text);
        Err(ApiError::Refused(message))
    }
}

pub async fn logout() -> Result<(), ApiError> {
    fetch("POST", "/api/logout", None).await.map(|_| ())
}

/// The node's answer to a search (its whole catalogue, as its own list page gives it).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSearch {
    pub query: ListQuery,
    pub total: usize,
    /// The first results, newest change first.
    pub records: Vec<PracticeRecord>,
    /// Per facet, in `Facet::ALL` order: (value, count) over all results.
    pub facets: Vec<Vec<(String, usize)>>,
}

/// Most results the node gives in one answer (its `/api/practices` limit).
pub const NODE_SEARCH_MAX: usize = 200;

/// Where `city` in `country` is, from the node's gazetteer (`/api/places`): the
/// coordinates a practice made here gets, as an import places one. `None` offline or for
/// a place the gazetteer does not know.
pub async fn place(country: &str, city: &str) -> Option<Coordinates> {
    let pairs = [("country", country.to_owned()), ("city", city.to_owned())];
    let path = format!(
        "/api/places?{}",
        crate::ui::route::query_string(pairs.into_iter())
    );
    let (status, text) = fetch("GET", &path, None).await.ok()?;
    if status != 200 {
        return None;
    }
    let v = json(&text).ok()?;
    Some(Coordinates {
        lat: v.get("lat").number()?,
        lon: v.get("lon").number()?,
    })
}

/// Asks the node's index for the first `limit` results of `query`, with facet counts.
pub async fn search(query: &ListQuery, limit: usize) -> Result<NodeSearch, ApiError> {
    let limit = limit.clamp(1, NODE_SEARCH_MAX);
    let pairs = query
        .search_pairs()
        .into_iter()
        .chain([("limit", limit.to_string())]);
    let path = format!("/api/practices?{}", crate::ui::route::query_string(pairs));
    let (status, text) = fetch("GET", &path, None).await?;
    if status != 200 {
        return Err(ApiError::Refused(format!("{status}: {text}")));
    }
    let v = json(&text)?;
    let facets = v.get("facets");
    Ok(NodeSearch {
        query: query.clone(),
        total: v
            .get("total")
            .number()
            .ok_or_else(|| ApiError::Malformed("a search without a total".into()))?
            as usize,
        records: v
            .get("results")
            .items()
            .iter()
            .map(crate::json::practice_record)
            .collect(),
        facets: Facet::ALL
            .iter()
            .map(|f| {
                facets
                    .get(f.key())
                    .items()
                    .iter()
                    .filter_map(|pair| {
                        let pair = pair.items();
                        Some((pair.first()?.text()?, pair.get(1)?.number()? as usize))
                    })
                    .collect()
            })
            .collect(),
    })
}
