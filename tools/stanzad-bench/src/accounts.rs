//! Benchmark accounts, `{prefix}{i}@{domain}` with one shared password, and the file format
//! of `stanzad adduser --from-file` (`jid password`, one account a line).

use std::io::{self, Write};

/// Characters RFC 7622 forbids in a localpart (plus whitespace), refused in `--prefix`.
const FORBIDDEN_IN_LOCALPART: &[char] = &['@', '/', '"', '&', '\'', ':', '<', '>'];

/// The localpart of account number `i`.
pub fn localpart(prefix: &str, i: u64) -> String {
    format!("{prefix}{i}")
}

/// Checks `--prefix`, `--domain` and `--password` so that every generated line is one valid
/// `jid password` pair.
pub fn check(prefix: &str, domain: &str, password: &str) -> Result<(), String> {
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control() || FORBIDDEN_IN_LOCALPART.contains(&c)) {
        return Err(format!("--prefix {prefix:?}: not usable in a JID localpart"));
    }
    let bad_domain = |c: char| c.is_whitespace() || c.is_control() || "@/\"&'<>".contains(c);
    if domain.is_empty() || domain.chars().any(bad_domain) {
        return Err(format!("--domain {domain:?}: not a domain"));
    }
    if password.is_empty() || password.chars().any(char::is_control) || password.trim() != password {
        return Err("--password: empty, with control characters, or with surrounding whitespace".into());
    }
    Ok(())
}

/// Writes `count` lines `{prefix}{i}@{domain} {password}`, i from `first`.
pub fn write_file(
    out: &mut impl Write,
    prefix: &str,
    first: u64,
    count: u64,
    domain: &str,
    password: &str,
) -> io::Result<()> {
    check(prefix, domain, password).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let last = first
        .checked_add(count)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--first + --count overflows"))?;
    for i in first..last {
        writeln!(out, "{}@{domain} {password}", localpart(prefix, i))?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_has_one_jid_and_password_per_line() {
        let mut out = Vec::new();
        write_file(&mut out, "bench", 1, 3, "localhost", "pw x").expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text, "bench1@localhost pw x\nbench2@localhost pw x\nbench3@localhost pw x\n");
    }

    #[test]
    fn numbering_starts_at_first() {
        let mut out = Vec::new();
        write_file(&mut out, "u", 41, 2, "example.org", "p").expect("written");
        assert_eq!(String::from_utf8(out).expect("utf-8"), "u41@example.org p\nu42@example.org p\n");
    }

    #[test]
    fn refuses_what_would_break_a_line_or_a_jid() {
        assert!(check("bench", "localhost", "pw").is_ok());
        assert!(check("", "localhost", "pw").is_ok(), "accounts 1@localhost, 2@localhost, …");
        assert!(check("a b", "localhost", "pw").is_err());
        assert!(check("a@b", "localhost", "pw").is_err());
        assert!(check("bench", "", "pw").is_err());
        assert!(check("bench", "local host", "pw").is_err());
        assert!(check("bench", "localhost", "").is_err());
        assert!(check("bench", "localhost", "pw\nroot@x y").is_err());
        assert!(check("bench", "localhost", " pw").is_err());
        assert!(write_file(&mut Vec::new(), "bench", u64::MAX, 2, "localhost", "pw").is_err());
    }
}
