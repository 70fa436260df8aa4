//! Niagara Fox: a simulated station answering the hello, and peers that must not pass for Fox.

mod common;

use common::{device, echo, ledger, scan, tcp_device, Handler, Session};
use otscope_lab::fox;
use otscope_lab::tls::Identity;
use serde_json::json;

/// A Niagara AX station on a QNX JACE, named as the assertions expect.
fn station() -> Handler {
    fox::station("AHU_Building7")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_hello_is_fox_with_its_fields() {
    let _dev = tcp_device("127.124.0.1:1911", station).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.0.1,c\n");
    let findings = scan(&path, "1911", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics, f.port), ("fox", true, 1911));
    let expected = json!({
        "fox_version": "1.0.1", "host_name": "192.168.1.140", "host_address": "192.168.1.140",
        "app_name": "Station", "app_version": "3.8.213", "vm_name": "Java HotSpot(TM) Client VM",
        "vm_version": "1.5.0_81-b06", "os_name": "QNX", "os_version": "6.4.1", "station_name": "AHU_Building7",
        "lang": "en", "host_id": "Qnx-NPM6-0000-16A3-8210", "vm_uuid": "11e8e9a6-0b40-571a-0000-00000000a096",
        "brand_id": "vykon", "auth_agent_type": "fox:FoxUsernamePasswordAuthAgent", "time_zone": "Asia/Shanghai"
    });
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(f.attributes.get(k), Some(v), "attribute {k}: {:#?}", f.attributes);
    }
    assert!(f.evidence.starts_with(&hex::encode(b"fox a 0 -1 fox hello\n")));
    // The rules: a station on a QNX JACE.
    assert_eq!(f.rule.as_deref(), Some("fox.tridium.jace"));
    assert_eq!(
        (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref()),
        (Some("Tridium"), Some("JACE Niagara station"), Some("3.8.213"))
    );
    assert_eq!(f.device_type.as_deref(), Some("Building automation controller"));
    assert_eq!(f.severity.as_str(), "high", "an ICS protocol on a general-level object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_garbage_and_truncated_replies_are_not_fox() {
    let echo = tcp_device("127.124.0.2:1911", echo).await;
    let garbage = tcp_device("127.124.0.3:1911", || {
        Box::new(|_: &[u8]| Some(b"HTTP/1.0 400 Bad Request\r\nServer: fox\r\n\r\n".to_vec())) as Handler
    })
    .await;
    let truncated = tcp_device("127.124.0.4:1911", || {
        let hello = fox::hello("AHU_Building7");
        Box::new(move |_: &[u8]| Some(hello[..hello.len() - 4].to_vec())) as Handler
    })
    .await;
    // A reply whose object claims more bytes than follow before the terminator.
    let lying = tcp_device("127.124.0.5:1911", || {
        Box::new(|_: &[u8]| Some(b"fox a 0 -1 fox hello\n{\nsysInfo=o:bog 3[<bog>]\n};;\n".to_vec())) as Handler
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.0.2-127.124.0.5,c\n");
    let findings = scan(&path, "1911", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 4, "{findings:#?}");
    for f in &findings {
        // Every reply is evidence: the 400 page names a web server, the rest stay unknown.
        let expected = if f.ip.to_string() == "127.124.0.3" { "http" } else { "unknown" };
        assert_eq!(f.protocol, expected, "{f:#?}");
        assert!(!f.ics);
        assert!(f.attributes.get("fox_version").is_none());
    }
    assert!(
        echo.connections() >= 1
            && garbage.connections() >= 1
            && truncated.connections() >= 1
            && lying.connections() >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_behind_tls_on_4911_is_fox_with_its_certificate() {
    // Fox over TLS ("foxs"), behind a fresh self-signed certificate.
    let identity = Identity::self_signed(&["jace.lab.test"]).unwrap();
    let _server = device("127.124.0.10:4911", Session::tls(identity), station).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.0.10,c\n");
    let findings = scan(&path, "4911", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("fox", true));
    assert_eq!(f.attributes.get("station_name"), Some(&json!("AHU_Building7")));
    let tls = f.attributes.get("tls").and_then(|v| v.as_object()).expect("the certificate is recorded");
    assert_eq!(tls["self_signed"], true);
}
