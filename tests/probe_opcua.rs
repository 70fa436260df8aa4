//! OPC UA discovery against simulated servers built from OPC 10000-6 byte by byte: the Hello
//! handshake, a None secure channel, GetEndpoints (one reply split over two chunks), and the
//! channel's close; an ERR-replying server; and peers that are not OPC UA at all.

mod common;

use common::{always, echo, ledger, scan, tcp_device, Handler};
use otscope_lab::tls::{open62541_certificate, OPEN62541_NOT_AFTER_UNIX};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const NONE: &str = "http://opcfoundation.org/UA/SecurityPolicy#None";
const B256: &str = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";
const UATCP: &str = "http://opcfoundation.org/UA-Profile/Transport/uatcp-uasc-uabinary";
const CHANNEL: u32 = 6;
const TOKEN: u32 = 1;

// --- encoding (little-endian, OPC 10000-6 5.2) ---------------------------------------------

fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.extend_from_slice(&(s.len() as i32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        None => out.extend_from_slice(&(-1i32).to_le_bytes()),
    }
}

fn bytestring(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_le_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&(-1i32).to_le_bytes()),
    }
}

fn chunk(kind: &[u8; 3], chunk_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = kind.to_vec();
    out.push(chunk_type);
    u32le(&mut out, 8 + body.len() as u32);
    out.extend_from_slice(body);
    out
}

fn response_header(out: &mut Vec<u8>, handle: u32, result: u32) {
    out.extend_from_slice(&133_000_000_000_000_000i64.to_le_bytes()); // Timestamp
    u32le(out, handle);
    u32le(out, result);
    out.push(0x00); // ServiceDiagnostics: empty
    out.extend_from_slice(&(-1i32).to_le_bytes()); // StringTable: null
    out.extend_from_slice(&[0x00, 0x00, 0x00]); // AdditionalHeader: null
}

fn error(code: u32, reason: Option<&str>) -> Vec<u8> {
    let mut b = Vec::new();
    u32le(&mut b, code);
    string(&mut b, reason);
    chunk(b"ERR", b'F', &b)
}

// --- decoding of the client's requests --------------------------------------------------------

struct Rd<'a>(&'a [u8], usize);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.0.get(self.1..self.1 + n)?;
        self.1 += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
    fn string(&mut self) -> Option<Option<String>> {
        let n = self.u32()? as i32;
        if n == -1 {
            return Some(None);
        }
        Some(Some(String::from_utf8(self.take(usize::try_from(n).ok()?)?.to_vec()).ok()?))
    }
    /// A RequestHeader without a session; returns its requestHandle.
    fn request_header(&mut self) -> Option<u32> {
        (self.take(2)? == [0, 0]).then_some(())?; // null authentication token
        self.take(8)?; // timestamp
        let handle = self.u32()?;
        self.u32()?; // returnDiagnostics
        self.string()?; // auditEntryId
        self.u32()?; // timeoutHint
        (self.take(3)? == [0, 0, 0]).then_some(())?; // no additional header
        Some(handle)
    }
    fn done(&self) -> bool {
        self.1 == self.0.len()
    }
}

// --- the simulated server --------------------------------------------------------------------

struct AppDescription {
    uri: &'static str,
    product: &'static str,
    name: &'static str,
}

struct EndpointSpec {
    url: &'static str,
    mode: u32,
    policy: &'static str,
    tokens: &'static [(&'static str, u32)],
    level: u8,
    cert: Option<Vec<u8>>,
}

fn endpoint(out: &mut Vec<u8>, app: &AppDescription, e: &EndpointSpec) {
    string(out, Some(e.url));
    string(out, Some(app.uri));
    string(out, Some(app.product));
    out.push(0x02); // LocalizedText: text only
    string(out, Some(app.name));
    u32le(out, 0); // ApplicationType Server
    string(out, None); // GatewayServerUri
    string(out, None); // DiscoveryProfileUri
    out.extend_from_slice(&1i32.to_le_bytes());
    string(out, Some(e.url)); // DiscoveryUrls
    bytestring(out, e.cert.as_deref());
    u32le(out, e.mode);
    string(out, Some(e.policy));
    out.extend_from_slice(&(e.tokens.len() as i32).to_le_bytes());
    for (policy_id, token_type) in e.tokens {
        string(out, Some(policy_id));
        u32le(out, *token_type);
        string(out, None);
        string(out, None);
        string(out, if *token_type == 1 { Some(B256) } else { None });
    }
    string(out, Some(UATCP));
    out.push(e.level);
}

#[derive(Clone)]
struct Server {
    app: Arc<AppDescription>,
    endpoints: Arc<Vec<EndpointSpec>>,
    /// What the server saw, in order: "HEL <url>", "OPN", "GetEndpoints <url>", "CLO", or "bad ...".
    log: Arc<Mutex<Vec<String>>>,
    /// Answer OpenSecureChannel with this Error instead of opening the channel.
    refuse_channel: Option<u32>,
}

impl Server {
    fn handler(&self) -> Handler {
        let me = self.clone();
        let mut pending = Vec::new();
        Box::new(move |bytes: &[u8]| {
            pending.extend_from_slice(bytes);
            let mut reply = Vec::new();
            // Bounded: at most 8 chunks per read.
            for _ in 0..8 {
                let Some(size) = pending.get(4..8).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize) else {
                    break;
                };
                if pending.len() < size || size < 8 {
                    break;
                }
                let msg: Vec<u8> = pending.drain(..size).collect();
                if let Some(r) = me.answer(&msg) {
                    reply.extend(r);
                }
            }
            (!reply.is_empty()).then_some(reply)
        })
    }

    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }

    fn answer(&self, msg: &[u8]) -> Option<Vec<u8>> {
        let mut r = Rd(msg, 8);
        match &msg[..4] {
            b"HELF" => {
                let (version, receive, send) = (r.u32()?, r.u32()?, r.u32()?);
                let (_max_message, _max_chunks) = (r.u32()?, r.u32()?);
                let url = r.string()??;
                if version != 0 || receive < 8192 || send < 8192 || !r.done() || !url.starts_with("opc.tcp://") {
                    self.note(format!("bad HEL {version} {receive} {send} {url}"));
                    return Some(error(0x8083_0000, None));
                }
                self.note(format!("HEL {url}"));
                let mut b = Vec::new();
                for v in [0, 65536, 65536, 2_097_152, 64] {
                    u32le(&mut b, v);
                }
                Some(chunk(b"ACK", b'F', &b))
            }
            b"OPNF" => {
                let ok = r.u32()? == 0
                    && r.string()?.as_deref() == Some(NONE)
                    && r.u32()? == u32::MAX // no sender certificate
                    && r.u32()? == u32::MAX; // no receiver thumbprint
                let _seq = r.u32()?;
                let request_id = r.u32()?;
                let type_ok = r.take(4)? == [0x01, 0x00, 0xBE, 0x01];
                let handle = r.request_header()?;
                let (_client_version, request_type, mode) = (r.u32()?, r.u32()?, r.u32()?);
                let _nonce = r.u32()?;
                let _lifetime = r.u32()?;
                if !ok || !type_ok || request_type != 0 || mode != 1 || !r.done() {
                    self.note("bad OPN".into());
                    return Some(error(0x8007_0000, None));
                }
                self.note("OPN".into());
                if let Some(code) = self.refuse_channel {
                    return Some(error(code, Some("SecurityPolicy None is disabled")));
                }
                let mut b = Vec::new();
                u32le(&mut b, CHANNEL);
                string(&mut b, Some(NONE));
                bytestring(&mut b, None);
                bytestring(&mut b, None);
                u32le(&mut b, 1); // server sequence number
                u32le(&mut b, request_id);
                b.extend_from_slice(&[0x01, 0x00, 0xC1, 0x01]); // OpenSecureChannelResponse
                response_header(&mut b, handle, 0);
                u32le(&mut b, 0); // ServerProtocolVersion
                u32le(&mut b, CHANNEL);
                u32le(&mut b, TOKEN);
                b.extend_from_slice(&133_000_000_000_000_000i64.to_le_bytes());
                u32le(&mut b, 600_000);
                bytestring(&mut b, Some(&[])); // ServerNonce: empty for None
                Some(chunk(b"OPN", b'F', &b))
            }
            b"MSGF" => {
                if r.u32()? != CHANNEL || r.u32()? != TOKEN {
                    self.note("bad MSG channel".into());
                    return Some(error(0x807F_0000, None));
                }
                let _seq = r.u32()?;
                let request_id = r.u32()?;
                let type_id = r.take(4)?.to_vec();
                if type_id != [0x01, 0x00, 0xAC, 0x01] {
                    // Anything but GetEndpoints would be a test failure: record it.
                    self.note(format!("service {type_id:02x?}"));
                    return None;
                }
                let handle = r.request_header()?;
                let url = r.string()??;
                let (_locales, _profiles) = (r.u32()?, r.u32()?);
                if !r.done() {
                    self.note("bad GetEndpoints".into());
                    return None;
                }
                self.note(format!("GetEndpoints {url}"));
                let mut body = vec![0x01, 0x00, 0xAF, 0x01]; // GetEndpointsResponse
                response_header(&mut body, handle, 0);
                body.extend_from_slice(&(self.endpoints.len() as i32).to_le_bytes());
                for e in self.endpoints.iter() {
                    endpoint(&mut body, &self.app, e);
                }
                // Two chunks: an intermediate one, then the final one, each with its own headers.
                let cut = body.len() / 2;
                let mut out = Vec::new();
                for (seq, (kind, part)) in [(b'C', &body[..cut]), (b'F', &body[cut..])].into_iter().enumerate() {
                    let mut b = Vec::new();
                    for v in [CHANNEL, TOKEN, 2 + seq as u32, request_id] {
                        u32le(&mut b, v);
                    }
                    b.extend_from_slice(part);
                    out.extend(chunk(b"MSG", kind, &b));
                }
                Some(out)
            }
            b"CLOF" => {
                let ok = r.u32()? == CHANNEL && r.u32()? == TOKEN;
                r.take(8)?;
                let type_ok = r.take(4)? == [0x01, 0x00, 0xC4, 0x01];
                r.request_header()?;
                self.note(if ok && type_ok && r.done() { "CLO".into() } else { "bad CLO".into() });
                None
            }
            other => {
                self.note(format!("unexpected {other:02x?}"));
                Some(error(0x807E_0000, None))
            }
        }
    }
}

fn open62541_server() -> Server {
    // The server certificate of open62541's test suite.
    let cert = open62541_certificate();
    Server {
        app: Arc::new(AppDescription {
            uri: "urn:open62541.server.application",
            product: "http://open62541.org",
            name: "open62541-based OPC UA Application",
        }),
        endpoints: Arc::new(vec![
            EndpointSpec {
                url: "opc.tcp://plc-7:4840",
                mode: 1,
                policy: NONE,
                tokens: &[("open62541-anonymous-policy", 0), ("open62541-username-policy", 1)],
                level: 1,
                cert: Some(cert.clone()),
            },
            EndpointSpec {
                url: "opc.tcp://plc-7:4840",
                mode: 3,
                policy: B256,
                tokens: &[("open62541-username-policy", 1)],
                level: 100,
                cert: Some(cert),
            },
        ]),
        log: Arc::default(),
        refuse_channel: None,
    }
}

fn ignition_server() -> Server {
    Server {
        app: Arc::new(AppDescription {
            uri: "urn:inductiveautomation:ignition:opcua:server:20bd682b-9fa1-4741-9758-341ca9ee66fb",
            product: "urn:inductiveautomation:ignition:opcua:server",
            name: "Ignition OPC UA Server",
        }),
        endpoints: Arc::new(vec![
            EndpointSpec {
                url: "opc.tcp://gw-1:62541",
                mode: 2,
                policy: B256,
                tokens: &[("username", 1)],
                level: 2,
                cert: None,
            },
            EndpointSpec {
                url: "opc.tcp://gw-1:62541",
                mode: 3,
                policy: B256,
                tokens: &[("username", 1)],
                level: 3,
                cert: None,
            },
        ]),
        log: Arc::default(),
        refuse_channel: None,
    }
}

/// The server logs CLO when it reads it, which may be just after the scan returns: wait (bounded).
async fn settled_log(server: &Server, entries: usize) -> Vec<String> {
    for _ in 0..50 {
        if server.log.lock().unwrap().len() >= entries {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.log.lock().unwrap().clone()
}

fn attrs(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open62541_server_with_a_none_endpoint_and_anonymous_tokens() {
    let server = open62541_server();
    let s = server.clone();
    let _dev = tcp_device("127.123.0.1:4840", move || s.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.0.1,c\n");
    let findings = scan(&path, "4840", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("opcua", true));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(
        common::attributes_with_rules(f),
        attrs(json!({
            "protocol_version": 0,
            "receive_buffer_size": 65536,
            "send_buffer_size": 65536,
            "max_message_size": 2_097_152,
            "max_chunk_count": 64,
            "application_name": "open62541-based OPC UA Application",
            "application_uri": "urn:open62541.server.application",
            "product_uri": "http://open62541.org",
            "application_type": "Server",
            "security_none": true,
            "anonymous": true,
            "security_policies": ["None", "Basic256Sha256"],
            "security_modes": ["None", "SignAndEncrypt"],
            "user_token_types": ["Anonymous", "UserName"],
            "endpoint_count": 2,
            "endpoints": [
                {"url": "opc.tcp://plc-7:4840", "security_mode": "None", "security_policy": "None",
                 "user_tokens": [{"policy_id": "open62541-anonymous-policy", "token_type": "Anonymous"},
                                 {"policy_id": "open62541-username-policy", "token_type": "UserName"}],
                 "security_level": 1, "transport_profile": UATCP},
                {"url": "opc.tcp://plc-7:4840", "security_mode": "SignAndEncrypt", "security_policy": "Basic256Sha256",
                 "user_tokens": [{"policy_id": "open62541-username-policy", "token_type": "UserName"}],
                 "security_level": 100, "transport_profile": UATCP},
            ],
            "certificate_subject": "C=DE, L=Here, O=open62541, CN=open62541Server@localhost",
            "certificate_issuer": "C=DE, L=Here, O=open62541, CN=open62541Server@localhost",
            "certificate_not_after": "Sat, 14 Feb 2026 21:06:37 +0000",
            "certificate_expired": now > OPEN62541_NOT_AFTER_UNIX,
            "certificate_self_signed": true,
            // Outputs of the fingerprint rule opcua.open62541:
            "cpe": "cpe:2.3:a:open62541:open62541:*:*:*:*:*:*:*:*",
            "tags": ["sdk-default"],
        }))
    );
    assert_eq!(f.rule.as_deref(), Some("opcua.open62541"));
    assert_eq!(
        (f.vendor.as_deref(), f.product.as_deref(), f.version.as_deref()),
        (Some("open62541"), Some("open62541 OPC UA Server"), None)
    );
    assert_eq!(f.severity.as_str(), "high", "SecurityPolicy None is weak access");
    assert_eq!(
        settled_log(&server, 4).await,
        vec![
            "HEL opc.tcp://127.123.0.1:4840".to_string(),
            "OPN".into(),
            "GetEndpoints opc.tcp://127.123.0.1:4840".into(),
            "CLO".into()
        ],
        "exactly one discovery conversation, the channel closed, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_offering_only_secure_policies_is_reported_as_it_is() {
    let server = ignition_server();
    let s = server.clone();
    let _dev = tcp_device("127.123.0.2:4840", move || s.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.0.2,c\n");
    let findings = scan(&path, "4840", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("opcua", true));
    let a = &f.attributes;
    assert_eq!(a["security_none"], json!(false));
    assert_eq!(a["anonymous"], json!(false));
    assert_eq!(a["security_policies"], json!(["Basic256Sha256"]));
    assert_eq!(a["security_modes"], json!(["Sign", "SignAndEncrypt"]));
    assert_eq!(a["user_token_types"], json!(["UserName"]));
    assert_eq!(a["product_uri"], json!("urn:inductiveautomation:ignition:opcua:server"));
    assert_eq!(a["application_name"], json!("Ignition OPC UA Server"));
    assert_eq!(a["endpoint_count"], json!(2));
    assert!(!a.contains_key("certificate_subject"), "no certificate was sent");
    assert!(!a.contains_key("error_code"));
    assert_eq!(f.rule.as_deref(), Some("opcua.inductiveautomation.ignition"));
    assert_eq!((f.vendor.as_deref(), f.product.as_deref()), (Some("Inductive Automation"), Some("Ignition")));
    assert_eq!(f.device_type.as_deref(), Some("SCADA"));
    assert_eq!(f.severity.as_str(), "high", "an ICS protocol on a general object, nothing weaker");
    let log = settled_log(&server, 4).await;
    assert_eq!(log[1..], ["OPN", "GetEndpoints opc.tcp://127.123.0.2:4840", "CLO"], "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_reply_to_hello_still_proves_opcua() {
    let _dev = tcp_device("127.123.0.3:4840", || {
        Box::new(|req: &[u8]| req.starts_with(b"HELF").then(|| error(0x8083_0000, Some("no such endpoint"))))
    })
    .await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.0.3,c\n");
    let findings = scan(&path, "4840", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("opcua", true));
    assert_eq!(
        common::attributes_with_rules(f),
        attrs(json!({
            "error_stage": "hello",
            "error_code": 0x8083_0000u32,
            "error_name": "BadTcpEndpointUrlInvalid",
            "error_reason": "no such endpoint",
        }))
    );
    assert_eq!(
        (f.rule.as_deref(), f.vendor.as_deref(), f.product.as_deref()),
        (None, None, None),
        "nothing to name it by"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_none_channel_keeps_the_identification() {
    let mut server = open62541_server();
    server.refuse_channel = Some(0x8055_0000);
    let s = server.clone();
    let _dev = tcp_device("127.123.0.4:4840", move || s.handler()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.0.4,c\n");
    let findings = scan(&path, "4840", &Default::default(), common::options()).await;
    let f = &findings[0];
    assert_eq!(f.protocol, "opcua");
    let a = &f.attributes;
    assert_eq!(a["error_stage"], json!("open_secure_channel"));
    assert_eq!(a["error_name"], json!("BadSecurityPolicyRejected"));
    assert!(!a.contains_key("security_none"), "unknown, so absent: {a:?}");
    assert!(!a.contains_key("anonymous"));
    assert_eq!(f.severity.as_str(), "high", "an ICS protocol on a general object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_echo_and_truncation_are_not_opcua() {
    let _http = tcp_device("127.123.0.5:4840", || {
        Box::new(|_: &[u8]| Some(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec()))
    })
    .await;
    let _echo = tcp_device("127.123.0.6:4840", echo).await;
    // An Acknowledge header that promises 28 bytes and delivers 12.
    let _short = tcp_device("127.123.0.7:4840", || always(b"ACKF\x1c\0\0\0\0\0\0\0")).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.0.5-127.123.0.7,c\n");
    let findings = scan(&path, "4840", &Default::default(), common::options()).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        // Every reply is evidence: the 400 page names a web server, the rest stay unknown.
        let expected = if f.ip.to_string() == "127.123.0.5" { "http" } else { "unknown" };
        assert_eq!((f.protocol.as_str(), f.ics), (expected, false), "{f:#?}");
        assert!(!f.attributes.contains_key("error_code"));
    }
}
