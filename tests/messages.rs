//! Messages a person reads: DNS failures in plain words, the event report quiet on the terminal and
//! punctuated in Chinese as Chinese is, an empty event list that says so, a missing fingerprint
//! library named with the option that gives it.

mod common;

use common::{
    banner_device, firmware_library, ledger, otscope_in, otscope_in_blocking, output_text, udp_device, Handler, FAST,
};

/// A DNS server that answers every query with no record and the response code `rcode`.
fn dns_answering(rcode: u8) -> Handler {
    Box::new(move |q: &[u8]| {
        // The header (id, flags), one question echoed, no answer.
        let question_end = 12 + q.get(12..)?.iter().position(|&b| b == 0)? + 5;
        let mut reply = q.get(..2)?.to_vec();
        reply.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, 0, 0, 0, 0, 0]);
        reply.extend_from_slice(q.get(12..question_end)?);
        Some(reply)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_failures_are_told_in_plain_words() {
    let (dir, ledger) = ledger("E1,工厂,浦东新区,water,important,127.127.85.100;plc.factory.lan,c\n");
    let lib = firmware_library(dir.path());
    let (l, f) = (ledger.to_str().unwrap(), lib.to_str().unwrap());
    for (i, rcode, why) in [
        (1, 3, "no such name (the DNS server 127.127.85.1:5300 says it does not exist)"),
        (2, 2, "the DNS server 127.127.85.2:5300 could not answer (server failure)"),
        (3, 5, "the DNS server 127.127.85.3:5300 refused to answer"),
        (4, 0, "the DNS server 127.127.85.4:5300 has no address (A or AAAA record) for it"),
    ] {
        let server = format!("127.127.85.{i}:5300");
        let _dns = udp_device(&server, || dns_answering(rcode)).await;
        let args = ["scan", "--targets", l, "--fingerprints", f, "--ports", "2222", "--dry-run", "--resolver", &server];
        let o = otscope_in_blocking(dir.path(), &args).await;
        let out = output_text(&o);
        assert!(o.status.success(), "{out}");
        let told = format!("unresolved (not scanned): {l}:2: plc.factory.lan: {why}");
        assert!(out.contains(&told), "{told:?} in {out}");
        assert!(!out.contains("Query {") && !out.contains("DNS error"), "no resolver internals: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_report_is_quiet_on_the_terminal_and_chinese_is_punctuated_as_chinese() {
    let (dir, ledger) = ledger("I1,重点水厂,浦东新区,water,important,127.127.86.1,c\n");
    let lib = firmware_library(dir.path());
    let (l, f) = (ledger.to_str().unwrap().to_string(), lib.to_str().unwrap().to_string());
    let plc = banner_device("127.127.86.1:2222", Some(b"FW 1.0\r\n")).await;
    let o = otscope_in(dir.path(), &["event", "list", "--db", "h.db"]);
    assert_eq!(o.status.code(), Some(2), "no history yet: {}", output_text(&o));
    let mut start = vec!["event", "start", "expo", "--targets", &l, "--fingerprints", &f, "--ports", "2222"];
    start.extend(["--level", "important", "--db", "h.db"]);
    start.extend(FAST);
    // A history without events says so (a scan creates the history, not an event).
    let mut scan = vec!["scan", "--targets", &l, "--fingerprints", &f, "--ports", "2222", "--db", "h.db"];
    scan.extend(FAST);
    assert!(otscope_in_blocking(dir.path(), &scan).await.status.success());
    let o = otscope_in(dir.path(), &["event", "list", "--db", "h.db"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "(no events yet: `otscope event start NAME` opens one)\n");

    assert!(otscope_in_blocking(dir.path(), &start).await.status.success());
    let mut check = vec!["event", "check", "expo", "--db", "h.db"];
    check.extend(FAST);
    assert_eq!(otscope_in_blocking(dir.path(), &check).await.status.code(), Some(0));

    let o = otscope_in(dir.path(), &["event", "report", "expo", "--out", "r.md", "--lang", "zh", "--db", "h.db"]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "nothing on standard error: the report is in its file");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "event expo: report written to r.md: no new exposure and no change\n",
        "one line saying where"
    );
    let zero = std::fs::read_to_string(dir.path().join("r.md")).unwrap();
    for want in ["时间窗口：", " 至 ", "（基线扫描 2）\n", "保障范围——重要程度：重要；区县：全部；企业：全部\n"]
    {
        assert!(zero.contains(want), "{want:?} in {zero}");
    }
    for want in ["- 端口数：1（2222/tcp）\n", "  - 扫描 3：", "，1 个目标已探测，1 个地址\n", "无新增暴露，无变化。\n"]
    {
        assert!(zero.contains(want), "{want:?} in {zero}");
    }
    assert_ascii_punctuation_free(&zero);

    // Drift, in Chinese: counts and the change told with Chinese punctuation too.
    plc.stop().await;
    let _plc = banner_device("127.127.86.1:2222", Some(b"FW 1.1\r\n")).await;
    assert_eq!(otscope_in_blocking(dir.path(), &check).await.status.code(), Some(3));
    let o = otscope_in(dir.path(), &["event", "report", "expo", "--out", "r.md", "--lang", "zh", "--db", "h.db"]);
    assert_eq!(o.status.code(), Some(3), "{}", output_text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    let drift = std::fs::read_to_string(dir.path().join("r.md")).unwrap();
    assert!(drift.contains("相对基线的变化：新增 0，变化 1，消失 0。\n"), "{drift}");
    assert!(drift.contains("1.1——I1 重点水厂（浦东新区，重要）——扫描 "), "{drift}");
    assert!(drift.contains("（变化前：version：\"1.0\"）"), "{drift}");
    assert_ascii_punctuation_free(&drift);

    // English keeps English punctuation.
    let o = otscope_in(dir.path(), &["event", "report", "expo", "--out", "r.md", "--db", "h.db"]);
    assert_eq!(o.status.code(), Some(3));
    let en = std::fs::read_to_string(dir.path().join("r.md")).unwrap();
    assert!(en.contains("Drift from the baseline: 0 new, 1 changed, 0 gone.\n"), "{en}");
    assert!(en.contains("Selection — level: important; districts: all; enterprises: all\n"), "{en}");
}

/// No ASCII separator where Chinese text goes on: `: `, `, `, `; `, ` (`, `.` at the end of a line.
fn assert_ascii_punctuation_free(report: &str) {
    for line in report.lines() {
        for ascii in [": ", ", ", "; ", " ("] {
            assert!(!line.contains(ascii), "{ascii:?} in the Chinese line {line:?}");
        }
        assert!(!line.ends_with('.'), "an ASCII full stop ends {line:?}");
    }
}

#[test]
fn a_missing_fingerprint_library_names_the_option_that_gives_it() {
    let (dir, ledger) = ledger("E1,a,d,s,general,127.127.85.200,c\n");
    let o = otscope_in(dir.path(), &["scan", "--targets", ledger.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    let text = output_text(&o);
    assert!(text.contains("fingerprints:0: folder: no such folder") && text.contains("--fingerprints DIR"), "{text}");
    assert!(!text.contains("broken"), "{text}");
}
