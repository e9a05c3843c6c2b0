//! Server configuration: defaults, then a TOML file, then environment
//! variables and flags (clap reads both), each layer overriding the last.

mod cli;
mod federation;
mod rate_limits;

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

pub use cli::Cli;
pub use federation::Federation;
pub use rate_limits::{ActionLimits, Bucket, RateLimits};

/// Registration policy for new accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Anyone may register, completing the `m.login.dummy` stage.
    Open,
    /// Registration is rejected with `M_FORBIDDEN`.
    Closed,
    /// Registration requires a valid `m.login.registration_token` stage.
    Token,
}

/// The complete, resolved configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The server name in user IDs, room aliases and signatures.
    pub server_name: String,
    /// Address every shard listens on, with `SO_REUSEPORT`.
    pub listen: SocketAddr,
    /// Directory holding the embedded store and the signing key.
    pub data_dir: PathBuf,
    /// Number of shards; 0 means one per available core.
    pub shards: usize,
    /// Pin each shard's executor thread to a core.
    pub pin_cores: bool,
    /// Registration policy.
    pub registration: RegistrationMode,
    /// Tokens accepted by `m.login.registration_token` when `registration`
    /// is `token`.
    pub registration_tokens: Vec<String>,
    /// Secret keying the HMAC of shared-secret registration at
    /// `/_synapse/admin/v1/register`; that endpoint is off while it is unset.
    pub registration_shared_secret: Option<String>,
    /// Maximum accepted request body, in bytes.
    pub max_request_bytes: usize,
    /// Seconds an idle keep-alive connection stays open.
    pub idle_timeout_secs: u64,
    /// Seconds allowed to receive a started request, and to send a response.
    pub request_timeout_secs: u64,
    /// Public base URL advertised in `/.well-known/matrix/client`.
    pub public_baseurl: Option<String>,
    /// Log filter in `tracing_subscriber::EnvFilter` syntax.
    pub log: String,
    /// Log as JSON lines instead of text.
    pub log_json: bool,
    /// Request rate limits.
    pub rate_limits: RateLimits,
    /// The server-server API.
    pub federation: Federation,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8008)),
            data_dir: PathBuf::from("./eltrix-data"),
            shards: 0,
            pin_cores: true,
            registration: RegistrationMode::Open,
            registration_tokens: Vec::new(),
            registration_shared_secret: None,
            max_request_bytes: 1024 * 1024,
            idle_timeout_secs: 120,
            request_timeout_secs: 30,
            public_baseurl: None,
            log: "info".to_owned(),
            log_json: false,
            rate_limits: RateLimits::default(),
            federation: Federation::default(),
        }
    }
}

/// Failure to assemble the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid server_name {0:?}: expected a host name with an optional port")]
    ServerName(String),
    #[error("idle_timeout_secs and request_timeout_secs must be at least 1")]
    ZeroTimeout,
    #[error("registration = \"token\" needs at least one registration token")]
    NoRegistrationToken,
    #[error("registration_shared_secret must not be empty; remove it to turn the endpoint off")]
    EmptySharedSecret,
    #[error("invalid {0}: per_second must be at least 1/86400 (one a day) and burst at least 1")]
    RateLimit(String),
    #[error("federation.listen needs federation.tls_certificate and federation.tls_private_key")]
    NoCertificate,
}

impl Config {
    /// Builds the configuration from the optional file named by `cli`, then
    /// applies every flag or environment variable that was set.
    ///
    /// # Errors
    ///
    /// Returns an error if the file cannot be read or parsed, or if the
    /// result is inconsistent.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        cli.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &PathBuf) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.clone(),
            source: Box::new(source),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if ruma::ServerName::parse(&self.server_name).is_err() {
            return Err(ConfigError::ServerName(self.server_name.clone()));
        }
        if self.idle_timeout_secs == 0 || self.request_timeout_secs == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        if self.registration == RegistrationMode::Token && self.registration_tokens.is_empty() {
            return Err(ConfigError::NoRegistrationToken);
        }
        if self
            .registration_shared_secret
            .as_ref()
            .is_some_and(String::is_empty)
        {
            return Err(ConfigError::EmptySharedSecret);
        }
        if let Some(bucket) = self.rate_limits.invalid_bucket() {
            return Err(ConfigError::RateLimit(bucket));
        }
        let federation = &self.federation;
        if federation.listen.is_some()
            && (federation.tls_certificate.is_none() || federation.tls_private_key.is_none())
        {
            return Err(ConfigError::NoCertificate);
        }
        Ok(())
    }

    /// Number of shards to start: the configured count, or one per core.
    #[must_use]
    pub fn nr_shards(&self) -> usize {
        if self.shards > 0 {
            return self.shards;
        }
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../docs/eltrix.example.toml");
        let config: Config = toml::from_str(text).unwrap();
        assert!(config.rate_limits.enabled);
        assert!(config.rate_limits.invalid_bucket().is_none());
        assert_eq!(config.rate_limits, super::RateLimits::default());
    }
}
