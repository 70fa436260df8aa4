//! `cargo +nightly fuzz run fox`: see targets.rs for what the target checks.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::fox_target(data));
