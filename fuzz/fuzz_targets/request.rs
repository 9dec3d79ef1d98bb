//! The request path after HTTP framing (headers + body → verify → envelope → dedup key): see
//! `hooklake::fuzzing::request` for the input format.
#![no_main]

use std::sync::OnceLock;

static ADMISSION: OnceLock<hooklake::admission::Admission> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hooklake::fuzzing::request(ADMISSION.get_or_init(hooklake::fuzzing::admission), data);
});
