//! ChromeDriver's own commands, beyond W3C WebDriver.

/// One of ChromeDriver's own commands (beyond W3C WebDriver): a POST to
/// `session/{id}/{path}` with `body`.
#[derive(Debug)]
pub(super) struct ChromeCommand {
    pub(super) path: &'static str,
    pub(super) body: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for ChromeCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// A Chrome DevTools Protocol method, through ChromeDriver.
pub(super) fn devtools(method: &str, params: serde_json::Value) -> ChromeCommand {
    ChromeCommand {
        path: "goog/cdp/execute",
        body: serde_json::json!({ "cmd": method, "params": params }),
    }
}
