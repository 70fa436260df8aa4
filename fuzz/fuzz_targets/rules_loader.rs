//! `cargo +nightly fuzz run rules_loader`: see targets.rs for what the target checks.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::rules_loader_target(data));
