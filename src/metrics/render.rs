//! The Prometheus text exposition format (version 0.0.4).

use std::{collections::BTreeMap, fmt::Write as _};

use super::{BUCKETS, Histogram, RouteKey, Snapshot};

/// Renders the snapshots of every shard.
#[must_use]
pub fn render(snapshots: &[Snapshot]) -> String {
    let mut out = String::with_capacity(8 * 1024);
    render_http(&mut out, snapshots);
    render_shards(&mut out, snapshots);
    out
}

fn render_http(out: &mut String, snapshots: &[Snapshot]) {
    let mut requests: BTreeMap<(String, &'static str, u16), u64> = BTreeMap::new();
    let mut durations: BTreeMap<RouteKey, Histogram> = BTreeMap::new();
    for snapshot in snapshots {
        for (key, count) in &snapshot.requests {
            *requests.entry(key.clone()).or_default() += count;
        }
        for (key, histogram) in &snapshot.durations {
            durations.entry(key.clone()).or_default().merge(histogram);
        }
    }

    header(
        out,
        "eltrix_http_requests_total",
        "counter",
        "HTTP requests served, by route template and status.",
    );
    for ((method, path, status), count) in &requests {
        let _ = writeln!(
            out,
            "eltrix_http_requests_total{{method=\"{method}\",path=\"{path}\",status=\"{status}\"}} {count}"
        );
    }
    header(
        out,
        "eltrix_http_request_duration_seconds",
        "histogram",
        "Time from parsed request to response, in seconds.",
    );
    for ((method, path), histogram) in &durations {
        let labels = format!("method=\"{method}\",path=\"{path}\"");
        histogram_lines(
            out,
            "eltrix_http_request_duration_seconds",
            &labels,
            histogram,
        );
    }
}

/// A per-shard series: name, type, help text and how to read its value.
type ShardSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Snapshot) -> u64,
);

fn render_shards(out: &mut String, snapshots: &[Snapshot]) {
    let gauges: [ShardSeries; 5] = [
        (
            "eltrix_shard_http_requests_total",
            "counter",
            "HTTP requests whose handler ran on the shard.",
            |s| s.handled,
        ),
        (
            "eltrix_shard_events_persisted_total",
            "counter",
            "Events made durable by the shard.",
            |s| s.events_persisted,
        ),
        (
            "eltrix_shard_cross_shard_tasks_total",
            "counter",
            "Tasks received from other shards.",
            |s| s.cross_shard_tasks,
        ),
        (
            "eltrix_shard_queue_depth",
            "gauge",
            "Tasks waiting in the shard's inbox when it last took one.",
            |s| s.queue_depth as u64,
        ),
        (
            "eltrix_shard_sync_waiters",
            "gauge",
            "Long-polling /sync requests waiting on the shard.",
            |s| s.sync_waiters as u64,
        ),
    ];
    for (name, kind, help, value) in gauges {
        header(out, name, kind, help);
        for snapshot in snapshots {
            let _ = writeln!(
                out,
                "{name}{{shard=\"{}\"}} {}",
                snapshot.shard_id,
                value(snapshot)
            );
        }
    }
    let name = "eltrix_shard_commit_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Time from queueing a write batch to its fdatasync, in seconds.",
    );
    for snapshot in snapshots {
        histogram_lines(
            out,
            name,
            &format!("shard=\"{}\"", snapshot.shard_id),
            &snapshot.commit_latency,
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram_lines(out: &mut String, name: &str, labels: &str, histogram: &Histogram) {
    let mut cumulative = 0;
    for (index, count) in histogram.buckets.iter().enumerate() {
        cumulative += count;
        let bound = BUCKETS
            .get(index)
            .map_or_else(|| "+Inf".to_owned(), ToString::to_string);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histogram.sum_seconds);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", histogram.count);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::render;
    use crate::metrics::ShardMetrics;

    #[test]
    fn sums_requests_over_shards() {
        let (first, second) = (ShardMetrics::default(), ShardMetrics::default());
        second.record_handled();
        first.record_request("GET", "/health", 200, Duration::from_millis(1));
        second.record_request("GET", "/health", 200, Duration::from_millis(2));
        let text = render(&[first.snapshot(0, 0), second.snapshot(1, 3)]);
        assert!(text.contains(
            "eltrix_http_requests_total{method=\"GET\",path=\"/health\",status=\"200\"} 2"
        ));
        assert!(text.contains("eltrix_shard_sync_waiters{shard=\"1\"} 3"));
        assert!(text.contains("eltrix_shard_http_requests_total{shard=\"1\"} 1"));
        assert!(text.contains("eltrix_shard_http_requests_total{shard=\"0\"} 0"));
        assert!(text.contains(
            "eltrix_http_request_duration_seconds_count{method=\"GET\",path=\"/health\"} 2"
        ));
    }
}
