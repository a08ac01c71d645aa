#![no_main]
//! See docs/fuzzing.md; the body is `stanzad::fuzzing::jid`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| stanzad::fuzzing::jid(data));
