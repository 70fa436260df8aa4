//! The report's charts, as inline SVG written by hand: fixed viewBox, axes with labels, values on the
//! marks, a `<title>` for assistive technology and tooltips, and no script.

use super::{Esc, SEVERITY_COLOURS, SEVERITY_ORDER};
use std::fmt::Write;

/// One bar of a stacked bar chart: counts in [`SEVERITY_ORDER`].
pub(super) struct Bar {
    pub label: String,
    pub counts: [usize; 5],
}

impl Bar {
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// One scan of the trend chart.
pub(super) struct Point {
    pub id: i64,
    pub date: String,
    pub open: usize,
    pub ics: usize,
    pub current: bool,
}

/// Axis ticks from zero: a step of 1, 2 or 5 times a power of ten, about four intervals.
fn ticks(max: usize) -> (usize, usize) {
    let max = max.max(1);
    let mut step = 1usize;
    loop {
        for m in [1, 2, 5] {
            let s = step * m;
            if max.div_ceil(s) <= 5 {
                return (s, max.div_ceil(s) * s);
            }
        }
        step *= 10;
    }
}

/// Roughly how wide `s` is at a 12 px sans-serif font: wide glyphs (CJK) count double.
fn text_width(s: &str) -> f64 {
    s.chars().map(|c| if (c as u32) >= 0x2E80 { 12.0 } else { 6.8 }).sum()
}

/// `s` cut with an ellipsis to fit `width`.
fn fit(s: &str, width: f64) -> String {
    if text_width(s) <= width {
        return s.to_string();
    }
    let mut out = String::new();
    let mut w = text_width("…");
    for c in s.chars() {
        w += text_width(c.encode_utf8(&mut [0; 4]));
        if w > width {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// A horizontal bar chart, each bar stacked by severity, one `<g class="bar">` per bar and one
/// `<rect class="seg">` per non-empty severity of it. With no bar, the frame and axis still render
/// with `empty` written across.
pub(super) fn stacked_bars(
    id: &str,
    title: &str,
    axis: &str,
    bars: &[Bar],
    empty: &str,
    severities: &[&str; 5],
) -> String {
    const W: f64 = 560.0;
    const LABEL_W: f64 = 120.0;
    const X0: f64 = 128.0;
    const X1: f64 = 512.0;
    const TOP: f64 = 8.0;
    const ROW: f64 = 28.0;
    const BAR: f64 = 18.0;
    let rows = bars.len().max(3) as f64;
    let axis_y = TOP + rows * ROW;
    let h = axis_y + 44.0;
    let max = bars.iter().map(Bar::total).max().unwrap_or(0);
    let (step, top) = ticks(max);
    let scale = (X1 - X0) / top as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="{id}" class="chart" viewBox="0 0 {W} {h}" role="img" aria-labelledby="{id}-t" preserveAspectRatio="xMinYMin meet"><title id="{id}-t">{}</title>"#,
        Esc(title)
    );
    let mut t = 0;
    while t <= top {
        let x = X0 + t as f64 * scale;
        let _ = write!(
            s,
            r#"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{axis_y}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{t}</text>"#,
            axis_y + 15.0
        );
        t += step;
    }
    let _ = write!(
        s,
        r#"<line class="axis" x1="{X0}" y1="{TOP}" x2="{X0}" y2="{axis_y}"/><line class="axis" x1="{X0}" y1="{axis_y}" x2="{X1}" y2="{axis_y}"/><text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (X0 + X1) / 2.0,
        axis_y + 36.0,
        Esc(axis)
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + i as f64 * ROW + (ROW - BAR) / 2.0;
        let detail: Vec<String> =
            bar.counts.iter().zip(severities).filter(|(n, _)| **n > 0).map(|(n, name)| format!("{name} {n}")).collect();
        let _ = write!(
            s,
            r#"<g class="bar" data-label="{}" data-total="{}"><title>{}: {} ({})</title><text class="label" x="{LABEL_W}" y="{:.1}" text-anchor="end">{}</text>"#,
            Esc(&bar.label),
            bar.total(),
            Esc(&bar.label),
            bar.total(),
            Esc(&detail.join(", ")),
            y + BAR / 2.0 + 4.0,
            Esc(&fit(&bar.label, LABEL_W - 4.0))
        );
        let mut x = X0;
        for (k, n) in bar.counts.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let w = *n as f64 * scale;
            let _ = write!(
                s,
                r##"<rect class="seg" data-severity="{}" x="{x:.2}" y="{y:.1}" width="{w:.2}" height="{BAR}" fill="{}" stroke="#fff" stroke-width="1"/>"##,
                SEVERITY_ORDER[k].as_str(),
                SEVERITY_COLOURS[k]
            );
            x += w;
        }
        let _ = write!(
            s,
            r#"<text class="value" x="{:.1}" y="{:.1}">{}</text></g>"#,
            x + 5.0,
            y + BAR / 2.0 + 4.0,
            bar.total()
        );
    }
    if bars.is_empty() {
        let _ = write!(
            s,
            r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (X0 + X1) / 2.0,
            TOP + rows * ROW / 2.0 + 5.0,
            Esc(empty)
        );
    }
    s.push_str("</svg>");
    s
}

/// The trend: open services and ICS findings per scan, as two lines with a marker and value per
/// scan; the scan of the report is drawn larger.
pub(super) fn trend(id: &str, title: &str, series: [&str; 2], axis: &str, points: &[Point]) -> String {
    const W: f64 = 1120.0;
    const H: f64 = 300.0;
    const X0: f64 = 56.0;
    const X1: f64 = 1096.0;
    const TOP: f64 = 40.0;
    const AXIS_Y: f64 = 240.0;
    const COLOURS: [&str; 2] = ["#1e3a5f", "#b91c1c"];
    let max = points.iter().map(|p| p.open.max(p.ics)).max().unwrap_or(0);
    let (step, top) = ticks(max);
    let y_of = |v: usize| AXIS_Y - v as f64 * (AXIS_Y - TOP) / top as f64;
    let n = points.len();
    let x_of = |i: usize| {
        if n <= 1 {
            (X0 + X1) / 2.0
        } else {
            X0 + 28.0 + i as f64 * (X1 - X0 - 56.0) / (n - 1) as f64
        }
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="{id}" class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t" preserveAspectRatio="xMinYMin meet"><title id="{id}-t">{}</title>"#,
        Esc(title)
    );
    // Legend, top left.
    for (k, name) in series.iter().enumerate() {
        let x = X0 + k as f64 * 180.0;
        let _ = write!(
            s,
            r#"<g class="legend"><line x1="{x}" y1="14" x2="{:.1}" y2="14" stroke="{}" stroke-width="3"/><circle cx="{:.1}" cy="14" r="4" fill="{}"/><text class="label" x="{:.1}" y="18">{}</text></g>"#,
            x + 26.0,
            COLOURS[k],
            x + 13.0,
            COLOURS[k],
            x + 34.0,
            Esc(name)
        );
    }
    let mut t = 0;
    while t <= top {
        let y = y_of(t);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{X0}" y1="{y:.1}" x2="{X1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{t}</text>"#,
            X0 - 8.0,
            y + 4.0
        );
        t += step;
    }
    let _ = write!(
        s,
        r#"<line class="axis" x1="{X0}" y1="{TOP}" x2="{X0}" y2="{AXIS_Y}"/><line class="axis" x1="{X0}" y1="{AXIS_Y}" x2="{X1}" y2="{AXIS_Y}"/><text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (X0 + X1) / 2.0,
        H - 6.0,
        Esc(axis)
    );
    // Scan labels: every one when they fit, else every k-th, and always the last (its neighbours
    // giving way to it).
    let every = n.div_ceil(15).max(1);
    for (i, p) in points.iter().enumerate() {
        if i + 1 != n && (i % every != 0 || n - 1 - i < every) {
            continue;
        }
        let x = x_of(i);
        let class = if p.current { "tick current" } else { "tick" };
        let _ = write!(
            s,
            r##"<text class="{class}" x="{x:.1}" y="{:.1}" text-anchor="middle">#{}</text><text class="tick sub" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            AXIS_Y + 16.0,
            p.id,
            AXIS_Y + 30.0,
            Esc(&p.date)
        );
    }
    if let Some(i) = points.iter().position(|p| p.current) {
        let x = x_of(i);
        let _ = write!(s, r#"<line class="now-line" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{AXIS_Y}"/>"#);
    }
    for (k, name) in series.iter().enumerate() {
        let value = |p: &Point| if k == 0 { p.open } else { p.ics };
        let coords: Vec<String> =
            points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x_of(i), y_of(value(p)))).collect();
        if k == 0 && n > 1 {
            let _ = write!(
                s,
                r#"<path class="area" d="M{:.1},{AXIS_Y} L{} L{:.1},{AXIS_Y} Z" fill="{}" fill-opacity="0.07"/>"#,
                x_of(0),
                coords.join(" L"),
                x_of(n - 1),
                COLOURS[0]
            );
        }
        let _ = write!(
            s,
            r#"<polyline class="series" data-series="{}" points="{}" fill="none" stroke="{}" stroke-width="2.5" stroke-linejoin="round"/>"#,
            if k == 0 { "open" } else { "ics" },
            coords.join(" "),
            COLOURS[k]
        );
        for (i, p) in points.iter().enumerate() {
            let (x, y) = (x_of(i), y_of(value(p)));
            let r = if p.current { 5.5 } else { 4.0 };
            let _ = write!(
                s,
                r##"<circle class="point" cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{}" stroke="#fff" stroke-width="1.5"><title>#{} {}: {} {}</title></circle>"##,
                COLOURS[k],
                p.id,
                Esc(&p.date),
                Esc(name),
                value(p)
            );
            if n <= 20 {
                // Open services above their point, ICS findings below theirs, so close values stay legible.
                // An ICS value on the axis goes above its point, and above the open services' value
                // when both are on the axis.
                let dy = match k {
                    0 => -10.0,
                    _ if y + 17.0 <= AXIS_Y - 4.0 => 17.0,
                    _ if p.open == 0 => -24.0,
                    _ => -10.0,
                };
                let _ = write!(
                    s,
                    r#"<text class="value {}" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    if k == 0 { "s-open" } else { "s-ics" },
                    (y + dy).max(TOP - 6.0),
                    value(p)
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0), (1, 1));
        assert_eq!(ticks(3), (1, 3));
        assert_eq!(ticks(7), (2, 8));
        assert_eq!(ticks(10), (2, 10));
        assert_eq!(ticks(23), (5, 25));
        assert_eq!(ticks(180), (50, 200));
    }

    #[test]
    fn long_labels_are_cut() {
        assert_eq!(fit("浦东新区", 100.0), "浦东新区");
        let cut = fit("一个非常非常长的区县名称", 100.0);
        assert!(cut.ends_with('…') && text_width(&cut) <= 100.0, "{cut}");
    }
}
