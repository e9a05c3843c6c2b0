//! `eltrix-bench`: wall-clock timings of the CPU-bound steps on the event
//! path, each over a fixed number of iterations after a warm-up.
//!
//! 1. `serde_json` parsing of a 1–2 KB `m.room.message` PDU.
//! 2. Content hash and ed25519 signature (`ruma::signatures::hash_and_sign_event`)
//!    plus the reference hash that becomes the event ID, for room version 12.
//! 3. `eltrix_shards::shard_of` over 1000 room and user IDs.
//!
//! These are plain `Instant` timings, not statistically analyzed samples.

mod pdu;
mod timing;

use std::process::ExitCode;

use clap::Parser;
use ruma::{
    CanonicalJsonObject, RoomVersionId,
    room_version_rules::RoomVersionRules,
    signatures::{Ed25519KeyPair, hash_and_sign_event, reference_hash},
};

use crate::{
    pdu::{MESSAGE_PDU, sample_ids},
    timing::{Measurement, format_table, measure},
};

/// Server name that signs the benchmark event.
const ORIGIN: &str = "example.org";

/// Number of IDs hashed per `shard_of` iteration.
const SHARD_IDS: usize = 1000;

/// Time the CPU-bound steps of handling a Matrix event.
#[derive(Debug, Parser)]
#[command(name = "eltrix-bench", version)]
struct Cli {
    /// Timed iterations per benchmark (one iteration of the `shard_of`
    /// benchmark hashes 1000 IDs).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    iterations: u64,
    /// Untimed iterations run before timing starts.
    #[arg(long, default_value_t = 200)]
    warmup: u64,
    /// Shard count passed to `shard_of`.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    shards: u32,
    /// Run only the benchmarks whose name contains this text, for example
    /// `sign` under callgrind (see bench/instructions.sh).
    #[arg(long)]
    only: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(measurements) => {
            print!("{}", format_table(&measurements));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<Vec<Measurement>, String> {
    let Cli {
        iterations,
        warmup,
        shards,
        ..
    } = *cli;
    let selected = |name: &str| cli.only.as_deref().is_none_or(|only| name.contains(only));
    let mut measurements = Vec::new();

    if selected("serde_json parse PDU") {
        measurements.push(measure(
            "serde_json parse PDU",
            warmup,
            iterations,
            1,
            || serde_json::from_str::<serde_json::Value>(std::hint::black_box(MESSAGE_PDU)),
        ));
    }

    let signing = SigningFixture::new()?;
    if selected("clone canonical object") {
        measurements.push(measure(
            "clone canonical object",
            warmup,
            iterations,
            1,
            || signing.unsigned.clone(),
        ));
    }
    if selected("hash, sign, reference hash (v12)") {
        measurements.push(measure(
            "hash, sign, reference hash (v12)",
            warmup,
            iterations,
            1,
            || signing.sign_and_hash(),
        ));
    }

    let ids = sample_ids(SHARD_IDS);
    let nr_shards = shards as usize;
    if selected("shard_of") {
        measurements.push(measure(
            "shard_of",
            warmup,
            iterations,
            SHARD_IDS as u64,
            || {
                ids.iter()
                    .map(|id| eltrix_shards::shard_of(id, nr_shards))
                    .sum::<usize>()
            },
        ));
    }

    if measurements.is_empty() {
        return Err(format!(
            "no benchmark name contains {:?}",
            cli.only.as_deref().unwrap_or_default()
        ));
    }
    Ok(measurements)
}

/// The event and key that the signing benchmark uses.
struct SigningFixture {
    /// The PDU without `hashes`, `signatures` and `unsigned`, as a server
    /// has it just before signing.
    unsigned: CanonicalJsonObject,
    key_pair: Ed25519KeyPair,
    rules: RoomVersionRules,
}

impl SigningFixture {
    fn new() -> Result<Self, String> {
        let mut unsigned: CanonicalJsonObject = serde_json::from_str(MESSAGE_PDU)
            .map_err(|error| format!("invalid sample PDU: {error}"))?;
        for field in ["hashes", "signatures", "unsigned"] {
            unsigned.remove(field);
        }

        let document = Ed25519KeyPair::generate();
        let key_pair = Ed25519KeyPair::from_der(&document, "a_1".into())
            .map_err(|error| format!("failed to load the generated ed25519 key: {error}"))?;
        let rules = RoomVersionId::V12
            .rules()
            .ok_or("ruma has no rules for room version 12")?;

        let fixture = Self {
            unsigned,
            key_pair,
            rules,
        };
        fixture
            .sign_and_hash()
            .map_err(|error| format!("failed to sign the sample PDU: {error}"))?;
        Ok(fixture)
    }

    /// Hashes and signs a copy of the event and returns its reference hash.
    /// The copy is part of the timed work; `clone canonical object` times it
    /// alone.
    fn sign_and_hash(&self) -> Result<String, ruma::signatures::JsonError> {
        let mut event = self.unsigned.clone();
        hash_and_sign_event(ORIGIN, &self.key_pair, &mut event, &self.rules.redaction)?;
        reference_hash(&event, &self.rules)
    }
}

#[cfg(test)]
mod tests {
    use super::SigningFixture;

    #[test]
    fn signing_adds_hash_and_signature() {
        let fixture = SigningFixture::new().unwrap();
        let mut event = fixture.unsigned.clone();
        ruma::signatures::hash_and_sign_event(
            super::ORIGIN,
            &fixture.key_pair,
            &mut event,
            &fixture.rules.redaction,
        )
        .unwrap();
        assert!(event.contains_key("hashes"));
        let signatures = event
            .get("signatures")
            .and_then(|value| value.as_object())
            .unwrap();
        assert!(signatures.get(super::ORIGIN).is_some(), "{signatures:?}");
    }

    #[test]
    fn reference_hash_is_url_safe_base64() {
        let hash = SigningFixture::new().unwrap().sign_and_hash().unwrap();
        assert_eq!(hash.len(), 43, "{hash}");
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{hash}"
        );
    }
}
