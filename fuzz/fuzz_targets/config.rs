//! The config parser on arbitrary text: `hooklake::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hooklake::fuzzing::config(data));
