#![no_main]
//! See docs/fuzzing.md; the body is `stanzad::fuzzing::sasl`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stanzad::fuzzing::sasl(data));
