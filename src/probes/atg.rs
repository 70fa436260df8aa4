//! Veeder-Root automatic tank gauges (TLS-250/350/450 and compatibles) on 10001/tcp: the serial
//! interface command protocol carried over TCP.
//!
//! A command is `<SOH>` (0x01), an optional security code, the command type (`I` inquire, `S` set),
//! a 3-digit function code and a 2-digit tank selector (00 = all tanks). A display-format reply is
//! `<SOH>`, CR LF, the echoed command (`I20100`), CR LF, the date and time, the station header
//! (name and address lines), `IN-TANK INVENTORY`, a column header line, one line per tank
//! (`  1  UNLEADED   ...`: number, product label, volumes), and `<ETX>` (0x03). A command the console does not understand is
//! answered `<SOH>9999<ETX>`.
//!
//! Emulators differ: conpot's Guardian AST answers without SOH and ETX and with LF line ends
//! (`\nI20100\n<date>\n\n<station>...`). Such an unframed reply is complete once its
//! `IN-TANK INVENTORY` heading and a whole last line have arrived; lines that straggle in later
//! segments are gathered for a short grace.
//!
//! Read-only: the only request is function 201 "in-tank inventory report" as an *inquiry*
//! (`I20100`). Commands starting with `S` change settings; this module has none and never builds
//! one.

use super::{Identity, Probe, ProbeError};
use crate::net::{Frame, Session};

pub const PROTOCOL: &str = "atg";

const SOH: u8 = 0x01;
const ETX: u8 = 0x03;
const COMMAND: &str = "I20100";
const REPORT: &str = "IN-TANK INVENTORY";
/// Station headers hold a handful of lines (name, street, city, phone).
const MAX_STATION_LINES: usize = 8;
const MAX_LINES: usize = 1024;
/// How long more lines of an unframed reply are waited for, and the most bytes a reply may have.
const UNFRAMED_GRACE: std::time::Duration = std::time::Duration::from_millis(300);
const MAX_REPLY: usize = 64 * 1024;

/// `<SOH>I20100<LF>`: in-tank inventory report for all tanks.
pub fn inventory_request() -> Vec<u8> {
    let mut r = vec![SOH];
    r.extend_from_slice(COMMAND.as_bytes());
    r.push(b'\n');
    r
}

fn is_report_text(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b'\t' | 0x20..=0x7e)
}

/// A reply runs from `<SOH>` to `<ETX>` and is plain text in between; an unframed reply (no SOH,
/// first byte a line end) is text that is complete at the end of a line after the report heading.
pub fn frame(buf: &[u8]) -> Frame {
    let framed = match buf.first() {
        None => return Frame::Incomplete,
        Some(&SOH) => true,
        Some(b'\r' | b'\n') => false,
        Some(b) => return Frame::Invalid(format!("reply starts with {b:#04x}, neither SOH nor a line end")),
    };
    for (i, &b) in buf.iter().enumerate().skip(1) {
        match b {
            ETX if framed => return Frame::Complete(i + 1),
            b if is_report_text(b) => {}
            _ => return Frame::Invalid(format!("byte {b:#04x} at {i} is not report text")),
        }
    }
    let heading = buf.windows(REPORT.len()).position(|w| w == REPORT.as_bytes());
    match heading {
        Some(at) if !framed && buf.ends_with(b"\n") && at + REPORT.len() < buf.len() => Frame::Complete(buf.len()),
        _ => Frame::Incomplete,
    }
}

/// Whether a reply came without the SOH ... ETX framing (and may have more lines to come).
pub fn is_unframed(reply: &[u8]) -> bool {
    reply.first() != Some(&SOH)
}

pub use super::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The in-tank inventory report: the station header lines and each tank line's product label.
    Inventory { station_lines: Vec<String>, products: Vec<String> },
    /// `<SOH>9999<ETX>`: the console did not accept the command (unknown, or a security code is set).
    Rejected,
}

/// Parses a whole reply: `<SOH>...<ETX>`, or unframed text that starts with a line end.
pub fn parse_reply(buf: &[u8]) -> Result<Reply, ParseError> {
    let inner = match buf.strip_prefix(&[SOH]) {
        Some(framed) => framed.strip_suffix(&[ETX]).ok_or_else(|| ParseError::new("SOH without ETX"))?,
        None if matches!(buf.first(), Some(b'\r' | b'\n')) => buf,
        None => return Err(ParseError::new("neither framed by SOH and ETX nor starting with a line end")),
    };
    if inner.iter().any(|&b| !is_report_text(b)) {
        return Err(ParseError::new("reply is not text"));
    }
    let text = String::from_utf8_lossy(inner);
    if text.trim() == "9999" {
        return Ok(Reply::Rejected);
    }
    let mut lines = text.lines().take(MAX_LINES).map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(COMMAND) {
        return Err(ParseError::new("reply does not echo I20100 first"));
    }
    let stamp = lines.next().ok_or_else(|| ParseError::new("no date and time"))?;
    if !stamp.bytes().any(|b| b.is_ascii_digit()) {
        return Err(ParseError::new(format!("{stamp:?} is not a date and time")));
    }
    let mut station_lines = Vec::new();
    loop {
        let line = lines.next().ok_or_else(|| ParseError::new("no IN-TANK INVENTORY heading"))?;
        if line.starts_with(REPORT) {
            break;
        }
        if station_lines.len() == MAX_STATION_LINES {
            return Err(ParseError::new("no IN-TANK INVENTORY heading after the station header"));
        }
        station_lines.push(line.to_string());
    }
    // After the column header ("TANK PRODUCT VOLUME ..."), each tank line starts with its number.
    let products = lines.filter_map(tank_product).take(MAX_TANKS).collect();
    Ok(Reply::Inventory { station_lines, products })
}

/// Tank lines read from one report (consoles have up to 12 or 16 tanks).
const MAX_TANKS: usize = 99;
/// Characters kept of a product label.
const MAX_PRODUCT_CHARS: usize = 40;

/// The product label of a tank line (`  1  REGULAR UNLEADED   6344  6288 ...`): the words between the
/// tank number and the first number; `None` for a line that is not a tank line.
fn tank_product(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    words.next()?.parse::<u32>().ok().filter(|n| (1..=99).contains(n))?;
    let rest: Vec<&str> = words.collect();
    if rest.is_empty() {
        return None;
    }
    let label: Vec<&str> = rest.into_iter().take_while(|w| !w.starts_with(|c: char| c.is_ascii_digit())).collect();
    Some(label.join(" ").chars().take(MAX_PRODUCT_CHARS).collect())
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[10001]);

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let conn = session.conn();
    let mut reply = conn.exchange(&inventory_request(), frame).await?;
    if is_unframed(&reply) {
        // Without ETX nothing marks the end: tank lines may still be on their way.
        match conn.recv_passive(UNFRAMED_GRACE, MAX_REPLY.saturating_sub(reply.len())).await {
            Ok(more) if more.iter().copied().all(is_report_text) => reply.extend_from_slice(&more),
            _ => {}
        }
    }
    let mut id = Identity::new(PROTOCOL, true);
    match parse_reply(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))? {
        Reply::Inventory { station_lines, products } => {
            id.field("station_name", station_lines.join(", "));
            id.field("report", REPORT);
            id.field("tanks", products.len());
            id.field("products", products);
        }
        Reply::Rejected => {
            id.field("exception_code", 9999);
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT_TEXT: &str = "\x01\r\nI20100\r\nMAR 18, 2024  3:41 PM\r\n\r\nQUICK STOP 1147\r\n1200 MAIN ST\r\nSPRINGFIELD IL\r\n\r\n\r\nIN-TANK INVENTORY       \r\n\r\nTANK PRODUCT             VOLUME TC VOLUME   ULLAGE   HEIGHT    WATER     TEMP\r\n  1  UNLEADED              6344      6288     3679    52.34     0.00    61.20\r\n  2  PREMIUM               2183      2164     3819    28.91     0.00    60.85\r\n  3  DIESEL                4377      4351     5646    40.02     0.41    58.11\r\n\r\n\x03";

    #[test]
    fn request_is_the_inventory_inquiry() {
        assert_eq!(inventory_request(), b"\x01I20100\n");
        assert_ne!(inventory_request().get(1), Some(&b'S'));
    }

    #[test]
    fn parses_a_display_format_report() {
        let b = REPORT_TEXT.as_bytes();
        assert_eq!(frame(b), Frame::Complete(b.len()));
        assert_eq!(frame(&b[..b.len() - 1]), Frame::Incomplete);
        let r = parse_reply(b).unwrap();
        assert_eq!(
            r,
            Reply::Inventory {
                station_lines: vec!["QUICK STOP 1147".into(), "1200 MAIN ST".into(), "SPRINGFIELD IL".into()],
                products: vec!["UNLEADED".into(), "PREMIUM".into(), "DIESEL".into()],
            }
        );
    }

    #[test]
    fn lf_only_reports_and_no_station_lines() {
        let b = b"\x01\nI20100\n05/30/2018 19:15\n\nIN-TANK INVENTORY\n\nTANK PRODUCT VOLUME\n  1  SUPER  2428\n\x03";
        assert_eq!(parse_reply(b).unwrap(), Reply::Inventory { station_lines: vec![], products: vec!["SUPER".into()] });
    }

    /// conpot 0.6.0's Guardian AST template, as it answered `<SOH>I20100<LF>` on loopback: no SOH,
    /// no ETX, LF line ends (the date is the time of the capture).
    const CONPOT_GUARDIAN_AST: &str =
        "0a4932303130300a31322f30332f323032362030393a34370a0a535441544f494c2053544154494f4e0a0a0a0a494e2d5441\
        4e4b20494e56454e544f52590a0a54414e4b2050524f4455435420202020202020202020202020564f4c554d452054432056\
        4f4c554d45202020554c4c414745202020484549474854202020205741544552202020202054454d500a2020312020535550\
        4552202020202020202020202020202020202031313733202020202020313231362020202020353532302020202036352e38\
        312020202020332e33382020202035302e33360a2020322020554e4c45414420202020202020202020202020202020353638\
        34202020202020353835342020202020353436342020202036322e39352020202020392e35342020202035382e34320a2020\
        33202044494553454c2020202020202020202020202020202031393239202020202020313938382020202020363230382020\
        202032352e33302020202020372e35352020202035322e33350a20203420205052454d49554d202020202020202020202020\
        20202033363639202020202020333731332020202020363230382020202036322e39392020202020352e3838202020203536\
        2e37380a";

    #[test]
    fn conpot_guardian_ast_reply_without_soh() {
        let b = hex::decode(CONPOT_GUARDIAN_AST).unwrap();
        assert!(b.starts_with(b"\nI20100\n12/03/2026 09:47\n\nSTATOIL STATION\n"));
        assert_eq!(frame(&b), Frame::Complete(b.len()));
        assert_eq!(
            parse_reply(&b).unwrap(),
            Reply::Inventory {
                station_lines: vec!["STATOIL STATION".into()],
                products: ["SUPER", "UNLEAD", "DIESEL", "PREMIUM"].map(String::from).to_vec(),
            }
        );
        // Split inside the second tank line: complete at the last whole line, the rest straggles.
        let cut = b.windows(4).position(|w| w == b"  2 ").unwrap() + 4;
        assert_eq!(frame(&b[..cut]), Frame::Incomplete);
        let line_end = b[..cut].iter().rposition(|&c| c == b'\n').unwrap() + 1;
        assert_eq!(frame(&b[..line_end]), Frame::Complete(line_end));
        assert_eq!(
            parse_reply(&b[..line_end]).unwrap(),
            Reply::Inventory { station_lines: vec!["STATOIL STATION".into()], products: vec!["SUPER".into()] }
        );
    }

    #[test]
    fn unframed_reports_with_crlf_and_heading_cut() {
        let crlf = b"\r\nI20100\r\n01/01/2024 1:00\r\n\r\nSTATION\r\n\r\nIN-TANK INVENTORY\r\n\r\nTANK PRODUCT\r\n  1  SUPER 10\r\n";
        assert_eq!(frame(crlf), Frame::Complete(crlf.len()));
        assert_eq!(
            parse_reply(crlf).unwrap(),
            Reply::Inventory { station_lines: vec!["STATION".into()], products: vec!["SUPER".into()] }
        );
        // Before the heading is whole, the reply is not complete, whatever the line ends say.
        let cut = b"\nI20100\n01/01/2024 1:00\n\nSTATION\n\nIN-TANK INVENT";
        assert_eq!(frame(cut), Frame::Incomplete);
        assert_eq!(frame(b"\nI20100\n01/01/2024\nSTATION\n"), Frame::Incomplete);
        // Text that starts with neither SOH nor a line end is not a tank gauge.
        assert!(matches!(frame(b"I20100\n"), Frame::Invalid(_)));
        assert!(parse_reply(b"I20100\n01/01/2024\nIN-TANK INVENTORY\n").is_err());
        // SOH without ETX is a truncated framed reply, not an unframed one.
        assert!(parse_reply(b"\x01\nI20100\n01/01/2024\nIN-TANK INVENTORY\n").is_err());
    }

    #[test]
    fn rejected_command() {
        assert_eq!(frame(b"\x019999\x03"), Frame::Complete(6));
        assert_eq!(parse_reply(b"\x019999\x03").unwrap(), Reply::Rejected);
    }

    #[test]
    fn rejects_echo_garbage_and_truncation() {
        let echo = inventory_request();
        assert_eq!(frame(&echo), Frame::Incomplete, "an echo never completes");
        assert!(parse_reply(&echo).is_err());
        assert!(matches!(frame(b"SSH-2.0-OpenSSH\r\n"), Frame::Invalid(_)));
        assert!(matches!(frame(b"\x01\x80\x81"), Frame::Invalid(_)));
        let b = REPORT_TEXT.as_bytes();
        for cut in 0..b.len() - 1 {
            assert!(parse_reply(&b[..cut]).is_err(), "cut at {cut}");
        }
        // The command echoed but no report heading.
        assert!(parse_reply(b"\x01\r\nI20100\r\n01/01/2024 1:00\r\nA\r\nB\r\n\x03").is_err());
        // Another command's report.
        assert!(parse_reply(b"\x01\r\nI20200\r\n01/01/2024 1:00\r\nIN-TANK INVENTORY\r\n\x03").is_err());
        // An endless station header.
        let long = format!("\x01\r\nI20100\r\n01/01/2024\r\n{}IN-TANK INVENTORY\r\n\x03", "X\r\n".repeat(20));
        assert!(parse_reply(long.as_bytes()).is_err());
        // No date line.
        assert!(parse_reply(b"\x01\r\nI20100\r\nIN-TANK INVENTORY\r\n\x03").is_err());
    }
}
