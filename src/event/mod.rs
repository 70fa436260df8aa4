//! Major-event mode: a baseline of the selected objects, checks against it, and the report due
//! every 24 hours, which states its coverage and says so plainly when nothing changed.

use crate::export::{change_text, level_text, Lang};
use crate::findings::Change;
use crate::history::{diff, DiffEntry};
use crate::pipeline::EXCLUDE_SHA256;
use crate::scope::show_ports;
use crate::store::{EventRecord, ScanRecord, ScanStart, Store, StoreError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The sentence of a zero report, in each language.
pub const ZERO_EN: &str = "No new exposure and no change.";
pub const ZERO_ZH: &str = "无新增暴露，无变化。";

pub fn kind_of(name: &str) -> String {
    format!("event:{name}")
}

/// How a check's scope differs from its baseline's: an event watches fixed objects, so an edit of the
/// ledger or the exclusions since the baseline is told wherever the check is.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeChange {
    pub ledger_edited: bool,
    pub exclusions_edited: bool,
    /// Addresses and (address, port) targets of the check, then of the baseline.
    pub addresses: (u64, u64),
    pub targets: (u64, u64),
}

/// What changed in the scope of `check` since `baseline`, if anything.
pub fn scope_change(baseline: &ScanStart, check: &ScanStart) -> Option<ScopeChange> {
    // A baseline recorded before scans kept the exclusions' hash cannot tell: its coverage still does.
    let exclusions_edited = match (baseline.parameters.get(EXCLUDE_SHA256), check.parameters.get(EXCLUDE_SHA256)) {
        (Some(before), Some(now)) => before != now,
        _ => false,
    };
    let change = ScopeChange {
        ledger_edited: baseline.ledger_sha256 != check.ledger_sha256,
        exclusions_edited,
        addresses: (check.coverage.addresses(), baseline.coverage.addresses()),
        targets: (check.targets_total, baseline.targets_total),
    };
    let same_targets =
        baseline.coverage.spans == check.coverage.spans && baseline.coverage.ports == check.coverage.ports;
    (change.ledger_edited || change.exclusions_edited || !same_targets).then_some(change)
}

impl ScopeChange {
    pub fn describe(&self, lang: Lang) -> String {
        let zh = lang == Lang::Zh;
        let mut edits = Vec::new();
        if self.ledger_edited {
            edits.push(if zh { "台账已修改" } else { "the ledger was edited" });
        }
        if self.exclusions_edited {
            edits.push(if zh { "排除清单已修改" } else { "the exclusions were edited" });
        }
        let counts = if zh {
            format!(
                "本次检查 {} 个地址、{} 个目标，基线 {} 个地址、{} 个目标",
                self.addresses.0, self.targets.0, self.addresses.1, self.targets.1
            )
        } else {
            format!(
                "this check covers {} addresses and {} targets, the baseline {} and {}",
                self.addresses.0, self.targets.0, self.addresses.1, self.targets.1
            )
        };
        if edits.is_empty() {
            counts
        } else {
            format!("{}{}{counts}", edits.join(if zh { "，" } else { ", " }), if zh { "；" } else { "; " })
        }
    }
}

/// What the 24-hour report concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At least one complete check ran in the window and nothing drifted.
    Zero,
    Drift,
    /// No complete check ran in the window: nothing can be vouched for.
    NoCoverage,
}

pub struct EventReport {
    pub text: String,
    pub verdict: Verdict,
}

fn parse_time(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

fn short(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ") + " UTC"
}

/// The checks of `event` that completed within the window ending at `end`.
pub fn checks_in_window(
    store: &dyn Store,
    event: &EventRecord,
    end: OffsetDateTime,
    window: time::Duration,
) -> Result<Vec<ScanRecord>, StoreError> {
    let kind = kind_of(&event.name);
    let start = end - window;
    Ok(store
        .scans()?
        .into_iter()
        .filter(|s| s.start.kind == kind && s.id != event.baseline_scan && s.completed())
        .filter(|s| s.ended_at.as_deref().and_then(parse_time).is_some_and(|t| t > start && t <= end))
        .collect())
}

/// Every drift from the baseline seen by the checks, latest observation of each service kept.
pub fn drift(
    store: &dyn Store,
    event: &EventRecord,
    checks: &[ScanRecord],
) -> Result<Vec<(DiffEntry, i64)>, StoreError> {
    let mut seen: BTreeMap<(std::net::IpAddr, u16, String), (DiffEntry, i64)> = BTreeMap::new();
    for check in checks {
        for e in diff(store, event.baseline_scan, check.id)?.entries {
            if e.status != Change::Persisting {
                seen.insert((e.ip, e.port, e.transport.as_str().to_string()), (e, check.id));
            }
        }
    }
    let mut out: Vec<(DiffEntry, i64)> = seen.into_values().collect();
    out.sort_by_key(|(e, _)| (e.status, e.ip, e.port));
    Ok(out)
}

pub fn report(
    store: &dyn Store,
    notices: &[crate::store::OpenNotice],
    event: &EventRecord,
    end: OffsetDateTime,
    window: time::Duration,
    lang: Lang,
) -> Result<EventReport, StoreError> {
    let zh = lang == Lang::Zh;
    let t = |en: &'static str, cn: &'static str| if zh { cn } else { en };
    let baseline = store.scan(event.baseline_scan)?;
    let checks = checks_in_window(store, event, end, window)?;
    let drift = drift(store, event, &checks)?;
    let start = end - window;
    let fmt = |d: OffsetDateTime| short(&d.format(&Rfc3339).unwrap_or_default());
    let coverage = &baseline.start.coverage;
    let probed: u64 = checks.iter().filter_map(|c| c.end.as_ref().map(|e| e.probed)).sum();
    let selection = &event.plan.selection;
    let objects = |s: &ScanRecord| s.start.parameters.get("enterprises").and_then(|v| v.as_u64()).unwrap_or(0);
    // What the checks covered, or without a check what the baseline did, beside the baseline's when it differs.
    let counted = |of: &dyn Fn(&ScanRecord) -> u64| {
        let base = of(&baseline);
        let (low, high) = match (checks.iter().map(of).min(), checks.iter().map(of).max()) {
            (Some(low), Some(high)) => (low, high),
            _ => (base, base),
        };
        let range = if low == high { low.to_string() } else { format!("{low}–{high}") };
        if (low, high) == (base, base) {
            range
        } else {
            format!("{range} ({}{base})", t("baseline: ", "基线："))
        }
    };

    let mut out = String::new();
    let _ = writeln!(out, "# {}{}", t("Major-event report: ", "重大活动保障报告："), event.name);
    let _ = writeln!(out);
    // Chinese text takes Chinese punctuation: full-width colons, commas, parentheses, a full stop.
    let (open, close, comma, semicolon, to, dash) =
        if zh { ("（", "）", "，", "；", " 至 ", "——") } else { (" (", ")", ", ", "; ", " — ", " — ") };
    let list = |items: &[String]| items.join(if zh { "、" } else { ", " });
    let _ = writeln!(out, "{}{}{to}{}", t("Time window: ", "时间窗口："), fmt(start), fmt(end));
    let _ = writeln!(
        out,
        "{}{}{open}{}{}{close}",
        t("Event started: ", "保障开始："),
        short(&event.started_at),
        t("baseline scan ", "基线扫描 "),
        event.baseline_scan
    );
    if let Some(closed) = &event.closed_at {
        let _ = writeln!(out, "{}{}", t("Event closed: ", "保障结束："), short(closed));
    }
    let levels: Vec<String> = selection.levels.iter().map(|l| level_text(*l, lang).to_string()).collect();
    let all = || t("all", "全部").to_string();
    let chosen = |items: &[String]| if items.is_empty() { all() } else { list(items) };
    let _ = writeln!(
        out,
        "{}{}{semicolon}{}{}{semicolon}{}{}",
        t("Selection — level: ", "保障范围——重要程度："),
        chosen(&levels),
        t("districts: ", "区县："),
        chosen(&selection.districts),
        t("enterprises: ", "企业："),
        chosen(&selection.enterprises),
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "## {}", t("Coverage", "覆盖范围"));
    let _ = writeln!(out, "- {}{}", t("Protected objects: ", "保护对象数："), counted(&objects));
    let _ = writeln!(out, "- {}{}", t("Addresses: ", "地址数："), counted(&|s| s.start.coverage.addresses()));
    let _ = writeln!(
        out,
        "- {}{}{open}{}{close}",
        t("Ports: ", "端口数："),
        coverage.ports.len(),
        show_ports(&coverage.ports)
    );
    let _ = writeln!(out, "- {}{}", t("Checks in the window: ", "窗口内检查次数："), checks.len());
    let mut changed_scope = Vec::new();
    for c in &checks {
        let _ = writeln!(
            out,
            "  - {}{}{}{}{to}{}{comma}{} {}{comma}{} {}",
            t("scan ", "扫描 "),
            c.id,
            t(": ", "："),
            short(&c.start.started_at),
            c.ended_at.as_deref().map(short).unwrap_or_default(),
            c.end.as_ref().map(|e| e.probed).unwrap_or(0),
            t("targets probed", "个目标已探测"),
            c.start.coverage.addresses(),
            t("addresses", "个地址"),
        );
        if let Some(change) = scope_change(&baseline.start, &c.start) {
            changed_scope.push((c.id, change));
        }
    }
    let _ = writeln!(
        out,
        "- {}{}",
        t("(address, port) targets probed in the window: ", "窗口内探测的（地址，端口）目标数："),
        probed
    );
    for (scan, change) in &changed_scope {
        let _ = writeln!(
            out,
            "- {}{scan}{}{}",
            t("Scope changed since the baseline in scan ", "保障范围自基线以来已变化：扫描 "),
            t(": ", "，"),
            change.describe(lang)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## {}", t("Result", "结论"));
    let verdict = if checks.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            t(
                "No complete check ran in this window: nothing can be vouched for. Run `otscope event check`.",
                "本时间窗口内没有完成的检查，无法确认状态。请运行 `otscope event check`。"
            )
        );
        Verdict::NoCoverage
    } else if drift.is_empty() {
        let _ = writeln!(out, "{}", if zh { ZERO_ZH } else { ZERO_EN });
        Verdict::Zero
    } else {
        let count = |s: Change| drift.iter().filter(|(e, _)| e.status == s).count();
        let counted: Vec<String> = [Change::New, Change::Changed, Change::Gone]
            .into_iter()
            .map(|c| match zh {
                true => format!("{} {}", change_text(Some(c), lang), count(c)),
                false => format!("{} {}", count(c), change_text(Some(c), lang)),
            })
            .collect();
        let _ = writeln!(
            out,
            "{}{}{}",
            t("Drift from the baseline: ", "相对基线的变化："),
            counted.join(comma),
            t(".", "。")
        );
        let _ = writeln!(out);
        for (e, scan) in &drift {
            let f = &e.finding;
            let was = if e.before.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = e.before.iter().map(|(k, v)| format!("{k}{}{v}", t(": ", "："))).collect();
                format!("{open}{}{}{close}", t("before: ", "变化前："), parts.join(semicolon))
            };
            let _ = writeln!(
                out,
                "- {} {}:{}/{} {} {} {} {}{dash}{} {}{open}{}{comma}{}{close}{dash}{} {}{was}",
                change_text(Some(e.status), lang),
                e.ip,
                e.port,
                e.transport.as_str(),
                f.protocol,
                f.vendor.as_deref().unwrap_or("-"),
                f.product.as_deref().unwrap_or("-"),
                f.version.as_deref().unwrap_or("-"),
                f.enterprise_id,
                f.enterprise,
                f.district,
                level_text(f.level, lang),
                t("scan", "扫描"),
                scan,
            );
        }
        Verdict::Drift
    };
    // The open warning notices about the event's objects (those its baseline found exposed).
    let enterprises: std::collections::BTreeSet<String> =
        store.findings(event.baseline_scan)?.into_iter().map(|f| f.enterprise_id).collect();
    let notices = crate::notices::open_notices_of(notices, &enterprises.iter().map(String::as_str).collect());
    if !notices.is_empty() {
        let now = end.format(&Rfc3339).unwrap_or_default();
        let _ = writeln!(out);
        let _ = writeln!(out, "## {}", t("Open warning notices", "未闭环的预警通知"));
        for n in &notices {
            let enterprises: std::collections::BTreeSet<String> =
                n.items.iter().map(|i| format!("{} {}", i.enterprise_id, i.enterprise)).collect();
            let deadline = n.items.iter().filter_map(|i| i.deadline.as_deref()).min().map(short).unwrap_or_default();
            let overdue = n.items.iter().filter(|i| crate::notices::item_overdue(i, &now)).count();
            let _ = writeln!(
                out,
                "- {}{dash}{}{dash}{} {}{comma}{}{}{}",
                n.number,
                list(&enterprises.into_iter().collect::<Vec<_>>()),
                n.items.len(),
                t("open item(s)", "项未闭环"),
                t("earliest deadline ", "最早整改期限 "),
                deadline,
                if overdue > 0 { format!("{comma}{overdue} {}", t("overdue", "项已逾期")) } else { String::new() },
            );
        }
    }
    Ok(EventReport { text: out, verdict })
}
