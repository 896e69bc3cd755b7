//! The report: medians per server, ibis's ratio to each rival, and the goals.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::servers::Kind;
use crate::workloads::Sizes;

/// Every sample of every figure for one server.
#[derive(Debug, Default, Serialize)]
pub struct ServerResult {
    pub samples: BTreeMap<String, Vec<f64>>,
    pub errors: Vec<String>,
}

impl ServerResult {
    pub fn failed(error: String) -> Self {
        Self {
            samples: BTreeMap::new(),
            errors: vec![error],
        }
    }

    pub fn add(&mut self, key: &str, value: f64) {
        self.samples.entry(key.to_owned()).or_default().push(value);
    }

    pub fn median(&self, key: &str) -> Option<f64> {
        let mut values = self.samples.get(key)?.clone();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        Some(if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        })
    }
}

/// Which way a figure is better, if either.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
    /// Describes how a server works, not how well: no ratio.
    Neither,
}

/// One row of the table.
struct Figure {
    key: &'static str,
    label: &'static str,
    better: Better,
    decimals: usize,
}

const FIGURES: &[Figure] = &[
    Figure {
        key: "fanout_p50_ms",
        label: "fan-out latency p50 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Figure {
        key: "fanout_p99_ms",
        label: "fan-out latency p99 (ms)",
        better: Better::Lower,
        decimals: 2,
    },
    Figure {
        key: "changes_per_s_1doc",
        label: "relayed changes/s, writers × 1 document",
        better: Better::Higher,
        decimals: 0,
    },
    Figure {
        key: "changes_per_s_100docs",
        label: "relayed changes/s, writers × 100 documents",
        better: Better::Higher,
        decimals: 0,
    },
    Figure {
        key: "delivered_pct_1doc",
        label: "share of changes the observer got, 1 document (%)",
        better: Better::Higher,
        decimals: 1,
    },
    Figure {
        key: "delivered_pct_100docs",
        label: "share of changes the observer got, 100 documents (%)",
        better: Better::Higher,
        decimals: 1,
    },
    Figure {
        key: "changes_per_message_1doc",
        label: "changes per message to the observer, 1 document",
        better: Better::Neither,
        decimals: 1,
    },
    Figure {
        key: "changes_per_message_100docs",
        label: "changes per message to the observer, 100 documents",
        better: Better::Neither,
        decimals: 1,
    },
    Figure {
        key: "server_cpu_us_1doc",
        label: "server CPU per relayed change, 1 document (µs)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "server_cpu_us_100docs",
        label: "server CPU per relayed change, 100 documents (µs)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "clients_cpu_us_1doc",
        label: "load clients' CPU per relayed change, 1 document (µs)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "clients_cpu_us_100docs",
        label: "load clients' CPU per relayed change, 100 documents (µs)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "create_docs_s",
        label: "create and sync documents (s)",
        better: Better::Lower,
        decimals: 2,
    },
    Figure {
        key: "populate_s",
        label: "one client syncs the practices held idle to the server (s)",
        better: Better::Lower,
        decimals: 1,
    },
    Figure {
        key: "idle_rss_mb",
        label: "idle RSS after syncing practices (MB)",
        better: Better::Lower,
        decimals: 1,
    },
    Figure {
        key: "full_sync_s",
        label: "fresh client's full sync (s)",
        better: Better::Lower,
        decimals: 2,
    },
    Figure {
        key: "full_sync_mb",
        label: "fresh client's full sync (MB on the wire)",
        better: Better::Lower,
        decimals: 2,
    },
    Figure {
        key: "full_sync_peak_rss_mb",
        label: "server peak RSS during the full sync (MB)",
        better: Better::Lower,
        decimals: 1,
    },
    Figure {
        key: "reconnect_bytes",
        label: "reconnect after one edit (bytes)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "reconnect_round_trips",
        label: "reconnect after one edit (round trips)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "page_titles_painted_ms",
        label: "page: a fresh browser, navigation to the first practice title painted (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "app_took_over_ms",
        label: "page: navigation to the app taking the page over (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "app_first_search_ms",
        label: "page: a search typed as the app takes over, until its count shows (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "node_search_ms",
        label: "node: a search with every facet's counts (ms)",
        better: Better::Lower,
        decimals: 1,
    },
    Figure {
        key: "practice_pages_per_s",
        label: "node: practice pages per second (wrk, 64 connections)",
        better: Better::Higher,
        decimals: 0,
    },
    Figure {
        key: "practice_pages_per_s_node_cpu_pct",
        label: "node: its CPU meanwhile (% of one core)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "practice_pages_per_s_nginx_cache",
        label: "node behind the nginx cache: practice pages per second (wrk, 64 connections)",
        better: Better::Higher,
        decimals: 0,
    },
    Figure {
        key: "practice_pages_per_s_nginx_cache_node_cpu_pct",
        label: "node behind the nginx cache: its CPU meanwhile (% of one core)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "list_pages_per_s",
        label: "node: list pages (search, facets) per second (wrk, 64 connections)",
        better: Better::Higher,
        decimals: 0,
    },
    Figure {
        key: "list_pages_per_s_node_cpu_pct",
        label: "node: its CPU meanwhile (% of one core)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "catalogue_import_s",
        label: "large catalogue: importing it into a fresh node, until it serves (s)",
        better: Better::Lower,
        decimals: 1,
    },
    Figure {
        key: "catalogue_node_search_ms",
        label: "large catalogue: a search with every facet's counts (ms)",
        better: Better::Lower,
        decimals: 1,
    },
    Figure {
        key: "catalogue_practice_pages_per_s",
        label: "large catalogue: practice pages per second (wrk, 64 connections)",
        better: Better::Higher,
        decimals: 0,
    },
    Figure {
        key: "catalogue_practice_pages_per_s_node_cpu_pct",
        label: "large catalogue: the node's CPU meanwhile (% of one core)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "catalogue_practice_pages_per_s_nginx_cache",
        label: "large catalogue behind the nginx cache: practice pages per second (wrk, 64 connections)",
        better: Better::Higher,
        decimals: 0,
    },
    Figure {
        key: "catalogue_practice_pages_per_s_nginx_cache_node_cpu_pct",
        label: "large catalogue behind the nginx cache: the node's CPU meanwhile (% of one core)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "catalogue_list_pages_per_s",
        label: "large catalogue: list pages per second (wrk, 64 connections)",
        better: Better::Higher,
        decimals: 0,
    },
    Figure {
        key: "catalogue_list_pages_per_s_node_cpu_pct",
        label: "large catalogue: the node's CPU meanwhile (% of one core)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "app_first_sync_s",
        label: "app: a fresh browser syncs and lists the catalogue (s)",
        better: Better::Lower,
        decimals: 2,
    },
    Figure {
        key: "app_first_rows_ms",
        label: "app: reload to the list's first rows, from IndexedDB (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "app_list_complete_ms",
        label: "app: reload to the whole catalogue listed, from IndexedDB (ms)",
        better: Better::Lower,
        decimals: 0,
    },
    Figure {
        key: "app_search_ms",
        label: "app: one search over the catalogue, typed to shown (ms)",
        better: Better::Lower,
        decimals: 1,
    },
];

/// A goal from issue 6, checked against the medians of this run.
#[derive(Debug, Serialize)]
pub struct Goal {
    pub goal: String,
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub quick: bool,
    pub sizes: Sizes,
    pub servers: BTreeMap<Kind, ServerResult>,
    pub medians: BTreeMap<Kind, BTreeMap<String, f64>>,
    pub wasm_bytes: Option<u64>,
    pub wasm_gzip_bytes: Option<u64>,
    pub goals: Vec<Goal>,
}

fn format(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

impl Report {
    pub fn new(
        sizes: Sizes,
        quick: bool,
        servers: BTreeMap<Kind, ServerResult>,
        wasm: Option<(u64, u64)>,
    ) -> Self {
        let medians = servers
            .iter()
            .map(|(kind, result)| {
                let figures = FIGURES
                    .iter()
                    .filter_map(|f| result.median(f.key).map(|m| (f.key.to_owned(), m)))
                    .collect();
                (*kind, figures)
            })
            .collect();
        let mut report = Self {
            quick,
            sizes,
            servers,
            medians,
            wasm_bytes: wasm.map(|w| w.0),
            wasm_gzip_bytes: wasm.map(|w| w.1),
            goals: Vec::new(),
        };
        report.goals = report.check_goals();
        report
    }

    fn get(&self, kind: Kind, key: &str) -> Option<f64> {
        self.medians.get(&kind)?.get(key).copied()
    }

    /// How many times better ibis is than `other` on this figure.
    fn ratio(&self, other: Kind, figure: &Figure) -> Option<f64> {
        let ours = self.get(Kind::Ibis, figure.key)?;
        let theirs = self.get(other, figure.key)?;
        let (num, den) = match figure.better {
            Better::Lower => (theirs, ours),
            Better::Higher => (ours, theirs),
            Better::Neither => return None,
        };
        (den > 0.0).then(|| num / den)
    }

    fn ratio_of(&self, other: Kind, key: &str) -> Option<f64> {
        let figure = FIGURES.iter().find(|f| f.key == key)?;
        self.ratio(other, figure)
    }

    fn check_goals(&self) -> Vec<Goal> {
        let s = &self.sizes;
        let ibis = |key| self.get(Kind::Ibis, key);
        let all = |checks: &[Option<bool>]| -> Option<bool> {
            checks
                .iter()
                .copied()
                .collect::<Option<Vec<bool>>>()
                .map(|v| v.iter().all(|b| *b))
        };
        vec![
            Goal {
                goal: "fan-out p99 ≤ 2 ms and ≥ 5× lower than the JS server".into(),
                met: all(&[
                    ibis("fanout_p99_ms").map(|v| v <= 2.0),
                    self.ratio_of(Kind::Js, "fanout_p99_ms").map(|r| r >= 5.0),
                ]),
            },
            Goal {
                goal: "relayed changes/s ≥ 10× the JS server and ≥ 2× samod (1 and 100 documents)"
                    .into(),
                met: all(&[
                    self.ratio_of(Kind::Js, "changes_per_s_1doc")
                        .map(|r| r >= 10.0),
                    self.ratio_of(Kind::Samod, "changes_per_s_1doc")
                        .map(|r| r >= 2.0),
                    self.ratio_of(Kind::Js, "changes_per_s_100docs")
                        .map(|r| r >= 10.0),
                    self.ratio_of(Kind::Samod, "changes_per_s_100docs")
                        .map(|r| r >= 2.0),
                ]),
            },
            Goal {
                goal: format!(
                    "creating and syncing {} documents takes ≤ 1/5 of samod's time",
                    s.create_docs
                ),
                met: self
                    .ratio_of(Kind::Samod, "create_docs_s")
                    .map(|r| r >= 5.0),
            },
            Goal {
                goal: format!("idle RSS with {} practices ≤ 50 MB", s.idle_docs),
                met: ibis("idle_rss_mb").map(|v| v <= 50.0),
            },
            Goal {
                goal: format!("full sync of {} practices ≤ 2 s", s.full_sync_docs),
                met: ibis("full_sync_s").map(|v| v <= 2.0),
            },
            Goal {
                goal: "reconnect after one edit: one round trip, < 1 KB".into(),
                met: all(&[
                    ibis("reconnect_round_trips").map(|v| v <= 1.0),
                    ibis("reconnect_bytes").map(|v| v < 1024.0),
                ]),
            },
            Goal {
                goal: format!(
                    "a fresh browser paints practice titles ≤ 300 ms after navigation ({} practices)",
                    s.app_practices
                ),
                met: ibis("page_titles_painted_ms").map(|v| v <= 300.0),
            },
            Goal {
                goal: "practice pages ≥ 2,000/s from one node (wrk on the same machine)".into(),
                met: ibis("practice_pages_per_s").map(|v| v >= 2000.0),
            },
            Goal {
                goal: "practice pages ≥ 2,000/s with the nginx cache in front".into(),
                met: ibis("practice_pages_per_s_nginx_cache").map(|v| v >= 2000.0),
            },
            Goal {
                goal: format!(
                    "practice pages ≥ 2,000/s from one node ({} practices)",
                    s.catalogue_practices
                ),
                met: ibis("catalogue_practice_pages_per_s").map(|v| v >= 2000.0),
            },
            Goal {
                goal: format!(
                    "a search with every facet's counts ≤ 20 ms ({} practices)",
                    s.catalogue_practices
                ),
                met: ibis("catalogue_node_search_ms").map(|v| v <= 20.0),
            },
            Goal {
                goal: format!(
                    "a fresh browser holds the whole catalogue ≤ 5 s ({} practices)",
                    s.app_practices
                ),
                met: ibis("app_first_sync_s").map(|v| v <= 5.0),
            },
            Goal {
                goal: "app wasm ≤ 800 KB gzip".into(),
                met: self.wasm_gzip_bytes.map(|b| b <= 800 * 1024),
            },
        ]
    }

    pub fn markdown(&self) -> String {
        let kinds: Vec<Kind> = self.servers.keys().copied().collect();
        let rivals: Vec<Kind> = kinds.iter().copied().filter(|k| *k != Kind::Ibis).collect();
        let has_ibis = kinds.contains(&Kind::Ibis);
        let s = &self.sizes;
        let mut out = String::new();
        if self.quick {
            out.push_str(
                "_Quick smoke run: tiny sizes, the figures mean nothing; goals are not checked._\n\n",
            );
        }
        out.push_str(&format!(
            "Sizes: fan-out {} clients × {} changes; {} writers for {} s; {} documents created \
             ({} in flight); {} practices held, idle {} s; full sync of {}; the app (headless \
             Chromium) with a catalogue of {} practices; a node alone with {} practices; median \
             of {} run(s).\n\n",
            s.fanout_clients,
            s.fanout_changes,
            s.writers,
            s.throughput_secs,
            s.create_docs,
            s.in_flight,
            s.idle_docs,
            s.idle_secs,
            s.full_sync_docs,
            s.app_practices,
            s.catalogue_practices,
            s.runs
        ));
        out.push_str("| workload |");
        for kind in &kinds {
            out.push_str(&format!(" {} |", kind.name()));
        }
        if has_ibis {
            for rival in &rivals {
                out.push_str(&format!(" ibis vs {} |", rival.name()));
            }
        }
        out.push_str("\n|---|");
        for _ in 0..kinds.len() + if has_ibis { rivals.len() } else { 0 } {
            out.push_str("---:|");
        }
        out.push('\n');
        for figure in FIGURES {
            out.push_str(&format!("| {} |", figure.label));
            for kind in &kinds {
                let cell = self
                    .get(*kind, figure.key)
                    .map(|v| format(v, figure.decimals))
                    .unwrap_or_else(|| "–".into());
                out.push_str(&format!(" {cell} |"));
            }
            if has_ibis {
                for rival in &rivals {
                    let cell = self
                        .ratio(*rival, figure)
                        .map(|r| format!("{r:.1}× better"))
                        .unwrap_or_else(|| "–".into());
                    out.push_str(&format!(" {cell} |"));
                }
            }
            out.push('\n');
        }
        if let Some(gzip) = self.wasm_gzip_bytes {
            out.push_str(&format!(
                "\nApp wasm: {} KB raw, {} KB gzip.\n",
                self.wasm_bytes.unwrap_or(0) / 1024,
                gzip / 1024
            ));
        }
        if has_ibis && !self.quick {
            out.push_str("\n| goal | met |\n|---|---|\n");
            for goal in &self.goals {
                let met = match goal.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "not measured",
                };
                out.push_str(&format!("| {} | {met} |\n", goal.goal));
            }
        }
        let errors: Vec<String> = self
            .servers
            .iter()
            .flat_map(|(k, r)| r.errors.iter().map(move |e| format!("- {}: {e}", k.name())))
            .collect();
        if !errors.is_empty() {
            out.push_str("\nFailures:\n");
            out.push_str(&errors.join("\n"));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ibis: &[(&str, f64)], js: &[(&str, f64)]) -> Report {
        let result = |figures: &[(&str, f64)]| {
            let mut r = ServerResult::default();
            for (key, value) in figures {
                r.add(key, *value);
            }
            r
        };
        let servers = BTreeMap::from([(Kind::Ibis, result(ibis)), (Kind::Js, result(js))]);
        Report::new(Sizes::full(), false, servers, None)
    }

    fn row<'a>(markdown: &'a str, label: &str) -> &'a str {
        markdown
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("no row {label:?} in\n{markdown}"))
    }

    #[test]
    fn a_descriptive_figure_is_shown_without_a_ratio() {
        let r = report(
            &[
                ("changes_per_message_100docs", 1.04),
                ("changes_per_s_100docs", 1000.0),
            ],
            &[
                ("changes_per_message_100docs", 7.9),
                ("changes_per_s_100docs", 500.0),
            ],
        );
        let md = r.markdown();
        assert_eq!(
            row(&md, "changes per message to the observer, 100 documents"),
            "| changes per message to the observer, 100 documents | 1.0 | 7.9 | – |"
        );
        assert_eq!(
            row(&md, "relayed changes/s, writers × 100 documents"),
            "| relayed changes/s, writers × 100 documents | 1000 | 500 | 2.0× better |"
        );
    }

    #[test]
    fn ratios_follow_which_way_a_figure_is_better() {
        let r = report(
            &[("fanout_p99_ms", 2.5), ("changes_per_s_1doc", 900.0)],
            &[("fanout_p99_ms", 100.0), ("changes_per_s_1doc", 100.0)],
        );
        assert_eq!(r.ratio_of(Kind::Js, "fanout_p99_ms"), Some(40.0));
        assert_eq!(r.ratio_of(Kind::Js, "changes_per_s_1doc"), Some(9.0));
        assert_eq!(r.ratio_of(Kind::Js, "changes_per_message_1doc"), None);
        // Over 2 ms, however far ahead of the JS server.
        assert_eq!(r.goals[0].met, Some(false));
    }
}
