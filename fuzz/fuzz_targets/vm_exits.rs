//! cargo-fuzz target: exitless_core::fuzz::vm_exits (core/src/fuzz.rs says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exitless_core::fuzz::vm_exits(data));
