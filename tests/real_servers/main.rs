//! otscope against real third-party implementations on loopback, not responders written here.
//!
//! Each test starts one server (see `tests/servers/README.md` for how each is installed and run)
//! on its own 127.113.x.y address and standard port, configured with a known identity, scans it
//! through the whole pipeline with default options, and checks the identity field by field against
//! what the server was configured to serve. A server that is not installed skips its test with the
//! reason printed, except in CI (`CI` set) or with `OTSCOPE_REQUIRE_REAL_SERVERS=1`, where it fails.

#[path = "../common/mod.rs"]
mod common;
mod server;

use otscope::findings::Finding;
use otscope::pipeline::ScanOptions;
use serde_json::{json, Value};
use server::{start_or_skip, Env, RealServer};
use std::time::Duration;

const READY_WITHIN: Duration = Duration::from_secs(60);
/// conpot imports for half a minute (its STIX/TAXII loggers) and waits 5 s more before serving.
const CONPOT_READY_WITHIN: Duration = Duration::from_secs(240);

/// Scans `address` on `ports` with the defaults of `otscope scan` (fixed seed), returning the
/// findings sorted by port.
async fn scan(address: &str, ports: &str) -> Vec<Finding> {
    let (_dir, ledger) = common::ledger(&format!("E13,Real servers,Lab district,test,important,{address},lab\n"));
    let options = ScanOptions { seed: Some(13), ..ScanOptions::default() };
    let mut findings = common::scan_scope(&common::scope(&ledger, ports, &Default::default()), options).await;
    findings.sort_by_key(|f| (f.port, f.transport));
    findings
}

/// The one finding on `port`, with the server's output in the message when it is not there.
fn on_port<'a>(findings: &'a [Finding], port: u16, server: &RealServer) -> &'a Finding {
    let on: Vec<_> = findings.iter().filter(|f| f.port == port).collect();
    assert_eq!(on.len(), 1, "findings on port {port}: {findings:#?}\nserver output:\n{}", server.output());
    on[0]
}

/// Asserts each `(attribute, value)` of `expected` on the finding, one by one, naming the field.
fn assert_attributes(finding: &Finding, expected: &Value) {
    for (key, want) in expected.as_object().unwrap() {
        assert_eq!(
            finding.attributes.get(key),
            Some(want),
            "attribute {key} of {} {}:{}; all attributes: {:#?}",
            finding.protocol,
            finding.ip,
            finding.port,
            finding.attributes
        );
    }
}

/// A real stack or a plain simulator is never called a decoy.
fn assert_not_honeypot(f: &Finding) {
    assert!(
        !f.attributes.contains_key("honeypot"),
        "{} on {}:{} flagged as a honeypot: {:#?}",
        f.protocol,
        f.ip,
        f.port,
        f.attributes
    );
}

/// The honeypot mark of a finding: (honeypot, persona, rule).
fn honeypot(f: &Finding) -> (&str, &str, &str) {
    let mark = f.attributes.get("honeypot").unwrap_or_else(|| panic!("no honeypot mark: {f:#?}"));
    let text = |key: &str| mark[key].as_str().unwrap_or_else(|| panic!("honeypot.{key} in {mark}"));
    (text("name"), text("persona"), text("rule"))
}

fn identity(f: &Finding) -> (&str, bool, Option<&str>, Option<&str>, Option<&str>) {
    (f.protocol.as_str(), f.ics, f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref())
}

#[tokio::test]
async fn python_snap7_server() {
    let address = "127.113.0.1";
    let Some(server) = start_or_skip(Env::Main, "snap7_server.py", &[address, "102"], READY_WITHIN) else { return };
    let findings = scan(address, "102").await;
    let f = on_port(&findings, 102, &server);
    assert_eq!(f.protocol, "s7comm", "{f:#?}");
    // python-snap7 3.3.0's built-in identity: SZL 0x0011 is one 26-byte record whose last three
    // bytes are the version; SZL 0x001C says LENTHDR 0 / N_DR 0 and has index 0 in every record.
    assert_attributes(
        f,
        &json!({
            "order_number": "6ES7 315-2EH14-0AB0",
            "firmware_version": "V3.3.0",
            "system_name": "SNAP7-SERVER",
            "module_name": "CPU 315-2 PN/DP",
            "copyright": "Original Siemens Equipment",
            "serial_number": "S C-C2UR28922012",
            "module_type": "CPU 315-2 PN/DP",
            "rack": 0,
            "slot": 2,
            "pdu_length": 480,
        }),
    );
    assert!(!f.attributes.contains_key("plant_id"), "snap7 sends an empty plant id: {:#?}", f.attributes);
    assert_not_honeypot(f);
}

#[tokio::test]
async fn c_snap7_server() {
    let address = "127.113.0.2";
    let Some(server) = start_or_skip(Env::Main, "libsnap7_server.py", &[address, "102"], READY_WITHIN) else {
        return;
    };
    let findings = scan(address, "102").await;
    let f = on_port(&findings, 102, &server);
    assert_eq!(f.protocol, "s7comm", "{f:#?}");
    // libsnap7's built-in SZL answers: four 28-byte 0x0011 records, ten 0x001C records.
    assert_attributes(
        f,
        &json!({
            "order_number": "6ES7 315-2EH14-0AB0",
            "hardware_version": "4",
            "firmware_version": "V3.2.6",
            "system_name": "SNAP7-SERVER",
            "module_name": "CPU 315-2 PN/DP",
            "copyright": "Original Siemens Equipment",
            "serial_number": "S C-C2UR28922012",
            "module_type": "CPU 315-2 PN/DP",
            "memory_card_serial": "MMC 267FF11F",
            "pdu_length": 480,
        }),
    );
    assert_not_honeypot(f);
}

#[tokio::test]
async fn pymodbus_server() {
    let address = "127.113.0.3";
    let args = [
        address,
        "502",
        "--VendorName",
        "Pymodbus Lab",
        "--ProductCode",
        "PM-3",
        "--MajorMinorRevision",
        "3.16.1",
        "--VendorUrl",
        "http://lab.invalid/",
        "--ProductName",
        "Pymodbus Server",
        "--ModelName",
        "Lab Model 7",
        "--UserApplicationName",
        "Pump station",
    ];
    let Some(server) = start_or_skip(Env::Main, "modbus_server.py", &args, READY_WITHIN) else { return };
    let findings = scan(address, "502").await;
    let f = on_port(&findings, 502, &server);
    assert_eq!(f.protocol, "modbus", "{f:#?}");
    assert_attributes(
        f,
        &json!({
            "vendor_name": "Pymodbus Lab",
            "product_code": "PM-3",
            "revision": "3.16.1",
            "vendor_url": "http://lab.invalid/",
            "product_name": "Pymodbus Server",
            "model_name": "Lab Model 7",
            "user_application_name": "Pump station",
        }),
    );
    assert_not_honeypot(f);
}

#[tokio::test]
async fn cpppo_enip_server_tcp_and_udp() {
    let address = "127.113.0.4";
    let args = [
        address,
        "44818",
        "--vendor-id",
        "1",
        "--device-type",
        "14",
        "--product-code",
        "77",
        "--revision",
        "3.5",
        "--serial",
        "0x12345678",
        "--product-name",
        "cpppo ENIP Lab",
    ];
    let Some(server) = start_or_skip(Env::Main, "enip_server.py", &args, READY_WITHIN) else { return };
    let findings = scan(address, "44818,44818/udp").await;
    assert_eq!(findings.len(), 2, "{findings:#?}\n{}", server.output());
    for f in &findings {
        assert_eq!(f.protocol, "enip", "{f:#?}");
        assert_attributes(
            f,
            &json!({
                "vendor_id": 1,
                "device_type": 14,
                "product_code": 77,
                "revision": "3.5",
                "serial_number": "0x12345678",
                "product_name": "cpppo ENIP Lab",
            }),
        );
        assert_eq!(f.vendor.as_deref(), Some("Rockwell Automation/Allen-Bradley"), "{f:#?}");
        assert_not_honeypot(f);
    }
}

#[tokio::test]
async fn bacpypes3_device() {
    let address = "127.113.0.5";
    let args = [
        address,
        "47808",
        "--instance",
        "1301",
        "--object-name",
        "Boiler Room",
        "--vendor-id",
        "999",
        "--vendor-name",
        "Lab Vendor",
        "--model-name",
        "BAC-1",
        "--firmware-revision",
        "4.2.1",
        "--application-software-version",
        "app 7",
        "--location",
        "Floor 3",
        "--description",
        "test device",
    ];
    let Some(server) = start_or_skip(Env::Main, "bacnet_server.py", &args, READY_WITHIN) else { return };
    let findings = scan(address, "47808/udp").await;
    let f = on_port(&findings, 47808, &server);
    assert_eq!(f.protocol, "bacnet", "{f:#?}");
    assert_attributes(
        f,
        &json!({
            "instance": 1301,
            "vendor_id": 999,
            "object_name": "Boiler Room",
            "vendor_name": "Lab Vendor",
            "model_name": "BAC-1",
            "firmware_revision": "4.2.1",
            "application_software_version": "app 7",
            "location": "Floor 3",
            "description": "test device",
        }),
    );
    assert_not_honeypot(f);
}

#[tokio::test]
async fn asyncua_server_offering_security_none() {
    let address = "127.113.0.6";
    let args = [
        address,
        "4840",
        "--application-name",
        "Lab OPC UA",
        "--application-uri",
        "urn:lab:opcua:none",
        "--product-uri",
        "urn:lab:product",
    ];
    let Some(server) = start_or_skip(Env::Main, "opcua_server.py", &args, READY_WITHIN) else { return };
    let findings = scan(address, "4840").await;
    let f = on_port(&findings, 4840, &server);
    assert_eq!(f.protocol, "opcua", "{f:#?}");
    assert_attributes(
        f,
        &json!({
            "application_name": "Lab OPC UA",
            "application_uri": "urn:lab:opcua:none",
            "product_uri": "urn:lab:product",
            "security_none": true,
            "anonymous": true,
            "security_policies": ["None"],
        }),
    );
    assert_eq!(f.severity, otscope::findings::Severity::High, "{f:#?}");
}

#[tokio::test]
async fn asyncua_server_offering_only_secure_policies() {
    let address = "127.113.0.7";
    let args = [
        address,
        "4840",
        "--secure-only",
        "--application-name",
        "Lab OPC UA Secure",
        "--application-uri",
        "urn:lab:opcua:secure",
        "--product-uri",
        "urn:lab:product",
    ];
    let Some(server) = start_or_skip(Env::Main, "opcua_server.py", &args, READY_WITHIN) else { return };
    let findings = scan(address, "4840").await;
    let f = on_port(&findings, 4840, &server);
    assert_eq!(f.protocol, "opcua", "{f:#?}");
    assert_attributes(
        f,
        &json!({
            "application_name": "Lab OPC UA Secure",
            "application_uri": "urn:lab:opcua:secure",
            "product_uri": "urn:lab:product",
            "security_none": false,
            "anonymous": false,
            "security_policies": ["Basic256Sha256"],
            "certificate_self_signed": true,
        }),
    );
}

#[tokio::test]
async fn c104_iec104_server() {
    let address = "127.113.0.8";
    let Some(server) = start_or_skip(Env::Main, "iec104_server.py", &[address, "2404"], READY_WITHIN) else {
        return;
    };
    let findings = scan(address, "2404").await;
    let f = on_port(&findings, 2404, &server);
    assert_eq!((f.protocol.as_str(), f.ics), ("iec104", true), "{f:#?}");
    assert_attributes(f, &json!({ "testfr": "con" }));
}

#[tokio::test]
async fn libiec61850_mms_server() {
    let address = "127.113.0.9";
    let args = [address, "102", "--vendor", "Lab Vendor", "--model", "IED-61850", "--revision", "2.3.4"];
    let Some(server) = start_or_skip(Env::Main, "mms_server.py", &args, READY_WITHIN) else { return };
    let findings = scan(address, "102").await;
    let f = on_port(&findings, 102, &server);
    assert_eq!(f.protocol, "mms", "{f:#?}");
    assert_attributes(f, &json!({ "vendor_name": "Lab Vendor", "model_name": "IED-61850", "revision": "2.3.4" }));
}

#[tokio::test]
async fn amqtt_broker_with_and_without_anonymous_access() {
    for (address, anonymous) in [("127.113.0.10", true), ("127.113.0.11", false)] {
        let mut args = vec![address, "1883"];
        if anonymous {
            args.push("--anonymous");
        }
        let Some(server) = start_or_skip(Env::Main, "mqtt_broker.py", &args, READY_WITHIN) else { return };
        let findings = scan(address, "1883").await;
        let f = on_port(&findings, 1883, &server);
        assert_eq!(f.protocol, "mqtt", "{f:#?}");
        let return_code = if anonymous { 0 } else { 5 };
        assert_attributes(f, &json!({ "anonymous": anonymous, "return_code": return_code }));
    }
}

#[tokio::test]
async fn conpot_default_template() {
    let address = "127.113.0.12";
    let args = [address, "default", "s7comm=102", "modbus=502", "enip=44818", "ftp=21", "snmp=161"];
    let Some(server) = start_or_skip(Env::Conpot, "conpot_server.py", &args, CONPOT_READY_WITHIN) else { return };
    let findings = scan(address, "21,102,502,44818,161/udp").await;

    let s7 = on_port(&findings, 102, &server);
    assert_eq!(s7.protocol, "s7comm", "{s7:#?}");
    // conpot's default template (templates/default/template.xml), as its S7 server sends it.
    assert_attributes(
        s7,
        &json!({
            "system_name": "Technodrome",
            "module_name": "Siemens, SIMATIC, S7-200",
            "plant_id": "Mouser Factory",
            "copyright": "Original Siemens Equipment",
            "serial_number": "88111222",
            "module_type": "IM151-8 PN/DP CPU",
        }),
    );
    // A honeypot finding keeps its protocol and severity; the mark names the persona.
    assert_eq!(honeypot(s7), ("conpot", "default", "honeypot.conpot.default.s7comm.identity"));
    assert_eq!((s7.ics, s7.severity), (true, otscope::findings::Severity::Critical));

    let modbus = on_port(&findings, 502, &server);
    assert_eq!(modbus.protocol, "modbus", "{modbus:#?}");
    assert_attributes(
        modbus,
        &json!({ "vendor_name": "Siemens", "product_code": "SIMATIC", "revision": "S7-200", "unit_id": 1 }),
    );
    assert_eq!(honeypot(modbus), ("conpot", "default", "honeypot.conpot.default.modbus"));

    // cpppo's defaults, which conpot serves: a honeypot only beside conpot's persona on the other ports.
    let enip = on_port(&findings, 44818, &server);
    assert_eq!(enip.protocol, "enip", "{enip:#?}");
    assert_attributes(
        enip,
        &json!({ "vendor_id": 1, "device_type": 14, "product_code": 54, "revision": "20.11",
                 "product_name": "1756-L61/B LOGIX5561", "serial_number": "0x006c061a" }),
    );
    assert_eq!(honeypot(enip), ("conpot", "default", "honeypot.conpot.default.enip"));
    let reason = enip.attributes["honeypot"]["reason"].as_str().unwrap();
    assert!(reason.contains("102/tcp") && reason.contains("502/tcp"), "{reason}");

    // conpot answers only the first variable of a GetRequest; the others are asked for one by one.
    // Its sysObjectID is pysnmp's enterprise OID (20408), not the template's "0.0".
    let snmp = on_port(&findings, 161, &server);
    assert_eq!(snmp.protocol, "snmp", "{snmp:#?}");
    assert_attributes(
        snmp,
        &json!({ "community_public": true, "snmp_version": "v2c", "sys_descr": "Siemens, SIMATIC, S7-200",
                 "sys_object_id": "1.3.6.1.4.1.20408", "sys_name": "CP 443-1 EX40" }),
    );
    assert_eq!(honeypot(snmp), ("conpot", "default", "honeypot.conpot.default.snmp"));

    let ftp = on_port(&findings, 21, &server);
    assert_eq!(identity(ftp).0, "ftp", "conpot greets with `200 FTP server ready.`: {ftp:#?}");
    assert_not_honeypot(ftp);
}

#[tokio::test]
async fn conpot_guardian_ast_template() {
    let address = "127.113.0.13";
    let args = [address, "guardian_ast", "guardian_ast=10001"];
    let Some(server) = start_or_skip(Env::Conpot, "conpot_server.py", &args, CONPOT_READY_WITHIN) else { return };
    let findings = scan(address, "10001").await;
    let f = on_port(&findings, 10001, &server);
    assert_eq!(f.protocol, "atg", "{f:#?}");
    assert_attributes(
        f,
        &json!({ "station_name": "STATOIL STATION", "tanks": 4, "products": ["SUPER", "UNLEAD", "DIESEL", "PREMIUM"] }),
    );
    assert_eq!(honeypot(f), ("conpot", "guardian_ast", "honeypot.conpot.guardian_ast.atg"));
}

#[tokio::test]
async fn cpppo_defaults_beside_a_snap7_server_are_no_honeypot() {
    // A plain cpppo simulator serves the same ListIdentity as conpot; with a real S7 stack beside it
    // on the same address, nothing corroborates a honeypot persona.
    let address = "127.113.0.15";
    let Some(enip_server) = start_or_skip(Env::Main, "enip_server.py", &[address, "44818"], READY_WITHIN) else {
        return;
    };
    let Some(s7_server) = start_or_skip(Env::Main, "snap7_server.py", &[address, "102"], READY_WITHIN) else { return };
    let findings = scan(address, "102,44818,44818/udp").await;
    assert_eq!(findings.len(), 3, "{findings:#?}\n{}\n{}", enip_server.output(), s7_server.output());
    for f in &findings {
        assert_not_honeypot(f);
    }
    let enip: Vec<_> = findings.iter().filter(|f| f.port == 44818).collect();
    for f in enip {
        assert_attributes(f, &json!({ "product_name": "1756-L61/B LOGIX5561", "serial_number": "0x006c061a" }));
    }
    assert_eq!(on_port(&findings, 102, &s7_server).protocol, "s7comm");
}

/// nginx's configuration for the test: one server listening on `ports` of `address`, nothing else on
/// the machine touched (every path is in `dir`, a single process in the foreground).
fn nginx_config(dir: &std::path::Path, address: &str, ports: &[u16]) -> std::path::PathBuf {
    let listen: String = ports.iter().map(|p| format!("    listen {address}:{p};\n")).collect();
    let d = dir.display();
    let config = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         server {{\n{listen}    location / {{ return 200 \"lab\\n\"; }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config).unwrap();
    path
}

#[tokio::test]
async fn nginx_on_ics_ports_is_named_from_its_replies() {
    let address = "127.113.0.14";
    let dir = tempfile::tempdir().unwrap();
    let config = nginx_config(dir.path(), address, &[502, 1911, 4840]);
    let config = config.to_str().unwrap();
    let args = ["nginx", address, "502", "--also", "1911", "--also", "4840", "--config", config];
    let Some(server) = start_or_skip(Env::Main, "native_server.py", &args, READY_WITHIN) else { return };
    // `nginx version: nginx/1.22.1`, as the launcher prints it.
    let output = server.output();
    let version = output.lines().find_map(|l| l.strip_prefix("nginx version: nginx/")).expect("nginx -v").trim();
    let findings = scan(address, "502,1911,4840").await;
    for port in [502, 1911, 4840] {
        let f = on_port(&findings, port, &server);
        // nginx answers the Modbus, Fox and OPC UA requests with `400 Bad Request`; nothing more was sent.
        assert_eq!(identity(f), ("http", false, Some("F5"), Some("nginx"), Some(version)), "{f:#?}");
        assert_attributes(f, &json!({ "status": 400, "server": format!("nginx/{version}") }));
        assert!(!f.attributes.contains_key("honeypot"), "{f:#?}");
    }
}

#[tokio::test]
async fn net_snmp_agent_that_speaks_only_v1() {
    // net-snmp's snmpd with a view-based access rule for the v1 security model only: v2c requests
    // with community `public` are dropped unanswered, as a v1-only agent does.
    let address = "127.113.0.16";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("snmpd.conf");
    std::fs::write(
        &config,
        "com2sec v1only default public\ngroup v1group v1 v1only\nview all included .1\n\
         access v1group \"\" v1 noauth exact all none none\n\
         sysname rtu-north\nsysdescr Lab RTU 3000 on net-snmp\nsysobjectid .1.3.6.1.4.1.8072.3.2.10\n",
    )
    .unwrap();
    let args = ["snmpd", address, "161", "--config", config.to_str().unwrap()];
    let Some(server) = start_or_skip(Env::Main, "native_server.py", &args, READY_WITHIN) else { return };
    let findings = scan(address, "161/udp").await;
    let f = on_port(&findings, 161, &server);
    assert_eq!((f.protocol.as_str(), f.ics), ("snmp", false), "{f:#?}");
    assert_attributes(
        f,
        &json!({
            "community_public": true,
            "snmp_version": "v1",
            "sys_descr": "Lab RTU 3000 on net-snmp",
            "sys_object_id": "1.3.6.1.4.1.8072.3.2.10",
            "sys_name": "rtu-north",
        }),
    );
    assert!(!f.attributes.contains_key("error_status"), "{f:#?}");
    assert_not_honeypot(f);
}
