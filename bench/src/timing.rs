//! Wall-clock timing of a closure over a fixed number of iterations.

use std::{fmt::Write as _, time::Duration, time::Instant};

/// Timing of one benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub name: &'static str,
    /// Timed iterations, after the warm-up.
    pub iterations: u64,
    /// Operations per iteration (1000 for a pass over 1000 IDs).
    pub ops_per_iteration: u64,
    /// Wall-clock time of all timed iterations.
    pub elapsed: Duration,
}

impl Measurement {
    /// Mean wall-clock time of one operation, in nanoseconds.
    pub fn ns_per_op(&self) -> f64 {
        let ops = self
            .iterations
            .saturating_mul(self.ops_per_iteration)
            .max(1);
        #[allow(clippy::cast_precision_loss)]
        let per_op = self.elapsed.as_nanos() as f64 / ops as f64;
        per_op
    }
}

/// Runs `operation` `warmup` times untimed, then `iterations` times timed with
/// `Instant`. Each call counts as `ops_per_iteration` operations.
pub fn measure<T>(
    name: &'static str,
    warmup: u64,
    iterations: u64,
    ops_per_iteration: u64,
    mut operation: impl FnMut() -> T,
) -> Measurement {
    for _ in 0..warmup {
        std::hint::black_box(operation());
    }
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(operation());
    }
    Measurement {
        name,
        iterations,
        ops_per_iteration,
        elapsed: start.elapsed(),
    }
}

/// Formats one row per measurement: name, iterations, operations, total time
/// in milliseconds and nanoseconds per operation.
pub fn format_table(measurements: &[Measurement]) -> String {
    let width = measurements
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0)
        .max("benchmark".len());
    let mut table = format!(
        "{:<width$} {:>10} {:>12} {:>10} {:>12}\n",
        "benchmark", "iterations", "ops", "total ms", "ns/op"
    );
    for m in measurements {
        let ops = m.iterations.saturating_mul(m.ops_per_iteration);
        let total_ms = m.elapsed.as_secs_f64() * 1000.0;
        let _ = writeln!(
            table,
            "{:<width$} {:>10} {:>12} {:>10.1} {:>12.1}",
            m.name,
            m.iterations,
            ops,
            total_ms,
            m.ns_per_op()
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Measurement, format_table, measure};

    #[test]
    fn measure_runs_warmup_and_iterations() {
        let mut calls = 0u64;
        let m = measure("count", 3, 10, 1, || calls += 1);
        assert_eq!(calls, 13);
        assert_eq!(m.iterations, 10);
    }

    #[test]
    fn ns_per_op_divides_by_all_ops() {
        let m = Measurement {
            name: "x",
            iterations: 10,
            ops_per_iteration: 100,
            elapsed: Duration::from_micros(50),
        };
        assert!((m.ns_per_op() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn ns_per_op_of_zero_iterations_is_zero() {
        let m = Measurement {
            name: "x",
            iterations: 0,
            ops_per_iteration: 1,
            elapsed: Duration::ZERO,
        };
        assert!(m.ns_per_op().abs() < 1e-9);
    }

    #[test]
    fn table_has_row_per_measurement() {
        let m = Measurement {
            name: "parse",
            iterations: 4,
            ops_per_iteration: 1,
            elapsed: Duration::from_millis(2),
        };
        let table = format_table(&[m]);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 2, "{table}");
        assert!(rows[0].contains("ns/op"), "{table}");
        assert!(rows[1].starts_with("parse"), "{table}");
        assert!(rows[1].ends_with("500000.0"), "{table}");
    }
}
