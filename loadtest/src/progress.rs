//! The progress line that a running phase prints to stderr once a second.

use std::{
    fmt::Write as _,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    thread,
    time::{Duration, Instant},
};

/// Interval between two progress lines.
const INTERVAL: Duration = Duration::from_secs(1);

/// Counters that the workers of a phase update and the progress line reads.
#[derive(Debug, Default)]
pub struct Progress {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// Events seen by syncing clients; shown only when nonzero.
    pub deliveries: AtomicU64,
}

impl Progress {
    fn read(&self) -> (u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.deliveries.load(Ordering::Relaxed),
        )
    }
}

/// Runs `body` while a thread prints a progress line for `label` to stderr
/// once a second, and stops that thread when `body` returns.
pub fn run_with_progress<R>(label: &str, progress: &Progress, body: impl FnOnce() -> R) -> R {
    let (stop, stopped) = mpsc::channel::<()>();
    thread::scope(|scope| {
        scope.spawn(move || print_until_stopped(label, progress, &stopped));
        let result = body();
        // Dropping the sender wakes the progress thread at once.
        drop(stop);
        result
    })
}

fn print_until_stopped(label: &str, progress: &Progress, stopped: &mpsc::Receiver<()>) {
    let start = Instant::now();
    let mut previous = (start, 0);
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let (requests, errors, deliveries) = progress.read();
        let interval = now.duration_since(previous.0).as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let rate = (requests - previous.1) as f64 / interval;
        previous = (now, requests);
        let elapsed = now.duration_since(start);
        eprintln!(
            "{}",
            format_line(label, elapsed, requests, rate, errors, deliveries)
        );
    }
}

/// Formats one progress line.
pub fn format_line(
    label: &str,
    elapsed: Duration,
    requests: u64,
    rate_per_s: f64,
    errors: u64,
    deliveries: u64,
) -> String {
    let mut line = format!(
        "{label} {:>4.0} s: {requests} requests, {rate_per_s:.0}/s, {errors} errors",
        elapsed.as_secs_f64()
    );
    if deliveries > 0 {
        let _ = write!(line, ", {deliveries} deliveries");
    }
    line
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Progress, format_line, run_with_progress};

    #[test]
    fn line_shows_counts_and_rate() {
        let line = format_line("send", Duration::from_secs(3), 9000, 2999.6, 2, 0);
        assert_eq!(line, "send    3 s: 9000 requests, 3000/s, 2 errors");
        let fanout = format_line("fanout", Duration::from_secs(12), 40, 10.0, 0, 390);
        assert!(fanout.ends_with(", 390 deliveries"), "{fanout}");
    }

    #[test]
    fn progress_thread_stops_with_body() {
        let progress = Progress::default();
        let started = std::time::Instant::now();
        let value = run_with_progress("test", &progress, || 7);
        assert_eq!(value, 7);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
