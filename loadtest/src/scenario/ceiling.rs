//! The `ceiling` scenario: closed-loop `GET /_matrix/client/versions` on
//! `--concurrency` connections. The endpoint needs no account and does
//! almost no work, so its throughput is the HTTP ceiling of the server and
//! the machine, against which the other scenarios can be read.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    pacing::{Pacer, Pacing},
    progress::Progress,
    report::{Report, ReportHeader, StopReason},
    scenario::{merge_tallies, pause_after, run_threads},
    tally::Recorder,
    target::Target,
};

/// Settings of one `ceiling` run, already validated.
#[derive(Debug, Clone)]
pub struct CeilingConfig {
    pub url: String,
    pub target: Target,
    pub timeout: Duration,
    pub concurrency: u32,
    pub requests: u64,
    pub duration: Duration,
}

pub fn run(config: &CeilingConfig) -> Result<Report, String> {
    let start = Instant::now();
    let pacing = Pacing::new(None, start, u64::from(config.concurrency));
    let deadline = start + config.duration;
    let progress = Progress::default();

    let (tallies, elapsed) = run_threads(
        "ceiling",
        config.concurrency as usize,
        &progress,
        |worker| {
            let mut pacer = Pacer::new(&pacing, worker as u64, config.requests, deadline);
            let mut recorder = Recorder::new(&progress);
            let mut client = crate::matrix::Client::new(&config.target, config.timeout);
            while let Some(slot) = pacer.next_slot() {
                match client.versions() {
                    Ok(()) => recorder.success("versions", slot.origin.elapsed()),
                    Err(error) => {
                        recorder.failure("versions", &error, "GET /_matrix/client/versions");
                        pause_after(&error);
                    }
                }
            }
            recorder.finish()
        },
    )?;

    let tally = merge_tallies(tallies);
    let stopped_by = StopReason::from_count(tally.succeeded() + tally.failed(), config.requests);
    let header = ReportHeader {
        scenario: "ceiling",
        url: config.url.clone(),
        seed: None,
        parameters: json!({
            "concurrency": config.concurrency,
            "requests": config.requests,
            "duration_s": config.duration.as_secs(),
            "timeout_ms": config.timeout.as_millis(),
        }),
        setup: None,
    };
    Ok(Report::new(header, elapsed, stopped_by, &tally, None))
}
