//! What the app asks its node over HTTP: who the node and the user are (`/api/node`, kept
//! in localStorage so the app can start offline), and logging in and out. Documents never
//! travel this way; they come over `/sync`.

use ibis_shared::model::Role;
use ibis_shared::DocumentId;
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

const CACHE_KEY: &str = "ibis.node";

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct User {
    pub name: String,
    pub role: String,
}

impl User {
    pub fn role(&self) -> Option<Role> {
        Role::from_key(&self.role)
    }
}

/// `/api/node`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct NodeInfo {
    pub organization: Organization,
    pub directory: String,
    pub catalogue: String,
    pub workspace: Option<String>,
    pub auth: String,
    pub user: Option<User>,
}

impl NodeInfo {
    fn id(url: &str) -> Option<DocumentId> {
        DocumentId::parse(url.trim_start_matches("automerge:")).ok()
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
            let info: NodeInfo =
                serde_json::from_str(&text).map_err(|e| ApiError::Malformed(e.to_string()))?;
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
            let info =
                serde_json::from_str(&cached).map_err(|e| ApiError::Malformed(e.to_string()))?;
            Ok((info, false))
        }
        Err(e) => Err(e),
    }
}

pub async fn login(name: &str, password: &str) -> Result<User, ApiError> {
    let body = serde_json::json!({ "name": name, "password": password }).to_string();
    let (status, text) = fetch("POST", "/api/login", Some(body)).await?;
    if status == 200 {
        serde_json::from_str(&text).map_err(|e| ApiError::Malformed(e.to_string()))
    } else {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        Err(ApiError::Refused(message))
    }
}

pub async fn logout() -> Result<(), ApiError> {
    fetch("POST", "/api/logout", None).await.map(|_| ())
}
