//! The scenarios, one per file, and the thread runner that their measured
//! phases share.

pub mod ceiling;
pub mod fanout;
pub mod initial_sync;
pub mod mixed;
pub mod send;

use std::{
    ops::Range,
    thread,
    time::{Duration, Instant},
};

use crate::{
    matrix::ApiError,
    progress::{Progress, run_with_progress},
    setup::WORKER_STACK_BYTES,
    tally::Tally,
};

/// Pause of a worker after a failed connection attempt. Without it, a worker
/// facing a stopped server would spin through its share of the requests.
const CONNECT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// Runs `work(0)` … `work(count - 1)` on one thread each, with a small stack,
/// while a progress line for `label` goes to stderr. Returns the results in
/// order and the time from the first spawn to the last join.
pub fn run_threads<T: Send>(
    label: &str,
    count: usize,
    progress: &Progress,
    work: impl Fn(usize) -> T + Sync,
) -> Result<(Vec<T>, Duration), String> {
    let start = Instant::now();
    let results = run_with_progress(label, progress, || {
        thread::scope(|scope| {
            let work = &work;
            let mut handles = Vec::with_capacity(count);
            for index in 0..count {
                let handle = thread::Builder::new()
                    .name(format!("{label}-{index}"))
                    .stack_size(WORKER_STACK_BYTES)
                    .spawn_scoped(scope, move || work(index))
                    .map_err(|error| format!("failed to start worker thread {index}: {error}"))?;
                handles.push(handle);
            }
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .map_err(|_| format!("a {label} worker thread panicked"))
                })
                .collect::<Result<Vec<T>, String>>()
        })
    })?;
    Ok((results, start.elapsed()))
}

/// Merges the tallies of all workers.
pub fn merge_tallies(tallies: impl IntoIterator<Item = Tally>) -> Tally {
    let mut merged = Tally::default();
    for tally in tallies {
        merged.merge(tally);
    }
    merged
}

/// Sleeps after a failed connection attempt, so that a stopped server does
/// not turn a worker into a busy loop.
pub fn pause_after(error: &ApiError) {
    if let Some(delay) = pause_for(error) {
        thread::sleep(delay);
    }
}

/// Returns how long a worker pauses after `error` before its next request:
/// [`CONNECT_RETRY_DELAY`] after a failed connection attempt, else no pause.
pub fn pause_for(error: &ApiError) -> Option<Duration> {
    error.is_connect_failure().then_some(CONNECT_RETRY_DELAY)
}

/// Splits `0..count` into `parts` contiguous ranges whose lengths differ by
/// at most one. `parts` is clamped to `1..=count`.
pub fn partition(count: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, count.max(1));
    let (base, extra) = (count / parts, count % parts);
    let mut start = 0;
    (0..parts)
        .map(|part| {
            let len = base + usize::from(part < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::{io, net::SocketAddr};

    use super::{CONNECT_RETRY_DELAY, partition, pause_for};
    use crate::{
        http::HttpError,
        matrix::{ApiError, status_error},
    };

    #[test]
    fn partition_covers_every_member_once() {
        assert_eq!(partition(10, 3), [0..4, 4..7, 7..10]);
        assert_eq!(partition(1000, 2), [0..500, 500..1000]);
        assert_eq!(partition(3, 1).first(), Some(&(0..3)));
        assert_eq!(partition(3, 1).len(), 1);
        assert_eq!(partition(3, 3), [0..1, 1..2, 2..3]);
    }

    #[test]
    fn partition_clamps_parts() {
        assert_eq!(partition(2, 5), [0..1, 1..2]);
        assert_eq!(partition(4, 0).first(), Some(&(0..4)));
        assert_eq!(partition(4, 0).len(), 1);
        assert_eq!(partition(0, 2).first(), Some(&(0..0)));
        assert_eq!(partition(0, 2).len(), 1);
    }

    #[test]
    fn pause_only_after_connect_failure() {
        let refused = ApiError::Http(HttpError::Connect {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            source: io::ErrorKind::ConnectionRefused.into(),
        });
        assert_eq!(pause_for(&refused), Some(CONNECT_RETRY_DELAY));

        let closed = ApiError::Http(HttpError::ClosedBeforeResponse);
        assert_eq!(pause_for(&closed), None);
        let limited = status_error(429, br#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":9}"#);
        assert_eq!(pause_for(&limited), None);
    }
}
