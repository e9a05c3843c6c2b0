//! Per-operation counts and latency histograms of the requests of a phase.
//! Each worker fills its own [`Tally`], and the phase merges them.

use std::{collections::BTreeMap, fmt::Display, sync::atomic::Ordering, time::Duration};

use hdrhistogram::Histogram;

use crate::{
    matrix::ApiError,
    progress::Progress,
    report::{ErrorCount, count_error, merge_errors, new_latency_histogram, record_latency},
};

/// Outcome of the requests of one operation, such as `send` or `sync`.
#[derive(Debug, Clone)]
pub struct OpTally {
    /// Latency of successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
    pub succeeded: u64,
    pub errors: BTreeMap<String, ErrorCount>,
}

impl OpTally {
    fn new() -> Self {
        Self {
            latency_us: new_latency_histogram(),
            succeeded: 0,
            errors: BTreeMap::new(),
        }
    }

    /// Returns the number of failed requests.
    pub fn failed(&self) -> u64 {
        self.errors.values().map(|counted| counted.count).sum()
    }

    fn merge(&mut self, other: Self) {
        // Both histograms come from `new_latency_histogram` and contain
        // clamped values, so `add` cannot exceed the bounds.
        let _ = self.latency_us.add(&other.latency_us);
        self.succeeded += other.succeeded;
        merge_errors(&mut self.errors, other.errors);
    }
}

/// Outcome of the requests of one worker, or of all of them merged.
#[derive(Debug, Clone)]
pub struct Tally {
    pub ops: BTreeMap<&'static str, OpTally>,
    /// How late open-loop requests started after their due time, in
    /// microseconds.
    pub start_lag_us: Histogram<u64>,
    /// Open-loop requests that fell due before the deadline but never started.
    pub missed: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            ops: BTreeMap::new(),
            start_lag_us: new_latency_histogram(),
            missed: 0,
        }
    }
}

impl Tally {
    /// Returns the tally of `op`, created empty on first use.
    pub fn op(&mut self, op: &'static str) -> &mut OpTally {
        self.ops.entry(op).or_insert_with(OpTally::new)
    }

    pub fn merge(&mut self, other: Self) {
        for (op, counted) in other.ops {
            self.op(op).merge(counted);
        }
        let _ = self.start_lag_us.add(&other.start_lag_us);
        self.missed += other.missed;
    }

    /// Returns the number of successful requests over all operations.
    pub fn succeeded(&self) -> u64 {
        self.ops.values().map(|op| op.succeeded).sum()
    }

    /// Returns the number of failed requests over all operations.
    pub fn failed(&self) -> u64 {
        self.ops.values().map(OpTally::failed).sum()
    }
}

/// A worker's [`Tally`] that also updates the phase's progress counters.
pub struct Recorder<'a> {
    tally: Tally,
    progress: &'a Progress,
}

impl<'a> Recorder<'a> {
    pub fn new(progress: &'a Progress) -> Self {
        Self {
            tally: Tally::default(),
            progress,
        }
    }

    /// Counts a successful request of `op` and records its latency.
    pub fn success(&mut self, op: &'static str, latency: Duration) {
        let counted = self.tally.op(op);
        record_latency(&mut counted.latency_us, latency);
        counted.succeeded += 1;
        self.progress.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed request of `op` under the error's label, keeping
    /// `context: error` as the first message of that label.
    pub fn failure(&mut self, op: &'static str, error: &ApiError, context: impl Display) {
        self.invalid(op, &error.label(), || format!("{context}: {error}"));
    }

    /// Counts a failed request of `op` under `label`, for example one that
    /// the server answered with 2xx but whose content was wrong.
    pub fn invalid(&mut self, op: &'static str, label: &str, message: impl FnOnce() -> String) {
        count_error(&mut self.tally.op(op).errors, label.to_owned(), message);
        self.progress.requests.fetch_add(1, Ordering::Relaxed);
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how late an open-loop request started.
    pub fn start_lag(&mut self, lag: Option<Duration>) {
        if let Some(lag) = lag {
            record_latency(&mut self.tally.start_lag_us, lag);
        }
    }

    /// Returns the recorder's tally.
    pub fn finish(self) -> Tally {
        self.tally
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::Ordering, time::Duration};

    use super::{Recorder, Tally};
    use crate::{matrix::status_error, progress::Progress};

    #[test]
    fn recorder_counts_ops_and_progress() {
        let progress = Progress::default();
        let mut recorder = Recorder::new(&progress);
        recorder.success("send", Duration::from_millis(2));
        recorder.success("sync", Duration::from_millis(3));
        let error = status_error(403, br#"{"errcode":"M_FORBIDDEN","error":"no"}"#);
        recorder.failure("send", &error, "!room:x");
        recorder.invalid("sync", "missing rooms", || "2 of 3".to_owned());
        let tally = recorder.finish();

        assert_eq!(progress.requests.load(Ordering::Relaxed), 4);
        assert_eq!(progress.errors.load(Ordering::Relaxed), 2);
        assert_eq!(tally.succeeded(), 2);
        assert_eq!(tally.failed(), 2);
        assert_eq!(
            tally.ops["send"].errors["M_FORBIDDEN"].first_message,
            "!room:x: HTTP 403 M_FORBIDDEN: no"
        );
        assert_eq!(tally.ops["sync"].errors["missing rooms"].count, 1);
    }

    #[test]
    fn merge_adds_ops_lag_and_missed() {
        let progress = Progress::default();
        let mut first = Recorder::new(&progress);
        first.success("send", Duration::from_millis(1));
        first.start_lag(Some(Duration::from_millis(5)));
        first.start_lag(None);
        let mut second = Recorder::new(&progress);
        second.success("send", Duration::from_millis(9));
        second.success("messages", Duration::from_millis(4));

        let mut merged = Tally::default();
        merged.merge(first.finish());
        let mut other = second.finish();
        other.missed = 3;
        merged.merge(other);
        assert_eq!(merged.ops["send"].succeeded, 2);
        assert_eq!(merged.ops["send"].latency_us.len(), 2);
        assert_eq!(merged.ops["messages"].succeeded, 1);
        assert_eq!(merged.start_lag_us.len(), 1);
        assert_eq!(merged.missed, 3);
    }
}
