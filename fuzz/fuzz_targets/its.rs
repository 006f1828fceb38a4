//! cargo-fuzz target: exitless_core::fuzz::its (core/src/fuzz.rs says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exitless_core::fuzz::its(data));
