//! TLS services: the handshake records the certificate chain (never trusting it), and a TLS service
//! whose inner protocol is not recognised is reported as `tls` with its certificate.

mod common;

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A TLS server with a self-signed certificate for `names`, valid in the past (expired) when `expired`.
async fn tls_server(
    addr: &str,
    names: &[&str],
    expired: bool,
    reply: Option<&'static [u8]>,
) -> tokio::task::JoinHandle<()> {
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "plc-gateway.lab.test");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "otscope lab");
    if expired {
        params.not_before = rcgen::date_time_ymd(2015, 1, 1);
        params.not_after = rcgen::date_time_ymd(2016, 1, 1);
    }
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
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut tls)) = tokio::time::timeout(Duration::from_secs(3), acceptor.accept(sock)).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf)).await {
                    if let (Some(r), true) = (reply, n > 0) {
                        let _ = tls.write_all(r).await;
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_service_is_reported_with_its_certificate() {
    let server = tls_server("127.115.0.1:9443", &["plc-gateway.lab.test", "127.115.0.1"], true, None).await;
    let (_dir, ledger) = common::ledger("A-1,a,d,s,general,127.115.0.1,c\n");
    let findings = common::scan(&ledger, "9443", &Default::default(), &["--banner-wait", "200ms"]).await;
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
    server.abort();
}
