//! `cargo +nightly fuzz run s7comm`: see targets.rs for what the target checks.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::s7comm_target(data));
