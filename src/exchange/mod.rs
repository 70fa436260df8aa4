//! Exchanges with other platforms over HTTPS: pushing STIX bundles to a TAXII 2.1 server ([`taxii`]),
//! through one client ([`http`]) that the CSAF provider sync (`advisories::sync`) uses too.

pub mod http;
pub mod taxii;
