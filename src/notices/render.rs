//! The files of issued notices: each notice as Markdown and as one self-contained HTML file, and
//! one CSV per district (UTF-8 with BOM, every cell neutralised) of the services its notices carry.

use super::{day, AdvisoryEntry, NoticeContent};
use crate::export::{level_text, safe_file_stem, Lang};
use crate::findings::CsvTable;
use crate::html::escape;
use crate::store::NoticeKind;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

struct Labels {
    enterprise_title: &'static str,
    district_title: &'static str,
    number: &'static str,
    issued: &'static str,
    to: &'static str,
    enterprises: &'static str,
    notice: &'static str,
    items: &'static str,
    earliest: &'static str,
    level: &'static str,
    advisory: &'static str,
    cves: &'static str,
    cvss: &'static str,
    severity: &'static str,
    services: &'static str,
    service: &'static str,
    protocol: &'static str,
    product: &'static str,
    device: &'static str,
    firmware: &'static str,
    status: &'static str,
    evidence: &'static str,
    deadline: &'static str,
    fix: &'static str,
    mitigations: &'static str,
    again: &'static str,
    enterprise_id: &'static str,
    enterprise: &'static str,
    item: &'static str,
    ask: &'static str,
}

const EN: Labels = Labels {
    enterprise_title: "Vulnerability warning notice",
    district_title: "Vulnerability warning notice (district summary)",
    number: "Notice",
    issued: "Issued",
    to: "To",
    enterprises: "Enterprises notified",
    notice: "Notice",
    items: "Items",
    earliest: "Earliest deadline",
    level: "Level",
    advisory: "Advisory",
    cves: "CVEs",
    cvss: "CVSS",
    severity: "Severity",
    services: "Affected services",
    service: "Service",
    protocol: "Protocol",
    product: "Advisory product",
    device: "Device",
    firmware: "Firmware (as stated)",
    status: "Status",
    evidence: "Evidence",
    deadline: "Deadline",
    fix: "Vendor remediation",
    mitigations: "Mitigations",
    again: "again: the re-check found it still affected",
    enterprise_id: "Enterprise ID",
    enterprise: "Enterprise",
    item: "Item",
    ask: "Fix each service by its deadline and report the fix, quoting the item numbers; the center then re-checks it.",
};

const ZH: Labels = Labels {
    enterprise_title: "漏洞风险预警通知",
    district_title: "漏洞风险预警通知（区县汇总）",
    number: "通知编号",
    issued: "发布时间",
    to: "致",
    enterprises: "已通知企业",
    notice: "通知编号",
    items: "事项数",
    earliest: "最早整改期限",
    level: "重要程度",
    advisory: "漏洞公告",
    cves: "CVE编号",
    cvss: "CVSS评分",
    severity: "危害等级",
    services: "受影响服务",
    service: "服务地址",
    protocol: "协议",
    product: "公告产品",
    device: "设备",
    firmware: "固件版本（设备自报）",
    status: "判定",
    evidence: "匹配依据",
    deadline: "整改期限",
    fix: "厂商修复措施",
    mitigations: "缓解措施",
    again: "再次通知：复查仍受影响",
    enterprise_id: "企业编号",
    enterprise: "企业名称",
    item: "事项编号",
    ask: "请于整改期限前完成整改并反馈（注明事项编号），中心将进行复查。",
};

fn labels(lang: Lang) -> &'static Labels {
    match lang {
        Lang::En => &EN,
        Lang::Zh => &ZH,
    }
}

fn severity_text(band: super::Band, lang: Lang) -> &'static str {
    use super::Band::*;
    match (band, lang) {
        (Critical, Lang::En) => "critical",
        (High, Lang::En) => "high",
        (Medium, Lang::En) => "medium",
        (Low, Lang::En) => "low",
        (Unscored, Lang::En) => "unscored",
        (Critical, Lang::Zh) => "严重",
        (High, Lang::Zh) => "高危",
        (Medium, Lang::Zh) => "中危",
        (Low, Lang::Zh) => "低危",
        (Unscored, Lang::Zh) => "未评分",
    }
}

fn status_text(status: crate::advisories::Status, lang: Lang) -> &'static str {
    use crate::advisories::Status::*;
    match (status, lang) {
        (Affected, Lang::En) => "affected",
        (NotAffected, Lang::En) => "not affected",
        (Undetermined, Lang::En) => "undetermined",
        (Affected, Lang::Zh) => "受影响",
        (NotAffected, Lang::Zh) => "不受影响",
        (Undetermined, Lang::Zh) => "待确认",
    }
}

fn score(cvss: Option<f64>) -> String {
    cvss.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into())
}

fn title(n: &NoticeContent, l: &Labels) -> &'static str {
    match n.kind {
        NoticeKind::Enterprise => l.enterprise_title,
        NoticeKind::District => l.district_title,
    }
}

fn subject(n: &NoticeContent) -> String {
    match n.kind {
        NoticeKind::Enterprise => format!("{} {} ({})", n.subject, n.subject_name, n.district),
        NoticeKind::District => n.district.clone(),
    }
}

/// Text for a Markdown table cell: no line breaks, no column separators.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// One notice as Markdown.
pub fn markdown(n: &NoticeContent, lang: Lang) -> String {
    let l = labels(lang);
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", title(n, l));
    let _ = writeln!(out, "- {}: {}", l.number, n.number);
    let _ = writeln!(out, "- {}: {}", l.issued, n.issued_at);
    let _ = writeln!(out, "- {}: {}\n", l.to, subject(n));
    if !n.enterprises.is_empty() {
        let _ = writeln!(out, "## {}\n", l.enterprises);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |\n|---|---|---|---|---|---|",
            l.enterprise_id, l.enterprise, l.level, l.notice, l.items, l.earliest
        );
        for e in &n.enterprises {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&e.enterprise_id),
                cell(&e.enterprise),
                level_text(e.level, lang),
                e.notice,
                e.items,
                day(&e.earliest_deadline)
            );
        }
        out.push('\n');
    }
    for a in &n.advisories {
        let _ = writeln!(out, "## {}: {}\n", a.advisory, cell(&a.title));
        let _ = writeln!(out, "- {}: {}", l.cves, if a.cves.is_empty() { "-".into() } else { a.cves.join(", ") });
        let _ = writeln!(out, "- {}: {} ({})", l.cvss, score(a.cvss), severity_text(a.severity, lang));
        if let Some(tlp) = a.tlp {
            let _ = writeln!(out, "- TLP:{}", tlp.as_str());
        }
        let _ = writeln!(out, "\n### {}\n", l.services);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n|---|---|---|---|---|---|---|---|---|",
            l.item, l.service, l.protocol, l.device, l.firmware, l.product, l.status, l.evidence, l.deadline
        );
        for s in &a.services {
            let again = if s.again { format!(" ({})", l.again) } else { String::new() };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {}{again} | {} | {} |",
                s.item,
                cell(&s.service),
                cell(&s.protocol),
                cell(&format!("{} {}", s.enterprise, s.device)),
                cell(s.firmware.as_deref().unwrap_or("-")),
                cell(&s.product),
                status_text(s.status, lang),
                cell(&format!("{}; {}", s.evidence, s.reason)),
                day(&s.deadline)
            );
        }
        list(&mut out, l.fix, &a.vendor_fix);
        list(&mut out, l.mitigations, &a.mitigations);
        out.push('\n');
    }
    let _ = writeln!(out, "{}", l.ask);
    out
}

fn list(out: &mut String, heading: &str, texts: &[String]) {
    if texts.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### {heading}\n");
    for t in texts {
        let _ = writeln!(out, "- {}", t.replace('\n', " "));
    }
}

const STYLE: &str = "body{font:14px/1.5 system-ui,'Segoe UI',Roboto,'PingFang SC','Microsoft YaHei','Noto Sans CJK SC',sans-serif;\
color:#1f2933;max-width:1100px;margin:24px auto;padding:0 24px}h1{color:#1e3a5f;font-size:24px}h2{color:#1e3a5f;font-size:18px;\
border-top:1px solid #d9dee4;padding-top:14px}table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid #d9dee4;\
padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef1f5}dl{display:grid;grid-template-columns:max-content auto;\
gap:2px 16px}dt{color:#5f6b7a}dd{margin:0}.again{color:#9a3412;font-weight:600}.tlp{font-weight:600}";

/// One notice as a self-contained HTML document (no external resources).
pub fn html(n: &NoticeContent, lang: Lang) -> String {
    let l = labels(lang);
    let mut out = String::new();
    let html_lang = if lang == Lang::Zh { "zh-CN" } else { "en" };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{html_lang}\"><head><meta charset=\"utf-8\"><title>{} {}</title><style>{STYLE}</style></head><body>",
        escape(&n.number),
        escape(title(n, l))
    );
    let _ = write!(out, "<h1>{}</h1><dl>", escape(title(n, l)));
    for (k, v) in [(l.number, n.number.clone()), (l.issued, n.issued_at.clone()), (l.to, subject(n))] {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    }
    out.push_str("</dl>");
    if !n.enterprises.is_empty() {
        let _ = write!(out, "<h2>{}</h2><table><tr>", escape(l.enterprises));
        for h in [l.enterprise_id, l.enterprise, l.level, l.notice, l.items, l.earliest] {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr>");
        for e in &n.enterprises {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&e.enterprise_id),
                escape(&e.enterprise),
                escape(level_text(e.level, lang)),
                escape(&e.notice),
                e.items,
                escape(day(&e.earliest_deadline))
            );
        }
        out.push_str("</table>");
    }
    for a in &n.advisories {
        html_advisory(&mut out, a, l, lang);
    }
    let _ = writeln!(out, "<p>{}</p></body></html>", escape(l.ask));
    out
}

fn html_advisory(out: &mut String, a: &AdvisoryEntry, l: &Labels, lang: Lang) {
    let _ = write!(out, "<h2>{}: {}</h2><dl>", escape(&a.advisory), escape(&a.title));
    let cves = if a.cves.is_empty() { "-".to_string() } else { a.cves.join(", ") };
    let severity = format!("{} ({})", score(a.cvss), severity_text(a.severity, lang));
    for (k, v) in [(l.cves, cves), (l.cvss, severity)] {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    }
    if let Some(tlp) = a.tlp {
        let _ = write!(out, "<dt>TLP</dt><dd class=\"tlp\">TLP:{}</dd>", tlp.as_str());
    }
    let _ = write!(out, "</dl><h3>{}</h3><table><tr>", escape(l.services));
    for h in [l.item, l.service, l.protocol, l.device, l.firmware, l.product, l.status, l.evidence, l.deadline] {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for s in &a.services {
        let again =
            if s.again { format!("<br><span class=\"again\">{}</span>", escape(l.again)) } else { String::new() };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{again}</td><td>{}<br>{}</td><td>{}</td></tr>",
            s.item,
            escape(&s.service),
            escape(&s.protocol),
            escape(&format!("{} {}", s.enterprise, s.device)),
            escape(s.firmware.as_deref().unwrap_or("-")),
            escape(&s.product),
            escape(status_text(s.status, lang)),
            escape(&s.evidence),
            escape(&s.reason),
            escape(day(&s.deadline))
        );
    }
    out.push_str("</table>");
    for (heading, texts) in [(l.fix, &a.vendor_fix), (l.mitigations, &a.mitigations)] {
        if texts.is_empty() {
            continue;
        }
        let _ = write!(out, "<h3>{}</h3><ul>", escape(heading));
        for t in texts {
            let _ = write!(out, "<li>{}</li>", escape(t));
        }
        out.push_str("</ul>");
    }
}

/// The CSV columns of a district file.
fn csv_header(l: &Labels) -> [&'static str; 14] {
    [
        l.notice,
        l.enterprise_id,
        l.enterprise,
        l.item,
        l.service,
        l.protocol,
        l.device,
        l.firmware,
        l.advisory,
        l.cves,
        l.cvss,
        l.severity,
        l.deadline,
        l.fix,
    ]
}

/// Writes every notice as `NUMBER.md` and `NUMBER.html`, and one `notices-DISTRICT.csv` per
/// district from its district notice (which carries only what the district may see), into `dir`.
pub fn write_all(dir: &Path, notices: &[NoticeContent], lang: Lang) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let mut write = |name: String, bytes: &[u8]| -> std::io::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        files.push(path);
        Ok(())
    };
    let mut districts: BTreeMap<&str, Vec<Vec<String>>> = BTreeMap::new();
    for n in notices {
        let stem = safe_file_stem(&n.number);
        write(format!("{stem}.md"), markdown(n, lang).as_bytes())?;
        write(format!("{stem}.html"), html(n, lang).as_bytes())?;
        if n.kind != NoticeKind::District {
            continue;
        }
        let rows = districts.entry(n.district.as_str()).or_default();
        for a in &n.advisories {
            for s in &a.services {
                let notice = n
                    .enterprises
                    .iter()
                    .find(|e| e.enterprise_id == s.enterprise_id)
                    .map(|e| e.notice.clone())
                    .unwrap_or_else(|| n.number.clone());
                rows.push(vec![
                    notice,
                    s.enterprise_id.clone(),
                    s.enterprise.clone(),
                    s.item.to_string(),
                    s.service.clone(),
                    s.protocol.clone(),
                    s.device.clone(),
                    s.firmware.clone().unwrap_or_default(),
                    a.advisory.clone(),
                    a.cves.join(" "),
                    score(a.cvss),
                    severity_text(a.severity, lang).to_string(),
                    day(&s.deadline).to_string(),
                    a.vendor_fix.join(" "),
                ]);
            }
        }
    }
    for (district, rows) in districts {
        let mut bytes = Vec::new();
        let mut table = CsvTable::new(&mut bytes, csv_header(labels(lang)))?;
        for row in rows {
            table.row(row)?;
        }
        table.flush()?;
        drop(table);
        write(format!("notices-{}.csv", safe_file_stem(district)), &bytes)?;
    }
    Ok(files)
}
