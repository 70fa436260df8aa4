//! `cargo +nightly fuzz run fins`: see targets.rs for what the target checks.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::fins_target(data));
