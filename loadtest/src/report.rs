//! The result of a run: counts, throughput, latency percentiles and errors
//! per operation, and the sections of single scenarios, as a text table and
//! as JSON.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::tally::Tally;

/// Highest latency the histogram tracks, in microseconds (one hour). Larger
/// values are recorded as this value.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Creates a histogram of latencies in microseconds, from 1 µs to one hour,
/// with 3 significant digits.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Records one latency, rounded down to whole microseconds and at least 1 µs.
pub fn record_latency(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US);
    histogram.saturating_record(micros);
}

/// Highest response size the size histogram tracks, in bytes (1 GiB).
const MAX_SIZE_BYTES: u64 = 1 << 30;

/// Latency percentiles of successful requests, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Reads the percentiles from a histogram of microseconds. Returns `None`
    /// when it contains no values.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros_to_ms(micros);
        Some(Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p99_9_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        })
    }
}

#[allow(clippy::cast_precision_loss)]
fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Count of one kind of error, with the first message seen for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    pub count: u64,
    pub first_message: String,
}

/// Adds one error under `label`, keeping the first message.
pub fn count_error(
    errors: &mut BTreeMap<String, ErrorCount>,
    label: String,
    message: impl FnOnce() -> String,
) {
    errors
        .entry(label)
        .or_insert_with(|| ErrorCount {
            count: 0,
            first_message: message(),
        })
        .count += 1;
}

/// Merges the error counts of `other` into `errors`.
pub fn merge_errors(
    errors: &mut BTreeMap<String, ErrorCount>,
    other: BTreeMap<String, ErrorCount>,
) {
    for (label, counted) in other {
        let entry = errors.entry(label).or_insert_with(|| ErrorCount {
            count: 0,
            first_message: counted.first_message,
        });
        entry.count += counted.count;
    }
}

/// Bound that ended the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The request limit of the scenario (`--messages`, `--requests` or
    /// users times `--repeats`) was reached.
    RequestLimit,
    /// `--duration` passed first.
    DurationLimit,
}

impl StopReason {
    /// Returns `RequestLimit` when `requests` reached `limit`, else
    /// `DurationLimit`.
    pub fn from_count(requests: u64, limit: u64) -> Self {
        if requests >= limit {
            Self::RequestLimit
        } else {
            Self::DurationLimit
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::RequestLimit => "request limit",
            Self::DurationLimit => "duration limit",
        }
    }
}

/// Result of one operation, such as `send` or `sync`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationReport {
    /// Requests attempted, successful or not.
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Successful requests per second of the measured phase.
    pub throughput_per_s: f64,
    /// Latency of successful requests, or `None` when none succeeded.
    pub latency: Option<Latency>,
    /// Failed requests by Matrix errcode, HTTP status or transport failure.
    pub errors: BTreeMap<String, ErrorCount>,
}

/// Users and rooms that the run used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetupReport {
    /// Whether the users and rooms came from an existing `--state` file.
    pub reused_state: bool,
    /// Registration, room creation, joins and seeding, in seconds.
    pub seconds: f64,
    pub users: usize,
    pub room_ids: Vec<String>,
}

/// Open-loop schedule of the measured phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleReport {
    /// `--rate`: requests per second over all workers.
    pub rate_per_s: f64,
    /// Requests due before the deadline that no worker started in time.
    pub missed: u64,
    /// How late requests started after their due time; large values mean
    /// that the load generator or its connections could not keep up.
    pub start_lag: Option<Latency>,
}

/// Messages seen by the syncing members of the `fanout` scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryReport {
    pub members: u64,
    /// Sends that returned an event ID.
    pub messages_sent: u64,
    /// `messages_sent` times `members`: one delivery per (message, member).
    pub expected: u64,
    pub delivered: u64,
    /// Expected deliveries that no member sync showed before the end.
    pub missing: u64,
    /// Repeated appearances of an event already seen by the same member.
    pub duplicates: u64,
    /// Sender events in a member's timeline whose ID no send returned.
    pub unmatched: u64,
    /// Deliveries that arrived before the sender read its 200 response;
    /// their latency is recorded as zero.
    pub before_send_response: u64,
    /// Member sync responses whose timeline of the room was `limited`.
    pub limited_timelines: u64,
    /// Time from the sender's 200 response to the arrival in a member's sync.
    pub latency: Option<Latency>,
    /// Time from the send's scheduled start to the arrival in a member's
    /// sync, which includes the send itself.
    pub latency_from_send_start: Option<Latency>,
}

/// Distribution of response sizes, in bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizes {
    pub count: u64,
    pub min_bytes: u64,
    pub mean_bytes: f64,
    pub p50_bytes: u64,
    pub p90_bytes: u64,
    pub p99_bytes: u64,
    pub max_bytes: u64,
}

/// Creates a histogram of sizes in bytes, from 1 byte to 1 GiB, with 3
/// significant digits.
pub fn new_size_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_SIZE_BYTES, 3).expect("constant histogram bounds are valid")
}

/// Records one size, clamped to the histogram bounds.
pub fn record_size(histogram: &mut Histogram<u64>, bytes: usize) {
    let bytes = u64::try_from(bytes)
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_SIZE_BYTES);
    histogram.saturating_record(bytes);
}

impl Sizes {
    /// Reads the distribution from a histogram of bytes. Returns `None`
    /// when it contains no values.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        Some(Self {
            count: histogram.len(),
            min_bytes: histogram.min(),
            mean_bytes: histogram.mean(),
            p50_bytes: histogram.value_at_quantile(0.50),
            p90_bytes: histogram.value_at_quantile(0.90),
            p99_bytes: histogram.value_at_quantile(0.99),
            max_bytes: histogram.max(),
        })
    }
}

/// Fields that a scenario fills in before its phase runs.
#[derive(Debug, Clone)]
pub struct ReportHeader {
    pub scenario: &'static str,
    pub url: String,
    /// `None` for scenarios without random choices.
    pub seed: Option<u64>,
    /// The scenario's options, as a JSON object.
    pub parameters: Value,
    pub setup: Option<SetupReport>,
}

/// Result of one run of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub url: String,
    pub seed: Option<u64>,
    pub parameters: Value,
    pub setup: Option<SetupReport>,
    /// Wall-clock time of the measured phase, in seconds.
    pub elapsed_s: f64,
    pub stopped_by: StopReason,
    /// Requests of the measured phase over all operations.
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Successful requests per second over all operations.
    pub throughput_per_s: f64,
    /// The scenario's headline latency, which `latency_of` names: the
    /// operation, when the phase has one, else all operations merged, or
    /// the deliveries in `fanout`.
    pub latency: Option<Latency>,
    pub latency_of: String,
    pub operations: BTreeMap<String, OperationReport>,
    /// Failed requests of all operations by errcode.
    pub errors: BTreeMap<String, ErrorCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<DeliveryReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_bytes: Option<Sizes>,
}

/// Returns `count / elapsed` per second, or 0 for a zero elapsed time.
pub fn rate_per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    };
    rate
}

impl Report {
    /// Builds the report of a phase that took `elapsed` from the merged
    /// tally of its workers. `rate_per_s` is `--rate` of an open-loop phase.
    pub fn new(
        header: ReportHeader,
        elapsed: Duration,
        stopped_by: StopReason,
        tally: &Tally,
        rate_per_s: Option<f64>,
    ) -> Self {
        let mut errors = BTreeMap::new();
        let mut operations = BTreeMap::new();
        let mut all_latency_us = new_latency_histogram();
        for (&op, counted) in &tally.ops {
            merge_errors(&mut errors, counted.errors.clone());
            // Both histograms come from `new_latency_histogram`, so their
            // bounds match and `add` cannot fail.
            let _ = all_latency_us.add(&counted.latency_us);
            let failed = counted.failed();
            operations.insert(
                op.to_owned(),
                OperationReport {
                    requests: counted.succeeded + failed,
                    succeeded: counted.succeeded,
                    failed,
                    throughput_per_s: rate_per_second(counted.succeeded, elapsed),
                    latency: Latency::from_histogram(&counted.latency_us),
                    errors: counted.errors.clone(),
                },
            );
        }
        let schedule = rate_per_s.map(|rate| ScheduleReport {
            rate_per_s: rate,
            missed: tally.missed,
            start_lag: Latency::from_histogram(&tally.start_lag_us),
        });
        let (succeeded, failed) = (tally.succeeded(), tally.failed());
        let latency_of = match tally.ops.keys().collect::<Vec<_>>().as_slice() {
            [op] => (**op).to_owned(),
            _ => "all operations".to_owned(),
        };
        Self {
            scenario: header.scenario,
            url: header.url,
            seed: header.seed,
            parameters: header.parameters,
            setup: header.setup,
            elapsed_s: elapsed.as_secs_f64(),
            stopped_by,
            requests: succeeded + failed,
            succeeded,
            failed,
            throughput_per_s: rate_per_second(succeeded, elapsed),
            latency: Latency::from_histogram(&all_latency_us),
            latency_of,
            operations,
            errors,
            schedule,
            deliveries: None,
            response_bytes: None,
        }
    }

    /// Formats the report as a text table for a terminal.
    pub fn format_table(&self) -> String {
        let mut out = String::new();
        self.write_summary(&mut out);
        self.write_operations(&mut out);
        if let Some(deliveries) = &self.deliveries {
            write_deliveries(&mut out, deliveries);
        }
        if let Some(sizes) = &self.response_bytes {
            let _ = writeln!(
                out,
                "\nresponse bytes  count {}, min {}, mean {:.0}, p50 {}, p90 {}, p99 {}, max {}",
                sizes.count,
                sizes.min_bytes,
                sizes.mean_bytes,
                sizes.p50_bytes,
                sizes.p90_bytes,
                sizes.p99_bytes,
                sizes.max_bytes
            );
        }
        write_errors(&mut out, &self.errors);
        out
    }

    fn write_summary(&self, out: &mut String) {
        let seed = self
            .seed
            .map_or_else(String::new, |seed| format!(" (seed {seed})"));
        let _ = writeln!(
            out,
            "scenario     {} against {}{seed}",
            self.scenario, self.url
        );
        if let Some(setup) = &self.setup {
            let source = if setup.reused_state {
                "reused from the state file"
            } else {
                "created"
            };
            let _ = writeln!(
                out,
                "setup        {}, {} {source} in {:.2} s",
                plural(setup.users, "user"),
                plural(setup.room_ids.len(), "room"),
                setup.seconds
            );
        }
        let _ = writeln!(
            out,
            "run          {} ok, {} failed of {} in {:.2} s, stopped by {}",
            self.succeeded,
            self.failed,
            self.requests,
            self.elapsed_s,
            self.stopped_by.describe()
        );
        let _ = writeln!(out, "throughput   {:.1} requests/s", self.throughput_per_s);
        if let Some(latency) = &self.latency {
            let _ = writeln!(
                out,
                "latency      p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({})",
                latency.p50_ms, latency.p99_ms, latency.max_ms, self.latency_of
            );
        }
        if let Some(schedule) = &self.schedule {
            let _ = write!(
                out,
                "schedule     open loop at {:.1} requests/s, {} missed",
                schedule.rate_per_s, schedule.missed
            );
            if let Some(lag) = &schedule.start_lag {
                let _ = write!(
                    out,
                    ", start lag p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                    lag.p50_ms, lag.p99_ms, lag.max_ms
                );
            }
            out.push('\n');
        }
    }

    fn write_operations(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n{:<14}{:>9}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "operation", "ok", "failed", "ok/s", "mean ms", "p50", "p90", "p99", "p99.9", "max"
        );
        for (op, report) in &self.operations {
            let _ = write!(
                out,
                "{op:<14}{:>9}{:>8}{:>10.1}",
                report.succeeded, report.failed, report.throughput_per_s
            );
            write_latency_cells(out, report.latency.as_ref(), "no successful request");
        }
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Writes mean, p50, p90, p99, p99.9 and max and ends the line, or `empty`
/// when there is no latency.
fn write_latency_cells(out: &mut String, latency: Option<&Latency>, empty: &str) {
    match latency {
        Some(l) => {
            let _ = writeln!(
                out,
                "{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
                l.mean_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.p99_9_ms, l.max_ms
            );
        }
        None => {
            let _ = writeln!(out, "  {empty}");
        }
    }
}

fn write_deliveries(out: &mut String, deliveries: &DeliveryReport) {
    let _ = writeln!(
        out,
        "\ndeliveries   {} of {} ({} messages to {} members): {} missing, {} duplicates, \
         {} unmatched, {} before the send response, {} limited timelines",
        deliveries.delivered,
        deliveries.expected,
        deliveries.messages_sent,
        deliveries.members,
        deliveries.missing,
        deliveries.duplicates,
        deliveries.unmatched,
        deliveries.before_send_response,
        deliveries.limited_timelines
    );
    let _ = write!(
        out,
        "{:<14}{:>9}{:>8}{:>10}",
        "delivery", deliveries.delivered, deliveries.missing, ""
    );
    write_latency_cells(out, deliveries.latency.as_ref(), "no delivery");
    let _ = write!(out, "{:<41}", "  from the send's scheduled start");
    write_latency_cells(
        out,
        deliveries.latency_from_send_start.as_ref(),
        "no delivery",
    );
}

fn write_errors(out: &mut String, errors: &BTreeMap<String, ErrorCount>) {
    out.push_str("\nerrors by errcode\n");
    if errors.is_empty() {
        out.push_str("  none\n");
    }
    for (label, counted) in errors {
        let _ = writeln!(
            out,
            "  {label:<24}{:>10}  first: {}",
            counted.count, counted.first_message
        );
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use serde_json::json;

    use super::{
        DeliveryReport, ErrorCount, Latency, Report, ReportHeader, SetupReport, Sizes, StopReason,
        count_error, merge_errors, new_latency_histogram, new_size_histogram, rate_per_second,
        record_latency, record_size,
    };
    use crate::{matrix::status_error, progress::Progress, tally::Recorder};

    /// Histogram of 1 ms, 2 ms, …, 1000 ms.
    fn uniform_histogram() -> hdrhistogram::Histogram<u64> {
        let mut histogram = new_latency_histogram();
        for ms in 1..=1000 {
            record_latency(&mut histogram, Duration::from_millis(ms));
        }
        histogram
    }

    fn assert_close(actual: f64, expected: f64, what: &str) {
        // 3 significant digits give at most 0.1% error.
        assert!(
            (actual - expected).abs() <= expected * 0.001 + 1e-9,
            "{what}: {actual} != {expected}"
        );
    }

    #[test]
    fn latency_percentiles_of_uniform_values() {
        let latency = Latency::from_histogram(&uniform_histogram()).unwrap();
        assert_eq!(latency.count, 1000);
        assert_close(latency.p50_ms, 500.0, "p50");
        assert_close(latency.p90_ms, 900.0, "p90");
        assert_close(latency.p99_ms, 990.0, "p99");
        assert_close(latency.p99_9_ms, 999.0, "p99.9");
        assert_close(latency.max_ms, 1000.0, "max");
        assert_close(latency.mean_ms, 500.5, "mean");
    }

    #[test]
    fn latency_of_empty_histogram_is_none() {
        assert_eq!(Latency::from_histogram(&new_latency_histogram()), None);
    }

    #[test]
    fn record_latency_clamps_extremes() {
        let mut histogram = new_latency_histogram();
        record_latency(&mut histogram, Duration::ZERO);
        record_latency(&mut histogram, Duration::from_secs(10 * 3600));
        assert_eq!(histogram.len(), 2);
        assert_eq!(histogram.min(), 1);
        assert!(
            histogram.max() >= 3_600_000_000 - 3_600_000,
            "max {}",
            histogram.max()
        );
    }

    #[test]
    fn rate_handles_zero_elapsed() {
        assert!((rate_per_second(500, Duration::from_millis(250)) - 2000.0).abs() < 1e-9);
        assert!(rate_per_second(5, Duration::ZERO).abs() < 1e-9);
    }

    #[test]
    fn errors_count_and_keep_first_message() {
        let mut errors = BTreeMap::new();
        count_error(&mut errors, "M_FORBIDDEN".to_owned(), || "first".to_owned());
        count_error(&mut errors, "M_FORBIDDEN".to_owned(), || {
            "second".to_owned()
        });
        let mut other = BTreeMap::new();
        count_error(&mut other, "M_FORBIDDEN".to_owned(), || "third".to_owned());
        count_error(&mut other, "timed out".to_owned(), || "late".to_owned());
        merge_errors(&mut errors, other);
        assert_eq!(
            errors["M_FORBIDDEN"],
            ErrorCount {
                count: 3,
                first_message: "first".to_owned()
            }
        );
        assert_eq!(errors["timed out"].count, 1);
    }

    fn sample_header() -> ReportHeader {
        ReportHeader {
            scenario: "send",
            url: "http://127.0.0.1:8008".to_owned(),
            seed: Some(9),
            parameters: json!({ "users": 4, "rooms": 2, "rate": 3000.0 }),
            setup: Some(SetupReport {
                reused_state: false,
                seconds: 0.5,
                users: 4,
                room_ids: vec!["!a:localhost".to_owned(), "!b:localhost".to_owned()],
            }),
        }
    }

    /// Builds a report of 993 sends of 1 to 993 ms, 7 rate-limited sends
    /// and 5 syncs, in 2 seconds at a rate of 3000/s.
    fn sample_report() -> Report {
        let progress = Progress::default();
        let mut recorder = Recorder::new(&progress);
        for ms in 1..=993 {
            recorder.success("send", Duration::from_millis(ms));
        }
        let limited = status_error(429, br#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow"}"#);
        for _ in 0..7 {
            recorder.failure("send", &limited, "!a:localhost");
        }
        for _ in 0..5 {
            recorder.success("sync", Duration::from_millis(4));
        }
        recorder.start_lag(Some(Duration::from_micros(250)));
        let mut tally = recorder.finish();
        tally.missed = 2;
        Report::new(
            sample_header(),
            Duration::from_secs(2),
            StopReason::RequestLimit,
            &tally,
            Some(3000.0),
        )
    }

    #[test]
    fn report_totals_and_operations() {
        let report = sample_report();
        assert_eq!(report.requests, 1005);
        assert_eq!(report.succeeded, 998);
        assert_eq!(report.failed, 7);
        assert!((report.throughput_per_s - 499.0).abs() < 1e-9);
        assert_eq!(report.latency_of, "all operations");
        assert_eq!(report.latency.as_ref().unwrap().count, 998);
        let send = &report.operations["send"];
        assert_eq!(send.requests, 1000);
        assert_eq!(send.failed, 7);
        assert!((send.throughput_per_s - 496.5).abs() < 1e-9);
        assert_eq!(send.latency.as_ref().unwrap().count, 993);
        assert_eq!(report.errors["M_LIMIT_EXCEEDED"].count, 7);
        let schedule = report.schedule.as_ref().unwrap();
        assert_eq!(schedule.missed, 2);
        assert_eq!(schedule.start_lag.as_ref().unwrap().count, 1);
    }

    #[test]
    fn stop_reason_from_count() {
        assert_eq!(StopReason::from_count(10, 10), StopReason::RequestLimit);
        assert_eq!(StopReason::from_count(9, 10), StopReason::DurationLimit);
    }

    #[test]
    fn table_shows_counts_percentiles_and_errors() {
        let table = sample_report().format_table();
        assert!(
            table.contains("scenario     send against http://127.0.0.1:8008 (seed 9)"),
            "{table}"
        );
        assert!(
            table.contains("4 users, 2 rooms created in 0.50 s"),
            "{table}"
        );
        assert!(
            table.contains("998 ok, 7 failed of 1005 in 2.00 s, stopped by request limit"),
            "{table}"
        );
        assert!(table.contains("throughput   499.0 requests/s"), "{table}");
        assert!(table.contains("(all operations)\n"), "{table}");
        assert!(
            table.contains("open loop at 3000.0 requests/s, 2 missed"),
            "{table}"
        );

        assert!(table.contains("     p99.9"), "{table}");
        assert!(
            table.contains("\nsend                993       7     496.5"),
            "{table}"
        );
        assert!(
            // hdrhistogram reports the top of the 4 ms bucket.
            table.contains("\nsync                  5       0       2.5     4.001     4.001"),
            "{table}"
        );

        assert!(table.contains("M_LIMIT_EXCEEDED"), "{table}");
        assert!(
            table.contains("         7  first: !a:localhost: HTTP 429 M_LIMIT_EXCEEDED: slow"),
            "{table}"
        );
    }

    #[test]
    fn table_without_successes_says_so() {
        let progress = Progress::default();
        let mut recorder = Recorder::new(&progress);
        let error = status_error(502, b"");
        recorder.failure("versions", &error, "GET /_matrix/client/versions");
        let report = Report::new(
            ReportHeader {
                seed: None,
                setup: None,
                ..sample_header()
            },
            Duration::from_secs(1),
            StopReason::DurationLimit,
            &recorder.finish(),
            None,
        );
        assert_eq!(report.latency_of, "versions");
        assert!(report.latency.is_none());

        let table = report.format_table();
        assert!(table.contains("no successful request"), "{table}");
        assert!(!table.contains("latency      p50"), "{table}");
        assert!(table.contains("HTTP 502"), "{table}");
        assert!(!table.contains("seed"), "{table}");
        assert!(!table.contains("schedule"), "{table}");

        let empty = Report {
            errors: BTreeMap::new(),
            ..report
        };
        assert!(
            empty.format_table().contains("errors by errcode\n  none"),
            "{}",
            empty.format_table()
        );
    }

    #[test]
    fn json_has_parameters_and_percentiles() {
        let json = serde_json::to_value(sample_report()).unwrap();
        assert_eq!(json["scenario"], "send");
        assert_eq!(json["url"], "http://127.0.0.1:8008");
        assert_eq!(json["seed"], 9);
        assert_eq!(json["parameters"]["rate"], 3000.0);
        assert_eq!(json["stopped_by"], "request_limit");
        assert_eq!(json["succeeded"], 998);
        assert_eq!(json["errors"]["M_LIMIT_EXCEEDED"]["count"], 7);
        assert_eq!(
            json["operations"]["send"]["errors"]["M_LIMIT_EXCEEDED"]["count"],
            7
        );
        assert_eq!(json["setup"]["room_ids"][1], "!b:localhost");
        assert_eq!(json["schedule"]["missed"], 2);
        assert_eq!(json["latency_of"], "all operations");
        assert!(json["latency"]["p99_ms"].is_f64(), "{json}");
        for field in [
            "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
        ] {
            assert!(
                json["operations"]["send"]["latency"][field].is_f64(),
                "operations.send.latency.{field} missing in {json}"
            );
        }
        assert!(json.get("deliveries").is_none(), "{json}");
        assert!(json.get("response_bytes").is_none(), "{json}");
    }

    #[test]
    fn json_and_table_show_deliveries_and_sizes() {
        let mut sizes = new_size_histogram();
        for bytes in [100, 200, 300] {
            record_size(&mut sizes, bytes);
        }
        let report = Report {
            deliveries: Some(DeliveryReport {
                members: 10,
                messages_sent: 20,
                expected: 200,
                delivered: 199,
                missing: 1,
                duplicates: 0,
                unmatched: 0,
                before_send_response: 3,
                limited_timelines: 0,
                latency: Latency::from_histogram(&uniform_histogram()),
                latency_from_send_start: None,
            }),
            response_bytes: Sizes::from_histogram(&sizes),
            ..sample_report()
        };

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["deliveries"]["missing"], 1);
        assert!(json["deliveries"]["latency"]["p99_ms"].is_f64(), "{json}");
        assert_eq!(json["response_bytes"]["max_bytes"], 300);
        assert_eq!(json["response_bytes"]["min_bytes"], 100);

        let table = report.format_table();
        assert!(
            table.contains("deliveries   199 of 200 (20 messages to 10 members): 1 missing"),
            "{table}"
        );
        assert!(table.contains("3 before the send response"), "{table}");
        assert!(
            table.contains("  from the send's scheduled start          no delivery"),
            "{table}"
        );
        assert!(
            table.contains("response bytes  count 3, min 100"),
            "{table}"
        );
    }

    #[test]
    fn sizes_of_empty_histogram_are_none() {
        assert_eq!(Sizes::from_histogram(&new_size_histogram()), None);
    }
}
