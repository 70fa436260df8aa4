//! RFC 1006 / ISO 8073 pieces shared by the simulated port-102 devices (S7, S7comm-plus, MMS).

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

/// (calling, called) TSAPs (parameters C1, C2) of a Connection Request.
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
