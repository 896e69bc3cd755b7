//! The app in a real browser: an ibis node (release build, its own process) holding a
//! catalogue of practices, and a headless Chromium opening the built app from it.
//!
//! Measured: a fresh browser's first sync of the whole catalogue; then, on each reload,
//! the time from navigation to the first rows of the list and to the whole catalogue listed
//! from IndexedDB (the app's `ibis:list-first-rows` and `ibis:list-complete` performance
//! marks); and a search over the whole catalogue, typed into the page.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use ibis_shared::model::record::PracticeRecord;
use ibis_tests::Browser;
use tokio::process::Command;

use crate::report::ServerResult;

/// The longest any one wait in this workload may take.
const WAIT: Duration = Duration::from_secs(300);

/// Whether ChromeDriver (and so Chromium) is installed.
pub fn browser_available() -> bool {
    ibis_tests::chromedriver_path().exists()
}

const CITIES: [(&str, &str); 8] = [
    ("Lisbon", "PT"),
    ("Milan", "IT"),
    ("Ghent", "BE"),
    ("Malmö", "SE"),
    ("Toronto", "CA"),
    ("Chicago", "US"),
    ("São Paulo", "BR"),
    ("Nairobi", "KE"),
];
const THEMES: [&str; 5] = ["housing", "health", "employment", "youth", "women"];
const WORDS: [&str; 6] = [
    "desks",
    "mentoring",
    "classes",
    "councils",
    "guides",
    "networks",
];

/// Practices as an organization would import them: a few paragraphs each.
pub fn generated(n: usize) -> Vec<PracticeRecord> {
    (0..n)
        .map(|i| {
            let (city, country) = CITIES[i * 7 % CITIES.len()];
            let word = WORDS[i % WORDS.len()];
            let mut themes = vec![THEMES[i % THEMES.len()].to_owned()];
            if i % 3 == 0 {
                themes.push("education-language".into());
            }
            PracticeRecord {
                title: format!("Practice {i}: community {word} in {city}"),
                summary: format!(
                    "The city of {city} runs {word} for newcomers, with volunteers and \
                     the local employment office; {n} people took part in the first year.",
                    n = 40 + i % 200
                ),
                context: "Many newly arrived residents could not find their way to the \
                          services they were entitled to, and the services did not know \
                          them either. "
                    .repeat(3),
                process: "A coordinator at city hall brings together the services, \
                          associations of migrants and volunteers, who meet newcomers \
                          every week and follow them for six months. "
                    .repeat(3),
                outcomes: "Most participants found housing or work within a year.".into(),
                city: city.into(),
                country: country.into(),
                lead_organization: format!("City of {city}"),
                themes,
                review_state: "published".into(),
                ..PracticeRecord::default()
            }
        })
        .collect()
}

/// A node process serving the app and a catalogue of `n` practices.
pub struct Node {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

/// Starts a node with `n` generated practices (imported before it serves), serving the
/// app in `dist` if given.
pub async fn start_node(ibis_node: &Path, dist: Option<&Path>, n: usize) -> anyhow::Result<Node> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("node");
    let status = std::process::Command::new(ibis_node)
        .args(["init", "--org-name", "Bench city", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "ibis-node init failed");
    // In files of 10,000 (an import takes files up to 64 MiB).
    for (n, chunk) in generated(n).chunks(10_000).enumerate() {
        let file = dir.path().join(format!("practices-{n}.json"));
        std::fs::write(&file, serde_json::to_vec(chunk)?)?;
        // Its progress lines are noise here; its errors are kept for the failure message.
        let import = std::process::Command::new(ibis_node)
            .args(["import", "--data-dir"])
            .arg(&data)
            .arg(&file)
            .output()?;
        ensure!(
            import.status.success(),
            "ibis-node import failed: {}",
            String::from_utf8_lossy(&import.stderr)
        );
    }
    let mut serve = Command::new(ibis_node);
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--open", "--data-dir"])
        .arg(&data);
    if let Some(dist) = dist {
        serve.arg("--app-dir").arg(dist);
    }
    let mut child = serve
        .env("IBIS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start ibis-node")?;
    let line = crate::servers::first_line(&mut child, "ibis-node").await?;
    let url = line
        .strip_prefix("ibis-node listening on ")
        .with_context(|| format!("unexpected: {line}"))?
        .to_owned();
    Ok(Node {
        child,
        url,
        _dir: dir,
    })
}

impl Node {
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The number the list shows as its result count, once the local replica answers (the
/// node answers until the replica holds the whole catalogue).
async fn result_count(browser: &Browser) -> Option<usize> {
    let v = browser
        .script(
            "const e = document.querySelector('[data-testid=result-count]');\
             const list = document.querySelector('[data-testid=practice-list]');\
             return e && list && list.dataset.source === 'replica' ? e.textContent : null;",
        )
        .await
        .ok()?;
    v.as_str()?.split_whitespace().next()?.parse().ok()
}

/// The start time (ms after navigation) of a performance mark, once it exists.
async fn mark(browser: &Browser, name: &str) -> anyhow::Result<f64> {
    let js = format!(
        "const m = performance.getEntriesByName('{name}', 'mark'); \
         return m.length ? m[0].startTime : null;"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(ms) = browser.script(&js).await?.as_f64() {
            return Ok(ms);
        }
        if Instant::now() > deadline {
            bail!("no `{name}` mark within {} s", WAIT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// When the element marked `elementtiming="{id}"` was painted (ms after navigation); where
/// the browser reports no element timing for it (headless Chromium here gives none when
/// the app replaces the node's page within its first frames), the largest contentful
/// paint, which on the list is its titles and summaries.
async fn painted(browser: &Browser, id: &str) -> anyhow::Result<f64> {
    let js = format!(
        "const done = arguments[arguments.length - 1];\
         let lcp = null, finished = false;\
         const finish = v => {{ if (!finished) {{ finished = true; done(v); }} }};\
         new PerformanceObserver((list, obs) => {{\
           const e = list.getEntries().find(e => e.identifier === '{id}');\
           if (e) {{ obs.disconnect(); finish(e.renderTime || e.loadTime); }}\
         }}).observe({{ type: 'element', buffered: true }});\
         new PerformanceObserver(list => {{\
           for (const e of list.getEntries()) lcp = e.renderTime || e.loadTime || e.startTime;\
         }}).observe({{ type: 'largest-contentful-paint', buffered: true }});\
         setTimeout(() => finish(lcp), 3000);"
    );
    browser
        .script_async(&js)
        .await?
        .as_f64()
        .with_context(|| format!("no element timing for `{id}` and no contentful paint"))
}

/// Types a query into the search box and times it until the result count changed.
async fn search(browser: &Browser, text: &str) -> anyhow::Result<f64> {
    let js = format!(
        "const done = arguments[arguments.length - 1];\
         const input = document.querySelector('[data-testid=search]');\
         const count = document.querySelector('[data-testid=result-count]');\
         const before = count.textContent;\
         const t0 = performance.now();\
         const obs = new MutationObserver(() => {{\
           if (count.textContent !== before) {{ obs.disconnect(); done(performance.now() - t0); }}\
         }});\
         obs.observe(count, {{ childList: true, subtree: true, characterData: true }});\
         input.value = {text:?};\
         input.dispatchEvent(new Event('input', {{ bubbles: true }}));\
         setTimeout(() => {{ obs.disconnect(); done(null); }}, 20000);"
    );
    browser
        .script_async(&js)
        .await?
        .as_f64()
        .with_context(|| format!("searching {text:?} did not change the result count"))
}

/// Runs the workload; figures go into `result` (failures too).
pub async fn run(
    ibis_node: &Path,
    dist: &Path,
    n: usize,
    runs: usize,
    result: &mut ServerResult,
) -> anyhow::Result<()> {
    let mut node = start_node(ibis_node, Some(dist), n).await?;
    let pages = crate::pages::measure(&node.url, node.child.id(), n, runs == 1, "", result).await;
    if let Err(e) = pages {
        result.errors.push(format!("pages: {e:#}"));
    }
    let outcome = measure(&node.url, n, runs, result).await;
    let _ = node.child.kill().await;
    outcome
}

async fn measure(
    url: &str,
    n: usize,
    runs: usize,
    result: &mut ServerResult,
) -> anyhow::Result<()> {
    let browser = Browser::start().await?;
    let outcome = async {
        let start = Instant::now();
        browser.goto(&format!("{url}/")).await?;
        // The node's page: when its first practice title was painted (element timing),
        // and when the app took it over.
        result.add(
            "page_titles_painted_ms",
            painted(&browser, "first-practice").await?,
        );
        result.add(
            "app_took_over_ms",
            mark(&browser, "ibis:app-took-over").await?,
        );
        // A search typed at once covers the whole catalogue (the node answers it while
        // the replica loads): timed from the keystrokes to the count shown.
        let expected = crate::pages::total_of(url, "/api/practices?q=mentoring&limit=1").await?;
        result.add("app_first_search_ms", search(&browser, "mentoring").await?);
        let shown = browser.text("result-count").await.unwrap_or_default();
        if shown.split_whitespace().next() != Some(expected.to_string().as_str()) {
            result.errors.push(format!(
                "the first search shows `{shown}`, the node finds {expected}"
            ));
        }
        // Erased with keystrokes (WebDriver's Backspace), which the app hears.
        browser
            .type_text("search", &"\u{e003}".repeat("mentoring".len()))
            .await?;
        let deadline = start + WAIT;
        while result_count(&browser).await != Some(n) {
            if Instant::now() > deadline {
                bail!(
                    "the browser listed {:?} of {n} practices after {} s",
                    result_count(&browser).await,
                    WAIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        result.add("app_first_sync_s", start.elapsed().as_secs_f64());
        // Let the last writes to IndexedDB finish before reloading.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for _ in 0..runs {
            browser.refresh().await?;
            let first = mark(&browser, "ibis:list-first-rows").await?;
            let complete = mark(&browser, "ibis:list-complete").await?;
            let listed = result_count(&browser).await;
            ensure!(
                listed == Some(n),
                "after a reload the list shows {listed:?} of {n} practices"
            );
            result.add("app_first_rows_ms", first);
            result.add("app_list_complete_ms", complete);
        }
        for text in ["mentoring", "community guides lisbon", "housing"] {
            result.add("app_search_ms", search(&browser, text).await?);
        }
        Ok(())
    }
    .await;
    let _ = browser.close().await;
    outcome
}
