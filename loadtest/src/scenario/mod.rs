//! The scenarios, one per file, and the thread runner that their measured
//! phases share.

pub mod ceiling;
pub mod fanout;
pub mod initial_sync;
pub mod mixed;
pub mod send;

use std::{
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
    if error.is_connect_failure() {
        thread::sleep(CONNECT_RETRY_DELAY);
    }
}
