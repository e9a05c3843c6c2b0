//! `eltrix-tuning sweep`: runs one loadtest scenario against a fresh Eltrix
//! at each candidate shard count and compares throughput and p99.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// One shard count's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub shards: usize,
    pub throughput: f64,
    pub p99_ms: f64,
}

/// The binaries, port and scenario of a sweep.
pub struct SweepPlan<'a> {
    pub server: &'a Path,
    pub loadtest: &'a Path,
    pub port: u16,
    pub loadtest_args: &'a [String],
    pub work_dir: &'a Path,
}

/// Maximum wait for a started server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the plan at `shards` shards on an empty data directory.
///
/// # Errors
///
/// Returns a message if the server does not start or the loadtest fails.
pub fn run_one(plan: &SweepPlan<'_>, shards: usize) -> Result<Point, String> {
    let data_dir = plan.work_dir.join(format!("data-{shards}"));
    let _ = std::fs::remove_dir_all(&data_dir);
    let listen = format!("127.0.0.1:{}", plan.port);
    let mut server = Command::new(plan.server)
        .args([
            "--shards",
            &shards.to_string(),
            "--listen",
            &listen,
            "--log",
            "warn",
            // A sweep measures capacity, so request rate limits stay off.
            "--rate-limits",
            "false",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("failed to start {}: {error}", plan.server.display()))?;
    let result = wait_healthy(plan.port).and_then(|()| run_loadtest(plan, shards));
    stop(&mut server);
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

fn wait_healthy(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "the server did not listen on port {port} within {START_TIMEOUT:?}"
    ))
}

fn run_loadtest(plan: &SweepPlan<'_>, shards: usize) -> Result<Point, String> {
    let json_path: PathBuf = plan.work_dir.join(format!("loadtest-{shards}.json"));
    let url = format!("http://127.0.0.1:{}", plan.port);
    let status = Command::new(plan.loadtest)
        .args(plan.loadtest_args)
        .args(["--url", &url])
        .arg("--json")
        .arg(&json_path)
        .stdout(Stdio::null())
        .status()
        .map_err(|error| format!("failed to run {}: {error}", plan.loadtest.display()))?;
    if !status.success() {
        return Err(format!("loadtest exited with {status} at {shards} shards"));
    }
    let text = std::fs::read_to_string(&json_path)
        .map_err(|error| format!("failed to read {}: {error}", json_path.display()))?;
    let (throughput, p99_ms) = parse_result(&text)?;
    Ok(Point {
        shards,
        throughput,
        p99_ms,
    })
}

/// Sends SIGTERM and waits; SIGKILL if the server is still running after 10 s.
fn stop(server: &mut Child) {
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(server.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// Reads throughput and p99 from a loadtest JSON result: the top-level
/// object, or the first entry of a `results` list.
///
/// # Errors
///
/// Returns a message if the JSON lacks the fields.
pub fn parse_result(text: &str) -> Result<(f64, f64), String> {
    let value: Value =
        serde_json::from_str(text).map_err(|error| format!("invalid loadtest JSON: {error}"))?;
    let result = value
        .get("results")
        .and_then(|list| list.get(0))
        .unwrap_or(&value);
    let throughput = result.get("throughput_per_s").and_then(Value::as_f64);
    let p99 = result.pointer("/latency/p99_ms").and_then(Value::as_f64);
    match (throughput, p99) {
        (Some(throughput), Some(p99)) => Ok((throughput, p99)),
        _ => Err("loadtest JSON has no throughput_per_s and latency.p99_ms".to_owned()),
    }
}

/// Picks the smallest shard count within 5% of the best throughput whose
/// p99 is at most 20% above the best p99; `None` for no points.
#[must_use]
pub fn recommend(points: &[Point]) -> Option<&Point> {
    let best_throughput = points.iter().map(|p| p.throughput).fold(0.0, f64::max);
    let best_p99 = points
        .iter()
        .map(|p| p.p99_ms)
        .fold(f64::INFINITY, f64::min);
    points
        .iter()
        .filter(|p| p.throughput >= best_throughput * 0.95 && p.p99_ms <= best_p99 * 1.2)
        .min_by_key(|p| p.shards)
        .or_else(|| {
            points
                .iter()
                .max_by(|a, b| a.throughput.total_cmp(&b.throughput))
        })
}

/// Formats the results as a Markdown table.
#[must_use]
pub fn format_table(points: &[Point]) -> String {
    let mut out = String::from("| shards | throughput (/s) | p99 (ms) |\n|---:|---:|---:|\n");
    for point in points {
        out.push_str(&format!(
            "| {} | {:.1} | {:.2} |\n",
            point.shards, point.throughput, point.p99_ms
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Point, format_table, parse_result, recommend};

    fn point(shards: usize, throughput: f64, p99_ms: f64) -> Point {
        Point {
            shards,
            throughput,
            p99_ms,
        }
    }

    #[test]
    fn parses_top_level_and_results_list() {
        let top = r#"{"throughput_per_s": 100.5, "latency": {"p99_ms": 4.5}}"#;
        assert_eq!(parse_result(top), Ok((100.5, 4.5)));
        let listed = r#"{"results": [{"throughput_per_s": 7.0, "latency": {"p99_ms": 1.0}}]}"#;
        assert_eq!(parse_result(listed), Ok((7.0, 1.0)));
        assert!(parse_result(r#"{"latency": {}}"#).is_err());
    }

    #[test]
    fn recommends_smallest_near_best() {
        let points = [
            point(1, 900.0, 8.0),
            point(2, 1000.0, 5.0),
            point(4, 990.0, 5.5),
        ];
        assert_eq!(recommend(&points).map(|p| p.shards), Some(2));
    }

    #[test]
    fn falls_back_to_highest_throughput() {
        let points = [point(1, 500.0, 1.0), point(2, 1000.0, 9.0)];
        assert_eq!(recommend(&points).map(|p| p.shards), Some(2));
        assert_eq!(recommend(&[]), None);
    }

    #[test]
    fn table_has_one_row_per_point() {
        let table = format_table(&[point(1, 1.0, 2.0), point(2, 3.0, 4.0)]);
        assert_eq!(table.lines().count(), 4);
        assert!(table.contains("| 2 | 3.0 | 4.00 |"));
    }
}
