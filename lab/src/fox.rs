//! Niagara Fox (1911, and "foxs" inside TLS on 4911): a Niagara AX station on a QNX JACE answering
//! the client hello with its own, as public captures show it.

use crate::serve::Handler;

/// The station's Niagara version.
pub const APP_VERSION: &str = "3.8.213";
/// The JACE's host id.
pub const HOST_ID: &str = "Qnx-NPM6-0000-16A3-8210";
/// The most bytes a station gathers while waiting for a whole hello.
const MAX_HELLO: usize = 16 * 1024;

/// The station's hello, naming it `station_name`.
pub fn hello(station_name: &str) -> Vec<u8> {
    format!(
        "fox a 0 -1 fox hello\n{{\nfox.version=s:1.0.1\nid=i:122\nhostName=s:192.168.1.140\n\
hostAddress=s:192.168.1.140\napp.name=s:Station\napp.version=s:{APP_VERSION}\nvm.name=s:Java HotSpot(TM) Client VM\n\
vm.version=s:1.5.0_81-b06\nos.name=s:QNX\nos.version=s:6.4.1\nstation.name=s:{station_name}\nlang=s:en\n\
timeZone=s:Asia/Shanghai;28800000;0;null;null\nhostId=s:{HOST_ID}\n\
vmUuid=s:11e8e9a6-0b40-571a-0000-00000000a096\nbrandId=s:vykon\n\
sysInfo=o:bog 61[<bog version=\"1.0\">\n<p m=\"b=baja\" t=\"b:Facets\" v=\"\"/>\n</bog>\n]\n\
authAgentTypeSpecs=s:fox:FoxUsernamePasswordAuthAgent\n}};;\n"
    )
    .into_bytes()
}

/// A station: it gathers the client hello (envelope, body, terminator, possibly over several reads)
/// and answers it with its own; anything else gets nothing.
pub fn station(station_name: &str) -> Handler {
    let hello = hello(station_name);
    let mut got = Vec::new();
    Box::new(move |req: &[u8]| {
        if got.len() + req.len() > MAX_HELLO {
            got.clear();
            return None;
        }
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
        Some(hello.clone())
    })
}
