//! The `[federation]` section: the TLS listener of the server-server API
//! and how outbound requests check their peers.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

/// Federation settings. Federation is off while `listen` is unset.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Federation {
    /// Address of the TLS listener that serves the server-server API, on
    /// every shard with `SO_REUSEPORT`. Other servers reach it at the port
    /// of the server name, or 8448 when the name has none.
    pub listen: Option<SocketAddr>,
    /// PEM file of the listener's certificate chain.
    pub tls_certificate: Option<PathBuf>,
    /// PEM file of the listener's private key.
    pub tls_private_key: Option<PathBuf>,
    /// Check other servers' certificates against the web PKI roots. Turning
    /// it off accepts any certificate, for test setups with self-signed ones.
    pub verify_certificates: bool,
}

impl Default for Federation {
    fn default() -> Self {
        Self {
            listen: None,
            tls_certificate: None,
            tls_private_key: None,
            verify_certificates: true,
        }
    }
}
