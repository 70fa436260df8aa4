//! ICS advisories (CSAF 2.0): reading and checking documents, canonical vendor names, the one
//! version comparator, and matching services against the advisories' products.
//!
//! The flow is one way: bytes -> [`parse_document`] -> [`Advisory`] -> [`Index::build`] ->
//! [`Index::matches`] for each service's [`ServiceIdentity`] -> [`MatchResult`]s. Nothing here
//! reads the store or the clock, and only [`sync`] (fetching from a CSAF provider) the network:
//! importing, notices and the remediation loop call in.

pub mod csaf;
pub mod matching;
pub mod sync;
pub mod vendors;
pub mod version;

pub use csaf::{parse_document, read_documents, Advisory, Document, Documents, Problem, Tlp};
pub use matching::{Evidence, EvidenceKind, Index, IndexStats, MatchResult, RemediationText, ServiceIdentity};
pub use vendors::Vendors;
pub use version::{Range, Status, Verdict, Version};
