//! The monitoring team's report: one self-contained HTML file (inline CSS and SVG, no script, no
//! font or resource from anywhere) with the scan's totals and severities, findings by district and
//! by protocol, the trend over past scans of the same objects, what is new, changed or gone, and a
//! table of every finding. English or Chinese labels; data is shown as recorded.

mod charts;
mod labels;

use crate::findings::{identity_key, Change, Finding, Severity};
use crate::history::{diff, same_objects, ServiceKey};
use crate::html::Esc;
use crate::ledger::Level;
use crate::store::{OpenNotice, ScanId, ScanRecord, ScanState, Store, StoreError};
use charts::{Bar, Point};
use labels::Labels;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub use crate::export::Lang;

fn labels_for(lang: Lang) -> &'static Labels {
    match lang {
        Lang::En => &labels::EN,
        Lang::Zh => &labels::ZH,
    }
}

/// Severities from the most to the least severe, the order of every count and chart.
const SEVERITY_ORDER: [Severity; 5] =
    [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];
/// critical dark red, high red-orange, medium amber, low blue, info grey.
const SEVERITY_COLOURS: [&str; 5] = ["#8b1a1a", "#e0531f", "#f0a202", "#2f6fd0", "#9aa3ad"];

fn severity_index(s: Severity) -> usize {
    SEVERITY_ORDER.iter().position(|o| *o == s).expect("every severity is ordered")
}

/// How many past scans the trend shows, the report's scan included.
const TREND_SCANS: usize = 30;
/// Bars per chart; the rest are summed in one "other" bar.
const MAX_BARS: usize = 20;

/// One row of "new and changed exposures".
struct ChangeRow {
    status: Change,
    finding: Finding,
    /// Changed identity keys with their values before and after (after only known without a diff).
    changed: Vec<(String, Option<Value>, Option<Value>)>,
}

/// Everything the report shows, gathered from the store.
struct Report {
    scan: ScanRecord,
    findings: Vec<Finding>,
    previous: Option<ScanRecord>,
    changes: Vec<ChangeRow>,
    /// Services of the previous scan this one did not cover.
    not_covered: usize,
    /// The change status shown in the table, per service.
    status: HashMap<ServiceKey, Change>,
    /// First seen (time) of the services, when the store knows it for this scan.
    first_seen: HashMap<ServiceKey, String>,
    trend: Vec<Point>,
    /// The open warning notices about the objects of the findings.
    notices: Vec<OpenNotice>,
    /// When the report is made (deadlines past it are overdue).
    now: String,
}

fn key(f: &Finding) -> ServiceKey {
    (f.ip, f.port, f.transport)
}

impl Report {
    fn gather(store: &dyn Store, notices: &[OpenNotice], id: ScanId) -> Result<Report, StoreError> {
        let scan = store.scan(id)?;
        let mut findings = store.findings(id)?;
        findings.sort_by(|a, b| {
            (b.severity, &a.district, &a.enterprise, a.ip, a.port, a.transport).cmp(&(
                a.severity,
                &b.district,
                &b.enterprise,
                b.ip,
                b.port,
                b.transport,
            ))
        });
        let comparable: Vec<ScanRecord> =
            store.scans()?.into_iter().filter(|s| s.id < id && s.completed() && same_objects(s, &scan)).collect();
        let previous = comparable.last().cloned();

        let mut trend = Vec::new();
        for past in &comparable[comparable.len().saturating_sub(TREND_SCANS - 1)..] {
            let found = store.findings(past.id)?;
            trend.push(point(past, &found, false));
        }
        trend.push(point(&scan, &findings, true));

        let mut changes = Vec::new();
        let mut status = HashMap::new();
        let mut not_covered = 0;
        if let Some(prev) = &previous {
            let d = diff(store, prev.id, id)?;
            not_covered = d.not_covered;
            for e in d.entries {
                status.insert((e.ip, e.port, e.transport), e.status);
                if e.status == Change::Persisting {
                    continue;
                }
                let after = identity_key(&e.finding);
                let changed = e
                    .before
                    .into_iter()
                    .map(|(name, before)| {
                        let now = after.get(&name).cloned();
                        (name, Some(before), now)
                    })
                    .collect();
                changes.push(ChangeRow { status: e.status, finding: e.finding, changed });
            }
        } else {
            for f in &findings {
                if let Some(c) = f.change {
                    status.insert(key(f), c);
                }
                if matches!(f.change, Some(Change::New | Change::Changed)) {
                    let after = identity_key(f);
                    let changed = f.changed.iter().map(|name| (name.clone(), None, after.get(name).cloned())).collect();
                    changes.push(ChangeRow { status: f.change.unwrap_or(Change::New), finding: f.clone(), changed });
                }
            }
        }
        changes.sort_by(|a, b| {
            (a.status, b.finding.severity, &a.finding.district, &a.finding.enterprise, a.finding.ip, a.finding.port)
                .cmp(&(
                    b.status,
                    a.finding.severity,
                    &b.finding.district,
                    &b.finding.enterprise,
                    b.finding.ip,
                    b.finding.port,
                ))
        });

        let mut first_seen = HashMap::new();
        let ips: BTreeSet<_> = findings.iter().map(|f| f.ip).collect();
        for ip in ips {
            for s in store.services_of(ip)? {
                if s.first_scan > id {
                    continue;
                }
                if let Ok(t) = serde_json::from_value(Value::String(s.transport.clone())) {
                    first_seen.insert((ip, s.port, t), s.first_seen);
                }
            }
        }
        let enterprises: BTreeSet<&str> = findings.iter().map(|f| f.enterprise_id.as_str()).collect();
        let notices = crate::notices::open_notices_of(notices, &enterprises);
        let now = crate::pipeline::now_rfc3339();
        Ok(Report { scan, findings, previous, changes, not_covered, status, first_seen, trend, notices, now })
    }
}

fn point(scan: &ScanRecord, findings: &[Finding], current: bool) -> Point {
    Point {
        id: scan.id,
        date: parse_time(&scan.start.started_at)
            .map(|t| format!("{:02}-{:02}", t.month() as u8, t.day()))
            .unwrap_or_default(),
        open: findings.len(),
        ics: findings.iter().filter(|f| f.ics).count(),
        current,
    }
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(|t| t.to_offset(time::UtcOffset::UTC))
}

/// `2024-05-01 08:00:00 UTC`, or the text as stored when it does not parse.
fn show_time(s: &str) -> String {
    match parse_time(s) {
        Some(t) => format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => s.to_string(),
    }
}

fn show_date(s: &str) -> String {
    show_time(s).get(..10).map(str::to_string).unwrap_or_default()
}

fn show_duration(from: &str, to: &str, l: &Labels) -> Option<String> {
    let secs = (parse_time(to)? - parse_time(from)?).whole_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    Some(if h > 0 {
        format!("{h} {} {m:02} {}", l.hours, l.minutes)
    } else if m > 0 {
        format!("{m} {} {s:02} {}", l.minutes, l.seconds)
    } else {
        format!("{s} {}", l.seconds)
    })
}

fn show_value(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("—")
}

fn selection_text(selection: &Value, l: &Labels) -> String {
    let mut parts = Vec::new();
    if let Value::Object(map) = selection {
        for (name, label) in [("levels", l.levels), ("districts", l.districts), ("enterprises", l.enterprises_sel)] {
            if let Some(Value::Array(items)) = map.get(name) {
                if !items.is_empty() {
                    let items: Vec<String> = items
                        .iter()
                        .map(|v| match v.as_str().and_then(|s| s.parse::<Level>().ok()) {
                            Some(level) if name == "levels" => l.level(level).to_string(),
                            _ => show_value(&Some(v.clone())),
                        })
                        .collect();
                    parts.push(format!("{label}: {}", items.join(", ")));
                }
            }
        }
    }
    if parts.is_empty() {
        l.all_objects.to_string()
    } else {
        parts.join("; ")
    }
}

/// Bars by some key, biggest first, the tail summed into one "other" bar.
fn bars_by(findings: &[Finding], by: impl Fn(&Finding) -> &str, other: &str) -> Vec<Bar> {
    let mut counts: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
    for f in findings {
        counts.entry(by(f)).or_default()[severity_index(f.severity)] += 1;
    }
    let mut bars: Vec<Bar> =
        counts.into_iter().map(|(label, counts)| Bar { label: label.to_string(), counts }).collect();
    // Biggest first; among equals, the most severe first, then by name.
    bars.sort_by(|a, b| b.total().cmp(&a.total()).then(b.counts.cmp(&a.counts)).then(a.label.cmp(&b.label)));
    if bars.len() > MAX_BARS {
        let tail = bars.split_off(MAX_BARS - 1);
        let mut counts = [0; 5];
        for b in &tail {
            for (c, n) in counts.iter_mut().zip(b.counts) {
                *c += n;
            }
        }
        bars.push(Bar { label: format!("{other} ({})", tail.len()), counts });
    }
    bars
}

/// Renders the report of scan `scan` as one complete HTML document; of `notices` (the history's
/// open notices), those about the scan's objects are listed.
pub fn render(store: &dyn Store, notices: &[OpenNotice], scan: ScanId, lang: Lang) -> Result<String, StoreError> {
    let report = Report::gather(store, notices, scan)?;
    Ok(document(&report, labels_for(lang)))
}

const STYLE: &str = r#"
:root { --ink: #1f2933; --muted: #5f6b7a; --line: #d9dee4; --panel: #ffffff; --page: #eef1f5; --accent: #1e3a5f; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; background: var(--page); color: var(--ink); font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC",
  "WenQuanYi Micro Hei", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 0 24px 32px; }
header.top { background: var(--accent); color: #fff; padding: 22px 0 18px; margin-bottom: 20px; }
header.top .inner { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header.top .product { font-size: 12px; letter-spacing: .08em; text-transform: uppercase; opacity: .75; }
header.top h1 { margin: 2px 0 12px; font-size: 26px; font-weight: 650; }
header.top h1 .state { display: inline-block; vertical-align: middle; margin-left: 10px; padding: 2px 10px; border-radius: 999px;
  font-size: 13px; font-weight: 600; }
.state.completed { background: #d8f3e3; color: #14532d; }
.state.partial, .state.unfinished { background: #fde8c8; color: #7a3e00; }
dl.meta { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 6px 28px; margin: 0; font-size: 13px; }
dl.meta div { min-width: 0; }
dl.meta dt { opacity: .7; font-size: 11.5px; text-transform: uppercase; letter-spacing: .04em; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
dl.meta .wide { grid-column: span 3; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace; font-size: .95em; }
section.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px 18px; margin: 0 0 20px; }
#summary, #trend, .charts section.panel { break-inside: avoid; }
h2 { break-after: avoid; }
section.panel h2 { margin: 0 0 4px; font-size: 17px; font-weight: 650; color: var(--accent); }
section.panel .note { margin: 0 0 10px; color: var(--muted); font-size: 12.5px; }
.kpis { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px; margin-top: 10px; }
.kpi { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.kpi .n { font-size: 28px; font-weight: 700; line-height: 1.15; }
.kpi .k { color: var(--muted); font-size: 12.5px; }
.kpi .delta { font-size: 12px; color: var(--muted); }
.sevbar { display: flex; height: 12px; border-radius: 6px; overflow: hidden; background: #e8ebef; margin: 16px 0 10px; }
.sevbar span { display: block; height: 100%; }
.sevs { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 12px; }
.sev { border-radius: 6px; padding: 8px 14px; border-left: 6px solid; background: #f7f8fa; }
.sev .n { font-size: 24px; font-weight: 700; line-height: 1.2; }
.sev .k { font-size: 12.5px; color: var(--muted); }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 20px; align-items: start; }
.charts section.panel { margin: 0; }
svg.chart { display: block; width: 100%; height: auto; font-size: 12px; }
svg.chart text { fill: #33404d; }
svg.chart .tick { font-size: 11px; fill: #6b7785; }
svg.chart .tick.sub { font-size: 10px; }
svg.chart .tick.current { font-weight: 700; fill: var(--ink); }
svg.chart .axis-title { font-size: 11.5px; fill: #6b7785; }
svg.chart .value { font-size: 11.5px; font-weight: 600; }
svg.chart .empty { font-size: 15px; fill: #6b7785; }
svg.chart .grid { stroke: #e6e9ed; stroke-width: 1; }
svg.chart .axis { stroke: #9aa5b1; stroke-width: 1; }
svg.chart .now-line { stroke: #9aa5b1; stroke-dasharray: 4 4; }
svg.chart .value.s-open { fill: #1e3a5f; }
svg.chart .value.s-ics { fill: #b91c1c; }
.legend-row { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 0 0 8px; font-size: 12.5px; color: var(--muted); }
.legend-row i { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.empty-state { text-align: center; padding: 28px 0 22px; }
.empty-state .big { font-size: 22px; font-weight: 650; color: #14532d; }
.empty-state p { color: var(--muted); margin: 4px 0 0; }
.counts { display: flex; gap: 8px; margin: 0 0 10px; flex-wrap: wrap; }
table { width: 100%; border-collapse: collapse; font-size: 12.5px; }
thead th { text-align: left; font-weight: 600; color: var(--muted); background: #f3f5f8; border-bottom: 2px solid var(--line);
  padding: 7px 8px; white-space: nowrap; font-size: 12px; }
tbody td { padding: 6px 8px; border-bottom: 1px solid #edf0f3; vertical-align: top; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tbody tr { break-inside: avoid; }
td.num, th.num { text-align: right; }
td.nowrap { white-space: nowrap; }
td.ent { min-width: 9em; }
.pill { display: inline-block; min-width: 52px; text-align: center; padding: 1px 8px; border-radius: 999px; font-size: 11.5px;
  font-weight: 600; white-space: nowrap; }
.sev-critical { background: #8b1a1a; color: #fff; }
.sev-high { background: #e0531f; color: #fff; }
.sev-medium { background: #f0a202; color: #2b1d00; }
.sev-low { background: #2f6fd0; color: #fff; }
.sev-info { background: #d5d9de; color: #33404d; }
.hp { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 11px; font-weight: 600; white-space: nowrap;
  background: #efe7fb; color: #4c1d95; border: 1px dashed #7c3aed; }
.chg { display: inline-block; padding: 1px 8px; border-radius: 4px; font-size: 11.5px; font-weight: 600; white-space: nowrap; }
.chg-new { background: #fde2e1; color: #9b1c1c; }
.chg-changed { background: #fdf0d5; color: #8a4b00; }
.chg-gone { background: #e3f1e7; color: #1e5b32; }
.chg-persisting { background: #eef1f5; color: #5f6b7a; }
tr.gone td { color: var(--muted); }
ul.what { margin: 0; padding: 0; list-style: none; }
ul.what li { white-space: nowrap; }
del { color: #9b1c1c; }
ins { color: #14532d; text-decoration: none; font-weight: 600; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 8px 0 24px; }
@media screen and (max-width: 900px) { .charts { grid-template-columns: 1fr; } .kpis { grid-template-columns: repeat(2, 1fr); }
  .sevs { grid-template-columns: repeat(3, 1fr); } dl.meta { grid-template-columns: 1fr 1fr; } }
@media print {
  body { background: #fff; font-size: 11px; }
  main { max-width: none; padding: 0; }
  header.top { padding: 12px 0; margin-bottom: 12px; }
  section.panel { border-color: #c8ced5; border-radius: 0; padding: 10px 12px; }
  .charts { grid-template-columns: 1fr 1fr; gap: 12px; }
  thead { display: table-header-group; }
  table { font-size: 10px; }
  thead th { font-size: 10px; }
  @page { size: A4 landscape; margin: 12mm; }
}
"#;

fn document(r: &Report, l: &Labels) -> String {
    let mut h = String::with_capacity(32 * 1024 + r.findings.len() * 600);
    let scan = &r.scan;
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="{}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="otscope {}">
<title>{} — {} #{}</title>
<style>{STYLE}</style>
</head>
<body>
"#,
        l.html_lang,
        env!("CARGO_PKG_VERSION"),
        Esc(l.doc_title),
        Esc(l.scan),
        scan.id
    );
    header(&mut h, r, l);
    h.push_str("<main>\n");
    summary(&mut h, r, l);
    charts_section(&mut h, r, l);
    changes_section(&mut h, r, l);
    notices_section(&mut h, r, l);
    findings_section(&mut h, r, l);
    h.push_str("</main>\n");
    let _ =
        writeln!(h, "<footer>{} {} · {} #{}</footer>", Esc(l.footer), env!("CARGO_PKG_VERSION"), Esc(l.scan), scan.id);
    h.push_str("</body>\n</html>\n");
    h
}

fn header(h: &mut String, r: &Report, l: &Labels) {
    let s = &r.scan;
    let (state_class, state) = match s.state() {
        ScanState::Complete => ("completed", l.completed),
        ScanState::Partial(_) => ("partial", l.partial),
        ScanState::Running => ("unfinished", l.running),
        ScanState::Interrupted => ("unfinished", l.interrupted),
        ScanState::RunningElsewhere(_) => ("unfinished", l.unfinished),
    };
    let _ = write!(
        h,
        r#"<header class="top"><div class="inner"><div class="product">otscope · {}</div><h1>{} #{}<span class="state {state_class}">{}</span></h1><dl class="meta">"#,
        Esc(l.doc_title),
        Esc(l.scan),
        s.id,
        Esc(state)
    );
    let mut item = |dt: &str, dd: String, class: &str| {
        let _ = write!(h, r#"<div class="{class}"><dt>{}</dt><dd>{dd}</dd></div>"#, Esc(dt));
    };
    item(l.started, Esc(&show_time(&s.start.started_at)).to_string(), "");
    item(l.ended, s.ended_at.as_deref().map(|t| Esc(&show_time(t)).to_string()).unwrap_or("—".into()), "");
    let duration = s.ended_at.as_deref().and_then(|e| show_duration(&s.start.started_at, e, l));
    item(l.duration, Esc(duration.as_deref().unwrap_or("—")).to_string(), "");
    let sha = s.start.ledger_sha256.get(..12).unwrap_or(&s.start.ledger_sha256);
    item(l.ledger, format!(r#"{} <code>sha256 {}</code>"#, Esc(&s.start.ledger_path), Esc(sha)), "");
    let kind = match s.start.kind.strip_prefix("event:") {
        Some(name) => format!("{}: {name}", l.kind_event),
        None if s.start.kind == "scan" => l.kind_scan.to_string(),
        None => s.start.kind.clone(),
    };
    item(l.kind, Esc(&kind).to_string(), "");
    item(l.library, Esc(&s.start.library_version).to_string(), "");
    item(l.selection, Esc(&selection_text(&s.start.selection, l)).to_string(), "");
    let c = &s.start.coverage;
    let ports = format!(" ({})", Esc(&crate::scope::show_ports(&c.ports)));
    let mut coverage = format!(
        "{}: {} · {}: {}{ports} · {}: {}",
        l.addresses,
        c.addresses(),
        l.ports,
        c.ports.len(),
        l.targets,
        s.start.targets_total
    );
    if let Some(end) = &s.end {
        let _ = write!(coverage, " · {}: {}{}", l.probed, end.probed, if s.completed() { " ✓" } else { "" });
    }
    if c.shard.count > 1 {
        let _ = write!(coverage, " · {} {}/{}", l.shard, c.shard.index, c.shard.count);
    }
    item(l.coverage, Esc(&coverage).to_string(), "");
    let compared = match &r.previous {
        Some(p) => format!("{} #{} ({})", l.scan, p.id, show_time(&p.start.started_at)),
        None => l.no_previous.to_string(),
    };
    item(l.compared_with, Esc(&compared).to_string(), "");
    h.push_str("</dl></div></header>\n");
}

fn summary(h: &mut String, r: &Report, l: &Labels) {
    let f = &r.findings;
    let mut sev = [0usize; 5];
    for x in f {
        sev[severity_index(x.severity)] += 1;
    }
    let ics = f.iter().filter(|x| x.ics).count();
    let enterprises: BTreeSet<&str> = f.iter().map(|x| x.enterprise_id.as_str()).collect();
    let hosts: BTreeSet<_> = f.iter().map(|x| x.ip).collect();
    let _ = write!(h, r#"<section class="panel" id="summary"><h2>{}</h2><div class="kpis">"#, Esc(l.summary));
    // The previous comparable scan's counts, for the deltas.
    let before = r.previous.as_ref().and_then(|p| r.trend.iter().find(|t| t.id == p.id));
    let delta = |now: usize, was: Option<usize>| match was {
        Some(was) => {
            let d = now as i64 - was as i64;
            let sign = match d.cmp(&0) {
                std::cmp::Ordering::Greater => "▲ +",
                std::cmp::Ordering::Less => "▼ ",
                std::cmp::Ordering::Equal => "= ",
            };
            format!(r#"<div class="delta">{sign}{d} {} #{}</div>"#, Esc(l.vs_scan), before.map(|b| b.id).unwrap_or(0))
        }
        None => String::new(),
    };
    for (n, k, d) in [
        (f.len(), l.findings, delta(f.len(), before.map(|b| b.open))),
        (ics, l.ics_services, delta(ics, before.map(|b| b.ics))),
        (enterprises.len(), l.enterprises, String::new()),
        (hosts.len(), l.hosts, String::new()),
    ] {
        let _ = write!(h, r#"<div class="kpi"><div class="n">{n}</div><div class="k">{}</div>{d}</div>"#, Esc(k));
    }
    h.push_str("</div>");
    let total = f.len().max(1);
    let _ = write!(h, r#"<div class="sevbar" role="img" aria-label="{}">"#, Esc(l.severity));
    for (k, n) in sev.iter().enumerate() {
        if *n > 0 {
            let _ = write!(
                h,
                r#"<span style="width:{:.3}%;background:{}" title="{} {n}"></span>"#,
                *n as f64 * 100.0 / total as f64,
                SEVERITY_COLOURS[k],
                Esc(l.severities[k])
            );
        }
    }
    h.push_str(r#"</div><div class="sevs">"#);
    for (k, n) in sev.iter().enumerate() {
        let _ = write!(
            h,
            r#"<div class="sev" data-severity="{}" style="border-color:{}"><div class="n">{n}</div><div class="k">{}</div></div>"#,
            SEVERITY_ORDER[k].as_str(),
            SEVERITY_COLOURS[k],
            Esc(l.severities[k])
        );
    }
    h.push_str("</div>");
    if f.is_empty() {
        let _ = write!(
            h,
            r#"<div class="empty-state" id="no-exposure"><div class="big">{}</div><p>{}</p></div>"#,
            Esc(l.no_exposure),
            Esc(l.no_exposure_detail)
        );
    }
    h.push_str("</section>\n");
}

fn charts_section(h: &mut String, r: &Report, l: &Labels) {
    let legend = {
        let mut s = String::from(r#"<div class="legend-row">"#);
        for (k, name) in l.severities.iter().enumerate() {
            let _ = write!(s, r#"<span><i style="background:{}"></i>{}</span>"#, SEVERITY_COLOURS[k], Esc(name));
        }
        s.push_str("</div>");
        s
    };
    h.push_str(r#"<div class="charts">"#);
    let district = bars_by(&r.findings, |f| &f.district, l.other);
    let protocol = bars_by(&r.findings, |f| &f.protocol, l.other);
    for (id, title, bars) in [("chart-district", l.by_district, district), ("chart-protocol", l.by_protocol, protocol)]
    {
        let svg = charts::stacked_bars(id, title, l.axis_findings, &bars, l.no_exposure, &l.severities);
        let _ = write!(h, r#"<section class="panel"><h2>{}</h2>{legend}{svg}</section>"#, Esc(title));
    }
    h.push_str("</div>\n");
    let svg = charts::trend("chart-trend", l.trend, [l.open_services, l.ics_findings], l.axis_scans, &r.trend);
    let _ = writeln!(
        h,
        r#"<section class="panel" id="trend" style="margin-top:20px"><h2>{}</h2><p class="note">{}</p>{svg}</section>"#,
        Esc(l.trend),
        Esc(l.trend_note)
    );
}

fn severity_pill(s: Severity, l: &Labels) -> String {
    format!(r#"<span class="pill sev-{}">{}</span>"#, s.as_str(), Esc(l.severity(s)))
}

/// The protocol, with the honeypot marker (its reason as the tooltip) when the finding shows a persona.
fn protocol_cell(f: &Finding, l: &Labels) -> String {
    let protocol = Esc(&f.protocol).to_string();
    match f.attributes.get(crate::fingerprints::HONEYPOT_ATTRIBUTE) {
        Some(mark) => {
            let name = mark.get("name").and_then(Value::as_str).unwrap_or_default();
            let reason = mark.get("reason").and_then(Value::as_str).unwrap_or_default();
            format!(r#"{protocol} <span class="hp" title="{}">{} {}</span>"#, Esc(reason), Esc(l.honeypot), Esc(name))
        }
        None => protocol,
    }
}

fn change_tag(c: Change, l: &Labels) -> String {
    format!(r#"<span class="chg chg-{}">{}</span>"#, c.as_str(), Esc(l.change(c)))
}

fn service(f: &Finding) -> String {
    let ip = match f.ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    format!("{ip}:{}/{}", f.port, f.transport.as_str())
}

fn changes_section(h: &mut String, r: &Report, l: &Labels) {
    let _ = write!(h, r#"<section class="panel" id="changes"><h2>{}</h2><p class="note">"#, Esc(l.changes_title));
    match &r.previous {
        Some(p) => {
            let _ = write!(
                h,
                "{} {} #{} ({})",
                Esc(l.compared_with),
                Esc(l.scan),
                p.id,
                Esc(&show_time(&p.start.started_at))
            );
            if r.not_covered > 0 {
                let _ = write!(h, " · {} {}", r.not_covered, Esc(l.not_covered));
            }
        }
        None => h.push_str(&Esc(l.changes_against_history).to_string()),
    }
    h.push_str(r#"</p><div class="counts">"#);
    for c in [Change::New, Change::Changed, Change::Gone] {
        let n = r.changes.iter().filter(|x| x.status == c).count();
        let _ = write!(h, r#"<span class="chg chg-{}" data-count="{n}">{} {n}</span>"#, c.as_str(), Esc(l.change(c)));
    }
    h.push_str("</div>");
    if r.changes.is_empty() {
        let _ = write!(h, r#"<p class="note" id="no-changes">{}</p></section>"#, Esc(l.no_changes));
        h.push('\n');
        return;
    }
    let _ = write!(
        h,
        r#"<table id="changes-table"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        Esc(l.change),
        Esc(l.severity),
        Esc(l.district),
        Esc(l.enterprise),
        Esc(l.address),
        Esc(l.protocol),
        Esc(&format!("{} / {} / {}", l.vendor, l.product, l.version)),
        Esc(l.what_changed)
    );
    for row in &r.changes {
        let f = &row.finding;
        let mut what = String::from(r#"<ul class="what">"#);
        for (name, before, after) in &row.changed {
            let _ = match before {
                Some(_) => write!(
                    what,
                    r#"<li><code>{}</code>: <del>{}</del> → <ins>{}</ins></li>"#,
                    Esc(name),
                    Esc(&show_value(before)),
                    Esc(&show_value(after))
                ),
                None => write!(what, r#"<li><code>{}</code>: <ins>{}</ins></li>"#, Esc(name), Esc(&show_value(after))),
            };
        }
        if row.status == Change::Gone {
            let _ = write!(what, "<li>{} {}</li>", Esc(l.last_seen), Esc(&show_time(&f.observed_at)));
        }
        what.push_str("</ul>");
        if what == r#"<ul class="what"></ul>"# {
            what.clear();
        }
        let identity = [opt(&f.vendor), opt(&f.product), opt(&f.version)].join(" / ");
        let _ = write!(
            h,
            r#"<tr class="{}" data-change="{}"><td>{}</td><td>{}</td><td class="nowrap">{}</td><td class="ent">{}</td><td class="mono nowrap">{}</td><td class="nowrap">{}</td><td>{}</td><td>{what}</td></tr>"#,
            row.status.as_str(),
            row.status.as_str(),
            change_tag(row.status, l),
            severity_pill(f.severity, l),
            Esc(&f.district),
            Esc(&f.enterprise),
            Esc(&service(f)),
            protocol_cell(f, l),
            Esc(&identity)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn notices_section(h: &mut String, r: &Report, l: &Labels) {
    if r.notices.is_empty() {
        return;
    }
    let _ = write!(
        h,
        r#"<section class="panel" id="notices"><h2>{} <span class="note">({})</span></h2><p class="note">{}</p><table><thead><tr>"#,
        Esc(l.notices_title),
        r.notices.len(),
        Esc(l.notices_note)
    );
    for c in [l.notice, l.enterprise, l.notice_issued, l.notice_items, l.notice_deadline] {
        let _ = write!(h, "<th>{}</th>", Esc(c));
    }
    h.push_str("</tr></thead><tbody>");
    for n in &r.notices {
        let enterprises: BTreeSet<String> =
            n.items.iter().map(|i| format!("{} {}", i.enterprise_id, i.enterprise)).collect();
        let mut states: BTreeMap<&str, usize> = BTreeMap::new();
        for i in &n.items {
            *states.entry(i.state.as_str()).or_default() += 1;
        }
        let states: Vec<String> = states.iter().map(|(s, c)| format!("{c} {s}")).collect();
        let deadline = n.items.iter().filter_map(|i| i.deadline.as_deref()).min().map(short_day).unwrap_or("-");
        let overdue = n.items.iter().filter(|i| crate::notices::item_overdue(i, &r.now)).count();
        let overdue = if overdue > 0 {
            format!(r#" <span class="chg chg-gone">{} {overdue}</span>"#, Esc(l.overdue))
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{overdue}</td></tr>",
            Esc(&n.number),
            Esc(&enterprises.into_iter().collect::<Vec<_>>().join(", ")),
            Esc(short_day(&n.issued_at)),
            Esc(&states.join(", ")),
            Esc(deadline)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn short_day(t: &str) -> &str {
    t.get(..10).unwrap_or(t)
}

fn findings_section(h: &mut String, r: &Report, l: &Labels) {
    let _ = write!(
        h,
        r#"<section class="panel findings" id="findings"><h2>{} <span class="note">({})</span></h2>"#,
        Esc(l.all_findings),
        r.findings.len()
    );
    if r.findings.is_empty() {
        let _ = writeln!(h, r#"<p class="note">{}</p></section>"#, Esc(l.no_exposure));
        return;
    }
    let _ = write!(h, r#"<table id="findings-table"><thead><tr><th class="num">#</th>"#);
    for c in [
        l.district,
        l.enterprise,
        l.level,
        l.address,
        l.protocol,
        l.vendor,
        l.product,
        l.version,
        l.severity,
        l.change,
        l.first_seen,
        l.observed,
    ] {
        let _ = write!(h, "<th>{}</th>", Esc(c));
    }
    h.push_str("</tr></thead><tbody>");
    for (i, f) in r.findings.iter().enumerate() {
        let k = key(f);
        let change = r.status.get(&k).map(|c| change_tag(*c, l)).unwrap_or_else(|| "—".into());
        let first = r.first_seen.get(&k).map(|t| show_date(t)).unwrap_or_else(|| "—".into());
        let _ = write!(
            h,
            r#"<tr data-severity="{}"><td class="num">{}</td><td class="nowrap">{}</td><td class="ent">{}</td><td class="nowrap">{}</td><td class="mono nowrap">{}</td><td class="nowrap">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{change}</td><td class="nowrap">{}</td><td class="nowrap">{}</td></tr>"#,
            f.severity.as_str(),
            i + 1,
            Esc(&f.district),
            Esc(&f.enterprise),
            Esc(l.level(f.level)),
            Esc(&service(f)),
            protocol_cell(f, l),
            Esc(opt(&f.vendor)),
            Esc(opt(&f.product)),
            Esc(opt(&f.version)),
            severity_pill(f.severity, l),
            Esc(&first),
            Esc(&show_date(&f.observed_at))
        );
    }
    h.push_str("</tbody></table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        let l = &labels::EN;
        assert_eq!(show_duration("2024-05-01T08:00:00Z", "2024-05-01T09:02:05Z", l).unwrap(), "1 h 02 min");
        assert_eq!(show_duration("2024-05-01T08:00:00Z", "2024-05-01T08:03:20Z", l).unwrap(), "3 min 20 s");
        assert_eq!(show_time("2024-05-01T08:00:00.123+08:00"), "2024-05-01 00:00:00 UTC");
        assert_eq!(show_time("not a time"), "not a time");
    }
}
