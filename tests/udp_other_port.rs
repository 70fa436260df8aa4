//! BACnet and FINS stacks that answer a UDP request from another source port than the one asked:
//! the reply is read on an unconnected socket and matched by content and address. A reply from any
//! other address is dropped, even when its content would match. The devices are built here from the
//! specifications (ASHRAE 135 Annex J and clause 20; Omron W342 FINS Controller Data Read).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;

/// BVLC original-unicast-NPDU around an NPDU without a network layer address.
fn bvlc(apdu: &[u8]) -> Vec<u8> {
    let mut d = vec![0x81, 0x0A];
    d.extend_from_slice(&((apdu.len() + 6) as u16).to_be_bytes());
    d.extend_from_slice(&[0x01, 0x00]);
    d.extend_from_slice(apdu);
    d
}

const DEVICE: [u8; 4] = [0x02, 0x00, 0x05, 0x15]; // device object, instance 1301

/// What a BACnet device answers: I-Am to Who-Is, the object name, vendor and model names to
/// ReadProperty of its device object, an unknown-property error to anything else.
fn bacnet_reply(request: &[u8]) -> Option<Vec<u8>> {
    let apdu = request.get(6..)?;
    match apdu {
        [0x10, 0x08, ..] => {
            // I-Am: device 1301, max APDU 1476, segmentation none (3), vendor 999.
            let mut i_am = vec![0x10, 0x00, 0xC4];
            i_am.extend_from_slice(&DEVICE);
            i_am.extend_from_slice(&[0x22, 0x05, 0xC4, 0x91, 0x03, 0x22, 0x03, 0xE7]);
            Some(bvlc(&i_am))
        }
        [0x00, _, invoke, 0x0C, 0x0C, object @ .., 0x19, property] if object.len() == 4 => {
            let text = match property {
                77 => Some("Any-port device"),
                121 => Some("Lab Vendor"),
                70 => Some("AP-1"),
                _ => None,
            };
            let reply = match text {
                Some(t) => {
                    let mut ack = vec![0x30, *invoke, 0x0C, 0x0C];
                    ack.extend_from_slice(object);
                    ack.extend_from_slice(&[0x19, *property, 0x3E, 0x75, t.len() as u8 + 1, 0x00]);
                    ack.extend_from_slice(t.as_bytes());
                    ack.push(0x3F);
                    ack
                }
                None => vec![0x50, *invoke, 0x0C, 0x91, 0x02, 0x91, 0x20],
            };
            Some(bvlc(&reply))
        }
        _ => None,
    }
}

/// What an Omron controller answers to Controller Data Read (0501): the response header with source
/// and destination swapped, the same service id, end code 0000, model and version (20 bytes each).
fn fins_reply(request: &[u8]) -> Option<Vec<u8>> {
    if request.len() < 12 || request[10..12] != [0x05, 0x01] {
        return None;
    }
    let h = request;
    let mut r = vec![0xC0, 0x00, 0x02, h[6], h[7], h[8], h[3], h[4], h[5], h[9], 0x05, 0x01, 0x00, 0x00];
    for text in ["CJ2M-CPU31", "02.01"] {
        let mut field = text.as_bytes().to_vec();
        field.resize(20, b' ');
        r.extend(field);
    }
    Some(r)
}

/// A UDP device that receives on `listen` and answers from `answer_from` (another port, or another
/// address), counting the requests it got.
async fn answering_from(
    listen: &str,
    answer_from: &str,
    reply: fn(&[u8]) -> Option<Vec<u8>>,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let inbound = UdpSocket::bind(listen).await.unwrap();
    let outbound = UdpSocket::bind(answer_from).await.unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        // Bounded: a test device answers at most 64 requests.
        for _ in 0..64 {
            let Ok((n, from)) = inbound.recv_from(&mut buf).await else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            if let Some(r) = reply(&buf[..n]) {
                let _ = outbound.send_to(&r, from).await;
            }
        }
    });
    (count, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bacnet_reply_from_another_port_of_the_device_is_read() {
    let (asked, task) = answering_from("127.119.0.1:47808", "127.119.0.1:47809", bacnet_reply).await;
    let (_dir, ledger) = common::ledger("U-1,udp,d,s,important,127.119.0.1,c\n");
    let findings = common::scan(&ledger, "47808/udp", &Default::default(), common::options()).await;
    task.abort();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!((f.protocol.as_str(), f.port), ("bacnet", 47808), "{f:#?}");
    for (key, want) in [
        ("instance", serde_json::json!(1301)),
        ("vendor_id", serde_json::json!(999)),
        ("object_name", serde_json::json!("Any-port device")),
        ("vendor_name", serde_json::json!("Lab Vendor")),
        ("model_name", serde_json::json!("AP-1")),
    ] {
        assert_eq!(f.attributes.get(key), Some(&want), "{key}: {f:#?}");
    }
    assert!(asked.load(Ordering::SeqCst) >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fins_reply_from_another_port_of_the_controller_is_read() {
    let (_, task) = answering_from("127.119.0.4:9600", "127.119.0.4:9601", fins_reply).await;
    let (_dir, ledger) = common::ledger("U-2,udp,d,s,important,127.119.0.4,c\n");
    let findings = common::scan(&ledger, "9600/udp", &Default::default(), common::options()).await;
    task.abort();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.protocol, "fins", "{f:#?}");
    assert_eq!(f.attributes.get("controller_model"), Some(&serde_json::json!("CJ2M-CPU31")), "{f:#?}");
    assert_eq!(f.attributes.get("controller_version"), Some(&serde_json::json!("02.01")), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_reply_from_another_address_is_dropped() {
    // The device at .2 gets the requests, but the answers come from .3, which was not probed.
    let (asked, bacnet) = answering_from("127.119.0.2:47808", "127.119.0.3:47808", bacnet_reply).await;
    let (_, fins) = answering_from("127.119.0.2:9600", "127.119.0.3:9600", fins_reply).await;
    let (_dir, ledger) = common::ledger("U-3,udp,d,s,important,127.119.0.2,c\n");
    let findings = common::scan(&ledger, "47808/udp,9600/udp", &Default::default(), common::options()).await;
    bacnet.abort();
    fins.abort();
    assert!(findings.is_empty(), "replies from 127.119.0.3 were taken for 127.119.0.2: {findings:#?}");
    assert!(asked.load(Ordering::SeqCst) >= 1, "the device was asked");
}
