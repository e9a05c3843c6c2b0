//! `eltrix-tuning skew`: reads a running server's `/metrics` and reports how
//! unevenly load falls on its shards.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

/// Skew above which a shard is reported as hot.
pub const HOT_SKEW: f64 = 1.5;

/// Per-shard values of one `eltrix_shard_*` series.
pub type Series = BTreeMap<String, BTreeMap<usize, f64>>;

/// Fetches `/metrics` from a loopback `host:port`.
///
/// # Errors
///
/// Returns a message on connection failure or a non-200 response.
pub fn fetch_metrics(address: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(address)
        .map_err(|error| format!("failed to connect to {address}: {error}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("failed to send the request: {error}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|error| format!("failed to read the response: {error}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "/metrics returned {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_owned())
}

/// Collects every `eltrix_shard_*{shard="N"} value` sample.
#[must_use]
pub fn parse_shard_series(text: &str) -> Series {
    let mut series = Series::new();
    for line in text
        .lines()
        .filter(|line| line.starts_with("eltrix_shard_"))
    {
        let Some((name, rest)) = line.split_once("{shard=\"") else {
            continue;
        };
        let Some((shard, value)) = rest.split_once("\"} ") else {
            continue;
        };
        if let (Ok(shard), Ok(value)) = (shard.parse::<usize>(), value.trim().parse::<f64>()) {
            series
                .entry(name.to_owned())
                .or_default()
                .insert(shard, value);
        }
    }
    series
}

/// Returns the busiest shard of a series and its value over the mean, or
/// `None` when every value is zero.
#[must_use]
pub fn skew(values: &BTreeMap<usize, f64>) -> Option<(usize, f64)> {
    let total: f64 = values.values().sum();
    if values.is_empty() || total <= 0.0 {
        return None;
    }
    let mean = total / values.len() as f64;
    let (shard, max) = values.iter().max_by(|a, b| a.1.total_cmp(b.1))?;
    Some((*shard, max / mean))
}

/// Formats one row per series with each shard's value and the skew.
#[must_use]
pub fn format_report(series: &Series) -> String {
    let shards: Vec<usize> = series
        .values()
        .flat_map(|values| values.keys().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = format!("{:<40}", "series");
    for shard in &shards {
        out.push_str(&format!(" {:>12}", format!("shard {shard}")));
    }
    out.push_str("   max/mean\n");
    for (name, values) in series {
        out.push_str(&format!("{name:<40}"));
        for shard in &shards {
            out.push_str(&format!(
                " {:>12.0}",
                values.get(shard).copied().unwrap_or(0.0)
            ));
        }
        match skew(values) {
            Some((hot, ratio)) if ratio > HOT_SKEW => {
                out.push_str(&format!("   {ratio:.2}  hot: shard {hot}\n"))
            }
            Some((_, ratio)) => out.push_str(&format!("   {ratio:.2}\n")),
            None => out.push_str("   -\n"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{format_report, parse_shard_series, skew};

    const SAMPLE: &str = "# HELP eltrix_shard_events_persisted_total x\n\
        eltrix_shard_events_persisted_total{shard=\"0\"} 900\n\
        eltrix_shard_events_persisted_total{shard=\"1\"} 100\n\
        eltrix_shard_sync_waiters{shard=\"0\"} 0\n\
        eltrix_shard_sync_waiters{shard=\"1\"} 0\n\
        eltrix_http_requests_total{method=\"GET\",path=\"/health\",status=\"200\"} 3\n";

    #[test]
    fn parses_only_shard_series() {
        let series = parse_shard_series(SAMPLE);
        assert_eq!(series.len(), 2);
        assert_eq!(series["eltrix_shard_events_persisted_total"][&0], 900.0);
    }

    #[test]
    fn flags_hot_shard() {
        let series = parse_shard_series(SAMPLE);
        let (hot, ratio) = skew(&series["eltrix_shard_events_persisted_total"]).expect("non-zero");
        assert_eq!(hot, 0);
        assert!((ratio - 1.8).abs() < 1e-9);
        assert!(format_report(&series).contains("hot: shard 0"));
        assert_eq!(skew(&series["eltrix_shard_sync_waiters"]), None);
    }
}
