//! A small SVG line chart of throughput and p99 by shard count.

use std::fmt::Write as _;

use crate::sweep::Point;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const MARGIN: f64 = 56.0;

/// Renders throughput (left axis, blue) and p99 (right axis, red) against
/// the shard count.
#[must_use]
pub fn chart(points: &[Point], title: &str) -> String {
    let max_shards = points.iter().map(|p| p.shards).max().unwrap_or(1).max(1) as f64;
    let max_throughput = points.iter().map(|p| p.throughput).fold(1.0, f64::max);
    let max_p99 = points.iter().map(|p| p.p99_ms).fold(1.0, f64::max);
    let x = |shards: usize| MARGIN + (shards as f64 / max_shards) * (WIDTH - 2.0 * MARGIN);
    let y = |value: f64, max: f64| HEIGHT - MARGIN - (value / max) * (HEIGHT - 2.0 * MARGIN);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{MARGIN}" y="24" font-size="14">{}</text>"#,
        escape(title)
    );
    let (left, right, bottom) = (MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN);
    let _ = writeln!(
        svg,
        r#"<path d="M{left} {MARGIN} V{bottom} H{right} V{MARGIN}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}">shards</text>"#,
        WIDTH / 2.0,
        HEIGHT - 16.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="8" y="{}" fill="#1f5fbf">{max_throughput:.0}/s</text>"##,
        MARGIN
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" fill="#bf1f1f">{max_p99:.1} ms</text>"##,
        right + 4.0,
        MARGIN
    );

    for point in points {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{}</text>"#,
            x(point.shards) - 4.0,
            bottom + 16.0,
            point.shards
        );
    }
    for (color, value, max) in [("#1f5fbf", 0, max_throughput), ("#bf1f1f", 1, max_p99)] {
        let coordinates: Vec<String> = points
            .iter()
            .map(|p| {
                let v = if value == 0 { p.throughput } else { p.p99_ms };
                format!("{:.1},{:.1}", x(p.shards), y(v, max))
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            coordinates.join(" ")
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="44" fill="#1f5fbf">throughput</text><text x="{}" y="44" fill="#bf1f1f">p99</text>"##,
        MARGIN,
        MARGIN + 90.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::chart;
    use crate::sweep::Point;

    #[test]
    fn draws_both_series() {
        let points = [
            Point {
                shards: 1,
                throughput: 100.0,
                p99_ms: 9.0,
            },
            Point {
                shards: 2,
                throughput: 180.0,
                p99_ms: 5.0,
            },
        ];
        let svg = chart(&points, "send <64>");
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("send &lt;64&gt;"));
    }
}
