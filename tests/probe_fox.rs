//! Niagara Fox: a simulated station answering the hello, and peers that must not pass for Fox.

mod common;

use common::{ledger, scan, tcp_device, Handler};
use serde_json::json;

/// A Niagara AX station on a QNX JACE, as public captures show its hello.
const STATION_HELLO: &[u8] = b"fox a 0 -1 fox hello\n{\nfox.version=s:1.0.1\nid=i:122\nhostName=s:192.168.1.140\n\
hostAddress=s:192.168.1.140\napp.name=s:Station\napp.version=s:3.8.213\nvm.name=s:Java HotSpot(TM) Client VM\n\
vm.version=s:1.5.0_81-b06\nos.name=s:QNX\nos.version=s:6.4.1\nstation.name=s:AHU_Building7\nlang=s:en\n\
timeZone=s:Asia/Shanghai;28800000;0;null;null\nhostId=s:Qnx-NPM6-0000-16A3-8210\n\
vmUuid=s:11e8e9a6-0b40-571a-0000-00000000a096\nbrandId=s:vykon\n\
sysInfo=o:bog 61[<bog version=\"1.0\">\n<p m=\"b=baja\" t=\"b:Facets\" v=\"\"/>\n</bog>\n]\n\
authAgentTypeSpecs=s:fox:FoxUsernamePasswordAuthAgent\n};;\n";

/// A station: it answers a client hello (envelope, body, terminator) with its own, in two segments
/// as a busy JACE does, and ignores anything else.
fn station() -> Handler {
    let mut got = Vec::new();
    Box::new(move |req: &[u8]| {
        got.extend_from_slice(req);
        if !(got.starts_with(b"fox a ") && got.ends_with(b"};;\n")) {
            return None;
        }
        let text = String::from_utf8_lossy(&got).to_string();
        got.clear();
        let first = text.lines().next().unwrap_or_default();
        if !first.ends_with(" fox hello") || !text.contains("\nfox.version=s:") {
            return None;
        }
        Some(STATION_HELLO.to_vec())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_hello_is_fox_with_its_fields() {
    let _dev = tcp_device("127.124.0.1:1911", station).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.0.1,c\n");
    let findings = scan(&path, "1911", &Default::default(), &[]).await;
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
    let echo = tcp_device("127.124.0.2:1911", || Box::new(|req: &[u8]| Some(req.to_vec())) as Handler).await;
    let garbage = tcp_device("127.124.0.3:1911", || {
        Box::new(|_: &[u8]| Some(b"HTTP/1.0 400 Bad Request\r\nServer: fox\r\n\r\n".to_vec())) as Handler
    })
    .await;
    let truncated = tcp_device("127.124.0.4:1911", || {
        Box::new(|_: &[u8]| Some(STATION_HELLO[..STATION_HELLO.len() - 4].to_vec())) as Handler
    })
    .await;
    // A reply whose object claims more bytes than follow before the terminator.
    let lying = tcp_device("127.124.0.5:1911", || {
        Box::new(|_: &[u8]| Some(b"fox a 0 -1 fox hello\n{\nsysInfo=o:bog 3[<bog>]\n};;\n".to_vec())) as Handler
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.0.2-127.124.0.5,c\n");
    let findings = scan(&path, "1911", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 4, "{findings:#?}");
    for f in &findings {
        // Every reply is evidence: the 400 page names a web server, the rest stay unknown.
        let expected = if f.ip.to_string() == "127.124.0.3" { "http" } else { "unknown" };
        assert_eq!(f.protocol, expected, "{f:#?}");
        assert!(!f.ics);
        assert!(f.attributes.get("fox_version").is_none());
    }
    assert!(echo.count() >= 1 && garbage.count() >= 1 && truncated.count() >= 1 && lying.count() >= 1);
}

/// A TLS listener with a fresh self-signed certificate; each connection's bytes go to a handler
/// made for it, whose replies are written back (Fox over TLS: "foxs", port 4911).
async fn tls_device(addr: &str, make: impl Fn() -> Handler + Send + Sync + 'static) -> tokio::task::JoinHandle<()> {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let params = rcgen::CertificateParams::new(vec!["jace.lab.test".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let make = Arc::new(make);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, make) = (acceptor.clone(), make.clone());
            tokio::spawn(async move {
                let timeout = std::time::Duration::from_secs(3);
                let Ok(Ok(mut tls)) = tokio::time::timeout(timeout, acceptor.accept(sock)).await else { return };
                let mut handler = make();
                let mut buf = [0u8; 4096];
                for _ in 0..16 {
                    let n = match tokio::time::timeout(timeout, tls.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => return,
                    };
                    if let Some(reply) = handler(&buf[..n]) {
                        let _ = tls.write_all(&reply).await;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_behind_tls_on_4911_is_fox_with_its_certificate() {
    let server = tls_device("127.124.0.10:4911", station).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.0.10,c\n");
    let findings = scan(&path, "4911", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("fox", true));
    assert_eq!(f.attributes.get("station_name"), Some(&json!("AHU_Building7")));
    let tls = f.attributes.get("tls").and_then(|v| v.as_object()).expect("the certificate is recorded");
    assert_eq!(tls["self_signed"], true);
    server.abort();
}
