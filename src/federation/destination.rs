//! Where to connect for a server name.
//!
//! A name with an explicit port, or an IP literal, is used as it is; any
//! other name is reached on port 8448.
//!
//! NOTE: `/.well-known/matrix/server` delegation and SRV records are not
//! consulted yet, so a server that delegates to another host is unreachable.

/// The host and port to connect to, and the name to send in TLS SNI and
/// `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub port: u16,
}

/// The port of a server name that names none.
pub const DEFAULT_PORT: u16 = 8448;

/// Resolves `server_name` to a destination, or `None` for a name that is
/// not a valid server name.
#[must_use]
pub fn resolve(server_name: &str) -> Option<Destination> {
    let parsed = ruma::ServerName::parse(server_name).ok()?;
    let port = parsed.port().unwrap_or(DEFAULT_PORT);
    let host = parsed
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Some(Destination { host, port })
}

impl Destination {
    /// Returns the `Host` header value: the host, bracketed when it is an
    /// IPv6 literal, and the port.
    #[must_use]
    pub fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_port_is_kept() {
        let destination = resolve("localhost:8481").unwrap();
        assert_eq!(destination.host, "localhost");
        assert_eq!(destination.port, 8481);
    }

    #[test]
    fn missing_port_is_8448() {
        assert_eq!(resolve("example.org").unwrap().port, 8448);
    }

    #[test]
    fn ipv6_literal_loses_brackets() {
        let destination = resolve("[::1]:9000").unwrap();
        assert_eq!(destination.host, "::1");
        assert_eq!(destination.host_header(), "[::1]:9000");
    }

    #[test]
    fn invalid_name_is_none() {
        assert!(resolve("bad name").is_none());
    }
}
