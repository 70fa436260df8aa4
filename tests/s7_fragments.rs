//! S7 replies that do not arrive as one TPKT in one TCP segment: python-snap7 3.3.0's replies
//! (captured on loopback) replayed with every TPKT written in three pieces, and the SZL 0x001C
//! reply additionally split into two DT TPDUs (the first without end-of-TSDU). The probe must
//! reassemble both levels and read the same identity as from the server itself.

mod common;

use common::{ledger, scan};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// python-snap7 3.3.0's answers, in the order otscope asks: CC, setup, SZL 0x0011 (index 0),
/// SZL 0x001C. The TPKT and COTP headers are included.
const CC: &str = "0300001611d00001000100c0010ac1020100c2020102";
const SETUP: &str = "0300001b02f080320300000001000800000000f0000001000101e0";
const SZL_0011: &str =
    "0300004302f080320700000002000c0026000112081284010000000000ff09002200110000001a000100013645533720\
    3331352d32454831342d304142300000030300";
const SZL_001C_PDU: &str =
    "320700000004000c00da000112081284010000000000ff0900d6001c0000000000000000534e4150372d534552564552\
    00000000000000000000000000000000000000000000435055203331352d3220504e2f44500000000000000000000000\
    0000000000000000000000000000000000000000000000000000000000000000000000000000000000004f726967696e\
    616c205369656d656e732045717569706d656e7400000000000000005320432d43325552323839323230313200000000\
    0000000000000000000000000000435055203331352d3220504e2f445000000000000000000000000000000000000000";

fn dt(payload: &[u8], eot: bool) -> Vec<u8> {
    let mut frame = vec![0x03, 0x00];
    frame.extend_from_slice(&u16::try_from(payload.len() + 7).unwrap().to_be_bytes());
    frame.extend_from_slice(&[0x02, 0xF0, if eot { 0x80 } else { 0x00 }]);
    frame.extend_from_slice(payload);
    frame
}

/// Writes `bytes` in three pieces with a pause between them, so each arrives in its own segment.
async fn write_in_pieces(sock: &mut tokio::net::TcpStream, bytes: &[u8]) {
    let cuts = [0, 3, bytes.len() / 2, bytes.len()];
    for piece in cuts.windows(2) {
        sock.write_all(&bytes[piece[0]..piece[1]]).await.unwrap();
        sock.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn tpkt_and_dt_fragments_are_reassembled() {
    let address = "127.113.1.1:102";
    let listener = TcpListener::bind(address).await.unwrap();
    let pdu_001c = hex::decode(SZL_001C_PDU).unwrap();
    let (first, second) = pdu_001c.split_at(100);
    let replies: Vec<Vec<Vec<u8>>> = vec![
        vec![hex::decode(CC).unwrap()],
        vec![hex::decode(SETUP).unwrap()],
        vec![hex::decode(SZL_0011).unwrap()],
        vec![dt(first, false), dt(second, true)],
    ];
    let device = tokio::spawn(async move {
        // One connection, one request read before each reply, bounded by the replies there are.
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.set_nodelay(true).unwrap(); // no Nagle: each piece leaves as its own segment
        let mut buf = [0u8; 1024];
        for reply in &replies {
            match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            for frame in reply {
                write_in_pieces(&mut sock, frame).await;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await;
    });
    let (_dir, path) = ledger("E1,ent,district,s,general,127.113.1.1,c\n");
    let findings = scan(&path, "102", &Default::default(), {
        let mut o = common::options();
        o.probe.limits.read_timeout = std::time::Duration::from_secs(2);
        o
    })
    .await;
    device.abort();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.protocol, "s7comm", "{f:#?}");
    for (key, value) in [
        ("order_number", json!("6ES7 315-2EH14-0AB0")),
        ("firmware_version", json!("V3.3.0")),
        ("system_name", json!("SNAP7-SERVER")),
        ("module_name", json!("CPU 315-2 PN/DP")),
        ("serial_number", json!("S C-C2UR28922012")),
        ("module_type", json!("CPU 315-2 PN/DP")),
    ] {
        assert_eq!(f.attributes.get(key), Some(&value), "{key}: {:#?}", f.attributes);
    }
}
