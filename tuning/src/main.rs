//! `eltrix-tuning`: shows which shard owns an ID and how a set of IDs spreads
//! over a candidate shard count, using the same SHA-256 ownership hash as the
//! server (`eltrix_shards::shard_of`).

mod spread;

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
    }
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
