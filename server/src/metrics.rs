//! What an operator watches: counters, gauges and latency histograms,
//! served in the Prometheus text format at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum of observations in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every metric of one app server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: AtomicI64,
    /// Documents loaded (actors running).
    pub documents: AtomicI64,
    /// Commands waiting in document queues, over all documents.
    pub queued: AtomicI64,
    /// The longest queue seen in the last batch of any document.
    pub max_queue: AtomicI64,
    pub accepted: AtomicU64,
    /// Changes rejected because they conflicted.
    pub conflicts: AtomicU64,
    /// Documents this server took over from a server that stopped answering.
    pub takeovers: AtomicU64,
    /// Appends refused because a newer owner holds the document.
    pub fenced: AtomicU64,
    /// Connections sent to another app server.
    pub redirects: AtomicU64,
    /// Connections closed because they fell too far behind (their queue of
    /// frames was full).
    pub slow_connections: AtomicU64,
    /// State-changing requests and WebSockets refused for their origin.
    pub refused_origins: AtomicU64,
    /// Messages refused by the per-connection rate limit.
    pub rate_limited: AtomicU64,
    /// Connections refused by the per-user and per-address limits.
    pub refused_connections: AtomicU64,
    /// Sign-ins refused (wrong password or throttled).
    pub failed_sign_ins: AtomicU64,
    pub merge_latency: Histogram,
    pub append_latency: Histogram,
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        gauge(
            &mut out,
            "collab_connections",
            "Open WebSocket connections.",
            self.connections.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "collab_documents_open",
            "Documents loaded on this server.",
            self.documents.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "collab_queue_length",
            "Commands waiting in document queues, all documents.",
            self.queued.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "collab_queue_length_max",
            "The longest document queue at its last batch.",
            self.max_queue.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "collab_changes_accepted_total",
            "Changes accepted.",
            self.accepted.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "collab_conflicts_total",
            "Changes rejected because they conflicted.",
            self.conflicts.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "collab_lease_takeovers_total",
            "Documents taken over from a server that stopped answering.",
            self.takeovers.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "collab_fenced_appends_total",
            "Appends refused: a newer owner holds the document.",
            self.fenced.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "collab_redirects_total",
            "Connections sent to the document's owner.",
            self.redirects.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "collab_slow_connections_total",
            "Connections closed because they fell too far behind; they reconnect and catch up.",
            self.slow_connections.load(Ordering::Relaxed),
        );
        for (name, help, value) in [
            (
                "collab_refused_origins_total",
                "Requests and WebSockets refused for their Origin.",
                &self.refused_origins,
            ),
            (
                "collab_rate_limited_messages_total",
                "WebSocket messages refused by the rate limit.",
                &self.rate_limited,
            ),
            (
                "collab_refused_connections_total",
                "WebSockets refused by the per-user and per-address limits.",
                &self.refused_connections,
            ),
            (
                "collab_failed_sign_ins_total",
                "Sign-ins refused: wrong password or throttled.",
                &self.failed_sign_ins,
            ),
        ] {
            counter(&mut out, name, help, value.load(Ordering::Relaxed));
        }
        self.merge_latency
            .render(&mut out, "collab_merge_seconds", "Time to merge one change.");
        self.append_latency.render(
            &mut out,
            "collab_op_log_append_seconds",
            "Time to append one batch to the op log.",
        );
        out
    }
}
