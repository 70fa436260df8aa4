//! MQTT brokers simulated from the 3.1.1 specification (OASIS, 2014) byte by byte: one that accepts
//! anonymous clients, one that refuses them (return code 5), an old 3.1-only broker, one inside TLS on
//! 8883, and peers that are not MQTT.

mod common;

use common::{ledger, scan, tcp_device, Handler};
use serde_json::json;
use std::sync::{Arc, Mutex};

/// A CONNECT as the broker parses it: (protocol name, level, flags, keep-alive, client id).
type Connect = (String, u8, u8, u16, String);

/// Parses a CONNECT packet per section 3.1; None when it is not one.
fn parse_connect(p: &[u8]) -> Option<Connect> {
    if *p.first()? != 0x10 {
        return None;
    }
    // Remaining length: variable byte integer (section 2.2.3).
    let (mut len, mut i) = (0usize, 1usize);
    for shift in 0..4 {
        let b = *p.get(i)?;
        len |= ((b & 0x7F) as usize) << (7 * shift);
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    if p.len() != i + len {
        return None;
    }
    let str16 = |at: usize| -> Option<(String, usize)> {
        let n = u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]) as usize;
        Some((String::from_utf8(p.get(at + 2..at + 2 + n)?.to_vec()).ok()?, at + 2 + n))
    };
    let (name, at) = str16(i)?;
    let level = *p.get(at)?;
    let flags = *p.get(at + 1)?;
    let keep_alive = u16::from_be_bytes([*p.get(at + 2)?, *p.get(at + 3)?]);
    let (id, end) = str16(at + 4)?;
    // No will, user name or password flags, so the payload is the client id alone.
    (end == p.len()).then_some((name, level, flags, keep_alive, id))
}

/// A broker that answers a valid CONNECT with `code` (when `accept(level)`) or 1 otherwise, and logs packets.
fn broker(log: Arc<Mutex<Vec<String>>>, code: u8, accept: fn(u8) -> bool) -> Handler {
    Box::new(move |p: &[u8]| {
        if p == [0xE0, 0x00] {
            log.lock().unwrap().push("DISCONNECT".into());
            return None;
        }
        let Some((name, level, flags, keep_alive, id)) = parse_connect(p) else {
            log.lock().unwrap().push(format!("bad {p:02x?}"));
            return None;
        };
        let valid_name = (name == "MQTT" && level == 4) || (name == "MQIsdp" && level == 3);
        let id_ok = id.starts_with("otscope") && !id.is_empty() && id.len() <= 23;
        log.lock()
            .unwrap()
            .push(format!("CONNECT {name} {level} {flags:#04x} {keep_alive} {}", &id[..8.min(id.len())]));
        if !valid_name || flags != 0x02 || !id_ok {
            return Some(vec![0x20, 0x02, 0x00, 0x02]);
        }
        Some(vec![0x20, 0x02, 0x00, if accept(level) { code } else { 0x01 }])
    })
}

async fn settled(log: &Arc<Mutex<Vec<String>>>, entries: usize) -> Vec<String> {
    for _ in 0..50 {
        if log.lock().unwrap().len() >= entries {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    log.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_accepting_broker_is_high() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let _dev = tcp_device("127.123.1.1:1883", move || broker(l.clone(), 0, |_| true)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.1,c\n");
    let findings = scan(&path, "1883", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("mqtt", false));
    assert_eq!(
        common::attributes_with_rules(f),
        json!({"return_code": 0, "anonymous": true, "session_present": false, "protocol_level": 4,
               "device_type": "MQTT broker", "tags": ["iiot"]})
        .as_object()
        .unwrap()
        .clone()
    );
    assert_eq!(f.severity.as_str(), "high");
    assert_eq!(f.evidence, "20020000");
    assert_eq!(
        (f.rule.as_deref(), f.vendor.as_deref()),
        (Some("mqtt.generic"), None),
        "brokers do not name themselves"
    );
    assert_eq!(settled(&log, 2).await, ["CONNECT MQTT 4 0x02 30 otscope-", "DISCONNECT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_refusing_anonymous_clients_is_low() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let _dev = tcp_device("127.123.1.2:1883", move || broker(l.clone(), 5, |_| true)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.2,c\n");
    let findings = scan(&path, "1883", &Default::default(), &[]).await;
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("mqtt", false));
    assert_eq!(
        common::attributes_with_rules(f),
        json!({"return_code": 5, "anonymous": false, "session_present": false, "protocol_level": 4,
               "device_type": "MQTT broker", "tags": ["iiot"]})
        .as_object()
        .unwrap()
        .clone()
    );
    assert_eq!(f.severity.as_str(), "low");
    assert_eq!(settled(&log, 1).await, ["CONNECT MQTT 4 0x02 30 otscope-"], "no DISCONNECT after a refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_3_1_broker_gets_a_retry_at_level_5_then_with_mqisdp() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let _dev = tcp_device("127.123.1.3:1883", move || broker(l.clone(), 0, |level| level == 3)).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.3,c\n");
    let findings = scan(&path, "1883", &Default::default(), &[]).await;
    let f = &findings[0];
    assert_eq!(f.protocol, "mqtt");
    assert_eq!(f.attributes["return_code"], json!(0));
    assert_eq!(f.attributes["anonymous"], json!(true));
    assert_eq!(f.attributes["protocol_level"], json!(3));
    // An unacceptable protocol version gets MQTT 5 first (which this 3.x broker cannot parse and
    // leaves unanswered: level 5, clean start, keep-alive 30, no properties), then 3.1.
    let log = settled(&log, 4).await;
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log[0], "CONNECT MQTT 4 0x02 30 otscope-");
    assert!(log[1].starts_with("bad [10, 1d, 00, 04, 4d, 51, 54, 54, 05, 02, 00, 1e, 00, 00, 10,"), "{log:?}");
    assert_eq!(log[2..], ["CONNECT MQIsdp 3 0x02 30 otscope-", "DISCONNECT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_echo_are_not_mqtt() {
    let _junk = tcp_device("127.123.1.4:1883", || Box::new(|_: &[u8]| Some(b"\x20\x05garbage!".to_vec()))).await;
    let _echo = tcp_device("127.123.1.5:1883", || Box::new(|p: &[u8]| Some(p.to_vec()))).await;
    let _text =
        tcp_device("127.123.1.6:1883", || Box::new(|_: &[u8]| Some(b"ERROR unknown command\r\n".to_vec()))).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.4-127.123.1.6,c\n");
    let findings = scan(&path, "1883", &Default::default(), &[]).await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    for f in &findings {
        assert_eq!(f.protocol, "unknown", "{f:#?}");
        assert!(!f.attributes.contains_key("anonymous"));
    }
}

// --- MQTT over TLS (8883) ---------------------------------------------------------------------

/// open62541's published test certificate and its key (tests/encryption/certificates.h in the
/// open62541 repository): public test material, used here only to stand up a loopback TLS broker.
const TEST_CERT_HEX: &str = concat!(
    "30820408308202f0a00302010202145f696e13d7bd8049a79354b0416f0cefdd02ddd1300d06092a864886f70d01010b",
    "05003054310b3009060355040613024445310d300b06035504070c044865726531123010060355040a0c096f70656e36",
    "323534313122302006035504030c196f70656e3632353431536572766572406c6f63616c686f7374301e170d32353032",
    "31343231303633375a170d3236303231343231303633375a3054310b3009060355040613024445310d300b0603550407",
    "0c044865726531123010060355040a0c096f70656e36323534313122302006035504030c196f70656e36323534315365",
    "72766572406c6f63616c686f737430820122300d06092a864886f70d01010105000382010f003082010a0282010100db",
    "70001b173c17215dad7134a82343f595e24db6746f9043a896adc7513189c9ee710c7ea1fd429740bd823cf6f58eaef5",
    "949002e3a82ac570c482b7d56717af88a297c0cba1d659e01d66f7c89b7908173c23990418f097c1a2a321ceaca3edab",
    "424d8736c56ec8eba8fc694d41da22fc3130654c0f2c1e799e0a7cbeb1d752ee9381c416e1627a8cffd85aa12969aa2e",
    "dfed72d3ea9694c63e54d8994b5eb05a8a9465c6da0fca845f8a47057bb2da85fe927b518ff47fc76b6e39e1e578e5ee",
    "e2b201eb53451e60ead756be78debad8a02355034e8e007d575d64f36e88cfb86a8699d1d5379b5697bcb857a87de97c",
    "782d338da68b70a47194c64f1013e50203010001a381d13081ce301d0603551d0e0416041402267347a5e34c39cc83f2",
    "29cec1482ac7df54a5301f0603551d2304183016801402267347a5e34c39cc83f229cec1482ac7df54a530090603551d",
    "1304023000300b0603551d0f0404030202f4301d0603551d250416301406082b0601050507030106082b060105050703",
    "0230550603551d11044e304c820a7669727475616c626f78820a7669727475616c626f7887040a00020f8704c0a83865",
    "862675726e3a6f70656e36323534312e756e636f6e666967757265642e6170706c69636174696f6e300d06092a864886",
    "f70d01010b05000382010100a322cd58813e5b93567d5e61e640b9a3bd913036e86cf1534fbd27f2581e94a6060a1975",
    "07c3f5e0bce05af6bcd6365f104d06adaee0cd5214816f9e9700af137c0c699e14a41c3be2ffc800105887c97659727d",
    "5ba87c3b71237dfa383da0b1c111a85cabb79114471025c3bad24be36b8961ae9a95ba01a058099974484d5ff7edce29",
    "f6fac4c4d24ae778b61dee3fc3231936de5bcb638c1dfa2233ac6dbb7a741747b96e036ddd4c989a2921e4b843ee13c3",
    "4277db889784400e6855c95920ecdd77b61e896bbaae8612dde5da80b3b469097a40640c8ec71387472cdb71a8b1fdab",
    "573b53ad09866e476c5f717d2af9b323a8214172d8ea1c6626f19996",
);
const TEST_KEY_PKCS8_HEX: &str = concat!(
    "308204bd020100300d06092a864886f70d0101010500048204a7308204a30201000282010100db70001b173c17215dad",
    "7134a82343f595e24db6746f9043a896adc7513189c9ee710c7ea1fd429740bd823cf6f58eaef5949002e3a82ac570c4",
    "82b7d56717af88a297c0cba1d659e01d66f7c89b7908173c23990418f097c1a2a321ceaca3edab424d8736c56ec8eba8",
    "fc694d41da22fc3130654c0f2c1e799e0a7cbeb1d752ee9381c416e1627a8cffd85aa12969aa2edfed72d3ea9694c63e",
    "54d8994b5eb05a8a9465c6da0fca845f8a47057bb2da85fe927b518ff47fc76b6e39e1e578e5eee2b201eb53451e60ea",
    "d756be78debad8a02355034e8e007d575d64f36e88cfb86a8699d1d5379b5697bcb857a87de97c782d338da68b70a471",
    "94c64f1013e50203010001028201001f198f4647a37a52be04561a44a724db52480dc4095a036bf7618d9505569c44ec",
    "8084a910dbc43b8c0f1fbd74b1c62c593d5a30b2a3b396227e93592b0b4ea1cfdf5d5b137127203b416785c01e7ac791",
    "0572b51dcdcc1171fdd319784163054ce39b79c9a32f29962eafc15bd3f4aec727d08856c082bbf9f8125bee29e5ce85",
    "b373522379ca9b05b3cfa5106157be706448636ef24c990122a6e092d5b776db28994be2aa5da646f79acbb55fc787af",
    "0c697753857952dc36dcc795857f5c3520fe8c77c3a98825287ec69284aafa9e390cfc2dcc6715fa38c1f2e7b342be66",
    "4ac1fd30b5b2a3b7fdb4bf7de05fda5b0ad7d8b3698b78ec81090c6787a0a102818100f20527e3d1df0c3c000407b09e",
    "916d42a9252f3cf4ec13c92be18a6a31e6c5091aa693677249f175ff6efdc30212cc91a58c9a1d8be7a62b32de7ceb6f",
    "08a3795dd954b1948bf52b3d1f010dae1c4adea90afa68fd0603e1c576dc973612ac6588a6dffc7e60402508d7f3a461",
    "892ce8b13fc9dcd3ca3b76f54295b46af302c502818100e81ce8107e8f555c50d5b71aa3edbf670e967fa02912d9a954",
    "9977ad8c7d6b0d26110a7b6645757bb3b1c6d9291805ba093a1bed98a799bca53499c216dc0295ce5952b098b3dbfeff",
    "f9d6e0497133611e0730cfe3d7bf170a6e7b88ef46809160daad8367d784867549db2ab246a7889b652dcac4770f8ebe",
    "dc44ba13cb5ea102818026835586b676151f532d50fff52bd5443f607074f5d0bf914acf58546fde764a6d98466ab6d0",
    "37817c8570126139169eb2c67e1be790946bd96b785b8acec81cdf275f87e6c8a2da1f9ed86f11dee4b72c155825eee5",
    "cf26556305d576406078c3d7325b9eccb8486c70d90fb689bac0c8bc0ae67e39775f05c673c64322aab502818001840e",
    "cfecc3aadf0b7819d606b40ac7f5846e18f1abb9d82d414352d2d40edaeb20b95cccf22f2e3ba23196417a72af20584c",
    "ce646cd3c8339c0055102927ab2ac9d28c6cb2e000ee530760379a91a754b6df4ebc4230714a1426a2624da7914b7ca2",
    "1d759426bd6a0ead6bbdf65029c83a04ee8a11ecfc15ab0297e481338102818100d410f177fb63fea2f3c41f691dd506",
    "232e74507c934fbebe4532a6afd67fb7910df42eaf056ab8f3801ee4b6fded7a83daf598381d56508d3417819a4d3072",
    "6ae523234ff1473d5722f1db4d4d607b2129a3ea5ca75adef5c4499e6e0479b78de785ff7abad2a45cd64bdbdf0300fb",
    "4cb98a016223324d745a3c57cfedd6a5a8",
);

/// A broker behind TLS on its own loopback address: accepts every connection, completes the
/// handshake, then runs the same broker conversation inside.
async fn tls_broker(addr: &str, log: Arc<Mutex<Vec<String>>>) -> tokio::task::JoinHandle<()> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(hex::decode(TEST_CERT_HEX).unwrap())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(hex::decode(TEST_KEY_PKCS8_HEX).unwrap())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let mut handler = broker(log.clone(), 0, |_| true);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else { return };
                let mut buf = vec![0u8; 4096];
                // Bounded: a test broker answers at most 8 packets per connection.
                for _ in 0..8 {
                    let n = match tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => return,
                    };
                    if let Some(reply) = handler(&buf[..n]) {
                        if tls.write_all(&reply).await.is_err() || tls.flush().await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_inside_tls_on_8883() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let task = tls_broker("127.123.1.7:8883", log.clone()).await;
    let (_dir, path) = ledger("E1,ent,district,s,general,127.123.1.7,c\n");
    let findings = scan(&path, "8883", &Default::default(), &[]).await;
    task.abort();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.ics), ("mqtt", false));
    assert_eq!(f.attributes["anonymous"], json!(true));
    assert_eq!(f.attributes["return_code"], json!(0));
    assert_eq!(f.attributes["tls"]["subject"], json!("C=DE, L=Here, O=open62541, CN=open62541Server@localhost"));
    assert_eq!(f.severity.as_str(), "high");
    assert_eq!(settled(&log, 2).await, ["CONNECT MQTT 4 0x02 30 otscope-", "DISCONNECT"]);
}
