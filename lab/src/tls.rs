//! TLS for simulated devices: the certificate a TLS endpoint presents, made fresh (self-signed) or
//! taken from public test material.

use anyhow::{Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

/// A certificate chain (the leaf first) and the leaf's private key (PKCS#8 DER).
#[derive(Clone)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pkcs8: Vec<u8>,
}

impl Identity {
    /// A fresh self-signed certificate for `names` (subject alternative names).
    pub fn self_signed(names: &[&str]) -> Result<Identity> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        Identity::from_params(rcgen::CertificateParams::new(names)?)
    }

    /// A fresh self-signed certificate as `params` describe it (names, subject, validity).
    pub fn from_params(params: rcgen::CertificateParams) -> Result<Identity> {
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Identity { chain: vec![cert.der().clone()], key_pkcs8: key.serialize_der() })
    }

    /// open62541's published test certificate and key: self-signed, C=DE, L=Here, O=open62541,
    /// CN=open62541Server@localhost, valid until 2026-02-14 21:06:37 UTC.
    pub fn open62541() -> Identity {
        let key = hex::decode(OPEN62541_KEY_PKCS8_HEX).expect("the open62541 key is hex");
        Identity { chain: vec![CertificateDer::from(open62541_certificate())], key_pkcs8: key }
    }

    /// The TLS server configuration presenting this identity.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .context("the certificate and key do not make a TLS server")?;
        Ok(Arc::new(config))
    }
}

/// The DER of open62541's test certificate (also what its OPC UA test servers present as their
/// application instance certificate).
pub fn open62541_certificate() -> Vec<u8> {
    hex::decode(OPEN62541_CERT_HEX).expect("the open62541 certificate is hex")
}

/// The end of the open62541 certificate's validity (notAfter), in Unix seconds.
pub const OPEN62541_NOT_AFTER_UNIX: i64 = 1_771_103_197;

/// open62541's published test certificate and its key (tests/encryption/certificates.h in the
/// open62541 repository): public test material, used here only to stand up loopback servers.
const OPEN62541_CERT_HEX: &str = concat!(
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
const OPEN62541_KEY_PKCS8_HEX: &str = concat!(
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
