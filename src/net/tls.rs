//! TLS with a verifier that accepts and records the peer's chain but never trusts it: otscope
//! reports certificates, it does not rely on them.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex, OnceLock};

/// Most certificates recorded from one chain; the rest are counted, not parsed.
const MAX_CHAIN: usize = 8;

#[derive(Debug, Default)]
pub struct RecordingVerifier {
    /// The first [`MAX_CHAIN`] certificates of the chain, and how many the peer sent in all.
    chain: Mutex<(Vec<Vec<u8>>, usize)>,
}

impl RecordingVerifier {
    /// The recorded certificates (at most [`MAX_CHAIN`]) and the length of the chain the peer sent.
    pub fn take_chain(&self) -> (Vec<Vec<u8>>, usize) {
        std::mem::take(&mut self.chain.lock().expect("not poisoned"))
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut recorded = self.chain.lock().expect("not poisoned");
        let chain = &mut recorded.0;
        chain.clear();
        chain.push(end_entity.to_vec());
        chain.extend(intermediates.iter().take(MAX_CHAIN - 1).map(|c| c.to_vec()));
        recorded.1 = 1 + intermediates.len();
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

fn provider() -> &'static Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// A client configuration that records instead of verifying; one verifier per connection.
pub fn client_config(verifier: Arc<RecordingVerifier>) -> Arc<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(provider().clone())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

/// What the handshake revealed, as finding attributes: the version, the cipher, the leaf's names and
/// dates from `chain` (the recorded certificates), and `chain_length`, how many the peer sent in all.
pub fn describe(
    version: Option<rustls::ProtocolVersion>,
    cipher: Option<rustls::SupportedCipherSuite>,
    (chain, chain_length): &(Vec<Vec<u8>>, usize),
) -> Map<String, Value> {
    let mut tls = Map::new();
    if let Some(v) = version {
        tls.insert("version".into(), json!(format!("{v:?}").replace("TLSv1_", "TLS 1.")));
    }
    if let Some(c) = cipher {
        tls.insert("cipher".into(), json!(format!("{:?}", c.suite())));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let certs: Vec<Value> = chain.iter().map(|der| describe_cert(der, now)).collect();
    if let Some(Value::Object(leaf)) = certs.first() {
        for key in ["subject", "issuer", "san", "not_before", "not_after", "self_signed", "expired"] {
            if let Some(v) = leaf.get(key) {
                tls.insert(key.into(), v.clone());
            }
        }
    }
    tls.insert("chain_length".into(), json!(chain_length));
    tls
}

fn describe_cert(der: &[u8], now: i64) -> Value {
    use x509_parser::prelude::*;
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return json!({ "error": "unparseable certificate", "sha256": sha256_hex(der) });
    };
    let validity = cert.validity();
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.iter().map(|n| n.to_string()).collect())
        .unwrap_or_default();
    // Subject equal to issuer is how scanners (nmap, zgrab) call a certificate self-signed.
    let self_signed = cert.subject() == cert.issuer();
    json!({
        "subject": cert.subject().to_string(),
        "issuer": cert.issuer().to_string(),
        "san": sans,
        "serial": cert.raw_serial_as_string(),
        "not_before": validity.not_before.to_rfc2822().unwrap_or_default(),
        "not_after": validity.not_after.to_rfc2822().unwrap_or_default(),
        "self_signed": self_signed,
        "expired": validity.not_after.timestamp() < now,
        "sha256": sha256_hex(der),
    })
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// A TLS server hello at the start of `reply` (RFC 8446 4.1.3, RFC 5246 7.4.1.3), as finding
/// attributes: the version and cipher suite the server chose, and, when the next handshake message is
/// the certificate chain, its announced size in bytes. `None` when `reply` is not a server hello.
pub fn server_hello(reply: &[u8]) -> Option<Map<String, Value>> {
    // Handshake messages may span records: join the payloads of the leading handshake records.
    let mut handshake = Vec::new();
    let mut rest = reply;
    while let [0x16, 0x03, minor, len_hi, len_lo, body @ ..] = rest {
        if *minor > 0x04 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
        handshake.extend_from_slice(&body[..len.min(body.len())]);
        rest = body.get(len..).unwrap_or_default();
    }
    let [0x02, l0, l1, l2, hello @ ..] = handshake.as_slice() else { return None };
    let hello_len = u32::from_be_bytes([0, *l0, *l1, *l2]) as usize;
    let [0x03, legacy_minor, rest @ ..] = hello else { return None };
    let session_id_len = usize::from(*rest.get(32)?);
    let suite_at = 33 + session_id_len;
    let suite = u16::from_be_bytes([*rest.get(suite_at)?, *rest.get(suite_at + 1)?]);
    let mut tls = Map::new();
    // TLS 1.3 servers say 1.2 here and name 1.3 in an extension; the legacy version is what is sure.
    let version = match legacy_minor {
        0x01 => "TLS 1.0",
        0x02 => "TLS 1.1",
        0x03 => "TLS 1.2",
        _ => return None,
    };
    tls.insert("version".into(), json!(version));
    tls.insert("cipher".into(), json!(format!("{:?}", rustls::CipherSuite::from(suite))));
    if let Some([0x0b, c0, c1, c2, ..]) = handshake.get(4 + hello_len..) {
        tls.insert("certificate_bytes".into(), json!(u32::from_be_bytes([0, *c0, *c1, *c2])));
    }
    Some(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS 1.3 server hello (legacy version 1.2, TLS_AES_128_GCM_SHA256), then the start of a
    /// certificate message of 300,000 bytes, in one record.
    fn hello_then_certificate() -> Vec<u8> {
        let mut hello = vec![0x02, 0x00, 0x00, 0x28, 0x03, 0x03];
        hello.extend([0x5a; 32]);
        hello.extend([0x00, 0x13, 0x01, 0x00, 0x00, 0x00]);
        hello.extend([0x0b, 0x04, 0x93, 0xe0]);
        let mut record = vec![0x16, 0x03, 0x03];
        record.extend((hello.len() as u16).to_be_bytes());
        record.extend(hello);
        record
    }

    #[test]
    fn a_server_hello_names_version_cipher_and_certificate_size() {
        let tls = server_hello(&hello_then_certificate()).unwrap();
        assert_eq!(
            Value::Object(tls),
            json!({ "version": "TLS 1.2", "cipher": "TLS13_AES_128_GCM_SHA256", "certificate_bytes": 300_000 })
        );
    }

    #[test]
    fn anything_else_is_no_server_hello() {
        let hello = hello_then_certificate();
        let mut client_hello = hello.clone();
        client_hello[5] = 0x01;
        let mut alert = hello.clone();
        alert[0] = 0x15;
        for reply in [&b"HTTP/1.1 400 Bad Request\r\n\r\n"[..], &client_hello, &alert, &hello[..20], b""] {
            assert_eq!(server_hello(reply), None, "{reply:02x?}");
        }
    }
}
