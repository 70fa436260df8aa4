//! otscope: an exposure scanner for industrial assets.
//!
//! The pipeline, one module per stage, each handing plain values to the next:
//! [`ledger`] -> [`scope`] -> [`targets`] -> [`engine`] -> [`probes`] -> [`fingerprints`] -> [`findings`].

pub mod advisories;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod engine;
pub mod error;
pub mod event;
pub mod exchange;
pub mod export;
pub mod findings;
pub mod fingerprints;
pub mod history;
pub mod html;
pub mod input;
pub mod ledger;
pub mod net;
pub mod notices;
pub mod pipeline;
pub mod probes;
pub mod report;
pub mod scope;
pub mod serve;
pub mod signals;
pub mod store;
pub mod targets;
