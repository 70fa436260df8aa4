//! HTTP: simulated web servers (plain, chunked, read-until-close, authenticating), a server with a
//! bogus status line, and HTTP servers on known ICS ports, which must not receive a GET.

mod common;

use common::{banner_device, device, echo, ledger, scan, tcp_device, Handler, Responder, Session};
use otscope::scope::Transport;
use otscope_lab::serve::Close;
use otscope_lab::tls::Identity;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A WAGO PFC200's start page: the page as the controller's lighttpd serves it.
const WAGO_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>WAGO Ethernet Web-based Management</title>\n\
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">\n</head>\n<body></body>\n</html>\n";

/// Whether `req` is a well-formed GET of the root with a Host header (what a real server checks).
fn is_get_root(req: &[u8]) -> bool {
    let text = String::from_utf8_lossy(req);
    text.starts_with("GET / HTTP/1.1\r\n") && text.contains("\r\nHost: ") && text.ends_with("\r\n\r\n")
}

/// A web server: the page for a GET of the root, 400 Bad Request for anything else, as real
/// servers answer stray bytes. `got_get` records whether a GET ever arrived.
fn web_server(reply: &'static str, got_get: Arc<AtomicBool>) -> impl Fn() -> Handler + Send + Sync + 'static {
    move || {
        let got_get = got_get.clone();
        let mut buf = Vec::new();
        Box::new(move |req: &[u8]| {
            buf.extend_from_slice(req);
            if buf.windows(4).any(|w| w == b"GET ") {
                got_get.store(true, Ordering::SeqCst);
            }
            if is_get_root(&buf) {
                buf.clear();
                return Some(reply.as_bytes().to_vec());
            }
            if buf.starts_with(b"GET") && !buf.ends_with(b"\r\n\r\n") {
                return None; // the rest of the request is still to come
            }
            buf.clear();
            Some(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec())
        })
    }
}

fn page_with_length(server: &str, body: &str) -> &'static str {
    let reply = format!(
        "HTTP/1.1 200 OK\r\nServer: {server}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Box::leak(reply.into_boxed_str())
}

/// A server that answers a GET of the root with `reply` (once the whole request is in), then closes
/// as `close` says: the end of the body is marked only by the close.
async fn closing_server(addr: &str, reply: &'static [u8], close: Close, tls: Option<Identity>) -> Responder {
    let session = Session { close_after_reply: Some(close), tls, ..Session::default() };
    device(addr, session, move || {
        let mut got = Vec::new();
        Box::new(move |req: &[u8]| {
            got.extend_from_slice(req);
            is_get_root(&got).then(|| reply.to_vec())
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_servers_are_identified_with_their_page() {
    let flag = Arc::new(AtomicBool::new(false));
    let _plain =
        tcp_device("127.124.2.1:80", web_server(page_with_length("lighttpd/1.4.59", WAGO_PAGE), flag.clone())).await;
    let chunked = "HTTP/1.1 200 OK\r\nServer: Niagara Web Server/4.1.27.20\r\nTransfer-Encoding: chunked\r\n\
Content-Type: text/html; charset=UTF-8\r\nX-Powered-By: Niagara\r\n\r\n\
10\r\n<html><head><tit\r\n13\r\nle>Niagara&nbsp;4 \r\n1a\r\n  Supervisor</title></head>\r\n0\r\n\r\n";
    let _chunked = tcp_device("127.124.2.2:8080", web_server(chunked, flag.clone())).await;
    let _closing = closing_server(
        "127.124.2.3:8000",
        b"HTTP/1.0 200 OK\r\nServer: Schneider-WEB/V2.1.4\r\nContent-Type: text/html\r\n\r\n\
<html><head><title>Schneider Electric &#8211; BMX P34 2020</title></head></html>",
        Close::Clean,
        None,
    )
    .await;
    // Keeps the connection open after a body without length: the read deadline ends it.
    let _lingering = tcp_device(
        "127.124.2.4:8081",
        web_server("HTTP/1.0 200 OK\r\nServer: MoxaHttp/2.2\r\n\r\n<title>NPort Web Console</title>", flag.clone()),
    )
    .await;
    let _auth = tcp_device(
        "127.124.2.5:8888",
        web_server(
            "HTTP/1.1 401 Unauthorized\r\nServer: GoAhead-Webs\r\nWWW-Authenticate: Basic realm=\"GoAhead\"\r\n\
Content-Length: 0\r\n\r\n",
            flag.clone(),
        ),
    )
    .await;
    let _redirect = tcp_device(
        "127.124.2.6:80",
        web_server(
            "HTTP/1.1 302 Found\r\nLocation: /Portal/Portal.mwsl?PriNav=Start\r\nContent-Length: 0\r\n\r\n",
            flag.clone(),
        ),
    )
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.2.1-127.124.2.6,c\n");
    let findings = scan(&path, "80,8080,8000,8081,8888", &Default::default(), common::options()).await;
    let found: Vec<_> = findings.iter().filter(|f| f.protocol != "unknown" || f.evidence.is_empty()).collect();
    let by = |ip: &str, port: u16| {
        findings
            .iter()
            .find(|f| f.ip.to_string() == ip && f.port == port)
            .unwrap_or_else(|| panic!("no finding for {ip}:{port}: {found:#?}"))
    };
    for f in &findings {
        assert!(!f.ics, "{f:#?}");
    }

    let f = by("127.124.2.1", 80);
    assert_eq!(f.protocol, "http");
    for (k, v) in [
        ("status", json!(200)),
        ("server", json!("lighttpd/1.4.59")),
        ("content_type", json!("text/html")),
        ("title", json!("WAGO Ethernet Web-based Management")),
    ] {
        assert_eq!(f.attributes.get(k), Some(&v), "{k}: {f:#?}");
    }
    // The HMI's title wins over the web server software it runs on.
    assert_eq!(f.rule.as_deref(), Some("http.title.wago.wbm"));
    assert_eq!((f.vendor.as_deref(), f.device_type.as_deref()), (Some("WAGO"), Some("PLC")));
    assert!(f.tags.iter().any(|t| t == "ics-hmi"));
    assert_eq!(f.severity.as_str(), "high", "an ICS web HMI");

    let f = by("127.124.2.2", 8080);
    assert_eq!(f.protocol, "http");
    assert_eq!(f.attributes.get("title"), Some(&json!("Niagara 4 Supervisor")));
    assert_eq!(f.attributes.get("server"), Some(&json!("Niagara Web Server/4.1.27.20")));
    assert_eq!(f.attributes.get("powered_by"), Some(&json!("Niagara")));
    assert_eq!(f.rule.as_deref(), Some("http.server.tridium.niagara"));
    assert_eq!((f.vendor.as_deref(), f.version.as_deref()), (Some("Tridium"), Some("4.1.27.20")));
    assert_eq!(f.severity.as_str(), "high");

    let f = by("127.124.2.3", 8000);
    assert_eq!(f.protocol, "http");
    assert_eq!(f.attributes.get("title"), Some(&json!("Schneider Electric \u{2013} BMX P34 2020")));
    assert_eq!(f.attributes.get("server"), Some(&json!("Schneider-WEB/V2.1.4")));
    assert_eq!(
        (f.rule.as_deref(), f.vendor.as_deref()),
        (Some("http.server.schneider.web"), Some("Schneider Electric"))
    );

    let f = by("127.124.2.4", 8081);
    assert_eq!(f.protocol, "http");
    assert_eq!(f.attributes.get("title"), Some(&json!("NPort Web Console")));
    assert_eq!((f.rule.as_deref(), f.vendor.as_deref()), (Some("http.server.moxa"), Some("Moxa")));

    let f = by("127.124.2.5", 8888);
    assert_eq!(f.protocol, "http");
    assert_eq!(f.attributes.get("status"), Some(&json!(401)));
    assert_eq!(f.attributes.get("www_authenticate"), Some(&json!("Basic realm=\"GoAhead\"")));
    assert_eq!(f.attributes.get("realm"), Some(&json!("GoAhead")));
    // A generic embedded server: named, not an ICS HMI.
    assert_eq!((f.rule.as_deref(), f.product.as_deref()), (Some("http.webserver.goahead"), Some("GoAhead")));
    assert!(f.tags.is_empty());
    assert_eq!(f.severity.as_str(), "low");

    let f = by("127.124.2.6", 80);
    assert_eq!(f.attributes.get("status"), Some(&json!(302)));
    assert_eq!(f.attributes.get("location"), Some(&json!("/Portal/Portal.mwsl?PriNav=Start")));
    assert!(f.attributes.get("title").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bogus_status_line_is_not_http() {
    let flag = Arc::new(AtomicBool::new(false));
    let _bogus = tcp_device(
        "127.124.2.10:80",
        web_server("HTTP/1.1 OK\r\nServer: fake\r\n\r\n<title>nope</title>", flag.clone()),
    )
    .await;
    let _icy = tcp_device("127.124.2.11:80", web_server("ICY 200 OK\r\nicy-name: radio\r\n\r\n", flag.clone())).await;
    let _echo = tcp_device("127.124.2.12:80", echo).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.2.10-127.124.2.12,c\n");
    let findings = scan(&path, "80", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        assert_eq!(f.protocol, "unknown", "{f:#?}");
        assert!(f.attributes.get("title").is_none() && f.attributes.get("status").is_none());
    }
    assert!(flag.load(Ordering::SeqCst), "the GET was sent to a non-ICS port");
}

/// An HTTP server listening on a known ICS port: no `ics: true` finding, and no GET without `--deep`.
/// 502 gets a Modbus request (which this server answers with 400 Bad Request, not Modbus) and 1911
/// a Fox hello (the same); no text probe follows on either, and that 400 reply names the web server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_servers_on_ics_ports_get_no_get_without_deep() {
    let page = page_with_length("Apache", "<title>It works</title>");
    let on_502 = Arc::new(AtomicBool::new(false));
    let _s502 = tcp_device("127.124.3.1:502", web_server(page, on_502.clone())).await;
    let on_1911 = Arc::new(AtomicBool::new(false));
    let _s1911 = tcp_device("127.124.3.2:1911", web_server(page, on_1911.clone())).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.3.1-127.124.3.2,c\n");
    let findings = scan(&path, "502,1911", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 2, "{findings:#?}");
    for f in &findings {
        assert!(!f.ics, "an HTTP server must not pass for an ICS protocol: {f:#?}");
    }
    let fox_port = findings.iter().find(|f| f.port == 1911).unwrap();
    assert_eq!(fox_port.protocol, "http", "{fox_port:#?}");
    assert_eq!(fox_port.attributes.get("status"), Some(&json!(400)), "{fox_port:#?}");
    assert!(!on_1911.load(Ordering::SeqCst), "a GET was sent to the Fox port 1911 without --deep");
    let modbus_port = findings.iter().find(|f| f.port == 502).unwrap();
    assert!(otscope::probes::is_ics_port(502, Transport::Tcp), "the registry knows Modbus on 502");
    assert_eq!(modbus_port.protocol, "http", "{modbus_port:#?}");
    assert_eq!(modbus_port.attributes.get("status"), Some(&json!(400)), "{modbus_port:#?}");
    assert!(!on_502.load(Ordering::SeqCst), "a GET was sent to the Modbus port 502 without --deep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_scans_do_send_the_get_to_an_ics_port() {
    let page = page_with_length("Apache", "<title>It works</title>");
    let got = Arc::new(AtomicBool::new(false));
    let _s = tcp_device("127.124.3.3:1911", web_server(page, got.clone())).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.3.3,c\n");
    let findings = scan(&path, "1911", &Default::default(), common::deep()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("http", false));
    assert_eq!(f.attributes.get("title"), Some(&json!("It works")));
    assert!(got.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_port_gets_nothing_but_a_connect_and_a_hello() {
    // A port that accepts and never speaks: http is tried (not an ICS port), nothing is invented.
    let silent = banner_device("127.124.2.20:8080", None).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.2.20,c\n");
    let findings = scan(&path, "8080", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!((findings[0].protocol.as_str(), findings[0].evidence.as_str()), ("unknown", ""));
    assert!(silent.connections() >= 1);
}

/// A TLS web server with a fresh self-signed certificate: it answers a GET of the root with `reply`,
/// then closes cleanly (close_notify) or just drops the connection, as many embedded servers do.
async fn https_server(addr: &str, reply: &'static [u8], close: Close) -> Responder {
    closing_server(addr, reply, close, Some(Identity::self_signed(&["hmi.lab.test"]).unwrap())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_pages_are_read_through_tls_even_without_a_clean_close() {
    let _clean = https_server(
        "127.124.2.30:443",
        b"HTTP/1.1 200 OK\r\nServer: Niagara Web Server/3.8.111\r\nContent-Length: 26\r\n\r\n<title>Niagara AX</title>\n",
        Close::Clean,
    )
    .await;
    // A body delimited by the close of an abruptly closed TLS connection.
    let _abrupt = https_server(
        "127.124.2.31:8443",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html><title>SIMATIC&nbsp;1200&nbsp;station_1</title>",
        Close::Abrupt,
    )
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.124.2.30-127.124.2.31,c\n");
    let findings = scan(&path, "443,8443", &Default::default(), common::options()).await;
    let found: Vec<_> = findings.iter().filter(|f| f.protocol != "unknown").collect();
    assert_eq!(found.len(), 2, "{findings:#?}");

    let f = found.iter().find(|f| f.port == 443).unwrap();
    assert_eq!((f.protocol.as_str(), f.ics), ("http", false));
    assert_eq!(f.attributes.get("title"), Some(&json!("Niagara AX")));
    assert!(f.attributes.get("tls").is_some(), "{f:#?}");
    assert_eq!(f.vendor.as_deref(), Some("Tridium"));

    let f = found.iter().find(|f| f.port == 8443).unwrap();
    assert_eq!(f.protocol, "http");
    assert_eq!(f.attributes.get("title"), Some(&json!("SIMATIC 1200 station_1")));
    assert_eq!((f.vendor.as_deref(), f.product.as_deref()), (Some("Siemens"), Some("SIMATIC S7-1200")));
    assert_eq!(f.severity.as_str(), "high");
}
