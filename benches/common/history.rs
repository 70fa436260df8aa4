//! Histories for the benches that read or write the store: Modbus findings and the scans that
//! record them, all on loopback addresses.

use otscope::findings::{Finding, Severity};
use otscope::ledger::Level;
use otscope::scope::Transport;
use otscope::store::{ScanClose, ScanStart};
use otscope::targets::{Coverage, Shard};
use std::net::{IpAddr, Ipv4Addr};

/// When the benches' scans run.
pub const STARTED_AT: &str = "2026-11-28T06:00:00Z";
pub const FINISHED_AT: &str = "2026-11-28T07:00:00Z";

/// An identified Modbus PLC at `ip` of enterprise `enterprise_id` in `district`, at firmware `version`.
pub fn modbus_finding(ip: Ipv4Addr, enterprise_id: String, district: String, version: &str) -> Finding {
    Finding {
        ip: IpAddr::V4(ip),
        port: 502,
        transport: Transport::Tcp,
        protocol: "modbus".into(),
        ics: true,
        vendor: Some("Schneider Electric".into()),
        product: Some("BMX P34 2020".into()),
        version: Some(version.into()),
        device_type: Some("PLC".into()),
        cpe: None,
        tags: vec!["plc".into()],
        attributes: serde_json::json!({"vendor_name": "Schneider Electric", "product_code": "BMX P34 2020", "revision": version, "unit_id": 1})
            .as_object()
            .expect("an object")
            .clone(),
        hostname: None,
        enterprise_id,
        enterprise: "上海某某水务有限公司".into(),
        district,
        level: Level::Important,
        severity: Severity::Critical,
        rule: Some("modbus.schneider.m340".into()),
        evidence: "0001000000150100".repeat(4),
        observed_at: STARTED_AT.into(),
        change: None,
        changed: Vec::new(),
    }
}

/// The start of a complete scan of 502/tcp over `first..=last`.
pub fn scan_start(first: Ipv4Addr, last: Ipv4Addr) -> ScanStart {
    let targets_total = u64::from(u32::from(last) - u32::from(first)) + 1;
    ScanStart {
        started_at: STARTED_AT.into(),
        ledger_path: "bench.csv".into(),
        ledger_sha256: "0".repeat(64),
        library_version: "bench".into(),
        selection: serde_json::json!({"levels": [], "districts": [], "enterprises": []}),
        parameters: serde_json::json!({}),
        coverage: Coverage {
            spans: vec![(IpAddr::V4(first), IpAddr::V4(last))],
            ports: vec!["502".parse().expect("a port")],
            shard: Shard::default(),
            seed: 1,
        },
        targets_total,
        kind: "scan".into(),
        runner: None,
    }
}

/// How a scan of `start`'s whole coverage ends.
pub fn completed(start: &ScanStart) -> ScanClose {
    ScanClose { probed: start.targets_total, completed: true, reason: None }
}
