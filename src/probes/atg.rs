//! Veeder-Root automatic tank gauges (TLS-250/350/450 and compatibles) on 10001/tcp: the serial
//! interface command protocol carried over TCP.
//!
//! A command is `<SOH>` (0x01), an optional security code, the command type (`I` inquire, `S` set),
//! a 3-digit function code and a 2-digit tank selector (00 = all tanks). A display-format reply is
//! `<SOH>`, CR LF, the echoed command (`I20100`), CR LF, the date and time, the station header
//! (name and address lines), `IN-TANK INVENTORY`, a column header line, one line per tank
//! (`  1  UNLEADED   ...`), and `<ETX>` (0x03). A command the console does not understand is
//! answered `<SOH>9999<ETX>`.
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

/// `<SOH>I20100<LF>`: in-tank inventory report for all tanks.
pub fn inventory_request() -> Vec<u8> {
    let mut r = vec![SOH];
    r.extend_from_slice(COMMAND.as_bytes());
    r.push(b'\n');
    r
}

/// A reply runs from `<SOH>` to `<ETX>` and is plain text in between.
pub fn frame(buf: &[u8]) -> Frame {
    match buf.first() {
        None => return Frame::Incomplete,
        Some(&SOH) => {}
        Some(b) => return Frame::Invalid(format!("reply starts with {b:#04x}, not SOH")),
    }
    for (i, &b) in buf.iter().enumerate().skip(1) {
        match b {
            ETX => return Frame::Complete(i + 1),
            b'\r' | b'\n' | b'\t' | 0x20..=0x7e => {}
            _ => return Frame::Invalid(format!("byte {b:#04x} at {i} is not report text")),
        }
    }
    Frame::Incomplete
}

pub use super::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The in-tank inventory report.
    Inventory { station_lines: Vec<String>, tanks: usize },
    /// `<SOH>9999<ETX>`: the console did not accept the command (unknown, or a security code is set).
    Rejected,
}

/// Parses a whole `<SOH>...<ETX>` reply.
pub fn parse_reply(buf: &[u8]) -> Result<Reply, ParseError> {
    let inner = buf
        .strip_prefix(&[SOH])
        .and_then(|b| b.strip_suffix(&[ETX]))
        .ok_or_else(|| ParseError::new("not framed by SOH and ETX"))?;
    if inner.iter().any(|&b| !matches!(b, b'\r' | b'\n' | b'\t' | 0x20..=0x7e)) {
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
    let tanks = lines.filter(|l| is_tank_line(l)).count();
    Ok(Reply::Inventory { station_lines, tanks })
}

fn is_tank_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let number = words.next().and_then(|w| w.parse::<u32>().ok());
    matches!(number, Some(1..=99)) && words.next().is_some()
}

pub const PROBE: Probe = Probe::industrial(PROTOCOL, |session| Box::pin(run(session))).tcp(&[10001]);

async fn run(session: &mut Session<'_>) -> Result<Identity, ProbeError> {
    let reply = session.conn().exchange(&inventory_request(), frame).await?;
    let mut id = Identity::new(PROTOCOL, true);
    match parse_reply(&reply).map_err(|e| ProbeError::not(PROTOCOL, e.0))? {
        Reply::Inventory { station_lines, tanks } => {
            id.field("station_name", station_lines.join(", "));
            id.field("report", REPORT);
            id.field("tanks", tanks);
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
                tanks: 3
            }
        );
    }

    #[test]
    fn lf_only_reports_and_no_station_lines() {
        let b = b"\x01\nI20100\n05/30/2018 19:15\n\nIN-TANK INVENTORY\n\nTANK PRODUCT VOLUME\n  1  SUPER  2428\n\x03";
        assert_eq!(parse_reply(b).unwrap(), Reply::Inventory { station_lines: vec![], tanks: 1 });
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
