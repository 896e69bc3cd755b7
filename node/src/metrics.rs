//! What `/metrics` reports, in Prometheus text format, and what `/healthz` checks.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ibis_shared::sync::{Engine, Policy};

/// Upper bounds (seconds) of the storage commit latency histogram.
const COMMIT_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0];

/// Who a per-client connection cap applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    Anonymous = 0,
    Member = 1,
    Partner = 2,
}

impl ClientKind {
    pub const ALL: [ClientKind; 3] = [
        ClientKind::Anonymous,
        ClientKind::Member,
        ClientKind::Partner,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ClientKind::Anonymous => "anonymous",
            ClientKind::Member => "member",
            ClientKind::Partner => "partner",
        }
    }
}

pub struct Metrics {
    pub healthy: AtomicBool,
    pub connections: AtomicU64,
    pub ready_peers: AtomicU64,
    pub documents_in_memory: AtomicU64,
    pub documents_known: AtomicU64,
    pub documents_changed: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub sync_messages_in: AtomicU64,
    pub sync_messages_out: AtomicU64,
    pub changes_rejected: AtomicU64,
    pub protocol_violations: AtomicU64,
    pub documents_evicted: AtomicU64,
    pub snapshots_served: AtomicU64,
    pub sync_messages_applied_together: AtomicU64,
    pub connections_refused: AtomicU64,
    /// `/sync` connections refused because their client already had its share open, by
    /// [`ClientKind`]: anonymous visitors (per address), members (per account), partners
    /// (per key).
    pub connections_refused_per_client: [AtomicU64; 3],
    /// `/sync` connections refused because a browser's `Origin` was not this node's.
    pub connections_refused_cross_origin: AtomicU64,
    /// Password hashes (logins) running now.
    pub login_hashes_in_progress: AtomicU64,
    /// The most password hashes ever seen running at once.
    pub login_hashes_max: AtomicU64,
    /// Logins answered "busy" without hashing, because too many were waiting.
    pub logins_busy: AtomicU64,
    /// Logins refused because the name and address, or the address, had failed too often.
    pub logins_locked: AtomicU64,
    pub storage_failures: AtomicU64,
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    commit_micros_total: AtomicU64,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            healthy: AtomicBool::new(true),
            connections: AtomicU64::new(0),
            ready_peers: AtomicU64::new(0),
            documents_in_memory: AtomicU64::new(0),
            documents_known: AtomicU64::new(0),
            documents_changed: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            sync_messages_in: AtomicU64::new(0),
            sync_messages_out: AtomicU64::new(0),
            changes_rejected: AtomicU64::new(0),
            protocol_violations: AtomicU64::new(0),
            documents_evicted: AtomicU64::new(0),
            snapshots_served: AtomicU64::new(0),
            sync_messages_applied_together: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_refused_per_client: Default::default(),
            connections_refused_cross_origin: AtomicU64::new(0),
            login_hashes_in_progress: AtomicU64::new(0),
            login_hashes_max: AtomicU64::new(0),
            logins_busy: AtomicU64::new(0),
            logins_locked: AtomicU64::new(0),
            storage_failures: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            commit_micros_total: AtomicU64::new(0),
            commit_buckets: Default::default(),
        }
    }
}

impl Metrics {
    /// Copies the engine's counters and gauges.
    pub fn observe_engine<P: Policy>(&self, engine: &Engine<P>)
    where
        P::Principal: PartialEq,
    {
        let s = engine.stats();
        let g = engine.gauges();
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&self.connections, g.connections as u64);
        set(&self.ready_peers, g.ready_peers as u64);
        set(&self.documents_in_memory, g.documents_in_memory as u64);
        set(&self.documents_known, g.documents_known as u64);
        set(&self.frames_in, s.frames_in);
        set(&self.frames_out, s.frames_out);
        set(&self.bytes_in, s.bytes_in);
        set(&self.bytes_out, s.bytes_out);
        set(&self.sync_messages_in, s.sync_messages_in);
        set(&self.sync_messages_out, s.sync_messages_out);
        set(&self.changes_rejected, s.changes_rejected);
        set(&self.protocol_violations, s.protocol_violations);
        set(&self.documents_evicted, s.documents_evicted);
        set(&self.snapshots_served, s.snapshots_served);
        set(
            &self.sync_messages_applied_together,
            s.sync_messages_applied_together,
        );
    }

    /// Counts a `/sync` connection refused for its client's cap (and in
    /// `connections_refused`).
    pub fn refuse_over_client_cap(&self, kind: ClientKind) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
        self.connections_refused_per_client[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A password hash starts; the returned guard marks its end when dropped (on every
    /// path, a panic included).
    pub fn login_hash_started(self: &std::sync::Arc<Self>) -> LoginHashGauge {
        let now = self.login_hashes_in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        self.login_hashes_max.fetch_max(now, Ordering::SeqCst);
        LoginHashGauge(self.clone())
    }

    pub fn observe_commit(&self, took: Duration, writes: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
        self.commit_micros_total
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bound, bucket) in COMMIT_BUCKETS.iter().zip(&self.commit_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "ibis_up",
            "gauge",
            "1 while storage works",
            u64::from(self.healthy.load(Ordering::Relaxed)),
        );
        metric(
            "ibis_connections",
            "gauge",
            "Open sync connections",
            g(&self.connections),
        );
        metric(
            "ibis_peers",
            "gauge",
            "Connections past the handshake",
            g(&self.ready_peers),
        );
        metric(
            "ibis_documents_loaded",
            "gauge",
            "Documents in memory",
            g(&self.documents_in_memory),
        );
        metric(
            "ibis_documents_known",
            "gauge",
            "Documents this node holds",
            g(&self.documents_known),
        );
        metric(
            "ibis_documents_changed_total",
            "counter",
            "Document changes applied",
            g(&self.documents_changed),
        );
        metric(
            "ibis_documents_evicted_total",
            "counter",
            "Idle documents dropped from memory",
            g(&self.documents_evicted),
        );
        metric(
            "ibis_snapshots_served_total",
            "counter",
            "Peers with nothing of a document answered from storage without loading it",
            g(&self.snapshots_served),
        );
        metric(
            "ibis_sync_messages_applied_together_total",
            "counter",
            "Sync messages whose changes were applied together with other peers' changes to the same document",
            g(&self.sync_messages_applied_together),
        );
        metric(
            "ibis_frames_in_total",
            "counter",
            "Frames received",
            g(&self.frames_in),
        );
        metric(
            "ibis_frames_out_total",
            "counter",
            "Frames sent",
            g(&self.frames_out),
        );
        metric(
            "ibis_bytes_in_total",
            "counter",
            "Bytes received in frames",
            g(&self.bytes_in),
        );
        metric(
            "ibis_bytes_out_total",
            "counter",
            "Bytes sent in frames",
            g(&self.bytes_out),
        );
        metric(
            "ibis_sync_messages_in_total",
            "counter",
            "sync and request messages received",
            g(&self.sync_messages_in),
        );
        metric(
            "ibis_sync_messages_out_total",
            "counter",
            "sync and request messages sent",
            g(&self.sync_messages_out),
        );
        metric(
            "ibis_changes_rejected_total",
            "counter",
            "Incoming changes refused by policy",
            g(&self.changes_rejected),
        );
        metric(
            "ibis_protocol_violations_total",
            "counter",
            "Connections closed for breaking the protocol",
            g(&self.protocol_violations),
        );
        metric(
            "ibis_connections_refused_total",
            "counter",
            "Connections refused (limits, credentials)",
            g(&self.connections_refused),
        );
        metric(
            "ibis_connections_refused_cross_origin_total",
            "counter",
            "Sync connections refused for a browser Origin other than this node's",
            g(&self.connections_refused_cross_origin),
        );
        metric(
            "ibis_login_hashes_in_progress",
            "gauge",
            "Password hashes running now",
            g(&self.login_hashes_in_progress),
        );
        metric(
            "ibis_login_hashes_max",
            "gauge",
            "Most password hashes seen running at once",
            g(&self.login_hashes_max),
        );
        metric(
            "ibis_logins_busy_total",
            "counter",
            "Logins answered busy without hashing",
            g(&self.logins_busy),
        );
        metric(
            "ibis_logins_locked_total",
            "counter",
            "Logins refused after too many failures from the client",
            g(&self.logins_locked),
        );
        metric(
            "ibis_storage_failures_total",
            "counter",
            "Failed storage commits",
            g(&self.storage_failures),
        );
        metric(
            "ibis_storage_writes_total",
            "counter",
            "Chunks and sync states written",
            g(&self.writes),
        );
        let _ = writeln!(
            out,
            "# HELP ibis_connections_refused_per_client_total Sync connections refused because the client had its share open\n# TYPE ibis_connections_refused_per_client_total counter"
        );
        for kind in ClientKind::ALL {
            let _ = writeln!(
                out,
                "ibis_connections_refused_per_client_total{{principal=\"{}\"}} {}",
                kind.label(),
                g(&self.connections_refused_per_client[kind as usize])
            );
        }
        let _ = writeln!(
            out,
            "# HELP ibis_storage_commit_seconds Storage commit latency\n# TYPE ibis_storage_commit_seconds histogram"
        );
        for (bound, bucket) in COMMIT_BUCKETS.iter().zip(&self.commit_buckets) {
            let _ = writeln!(
                out,
                "ibis_storage_commit_seconds_bucket{{le=\"{bound}\"}} {}",
                g(bucket)
            );
        }
        let commits = g(&self.commits);
        let _ = writeln!(
            out,
            "ibis_storage_commit_seconds_bucket{{le=\"+Inf\"}} {commits}"
        );
        let _ = writeln!(
            out,
            "ibis_storage_commit_seconds_sum {}",
            g(&self.commit_micros_total) as f64 / 1e6
        );
        let _ = writeln!(out, "ibis_storage_commit_seconds_count {commits}");
        out
    }
}

/// Marks the end of a password hash (see [`Metrics::login_hash_started`]).
pub struct LoginHashGauge(std::sync::Arc<Metrics>);

impl Drop for LoginHashGauge {
    fn drop(&mut self) {
        self.0
            .login_hashes_in_progress
            .fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe_commit(Duration::from_micros(700), 3);
        let text = m.render();
        assert!(text.contains("ibis_storage_writes_total 3"));
        assert!(text.contains("ibis_storage_commit_seconds_bucket{le=\"0.0005\"} 0"));
        assert!(text.contains("ibis_storage_commit_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("ibis_storage_commit_seconds_count 1"));
        assert!(text.contains("# TYPE ibis_connections gauge"));
        assert!(text.contains("ibis_connections_refused_per_client_total{principal=\"member\"} 0"));
    }

    #[test]
    fn login_hash_gauge_tracks_the_most_at_once() {
        let m = std::sync::Arc::new(Metrics::default());
        let a = m.login_hash_started();
        let b = m.login_hash_started();
        drop(a);
        let c = m.login_hash_started();
        drop((b, c));
        assert_eq!(m.login_hashes_in_progress.load(Ordering::SeqCst), 0);
        assert_eq!(m.login_hashes_max.load(Ordering::SeqCst), 2);
        assert!(m.render().contains("ibis_login_hashes_max 2"));
    }
}
