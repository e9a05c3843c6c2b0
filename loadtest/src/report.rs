//! The result of a run: counts, throughput, latency percentiles and errors,
//! as a text table and as JSON.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

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

/// Bound that ended the send phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `--messages` sends were made.
    MessageLimit,
    /// `--duration` passed first.
    DurationLimit,
}

/// Result of one `send` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub url: String,
    pub seed: u64,
    pub users: u32,
    pub rooms: u32,
    pub concurrency: u32,
    /// IDs of the rooms created for the run, to inspect them afterwards.
    pub room_ids: Vec<String>,
    pub messages_limit: u64,
    pub duration_limit_s: u64,
    pub timeout_ms: u64,
    /// Registration, room creation and joins, in seconds.
    pub setup_s: f64,
    /// Wall-clock time of the send phase, in seconds.
    pub elapsed_s: f64,
    pub stopped_by: StopReason,
    /// Sends attempted, successful or not.
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Successful sends per second of the send phase.
    pub throughput_per_s: f64,
    /// Latency of successful sends, or `None` when none succeeded.
    pub latency: Option<Latency>,
    /// Failed sends by Matrix errcode, HTTP status or transport failure.
    pub errors: BTreeMap<String, ErrorCount>,
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
    /// Formats the report as a text table for a terminal.
    pub fn format_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario     {} against {} (seed {})",
            self.scenario, self.url, self.seed
        );
        let _ = writeln!(
            out,
            "setup        {} users, {} rooms in {:.2} s",
            self.users, self.rooms, self.setup_s
        );
        let stopped_by = match self.stopped_by {
            StopReason::MessageLimit => "message limit",
            StopReason::DurationLimit => "duration limit",
        };
        let _ = writeln!(
            out,
            "sends        {} ok, {} failed of {} in {:.2} s, concurrency {}, stopped by {}",
            self.succeeded,
            self.failed,
            self.requests,
            self.elapsed_s,
            self.concurrency,
            stopped_by
        );
        let _ = writeln!(out, "throughput   {:.1} sends/s", self.throughput_per_s);

        out.push_str("\nlatency of successful sends (ms)\n");
        match &self.latency {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                    "mean", "p50", "p90", "p99", "p99.9", "max"
                );
                let _ = writeln!(
                    out,
                    "{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
                    l.mean_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.p99_9_ms, l.max_ms
                );
            }
            None => out.push_str("  none: no send succeeded\n"),
        }

        out.push_str("\nerrors by errcode\n");
        if self.errors.is_empty() {
            out.push_str("  none\n");
        }
        for (label, counted) in &self.errors {
            let _ = writeln!(
                out,
                "  {label:<24}{:>10}  first: {}",
                counted.count, counted.first_message
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::{
        ErrorCount, Latency, Report, StopReason, count_error, merge_errors, new_latency_histogram,
        rate_per_second, record_latency,
    };

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

    fn sample_report() -> Report {
        let mut errors = BTreeMap::new();
        errors.insert(
            "M_LIMIT_EXCEEDED".to_owned(),
            ErrorCount {
                count: 7,
                first_message: "HTTP 429".to_owned(),
            },
        );
        Report {
            scenario: "send",
            url: "http://127.0.0.1:8008".to_owned(),
            seed: 9,
            users: 4,
            rooms: 2,
            concurrency: 8,
            room_ids: vec!["!a:localhost".to_owned(), "!b:localhost".to_owned()],
            messages_limit: 1000,
            duration_limit_s: 30,
            timeout_ms: 10_000,
            setup_s: 0.5,
            elapsed_s: 2.0,
            stopped_by: StopReason::MessageLimit,
            requests: 1000,
            succeeded: 993,
            failed: 7,
            throughput_per_s: 496.5,
            latency: Latency::from_histogram(&uniform_histogram()),
            errors,
        }
    }

    #[test]
    fn table_shows_counts_percentiles_and_errors() {
        let latency = Latency {
            count: 993,
            mean_ms: 1.25,
            p50_ms: 1.5,
            p90_ms: 2.0,
            p99_ms: 3.0,
            p99_9_ms: 4.0,
            max_ms: 5.0,
        };
        let table = Report {
            latency: Some(latency),
            ..sample_report()
        }
        .format_table();
        assert!(
            table.contains("993 ok, 7 failed of 1000 in 2.00 s"),
            "{table}"
        );
        assert!(table.contains("stopped by message limit"), "{table}");
        assert!(table.contains("throughput   496.5 sends/s"), "{table}");
        assert!(table.contains("     p99.9"), "{table}");
        assert!(
            table.contains("     1.250     1.500     2.000     3.000     4.000     5.000\n"),
            "{table}"
        );
        assert!(table.contains("M_LIMIT_EXCEEDED"), "{table}");
        assert!(table.contains("         7  first: HTTP 429"), "{table}");
    }

    #[test]
    fn table_without_successes_says_so() {
        let report = Report {
            latency: None,
            errors: BTreeMap::new(),
            ..sample_report()
        };
        let table = report.format_table();
        assert!(table.contains("none: no send succeeded"), "{table}");
        assert!(table.contains("errors by errcode\n  none"), "{table}");
    }

    #[test]
    fn json_has_percentile_fields() {
        let json = serde_json::to_value(sample_report()).unwrap();
        assert_eq!(json["stopped_by"], "message_limit");
        assert_eq!(json["succeeded"], 993);
        assert_eq!(json["errors"]["M_LIMIT_EXCEEDED"]["count"], 7);
        for field in [
            "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
        ] {
            assert!(
                json["latency"][field].is_f64(),
                "latency.{field} missing in {json}"
            );
        }
    }
}
