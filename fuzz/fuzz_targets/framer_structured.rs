#![no_main]
//! See docs/fuzzing.md; the body is `stanzad::fuzzing::framer_structured`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stanzad::fuzzing::framer_structured(data));
