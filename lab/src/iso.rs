//! ISO transport on TCP as the port-102 devices speak it (S7comm, S7comm-plus, MMS): TPKT (RFC 1006)
//! around COTP class 0 TPDUs (ISO 8073): Connection Request / Confirm, Disconnect Request, Data.

/// The TPDU size parameter (code 0xC0) for 1024-byte TPDUs.
pub const TPDU_SIZE_1024: (u8, &[u8]) = (0xC0, &[0x0A]);

/// Wraps a COTP TPDU in a TPKT header.
pub fn tpkt(tpdu: &[u8]) -> Vec<u8> {
    let mut out = vec![0x03, 0x00];
    out.extend_from_slice(&((tpdu.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(tpdu);
    out
}

/// The COTP TPDU of a request (after the TPKT header), if the bytes are exactly one TPKT.
pub fn cotp(req: &[u8]) -> Option<&[u8]> {
    if req.len() < 7 || req[0] != 3 || req[1] != 0 || usize::from(u16::from_be_bytes([req[2], req[3]])) != req.len() {
        return None;
    }
    Some(&req[4..])
}

/// (calling, called) TSAPs (parameters C1, C2) of a Connection Request TPDU.
pub fn tsaps(tpdu: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if tpdu.get(1) != Some(&0xE0) {
        return None;
    }
    let li = usize::from(tpdu[0]);
    let mut params = tpdu.get(7..=li)?;
    let (mut calling, mut called) = (None, None);
    while params.len() >= 2 {
        let (code, len) = (params[0], usize::from(params[1]));
        let value = params.get(2..2 + len)?.to_vec();
        match code {
            0xC1 => calling = Some(value),
            0xC2 => called = Some(value),
            _ => {}
        }
        params = &params[2 + len..];
    }
    Some((calling?, called?))
}

/// A Connection Confirm (class 0) with these references and `params` (code, value), in order.
pub fn connection_confirm(dst_ref: u16, src_ref: u16, params: &[(u8, &[u8])]) -> Vec<u8> {
    let mut body = vec![0xD0];
    body.extend_from_slice(&dst_ref.to_be_bytes());
    body.extend_from_slice(&src_ref.to_be_bytes());
    body.push(0x00);
    for (code, value) in params {
        body.extend_from_slice(&[*code, value.len() as u8]);
        body.extend_from_slice(value);
    }
    let mut tpdu = vec![body.len() as u8];
    tpdu.extend_from_slice(&body);
    tpkt(&tpdu)
}

/// A Disconnect Request with these references and `reason`.
pub fn disconnect_request(dst_ref: u16, src_ref: u16, reason: u8) -> Vec<u8> {
    let mut tpdu = vec![0x06, 0x80];
    tpdu.extend_from_slice(&dst_ref.to_be_bytes());
    tpdu.extend_from_slice(&src_ref.to_be_bytes());
    tpdu.push(reason);
    tpkt(&tpdu)
}

/// `payload` in one Data TPDU marked end of TSDU.
pub fn data(payload: &[u8]) -> Vec<u8> {
    data_segments(payload, payload.len().max(1))
}

/// `payload` split into Data TPDUs of at most `segment` bytes each, the last marked end of TSDU.
pub fn data_segments(payload: &[u8], segment: usize) -> Vec<u8> {
    let chunks: Vec<&[u8]> = if payload.is_empty() { vec![payload] } else { payload.chunks(segment).collect() };
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let eot = if i + 1 == chunks.len() { 0x80 } else { 0x00 };
        let mut tpdu = vec![0x02, 0xF0, eot];
        tpdu.extend_from_slice(chunk);
        out.extend(tpkt(&tpdu));
    }
    out
}

/// The user data of a request that is one Data TPDU marked end of TSDU.
pub fn data_payload(req: &[u8]) -> Option<&[u8]> {
    let tpdu = cotp(req)?;
    (tpdu.len() > 3 && tpdu[..3] == [0x02, 0xF0, 0x80]).then(|| &tpdu[3..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirm_carries_its_parameters_in_order() {
        let cc = connection_confirm(0x0001, 0x4431, &[TPDU_SIZE_1024, (0xC1, &[1, 0]), (0xC2, &[1, 2])]);
        let expected = [
            0x03, 0x00, 0x00, 0x16, 0x11, 0xD0, 0x00, 0x01, 0x44, 0x31, 0x00, 0xC0, 0x01, 0x0A, 0xC1, 0x02, 0x01, 0x00,
            0xC2, 0x02, 0x01, 0x02,
        ];
        assert_eq!(cc, expected);
        assert_eq!(
            disconnect_request(0x0001, 0x4431, 0x85),
            [0x03, 0x00, 0x00, 0x0B, 0x06, 0x80, 0x00, 0x01, 0x44, 0x31, 0x85]
        );
    }

    #[test]
    fn data_round_trips_and_splits() {
        let one = data(b"abc");
        assert_eq!(data_payload(&one), Some(&b"abc"[..]));
        let split = data_segments(b"abcde", 2);
        // Three TPKTs of 4 + 3 + 2 or 1 bytes; only the last is marked end of TSDU.
        assert_eq!(split.len(), 3 * 7 + 5);
        assert_eq!((split[6], split[6 + 9], split[6 + 18]), (0x00, 0x00, 0x80));
        let request = [0x03, 0x00, 0x00, 0x0B, 0x06, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00];
        assert_eq!(cotp(&request).and_then(tsaps), None, "a request without TSAPs");
    }
}
