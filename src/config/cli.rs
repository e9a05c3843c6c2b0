//! Command-line flags. Every option also reads an `ELTRIX_*` environment
//! variable; flags and variables override the config file.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

use super::{Config, RegistrationMode};

/// A thread-per-core Matrix homeserver.
#[derive(Debug, Parser)]
#[command(name = "eltrix", version)]
pub struct Cli {
    /// TOML config file; see docs/eltrix.example.toml.
    #[arg(long, env = "ELTRIX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Server name used in user IDs and signatures [default: localhost].
    #[arg(long, env = "ELTRIX_SERVER_NAME")]
    pub server_name: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8008].
    #[arg(long, env = "ELTRIX_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./eltrix-data].
    #[arg(long, env = "ELTRIX_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Number of shards, one executor thread each [default: number of cores].
    #[arg(long, env = "ELTRIX_SHARDS")]
    pub shards: Option<usize>,
    /// Pin executor threads to cores [default: true].
    #[arg(long, env = "ELTRIX_PIN_CORES")]
    pub pin_cores: Option<bool>,
    /// Registration policy [default: open].
    #[arg(long, env = "ELTRIX_REGISTRATION")]
    pub registration: Option<RegistrationMode>,
    /// Registration token; repeat the flag or separate tokens with commas.
    #[arg(long, env = "ELTRIX_REGISTRATION_TOKEN", value_delimiter = ',')]
    pub registration_token: Vec<String>,
    /// Secret for shared-secret registration at /_synapse/admin/v1/register;
    /// the endpoint is off without it.
    #[arg(
        long,
        env = "ELTRIX_REGISTRATION_SHARED_SECRET",
        hide_env_values = true
    )]
    pub registration_shared_secret: Option<String>,
    /// Maximum request body in bytes [default: 1048576].
    #[arg(long, env = "ELTRIX_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Seconds an idle keep-alive connection stays open [default: 120].
    #[arg(long, env = "ELTRIX_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds allowed to receive a started request or send a response
    /// [default: 30].
    #[arg(long, env = "ELTRIX_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Base URL advertised to clients in /.well-known/matrix/client.
    #[arg(long, env = "ELTRIX_PUBLIC_BASEURL")]
    pub public_baseurl: Option<String>,
    /// Log filter, for example `info` or `eltrix=debug` [default: info].
    #[arg(long, env = "ELTRIX_LOG")]
    pub log: Option<String>,
    /// Write logs as JSON lines [default: false].
    #[arg(long, env = "ELTRIX_LOG_JSON")]
    pub log_json: Option<bool>,
    /// Apply the request rate limits [default: true].
    #[arg(long, env = "ELTRIX_RATE_LIMITS")]
    pub rate_limits: Option<bool>,
    /// Address of the TLS listener for the server-server API; federation is
    /// off without it.
    #[arg(long, env = "ELTRIX_FEDERATION_LISTEN")]
    pub federation_listen: Option<SocketAddr>,
    /// PEM certificate chain of the federation listener.
    #[arg(long, env = "ELTRIX_TLS_CERTIFICATE")]
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of the federation listener.
    #[arg(long, env = "ELTRIX_TLS_PRIVATE_KEY")]
    pub tls_private_key: Option<PathBuf>,
    /// Check other servers' TLS certificates [default: true]. Turn it off
    /// only for test setups with self-signed certificates.
    #[arg(long, env = "ELTRIX_FEDERATION_VERIFY_CERTIFICATES")]
    pub federation_verify_certificates: Option<bool>,
    /// Replace the signing key in the data directory with a new one, list the
    /// old key in old_verify_keys, and exit. Restart the server afterwards.
    #[arg(long)]
    pub rotate_signing_key: bool,
    /// Create a server admin account with this localpart in the data
    /// directory, and exit. Run it with the server stopped.
    #[arg(long, value_name = "USERNAME")]
    pub create_admin: Option<String>,
    /// File whose first line is the password for --create-admin; without it
    /// the password is read from the first line of standard input.
    #[arg(long, value_name = "FILE", requires = "create_admin")]
    pub password_file: Option<PathBuf>,
}

impl Cli {
    /// Overrides the fields of `config` for which a flag or variable is set.
    pub fn apply(&self, config: &mut Config) {
        set(&mut config.server_name, self.server_name.clone());
        set(&mut config.listen, self.listen);
        set(&mut config.data_dir, self.data_dir.clone());
        set(&mut config.shards, self.shards);
        set(&mut config.pin_cores, self.pin_cores);
        set(&mut config.registration, self.registration);
        set(&mut config.max_request_bytes, self.max_request_bytes);
        set(&mut config.idle_timeout_secs, self.idle_timeout_secs);
        set(&mut config.request_timeout_secs, self.request_timeout_secs);
        set(&mut config.log, self.log.clone());
        set(&mut config.log_json, self.log_json);
        set(&mut config.rate_limits.enabled, self.rate_limits);
        let federation = &mut config.federation;
        if self.federation_listen.is_some() {
            federation.listen = self.federation_listen;
        }
        if self.tls_certificate.is_some() {
            federation.tls_certificate.clone_from(&self.tls_certificate);
        }
        if self.tls_private_key.is_some() {
            federation.tls_private_key.clone_from(&self.tls_private_key);
        }
        set(
            &mut federation.verify_certificates,
            self.federation_verify_certificates,
        );
        if self.registration_shared_secret.is_some() {
            config
                .registration_shared_secret
                .clone_from(&self.registration_shared_secret);
        }
        if self.public_baseurl.is_some() {
            config.public_baseurl.clone_from(&self.public_baseurl);
        }
        if !self.registration_token.is_empty() {
            config
                .registration_tokens
                .clone_from(&self.registration_token);
        }
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}
