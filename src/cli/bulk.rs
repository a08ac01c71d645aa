//! `stanzad adduser --from-file FILE`: many accounts at once (benchmarks need thousands).
//! The SCRAM keys are derived here, on every core, and sent to the running server (or
//! written to the store) in batches that fit one admin request.

use super::{administer_with, store_config, StoreOnly};
use crate::admin::Request;
use crate::sasl::credentials::StoredCredentials;
use std::path::Path;

/// Accounts per admin request: about 600 bytes of JSON each, so one request line stays
/// well under the socket's 64 KiB.
const BATCH: usize = 25;

pub fn adduser_many(file: &Path, store: &StoreOnly) -> Result<(), String> {
    let config = store_config(store)?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let accounts = parse(&text)?;
    let iterations = config.auth.scram_iterations;
    let mut created = 0;
    for batch in accounts.chunks(BATCH) {
        let derived = derive_all(batch, iterations)?;
        administer_with(&config, Request::AdduserMany { accounts: derived })?;
        created += batch.len();
        if accounts.len() > BATCH {
            eprint!("\rstanzad: {created}/{} accounts", accounts.len());
        }
    }
    if accounts.len() > BATCH {
        eprintln!();
    }
    println!("{created} accounts created");
    Ok(())
}

/// `jid password` per line; blank lines and `#` comments skipped.
fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut accounts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(char::is_whitespace) {
            Some((jid, password)) if !password.trim().is_empty() => {
                accounts.push((jid.to_owned(), password.trim().to_owned()))
            }
            _ => return Err(format!("line {}: expected `user@domain password`", n + 1)),
        }
    }
    Ok(accounts)
}

/// PBKDF2 for each account, spread over the machine's cores.
fn derive_all(accounts: &[(String, String)], iterations: u32) -> Result<Vec<(String, StoredCredentials)>, String> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per_thread = accounts.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = accounts
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || chunk.iter().map(|(jid, pw)| derive(jid, pw, iterations)).collect::<Vec<_>>())
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|_| vec![Err("a worker failed".into())])).collect()
    })
}

fn derive(jid: &str, password: &str, iterations: u32) -> Result<(String, StoredCredentials), String> {
    let creds =
        StoredCredentials::derive(password, iterations).map_err(|e| format!("{jid}: unusable password: {e:?}"))?;
    Ok((jid.to_owned(), creds))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn the_accounts_file_format() {
        let text = "# bench accounts\nbench1@localhost pw1\n\n  bench2@localhost   two words \n";
        let accounts = parse(text).expect("valid");
        assert_eq!(
            accounts,
            vec![("bench1@localhost".into(), "pw1".into()), ("bench2@localhost".into(), "two words".into())]
        );
        assert!(parse("lonely@localhost\n").is_err(), "no password");
        assert!(parse("a@localhost pw\nb@localhost\n").expect_err("line 2").contains("line 2"));
    }
}
