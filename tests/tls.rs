//! TLS services: the handshake records the certificate chain (never trusting it), and a TLS service
//! whose inner protocol is not recognised is reported as `tls` with its certificate.

mod common;

use common::{Responder, Session};
use otscope_lab::tls::Identity;

/// A TLS server with a self-signed certificate for `names`, valid in the past (expired) when
/// `expired`; after the handshake it only listens.
async fn tls_server(addr: &str, names: &[&str], expired: bool) -> Responder {
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "plc-gateway.lab.test");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "otscope lab");
    if expired {
        params.not_before = rcgen::date_time_ymd(2015, 1, 1);
        params.not_after = rcgen::date_time_ymd(2016, 1, 1);
    }
    let identity = Identity::from_params(params).unwrap();
    common::device(addr, Session::tls(identity), common::silent).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_service_is_reported_with_its_certificate() {
    let _server = tls_server("127.115.0.1:9443", &["plc-gateway.lab.test", "127.115.0.1"], true).await;
    let (_dir, ledger) = common::ledger("A-1,a,d,s,general,127.115.0.1,c\n");
    let findings = common::scan(&ledger, "9443", &Default::default(), {
        let mut o = common::options();
        o.probe.banner_wait = std::time::Duration::from_millis(200);
        o
    })
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.protocol, "tls");
    assert!(!f.ics);
    let tls = f.attributes.get("tls").and_then(|v| v.as_object()).expect("tls attributes");
    assert!(tls["subject"].as_str().unwrap().contains("CN=plc-gateway.lab.test"), "{tls:?}");
    assert_eq!(tls["subject"], tls["issuer"]);
    assert_eq!(tls["self_signed"], true);
    assert_eq!(tls["expired"], true);
    let sans: Vec<&str> = tls["san"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(sans.iter().any(|s| s.contains("plc-gateway.lab.test")), "{sans:?}");
    assert!(tls["version"].as_str().unwrap().starts_with("TLS 1."), "{tls:?}");
    assert_eq!(tls["chain_length"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tls_hello_goes_to_a_known_ics_port_without_deep() {
    // A TLS server on the Modbus port: without --deep the scanner must not send it a ClientHello.
    let _server = tls_server("127.115.0.2:502", &["x.lab.test"], false).await;
    let (_dir, ledger) = common::ledger("A-1,a,d,s,general,127.115.0.2,c\n");
    let findings = common::scan(&ledger, "502", &Default::default(), {
        let mut o = common::options();
        o.probe.banner_wait = std::time::Duration::from_millis(200);
        o
    })
    .await;
    assert!(findings.iter().all(|f| !f.attributes.contains_key("tls") && !f.ics), "{findings:#?}");
    let deep = common::scan(&ledger, "502", &Default::default(), {
        let mut o = common::deep();
        o.probe.banner_wait = std::time::Duration::from_millis(200);
        o
    })
    .await;
    assert!(deep.iter().any(|f| f.attributes.contains_key("tls")), "{deep:#?}");
}
