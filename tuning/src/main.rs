//! `eltrix-tuning`: shard planning for operators. It shows which shard owns
//! an ID and how a set of IDs spreads over a candidate shard count (with the
//! server's own `eltrix_shards::shard_of`), measures a loadtest scenario at
//! several shard counts, and reports per-shard load skew of a running server.

mod skew;
mod spread;
mod svg;
mod sweep;

use std::{fs, io::Read, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use eltrix_shards::shard_of;

use crate::spread::{Spread, parse_ids};

/// Shard planning tools for Eltrix operators.
#[derive(Debug, Parser)]
#[command(name = "eltrix-tuning", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the shard that owns each room or user ID.
    ShardOf {
        /// Number of shards the server would run (the server's `--shards`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
        shards: u32,
        /// Room or user IDs, for example `!abc:example.org` or `@alice:example.org`.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Count how many IDs each shard would own and print the max/mean skew.
    Spread {
        /// Number of shards the server would run (the server's `--shards`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
        shards: u32,
        /// File with one room or user ID per line; blank lines are skipped.
        /// `-` reads standard input.
        #[arg(long)]
        file: PathBuf,
    },
    /// Run a loadtest scenario against a fresh server at each shard count and
    /// print throughput and p99 per count, an SVG chart, and a recommendation.
    ///
    /// Example: `eltrix-tuning sweep --shards 1,2,4 -- send --users 64
    /// --rooms 16 --concurrency 64 --messages 20000`
    Sweep {
        /// Shard counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        shards: Vec<usize>,
        /// Server binary [default: eltrix beside this binary].
        #[arg(long)]
        server: Option<PathBuf>,
        /// Loadtest binary [default: eltrix-loadtest beside this binary].
        #[arg(long)]
        loadtest: Option<PathBuf>,
        /// Loopback port the servers listen on.
        #[arg(long, default_value_t = 18_480)]
        port: u16,
        /// Directory for data, per-count JSON results, `sweep.md` and `sweep.svg`.
        #[arg(long, default_value = "eltrix-sweep")]
        out: PathBuf,
        /// The loadtest scenario and its flags, after `--`; `--url` and `--json`
        /// are added.
        #[arg(last = true, required = true)]
        loadtest_args: Vec<String>,
    },
    /// Read a running server's /metrics and report each shard's share of the
    /// load (requests, events, sync waiters, queue depth) with the max/mean
    /// skew, flagging a hot shard.
    Skew {
        /// Server address on loopback, for example 127.0.0.1:8008.
        #[arg(long, default_value = "127.0.0.1:8008")]
        address: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::ShardOf { shards, ids } => {
            let nr_shards = shards as usize;
            for id in &ids {
                println!("{id}\t{}", shard_of(id, nr_shards));
            }
            ExitCode::SUCCESS
        }
        Command::Spread { shards, file } => match read_ids_file(&file) {
            Ok(text) => print_spread(&text, shards as usize, &file),
            Err(error) => {
                eprintln!("error: failed to read {}: {error}", file.display());
                ExitCode::FAILURE
            }
        },
        Command::Sweep {
            shards,
            server,
            loadtest,
            port,
            out,
            loadtest_args,
        } => report(run_sweep(
            &shards,
            server,
            loadtest,
            port,
            &out,
            &loadtest_args,
        )),
        Command::Skew { address } => report(print_skew(&address)),
    }
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn run_sweep(
    shards: &[usize],
    server: Option<PathBuf>,
    loadtest: Option<PathBuf>,
    port: u16,
    out: &std::path::Path,
    loadtest_args: &[String],
) -> Result<(), String> {
    if shards.iter().any(|count| *count == 0 || *count > 1024) {
        return Err("shard counts must be between 1 and 1024".to_owned());
    }
    let server = server.unwrap_or_else(|| sibling_binary("eltrix"));
    let loadtest = loadtest.unwrap_or_else(|| sibling_binary("eltrix-loadtest"));
    fs::create_dir_all(out)
        .map_err(|error| format!("failed to create {}: {error}", out.display()))?;
    let plan = sweep::SweepPlan {
        server: &server,
        loadtest: &loadtest,
        port,
        loadtest_args,
        work_dir: out,
    };

    let mut points = Vec::new();
    for count in shards {
        eprintln!("measuring {count} shard(s)");
        points.push(sweep::run_one(&plan, *count)?);
    }
    let mut table = sweep::format_table(&points);
    if let Some(best) = sweep::recommend(&points) {
        table.push_str(&format!(
            "\nrecommended: {} shard(s), the smallest count within 5% of the best throughput \
             and 20% of the best p99\n",
            best.shards
        ));
    }
    print!("{table}");
    let title = format!("eltrix-loadtest {}", loadtest_args.join(" "));
    let write = |name: &str, text: &str| {
        let path = out.join(name);
        fs::write(&path, text)
            .map_err(|error| format!("failed to write {}: {error}", path.display()))
    };
    write("sweep.md", &table)?;
    write("sweep.svg", &svg::chart(&points, &title))?;
    eprintln!(
        "wrote {} and {}",
        out.join("sweep.md").display(),
        out.join("sweep.svg").display()
    );
    Ok(())
}

fn print_skew(address: &str) -> Result<(), String> {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!("{address} is not a loopback address"));
    }
    let text = skew::fetch_metrics(address)?;
    let series = skew::parse_shard_series(&text);
    if series.is_empty() {
        return Err(format!("{address}/metrics has no eltrix_shard_* series"));
    }
    print!("{}", skew::format_report(&series));
    Ok(())
}

fn print_spread(text: &str, nr_shards: usize, file: &std::path::Path) -> ExitCode {
    let ids = parse_ids(text);
    if ids.is_empty() {
        eprintln!(
            "error: {} contains no IDs; expected one ID per line",
            file.display()
        );
        return ExitCode::FAILURE;
    }
    let spread = Spread::compute(ids.iter().copied(), nr_shards);
    print!("{}", spread.format_table());
    ExitCode::SUCCESS
}

fn read_ids_file(file: &PathBuf) -> std::io::Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        fs::read_to_string(file)
    }
}
