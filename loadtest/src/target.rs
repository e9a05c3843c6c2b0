//! Parsing of the `--url` value and the loopback-only check.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The homeserver that the load test sends requests to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Addresses to connect to, in resolver order.
    pub addrs: Vec<SocketAddr>,
    /// Value of the `Host` header: the host and port as given in the URL.
    pub host_header: String,
    /// Path prefix from the URL, without a trailing slash (empty for none).
    pub base_path: String,
}

/// The parts of an `http://` URL that the load test uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    pub base_path: String,
}

/// Parses `http://HOST[:PORT][/PATH]`. Only plain HTTP is supported.
pub fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    let Some(rest) = strip_prefix_ignore_case(url, "http://") else {
        if strip_prefix_ignore_case(url, "https://").is_some() {
            return Err(format!(
                "invalid --url {url:?}: https is not supported; use http:// to a local server"
            ));
        }
        return Err(format!("invalid --url {url:?}: expected http://HOST:PORT"));
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err(format!(
            "invalid --url {url:?}: a query or fragment is not allowed"
        ));
    }
    if authority.contains('@') {
        return Err(format!(
            "invalid --url {url:?}: user information is not allowed"
        ));
    }
    let (host, port) =
        split_host_port(authority).map_err(|reason| format!("invalid --url {url:?}: {reason}"))?;
    if host.is_empty() {
        return Err(format!("invalid --url {url:?}: missing host"));
    }
    Ok(ParsedUrl {
        host: host.to_owned(),
        port,
        base_path: path.trim_end_matches('/').to_owned(),
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`. The port defaults to 80.
fn split_host_port(authority: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("missing ] after an IPv6 address")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("expected :PORT after ]")?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 80,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(format!("invalid port {port:?}")),
        },
    };
    Ok((host, port))
}

/// Returns whether `ip` is a loopback address (127.0.0.0/8, `::1`, or
/// 127.0.0.0/8 mapped into IPv6).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Resolves the URL to socket addresses. Unless `allow_remote` is set, the
/// host must be a loopback IP address or `localhost` resolving only to
/// loopback addresses, and no other name is looked up.
pub fn resolve(url: &str, allow_remote: bool) -> Result<Target, String> {
    let parsed = parse_url(url)?;
    let host_header = match parsed.host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{}]:{}", parsed.host, parsed.port),
        _ => format!("{}:{}", parsed.host, parsed.port),
    };
    let literal = parsed.host.parse::<IpAddr>().ok();
    if !allow_remote {
        match literal {
            Some(ip) if !is_loopback(ip) => return Err(remote_error(&parsed.host)),
            None if !parsed.host.eq_ignore_ascii_case("localhost") => {
                return Err(remote_error(&parsed.host));
            }
            _ => {}
        }
    }

    let addrs: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, parsed.port)],
        None => (parsed.host.as_str(), parsed.port)
            .to_socket_addrs()
            .map_err(|error| format!("failed to resolve {}: {error}", parsed.host))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("failed to resolve {}: no addresses", parsed.host));
    }
    if !allow_remote && addrs.iter().any(|addr| !is_loopback(addr.ip())) {
        return Err(format!(
            "{} resolves to a non-loopback address ({addrs:?}); pass --allow-remote to use it",
            parsed.host
        ));
    }
    Ok(Target {
        addrs,
        host_header,
        base_path: parsed.base_path,
    })
}

fn remote_error(host: &str) -> String {
    format!(
        "host {host:?} is not a loopback address; pass --allow-remote to load-test a server on another host"
    )
}

#[cfg(test)]
mod tests {
    use super::{ParsedUrl, parse_url, resolve};

    fn parsed(host: &str, port: u16, base_path: &str) -> ParsedUrl {
        ParsedUrl {
            host: host.to_owned(),
            port,
            base_path: base_path.to_owned(),
        }
    }

    #[test]
    fn parse_url_forms() {
        assert_eq!(
            parse_url("http://127.0.0.1:8008").unwrap(),
            parsed("127.0.0.1", 8008, "")
        );
        assert_eq!(
            parse_url("HTTP://localhost:1/").unwrap(),
            parsed("localhost", 1, "")
        );
        assert_eq!(
            parse_url("http://[::1]:8448/prefix/").unwrap(),
            parsed("::1", 8448, "/prefix")
        );
        assert_eq!(parse_url("http://[::1]").unwrap(), parsed("::1", 80, ""));
        assert_eq!(
            parse_url("http://localhost").unwrap(),
            parsed("localhost", 80, "")
        );
    }

    #[test]
    fn parse_url_rejects_invalid() {
        for url in [
            "https://127.0.0.1:8448",
            "127.0.0.1:8008",
            "http://:8008",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:x",
            "http://[::1:8008",
            "http://user@127.0.0.1:8008",
            "http://127.0.0.1:8008/?a=b",
        ] {
            assert!(parse_url(url).is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn resolve_accepts_loopback() {
        for url in [
            "http://127.0.0.1:8008",
            "http://127.8.9.10:8008",
            "http://[::1]:8008",
        ] {
            let target = resolve(url, false).unwrap();
            assert_eq!(target.addrs.len(), 1, "{url}");
        }
        assert_eq!(
            resolve("http://[::1]:8008", false).unwrap().host_header,
            "[::1]:8008"
        );
    }

    #[test]
    fn resolve_rejects_remote_without_flag() {
        for url in [
            "http://10.0.0.1:8008",
            "http://192.168.1.1:8008",
            "http://[2001:db8::1]:80",
            "http://example.org:80",
        ] {
            let error = resolve(url, false).unwrap_err();
            assert!(error.contains("--allow-remote"), "{url}: {error}");
        }
    }

    #[test]
    fn resolve_allows_remote_literal_with_flag() {
        // An IP literal needs no lookup and no connection, so this sends nothing.
        let target = resolve("http://192.0.2.1:8008", true).unwrap();
        assert_eq!(target.addrs[0].to_string(), "192.0.2.1:8008");
    }
}
