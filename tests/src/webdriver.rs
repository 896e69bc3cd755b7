//! A headless Chromium driven over WebDriver (its own ChromeDriver, a fresh profile),
//! stopped by PID when dropped, with helpers for the app's pages and axe-core.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

use crate::js_peer::js_dir;
use crate::{app_dir, eventually, free_port, WAIT};

mod chrome_command;
use chrome_command::{devtools, ChromeCommand};

/// Whether browser tests can run here. Under CI they must: a missing browser or app is a
/// failure there, and a skip (with the reason printed) only on a developer's machine.
pub fn browser_tests_enabled() -> bool {
    let chromedriver = chromedriver_path();
    let missing = if !chromedriver.exists() {
        Some(format!("no ChromeDriver at {}", chromedriver.display()))
    } else if app_dir().is_none() {
        Some("no built app (run `cargo xtask build-app`)".to_owned())
    } else {
        None
    };
    match (missing, std::env::var_os("CI").is_some()) {
        (None, _) => true,
        (Some(why), true) => panic!("browser tests cannot run under CI: {why}"),
        (Some(why), false) => {
            eprintln!("skipping browser test: {why}");
            false
        }
    }
}

/// ChromeDriver, from `CHROMEDRIVER` or Debian's path.
pub fn chromedriver_path() -> PathBuf {
    std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// A headless Chromium with its own ChromeDriver and a fresh profile.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn css_testid(testid: &str) -> String {
    format!("[data-testid=\"{testid}\"]")
}

impl Browser {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(true).await
    }

    /// A browser whose pages run no JavaScript (as a visitor who turned it off, or a
    /// crawler, reads them). WebDriver's own scripts still run.
    pub async fn without_javascript() -> anyhow::Result<Self> {
        Self::start_with(false).await
    }

    async fn start_with(javascript: bool) -> anyhow::Result<Self> {
        let port = free_port()?;
        let driver = Command::new(chromedriver_path())
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start chromedriver")?;
        let profile = tempfile::tempdir()?;
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium_path(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 }
                }
            }
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => bail!("capabilities are an object"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = eventually(Duration::from_secs(20), "chromedriver", || {
            let caps = caps.clone();
            let url = url.clone();
            async move {
                ClientBuilder::native()
                    .capabilities(caps)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await?;
        Ok(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    /// What the pages logged at level SEVERE (errors, uncaught exceptions, failed
    /// loads) since the last call (ChromeDriver's log endpoint).
    pub async fn console_errors(&self) -> anyhow::Result<Vec<String>> {
        let entries = self
            .client
            .issue_cmd(ChromeCommand {
                path: "se/log",
                body: serde_json::json!({ "type": "browser" }),
            })
            .await?;
        Ok(entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    /// Makes requests for addresses matching these patterns (`*` wildcards) fail: to read
    /// the node's own page with scripts on but the app kept from loading.
    pub async fn block_urls(&self, patterns: &[&str]) -> anyhow::Result<()> {
        self.client
            .issue_cmd(devtools("Network.enable", serde_json::json!({})))
            .await?;
        self.client
            .issue_cmd(devtools(
                "Network.setBlockedURLs",
                serde_json::json!({ "urls": patterns }),
            ))
            .await?;
        Ok(())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client.goto(url).await?;
        Ok(())
    }

    /// Waits for an element with this `data-testid`.
    pub async fn wait_for(&self, testid: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&css_testid(testid)))
            .await
            .with_context(|| format!("no element [data-testid={testid}]"))
    }

    pub async fn fill(&self, testid: &str, text: &str) -> anyhow::Result<()> {
        let el = self.wait_for(testid).await?;
        el.clear().await?;
        el.send_keys(text).await?;
        Ok(())
    }

    /// Types at the end of a field, as a person would (keystrokes, input events).
    pub async fn type_text(&self, testid: &str, text: &str) -> anyhow::Result<()> {
        self.wait_for(testid).await?.send_keys(text).await?;
        Ok(())
    }

    pub async fn select(&self, testid: &str, value: &str) -> anyhow::Result<()> {
        self.wait_for(testid).await?.select_by_value(value).await?;
        Ok(())
    }

    pub async fn click(&self, testid: &str) -> anyhow::Result<()> {
        self.wait_for(testid).await?.click().await?;
        Ok(())
    }

    pub async fn text(&self, testid: &str) -> anyhow::Result<String> {
        Ok(self.wait_for(testid).await?.text().await?)
    }

    /// Texts of every element with this `data-testid`.
    pub async fn texts(&self, testid: &str) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for el in self
            .client
            .find_all(Locator::Css(&css_testid(testid)))
            .await?
        {
            out.push(el.text().await?);
        }
        Ok(out)
    }

    /// Waits until some element with this `data-testid` has text containing `needle`.
    pub async fn wait_for_text(&self, testid: &str, needle: &str) -> anyhow::Result<()> {
        eventually(
            WAIT,
            &format!("`{needle}` in [data-testid={testid}]"),
            || async {
                self.texts(testid)
                    .await
                    .ok()
                    .filter(|texts| texts.iter().any(|t| t.contains(needle)))
                    .map(|_| ())
            },
        )
        .await
    }

    /// A DOM property of the element with this `data-testid` (`value` of a textarea).
    pub async fn prop(&self, testid: &str, name: &str) -> anyhow::Result<String> {
        Ok(self
            .wait_for(testid)
            .await?
            .prop(name)
            .await?
            .unwrap_or_default())
    }

    pub async fn refresh(&self) -> anyhow::Result<()> {
        self.client.refresh().await?;
        Ok(())
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// Runs an async script; it calls `arguments[arguments.length - 1](result)`.
    pub async fn script_async(&self, js: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self.client.execute_async(js, vec![]).await?)
    }

    pub async fn script(&self, js: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self.client.execute(js, vec![]).await?)
    }

    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        std::fs::write(path, png)?;
        Ok(())
    }

    pub async fn close(mut self) -> anyhow::Result<()> {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        Ok(())
    }
}

/// Serious and critical axe-core violations on the browser's current page.
pub async fn axe(browser: &Browser) -> Vec<serde_json::Value> {
    let source = std::fs::read_to_string(js_dir().join("node_modules/axe-core/axe.min.js"))
        .expect("axe-core is installed (npm ci in tests/js)");
    browser.script(&source).await.expect("load axe");
    let result = browser
        .script_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(
               r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))));",
        )
        .await
        .expect("run axe");
    result.as_array().cloned().unwrap_or_default()
}

/// Browser helpers for the app's pages.
impl Browser {
    /// The path of the page the browser shows (`/practices/…`).
    pub async fn path(&self) -> anyhow::Result<String> {
        let url = self.current_url().await?;
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
        Ok(rest
            .find('/')
            .map(|i| rest[i..].to_owned())
            .unwrap_or_default())
    }

    /// Waits until the page's path satisfies `wanted`; returns it.
    pub async fn wait_for_path(
        &self,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        eventually(WAIT, what, || async {
            self.path().await.ok().filter(|p| wanted(p))
        })
        .await
    }

    /// Logs in through the header's form.
    pub async fn log_in(&self, name: &str, password: &str) -> anyhow::Result<()> {
        self.fill("login-name", name).await?;
        self.fill("login-password", password).await?;
        self.click("login-submit").await?;
        self.wait_for("user").await?;
        Ok(())
    }

    /// The document ids this page's IndexedDB holds, per object store (`chunks`,
    /// `sync_states`, `summaries`), read by script in the page.
    pub async fn stored_documents(
        &self,
    ) -> anyhow::Result<std::collections::BTreeMap<String, Vec<String>>> {
        let value = self
            .script_async(
                "const done = arguments[arguments.length - 1];
                 const open = indexedDB.open('ibis');
                 open.onerror = () => done(null);
                 open.onsuccess = () => {
                   const db = open.result, stores = ['chunks', 'sync_states', 'summaries'];
                   const tx = db.transaction(stores, 'readonly'), out = {};
                   let left = stores.length;
                   for (const name of stores) {
                     const keys = tx.objectStore(name).getAllKeys();
                     keys.onsuccess = () => {
                       out[name] = [...new Set(keys.result.map(k => Array.isArray(k) ? k[0] : k))];
                       if (--left === 0) { db.close(); done(out); }
                     };
                   }
                 };",
            )
            .await?;
        Ok(serde_json::from_value(value)?)
    }
}
