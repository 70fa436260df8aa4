//! The HTML report: a history of scans recorded straight through the Store (no network) renders to
//! one self-contained page with the expected charts, changes and rows, in English and Chinese, with
//! hostile names escaped; headless Chromium renders it to a DOM with the charts and a screenshot
//! that is not blank.

use otscope::findings::{Finding, Severity};
use otscope::history::diff;
use otscope::html::escape;
use otscope::ledger::Level;
use otscope::report::{render, Lang};
use otscope::scope::PortSpec;
use otscope::scope::Transport;
use otscope::store::{ScanClose, ScanStart, SqliteStore, Store};
use otscope::targets::{Coverage, Shard};
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOSTILE: &str = r#"<b>"A&B's"</b> 精密制造"#;

/// (id, name, district, level)
const ENTERPRISES: [(&str, &str, &str, Level); 4] = [
    ("E1", "一号水厂", "浦东新区", Level::Important),
    ("E2", "二号电厂", "闵行区", Level::General),
    ("E3", HOSTILE, "嘉定区", Level::Important),
    ("E4", "三号燃气", "浦东新区", Level::General),
];

/// One service of the lab: last octet, port, transport, protocol, ics, enterprise, severity, vendor,
/// product, version.
#[derive(Clone, Copy)]
struct Svc(u8, u16, Transport, &'static str, bool, &'static str, Severity, &'static str, &'static str, &'static str);

use Severity::*;
use Transport::{Tcp, Udp};

const S1: Svc = Svc(1, 502, Tcp, "modbus", true, "E1", Critical, "Schneider Electric", "BMX P34 2020", "2.0");
const S2: Svc = Svc(2, 102, Tcp, "s7comm", true, "E1", Critical, "Siemens", "S7-1200", "4.2");
const S2B: Svc = Svc(2, 102, Tcp, "s7comm", true, "E1", Critical, "Siemens", "S7-1200", "4.4");
const S3: Svc = Svc(3, 4840, Tcp, "opcua", true, "E2", High, "Unified Automation", "UaServer", "1.6");
const S4: Svc = Svc(4, 161, Udp, "snmp", false, "E2", Medium, "net-snmp", "", "");
const S5: Svc = Svc(5, 44818, Tcp, "enip", true, "E3", Critical, "Rockwell Automation", "1756-L71", "20.11");
const S5B: Svc = Svc(5, 44818, Tcp, "enip", true, "E3", Critical, "Rockwell Automation", "1756-L71", "21.11");
const S6: Svc = Svc(6, 22, Tcp, "ssh", false, "E4", Low, "OpenBSD", "OpenSSH", "8.4");
const S7: Svc = Svc(7, 8080, Tcp, "unknown", false, "E4", Info, "", "", "");
const S8: Svc = Svc(8, 502, Tcp, "modbus", true, "E3", Critical, "Schneider Electric", "M221", "1.5");
const S9: Svc = Svc(9, 47808, Udp, "bacnet", true, "E2", High, "Johnson Controls", "NAE55", "9.0");
const S10: Svc = Svc(10, 1883, Tcp, "mqtt", false, "E1", High, "", "Mosquitto", "2.0.15");
const S11: Svc = Svc(11, 161, Udp, "snmp", false, "E3", Medium, "net-snmp", "", "5.9");
const S12: Svc = Svc(12, 22, Tcp, "ssh", false, "E1", Low, "OpenBSD", "OpenSSH", "9.2");

fn ip(octet: u8) -> IpAddr {
    format!("127.118.0.{octet}").parse().unwrap()
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn finding(s: Svc, at: &str) -> Finding {
    let Svc(octet, port, transport, protocol, ics, ent, severity, vendor, product, version) = s;
    let (enterprise_id, enterprise, district, level) = *ENTERPRISES.iter().find(|e| e.0 == ent).unwrap();
    let mut attributes = Map::new();
    if protocol == "mqtt" {
        attributes.insert("anonymous".into(), Value::Bool(true));
    }
    Finding {
        ip: ip(octet),
        port,
        transport,
        protocol: protocol.into(),
        ics,
        vendor: some(vendor),
        product: some(product),
        version: some(version),
        device_type: None,
        cpe: None,
        tags: Vec::new(),
        attributes,
        hostname: None,
        enterprise_id: enterprise_id.into(),
        enterprise: enterprise.into(),
        district: district.into(),
        level,
        severity,
        rule: None,
        evidence: String::new(),
        observed_at: at.into(),
        change: None,
        changed: Vec::new(),
    }
}

const ALL_PORTS: [(u16, Transport); 9] =
    [(502, Tcp), (102, Tcp), (4840, Tcp), (161, Udp), (44818, Tcp), (22, Tcp), (8080, Tcp), (47808, Udp), (1883, Tcp)];

fn start(at: &str, selection: Value, spans: (u8, u8), ports: &[(u16, Transport)]) -> ScanStart {
    let coverage = Coverage {
        spans: vec![(ip(spans.0), ip(spans.1))],
        ports: ports.iter().map(|&(port, transport)| PortSpec { port, transport }).collect(),
        shard: Shard { index: 1, count: 1 },
        seed: 7,
    };
    let targets_total = (spans.1 - spans.0 + 1) as u64 * ports.len() as u64;
    ScanStart {
        started_at: at.into(),
        ledger_path: "ledger/上海-2024.csv".into(),
        ledger_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        library_version: "2024.05".into(),
        selection,
        parameters: json!({}),
        coverage,
        targets_total,
        kind: "scan".into(),
        runner: None,
    }
}

fn everything() -> Value {
    json!({"levels": [], "districts": [], "enterprises": []})
}

/// Records one scan with these services; returns its id.
fn record(store: &mut SqliteStore, s: ScanStart, services: &[Svc], ended: &str, completed: bool) -> i64 {
    let id = store.begin_scan(&s).unwrap();
    let at = s.started_at.replace(":00:00Z", ":10:00Z");
    for svc in services {
        store.record(id, &mut finding(*svc, &at)).unwrap();
    }
    let probed = if completed { s.targets_total } else { s.targets_total / 2 };
    store.finish_scan(id, ScanClose { probed, completed, reason: None }, ended).unwrap();
    id
}

/// Scans 1, 2 and 4 of every object, 3 of E1 alone, 5 interrupted. Between 1 and 2: s2's firmware
/// changes, s6 goes, s8 appears. Between 2 and 4: s5's firmware changes, s4 goes, s9 and s10 appear.
fn lab(db: &Path) -> SqliteStore {
    let mut store = SqliteStore::open(db).unwrap();
    let first = [S1, S2, S3, S4, S5, S6, S7, S11, S12];
    let a = record(
        &mut store,
        start("2024-05-01T08:00:00Z", everything(), (1, 12), &ALL_PORTS),
        &first,
        "2024-05-01T08:41:07Z",
        true,
    );
    let second = [S1, S2B, S3, S4, S5, S7, S8, S11, S12];
    let b = record(
        &mut store,
        start("2024-05-08T08:00:00Z", everything(), (1, 12), &ALL_PORTS),
        &second,
        "2024-05-08T08:39:52Z",
        true,
    );
    let only_e1 = start(
        "2024-05-10T08:00:00Z",
        json!({"levels": [], "districts": [], "enterprises": ["E1"]}),
        (1, 2),
        &ALL_PORTS[..2],
    );
    let c = record(&mut store, only_e1, &[S1, S2B], "2024-05-10T08:01:00Z", true);
    let fourth = [S1, S2B, S3, S5B, S7, S8, S9, S10, S11, S12];
    let d = record(
        &mut store,
        start("2024-05-15T08:00:00Z", everything(), (1, 12), &ALL_PORTS),
        &fourth,
        "2024-05-15T09:02:05Z",
        true,
    );
    let e = record(
        &mut store,
        start("2024-05-22T08:00:00Z", everything(), (1, 12), &ALL_PORTS),
        &[S1, S3],
        "2024-05-22T08:05:00Z",
        false,
    );
    assert_eq!((a, b, c, d, e), (1, 2, 3, 4, 5));
    store
}

/// The text of the first element `<tag id="id" ...>...</tag>` (not nested in itself).
fn element<'a>(html: &'a str, tag: &str, id: &str) -> &'a str {
    let at = html.find(&format!(" id=\"{id}\"")).unwrap_or_else(|| panic!("no <{tag} id={id}> in the page"));
    let start = html[..at].rfind(&format!("<{tag}")).unwrap_or_else(|| panic!("no <{tag} id={id}> in the page"));
    assert!(!html[start..at].contains('>'), "id={id} is not on a <{tag}>");
    let close = format!("</{tag}>");
    let end = html[start..].find(&close).unwrap_or_else(|| panic!("<{tag} id={id}> is not closed")) + start;
    &html[start..end + close.len()]
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The bars of a chart: (label, total, segments).
fn bars(svg: &str) -> Vec<(String, usize, usize)> {
    svg.split("<g class=\"bar\"")
        .skip(1)
        .map(|g| {
            let g = &g[..g.find("</g>").unwrap()];
            let attr = |name: &str| {
                let at = g.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                g[at..at + g[at..].find('"').unwrap()].to_string()
            };
            (attr("data-label"), attr("data-total").parse().unwrap(), count(g, "<rect class=\"seg\""))
        })
        .collect()
}

fn assert_self_contained(html: &str) {
    for banned in
        ["http://", "https://", "<script", "src=", "url(", "@import", "@font-face", "<link", "<iframe", "<img"]
    {
        assert!(!html.to_lowercase().contains(banned), "the page must not contain {banned:?}");
    }
    for (i, _) in html.match_indices("href=") {
        assert!(html[i..].starts_with("href=\"#"), "an href leaves the page: {}", &html[i..i + 40]);
    }
}

#[test]
fn the_report_shows_totals_charts_changes_and_every_finding() {
    let dir = tempfile::tempdir().unwrap();
    let store = lab(&dir.path().join("h.db"));
    let html = render(&store, &[], 4, Lang::En).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert_self_contained(&html);

    // Header: the scan, its window, ledger, state and coverage.
    for text in [
        "Scan #4",
        "Completed",
        "2024-05-15 08:00:00 UTC",
        "2024-05-15 09:02:05 UTC",
        "1 h 02 min",
        "ledger/上海-2024.csv",
        "9f86d081884c",
        "addresses: 12 · ports: 9 (22/tcp,102/tcp,502/tcp,1883/tcp,4840/tcp,8080/tcp,44818/tcp,161/udp,47808/udp)",
        "targets: 108 · probed: 108 ✓",
        "Compared with",
        "Scan #2 (2024-05-08 08:00:00 UTC)",
    ] {
        assert!(html.contains(text), "missing {text:?}");
    }

    // Totals and severities: 10 findings, 4 critical, 3 high, 1 medium, 1 low, 1 info; 6 ICS, 4 enterprises.
    let summary = element(&html, "section", "summary");
    for (severity, n) in [("critical", 4), ("high", 3), ("medium", 1), ("low", 1), ("info", 1)] {
        assert!(summary.contains(&format!(r#"data-severity="{severity}""#)), "{severity}");
        let at = summary.find(&format!(r#"data-severity="{severity}""#)).unwrap();
        assert!(summary[at..].contains(&format!(r#"<div class="n">{n}</div>"#)), "{severity} {n}");
    }
    assert!(
        summary.contains(
            r#"<div class="n">10</div><div class="k">Findings</div><div class="delta">▲ +1 vs scan #2</div>"#
        ),
        "{summary}"
    );
    assert!(summary.contains(r#"<div class="n">6</div><div class="k">ICS services</div>"#));
    assert!(summary.contains(r#"<div class="n">4</div><div class="k">Enterprises</div>"#));
    assert!(!html.contains("No exposure found"));

    // By district: three bars stacked by severity, biggest first.
    let district = element(&html, "svg", "chart-district");
    assert!(district.contains("<title id=\"chart-district-t\">Findings by district</title>"));
    assert_eq!(
        bars(district),
        vec![("浦东新区".into(), 5, 4), ("嘉定区".into(), 3, 2), ("闵行区".into(), 2, 1)],
        "{district}"
    );
    // By protocol: nine protocols, modbus (2) first.
    let protocol = element(&html, "svg", "chart-protocol");
    let p = bars(protocol);
    assert_eq!(p.len(), 9, "{protocol}");
    assert_eq!(p[0], ("modbus".into(), 2, 1));
    assert_eq!(p.iter().map(|b| b.1).sum::<usize>(), 10);

    // Trend: completed scans of the same objects (1, 2 and this one); not scan 3 (E1 only) nor 5 (partial, later).
    let trend = element(&html, "svg", "chart-trend");
    assert_eq!(count(trend, "<polyline"), 2);
    assert_eq!(count(trend, "<circle class=\"point\""), 6);
    for id in ["#1", "#2", "#4"] {
        assert!(trend.contains(&format!(">{id}</text>")), "{id}");
    }
    assert!(!trend.contains(">#3<") && !trend.contains(">#5<"));
    assert!(trend.contains("#1 05-01: Open services 9") && trend.contains("#2 05-08: ICS findings 5"));
    assert!(trend.contains("#4 05-15: Open services 10") && trend.contains("#4 05-15: ICS findings 6"));

    // New and changed first: new s9 and s10, changed s5 with its old and new firmware, gone s4.
    let changes = element(&html, "table", "changes-table");
    let rows: Vec<(&str, &str)> =
        changes.split("<tr class=\"").skip(1).map(|r| (&r[..r.find('"').unwrap()], r)).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.0).collect();
    assert_eq!(statuses, ["new", "new", "changed", "gone"]);
    assert!(rows[0].1.contains("127.118.0.10:1883/tcp") && rows[0].1.contains("mqtt"), "{}", rows[0].1);
    assert!(rows[1].1.contains("127.118.0.9:47808/udp") && rows[1].1.contains("bacnet"));
    assert!(rows[2].1.contains("127.118.0.5:44818/tcp"));
    assert!(rows[2].1.contains("<code>version</code>: <del>20.11</del> → <ins>21.11</ins>"), "{}", rows[2].1);
    assert!(rows[3].1.contains("127.118.0.4:161/udp") && rows[3].1.contains("last seen 2024-05-08 08:10:00 UTC"));
    assert!(html.find("id=\"changes\"").unwrap() < html.find("id=\"findings\"").unwrap());
    // The same diff as `otscope diff`.
    let d = diff(&store, 2, 4).unwrap();
    assert_eq!(d.entries.iter().filter(|e| e.status != otscope::findings::Change::Persisting).count(), 4);

    // Every finding, most severe first, with its change and first sighting.
    let table = element(&html, "table", "findings-table");
    assert_eq!(count(table, "<tr data-severity="), 10);
    let first_row = &table[table.find("<tr data-severity=").unwrap()..];
    assert!(first_row.starts_with("<tr data-severity=\"critical\""));
    for text in ["一号水厂", "二号电厂", "三号燃气", "Rockwell Automation", "1756-L71", "21.11", "Important", "General"]
    {
        assert!(table.contains(text), "missing {text:?}");
    }
    // s2 was first seen in scan 1 and changed in scan 2, so persisting against scan 2.
    let s2 = &table[table.find("127.118.0.2:102/tcp").unwrap()..];
    let s2 = &s2[..s2.find("</tr>").unwrap()];
    assert!(s2.contains("chg-persisting") && s2.contains("2024-05-01"), "{s2}");

    // The hostile enterprise name is text, never markup.
    assert!(!html.contains(HOSTILE) && !html.contains("<b>"));
    assert!(html.contains(&escape(HOSTILE)));
    assert!(table.contains("&lt;b&gt;&quot;A&amp;B&#39;s&quot;&lt;/b&gt; 精密制造"));
}

#[test]
fn the_chinese_report_has_every_label_in_chinese() {
    let dir = tempfile::tempdir().unwrap();
    let store = lab(&dir.path().join("h.db"));
    let en = render(&store, &[], 4, Lang::En).unwrap();
    let zh = render(&store, &[], 4, Lang::Zh).unwrap();
    assert_self_contained(&zh);
    assert!(zh.contains(r#"<html lang="zh-CN">"#));
    for label in [
        "工控系统暴露面报告",
        "严重程度",
        "区县",
        "协议",
        "新增",
        "变化",
        "消失",
        "趋势",
        "各区县发现",
        "各协议发现",
        "全部发现",
        "严重",
        "高危",
        "中危",
        "低危",
        "已完成",
        "首次发现",
        "重点",
        "一般",
        "台账",
    ] {
        assert!(zh.contains(label), "missing {label:?}");
    }
    for english in
        ["Findings by district", "New and changed", "Severity", "Completed", "Critical", ">District<", "Trend"]
    {
        assert!(!zh.contains(english), "untranslated {english:?}");
        assert!(en.contains(english), "{english:?}");
    }
    // Data is unchanged: the same bars and rows.
    assert_eq!(bars(element(&zh, "svg", "chart-district")), bars(element(&en, "svg", "chart-district")));
    assert_eq!(count(&zh, "<tr data-severity="), 10);
    assert!(zh.contains("浦东新区") && zh.contains("&lt;b&gt;&quot;A&amp;B&#39;s&quot;&lt;/b&gt; 精密制造"));
}

#[test]
fn a_partial_scan_and_an_empty_scan_render() {
    let dir = tempfile::tempdir().unwrap();
    let store = lab(&dir.path().join("h.db"));
    let html = render(&store, &[], 5, Lang::En).unwrap();
    assert!(html.contains(r#"<span class="state partial">Partial</span>"#));
    assert_eq!(bars(element(&html, "svg", "chart-district")).len(), 2);
    let trend = element(&html, "svg", "chart-trend");
    assert_eq!(count(trend, "<circle class=\"point\""), 8, "scans 1, 2, 4 and this one");
    // Partial: nothing is claimed gone.
    assert!(!html.contains("data-change=\"gone\""));
    assert!(render(&store, &[], 42, Lang::En).unwrap_err().to_string().contains("no scan with id 42"));

    let mut empty = SqliteStore::open(&dir.path().join("empty.db")).unwrap();
    let id = record(
        &mut empty,
        start("2024-06-01T08:00:00Z", everything(), (1, 12), &ALL_PORTS),
        &[],
        "2024-06-01T08:20:00Z",
        true,
    );
    for (lang, text) in [(Lang::En, "No exposure found"), (Lang::Zh, "未发现暴露")] {
        let html = render(&empty, &[], id, lang).unwrap();
        assert_self_contained(&html);
        assert!(element(&html, "div", "no-exposure").contains(text));
        for chart in ["chart-district", "chart-protocol"] {
            let svg = element(&html, "svg", chart);
            assert!(bars(svg).is_empty());
            assert!(svg.contains(r#"<text class="empty""#) && svg.contains(text), "{svg}");
            assert!(svg.contains("<line class=\"axis\""));
        }
        assert_eq!(count(element(&html, "svg", "chart-trend"), "<circle class=\"point\""), 2);
        assert!(!html.contains("findings-table"));
    }
}

// ---- Headless Chromium ----

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: the report test renders the page in headless Chromium (Debian: apt-get install chromium; \
         .ci/run installs it)",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `extra` arguments, stdout to `stdout`, killed after 60 s.
fn run_chromium(page: &Path, profile: &Path, extra: &[String], stdout: &Path) {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(std::fs::File::create(stdout.with_extension("stderr")).unwrap())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = std::fs::read_to_string(stdout.with_extension("stderr")).unwrap_or_default();
            assert!(status.success(), "chromium failed ({status}): {stderr}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn close_to(p: &[u8], hex: &str) -> bool {
    let c: Vec<u8> = (0..3).map(|i| u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap()).collect();
    p.iter().zip(&c).all(|(a, b)| a.abs_diff(*b) <= 4)
}

#[test]
fn chromium_renders_the_charts_and_a_screenshot_that_is_not_blank() {
    let dir = tempfile::tempdir().unwrap();
    let store = lab(&dir.path().join("h.db"));
    let page = dir.path().join("report.html");
    std::fs::write(&page, render(&store, &[], 4, Lang::Zh).unwrap()).unwrap();

    // The DOM as Chromium parsed it: charts with their bars, texts, and the hostile name as text.
    let dom_file = dir.path().join("dom.html");
    run_chromium(&page, &dir.path().join("profile-dom"), &["--dump-dom".into()], &dom_file);
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    let district = element(&dom, "svg", "chart-district");
    assert_eq!(count(district, "<g class=\"bar\""), 3, "{district}");
    assert_eq!(count(district, "<rect class=\"seg\""), 7);
    assert_eq!(count(element(&dom, "svg", "chart-protocol"), "<rect class=\"seg\""), 9);
    let trend = element(&dom, "svg", "chart-trend");
    assert_eq!((count(trend, "<polyline"), count(trend, "<circle class=\"point\"")), (2, 6));
    for text in ["各区县发现", "浦东新区", "闵行区", "嘉定区", "新增和变化的暴露", "1756-L71"] {
        assert!(dom.contains(text), "the rendered page lacks {text:?}");
    }
    assert!(dom.contains("&lt;b&gt;\"A&amp;B's\"&lt;/b&gt; 精密制造"), "the hostile name must stay text");
    assert!(!dom.contains("<b>"));
    assert_eq!(count(&dom, "<tr data-severity="), 10);

    // The screenshot: the charts' severity colours are painted and the page is far from blank.
    let shot = dir.path().join("report.png");
    run_chromium(
        &page,
        &dir.path().join("profile-shot"),
        &[format!("--screenshot={}", shot.display())],
        &dir.path().join("shot.out"),
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("chromium wrote the screenshot"));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1280, 2000));
    let channels = info.color_type.samples();
    assert!(channels >= 3 && info.bit_depth == png::BitDepth::Eight, "{:?} {:?}", info.color_type, info.bit_depth);
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let non_white = pixels.iter().filter(|p| p[..3].iter().any(|c| *c < 240)).count();
    assert!(non_white > pixels.len() / 4, "the page is mostly blank: {non_white} of {} pixels", pixels.len());
    let distinct: std::collections::HashSet<[u8; 3]> = pixels.iter().map(|p| [p[0], p[1], p[2]]).collect();
    assert!(distinct.len() > 200, "only {} colours: text and charts are missing", distinct.len());
    // Each severity colour fills a visible area (a chart bar, a card, a pill).
    for (name, colour) in [("critical", "#8b1a1a"), ("high", "#e0531f"), ("medium", "#f0a202"), ("low", "#2f6fd0")] {
        let n = pixels.iter().filter(|p| close_to(p, colour)).count();
        assert!(n > 500, "the {name} colour {colour} covers only {n} pixels");
    }
    if let Some(keep) = std::env::var_os("OTSCOPE_REPORT_ARTIFACTS") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join("report-zh.html")).unwrap();
        std::fs::copy(&shot, keep.join("report-zh.png")).unwrap();
        std::fs::write(keep.join("report-en.html"), render(&store, &[], 4, Lang::En).unwrap()).unwrap();
    }
}
