//! Replays the committed fuzz corpora and regressions (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets' bodies (`stanzad::fuzzing`) on
//! the stable toolchain, so that what a fuzzer once found stays fixed (docs/fuzzing.md).

use std::path::Path;

/// Runs every file of the target's corpus and regressions; returns how many there were.
fn replay(name: &str) -> usize {
    let target = stanzad::fuzzing::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(name)) else { continue };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).expect("read a corpus file");
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                panic!("fuzz target {name} fails on {}", file.display());
            }
            count += 1;
        }
    }
    count
}

#[test]
fn every_target_has_a_corpus_directory() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, _) in stanzad::fuzzing::TARGETS {
        assert!(fuzz.join("corpus").join(name).is_dir(), "fuzz/corpus/{name} is missing");
        assert!(fuzz.join("fuzz_targets").join(format!("{name}.rs")).is_file(), "fuzz/fuzz_targets/{name}.rs");
    }
}

#[test]
fn framer_bytes() {
    assert!(replay("framer_bytes") > 0);
}

#[test]
fn framer_structured() {
    assert!(replay("framer_structured") > 0);
}

#[test]
fn framer_vs_rxml() {
    assert!(replay("framer_vs_rxml") > 0);
}

#[test]
fn sasl() {
    assert!(replay("sasl") > 0);
}

#[test]
fn jid() {
    assert!(replay("jid") > 0);
}

#[test]
fn stanza() {
    assert!(replay("stanza") > 0);
}
