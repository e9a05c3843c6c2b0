//! Per-shard metrics and the Prometheus `/metrics` endpoint.
//!
//! Each shard counts in its own `Cell`s and `RefCell`s, so the hot path
//! touches no shared cache line. A scrape requests a snapshot from every
//! shard over the mesh. It renders the HTTP series summed over shards, and
//! the shard series with a `shard` label.

mod render;

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    time::Duration,
};

pub use render::render;

/// Upper bounds of the latency histogram buckets, in seconds.
pub const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram: counts per bucket (the last is `+Inf`), sum and count.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub buckets: [u64; BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[index] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }

    /// Adds another histogram's observations.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_seconds += other.sum_seconds;
        self.count += other.count;
    }
}

/// `(method, route template)`.
pub type RouteKey = (String, &'static str);

/// The counters of one shard.
#[derive(Default)]
pub struct ShardMetrics {
    requests: RefCell<BTreeMap<(String, &'static str, u16), u64>>,
    durations: RefCell<BTreeMap<RouteKey, Histogram>>,
    commit_latency: RefCell<Histogram>,
    events_persisted: Cell<u64>,
    cross_shard_tasks: Cell<u64>,
    queue_depth: Cell<usize>,
    handled: Cell<u64>,
}

impl ShardMetrics {
    /// Counts a served request.
    pub fn record_request(
        &self,
        method: &str,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        *self
            .requests
            .borrow_mut()
            .entry((method.to_owned(), route, status))
            .or_default() += 1;
        self.durations
            .borrow_mut()
            .entry((method.to_owned(), route))
            .or_default()
            .observe(elapsed);
    }

    /// Counts a request whose handler runs on this shard.
    pub fn record_handled(&self) {
        self.handled.set(self.handled.get() + 1);
    }

    /// Counts a durable commit of `events` events that took `elapsed`.
    pub fn record_commit(&self, events: usize, elapsed: Duration) {
        self.commit_latency.borrow_mut().observe(elapsed);
        self.events_persisted
            .set(self.events_persisted.get() + events as u64);
    }

    /// Counts a task received from the mesh, with the depth left behind it.
    pub fn record_cross_shard_task(&self, queue_depth: usize) {
        self.cross_shard_tasks.set(self.cross_shard_tasks.get() + 1);
        self.queue_depth.set(queue_depth);
    }

    /// Copies the counters, adding the sync waiter count from the index.
    #[must_use]
    pub fn snapshot(&self, shard_id: usize, sync_waiters: usize) -> Snapshot {
        Snapshot {
            shard_id,
            requests: self.requests.borrow().clone(),
            durations: self.durations.borrow().clone(),
            commit_latency: self.commit_latency.borrow().clone(),
            events_persisted: self.events_persisted.get(),
            cross_shard_tasks: self.cross_shard_tasks.get(),
            queue_depth: self.queue_depth.get(),
            handled: self.handled.get(),
            sync_waiters,
        }
    }
}

/// One shard's counters at scrape time.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub shard_id: usize,
    pub requests: BTreeMap<(String, &'static str, u16), u64>,
    pub durations: BTreeMap<RouteKey, Histogram>,
    pub commit_latency: Histogram,
    pub events_persisted: u64,
    pub cross_shard_tasks: u64,
    pub queue_depth: usize,
    pub handled: u64,
    pub sync_waiters: usize,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Histogram;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let mut histogram = Histogram::default();
        histogram.observe(Duration::from_micros(400));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(60));
        assert_eq!(histogram.buckets[0], 1);
        assert_eq!(histogram.buckets[3], 1);
        assert_eq!(histogram.buckets[13], 1);
        assert_eq!(histogram.count, 3);
    }
}
