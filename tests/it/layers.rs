//! The layer rule (docs/architecture.md): a top-level module of `src/` imports only modules
//! of the layers below its own. Read from the source text (unit tests aside: a test of the
//! client connections may open a TCP socket), so a new import that breaks the rule fails
//! `cargo test`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// From the bottom up; a module may name only those before it.
const LAYERS: &[&str] = &[
    "keyed",     // hash maps keyed at random, fast for names
    "stripes",   // striped locks, no XMPP at all
    "xml",       // the framer, the writer, namespaces
    "xmpp",      // stanzas, errors, the dialect's vocabulary
    "sasl",      // authentication mechanisms, sans-IO
    "storage",   // one trait per concern, and the backends
    "config",    // the typed configuration
    "core",      // RFC 6120/6121: registry, routing, presence, subscriptions; the module API
    "modules",   // one feature per file or folder
    "c2s",       // client connections: negotiation and the session, over the seam
    "transport", // TCP and TLS: the listener hands connections to c2s
    "admin",     // the admin socket and its requests
    "server",    // wiring
    "cli",       // the command line
    "fuzzing",   // the fuzz targets' bodies
];

#[test]
fn every_top_level_module_imports_only_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).expect("under src");
        let Some(module) = top_module(relative) else { continue };
        let Some(level) = LAYERS.iter().position(|m| *m == module) else {
            broken.push(format!("{}: `{module}` has no layer in tests/it/layers.rs", relative.display()));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (line, used) in crate_paths(&without_tests(&file, &text)) {
            match LAYERS.iter().position(|m| *m == used) {
                Some(other) if other > level || (other == level && used != module) => broken
                    .push(format!("{}:{line}: `{module}` imports `{used}`, which is above it", relative.display())),
                _ => {}
            }
        }
    }
    assert!(broken.is_empty(), "the layer rule is broken:\n{}", broken.join("\n"));
}

#[test]
fn only_transports_name_a_socket_or_tls() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for place in ["core", "modules", "c2s", "storage", "xml", "xmpp"] {
        for file in rust_files(&src.join(place)) {
            let text = without_tests(&file, &std::fs::read_to_string(&file).expect("readable source"));
            for word in ["TcpStream", "rustls", "tokio::net"] {
                assert!(!code_of(&text).contains(word), "{} names {word}", file.display());
            }
        }
    }
}

#[test]
fn storage_builds_no_protocol_xml() {
    let storage = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/storage");
    for file in rust_files(&storage) {
        if file.ends_with("contract.rs") {
            continue; // the contract suite's sample stanzas
        }
        let text = code_of(&std::fs::read_to_string(&file).expect("readable source"));
        for word in ["crate::xml", "minidom", "<delay", "xmlns="] {
            assert!(!text.contains(word), "{} builds XML ({word})", file.display());
        }
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `core` for `core/registry.rs` or `core.rs`; None for the crate root and `bin/`.
fn top_module(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" | "bin" => None,
        _ => Some(first.trim_end_matches(".rs").to_owned()),
    }
}

/// The source without its unit tests: each item under a `#[cfg(test)]` (a `mod tests;`
/// line, or a block to its closing brace), and a whole `tests.rs`.
fn without_tests(file: &Path, text: &str) -> String {
    if file.file_name().is_some_and(|name| name == "tests.rs") || file.components().any(|c| c.as_os_str() == "tests") {
        return String::new();
    }
    let mut kept = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with("#[cfg(test)]") {
            kept.push(line);
            continue;
        }
        // Skip the item: through its `;`, or its braces (strings with braces aside). Blank
        // lines stand in for it, so line numbers stay right.
        kept.push("");
        let mut depth = 0i32;
        for item in lines.by_ref() {
            kept.push("");
            let code = item.split("//").next().unwrap_or("");
            depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
            if depth <= 0 && (code.contains('}') || code.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    kept.join("\n")
}

/// The source without comments.
fn code_of(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every top-level module named as `crate::name` (in paths, and at the head of each part of
/// `use crate::{a, b::c}` groups, over several lines too), with its line number.
fn crate_paths(text: &str) -> BTreeSet<(usize, String)> {
    let code = code_of(text);
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::").map(|i| from + i + "crate::".len()) {
        from = at;
        let rest = &code[at..];
        let Some(group) = rest.strip_prefix('{') else {
            found.extend(ident(rest).map(|name| (line_of(at), name)));
            continue;
        };
        // The group's top-level parts: `a`, `b::{..}`, `c as d`.
        let mut depth = 0;
        let mut part_start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    found.extend(ident(group[part_start..i].trim()).map(|name| (line_of(at), name)));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    found.extend(ident(group[part_start..i].trim()).map(|name| (line_of(at), name)));
                    part_start = i + 1;
                }
                _ => {}
            }
        }
    }
    found
}

fn ident(text: &str) -> Option<String> {
    let name: String = text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}
