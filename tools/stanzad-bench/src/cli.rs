//! The command line: one subcommand per scenario, common options flattened into each.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Load generator for XMPP servers (stanzad, Prosody, ejabberd) on loopback addresses only.
#[derive(Parser, Debug)]
#[command(name = "stanzad-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// N accounts log in, C at a time (stream, SASL, bind, presence, ping, close).
    Login(LoginArgs),
    /// K pairs of online accounts exchange chat messages; latency and losses.
    Msg(MsgArgs),
    /// M messages stored for an offline account, then drained when it comes online.
    Offline(OfflineArgs),
    /// N authenticated, available sessions held open for T seconds.
    Idle(IdleArgs),
    /// M messages archived, then the recipient pages through its archive (XEP-0313).
    Query(QueryArgs),
    /// N accounts created by in-band registration (XEP-0077).
    Register(RegisterArgs),
    /// Prints `jid password` lines for `stanzad adduser --from-file`.
    AccountsFile(AccountsFileArgs),
}

/// SASL mechanism used to log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mech {
    Plain,
    #[value(name = "scram-sha-1")]
    ScramSha1,
    #[value(name = "scram-sha-256")]
    ScramSha256,
}

impl Mech {
    /// The IANA name offered in `<mechanisms/>`.
    pub fn name(self) -> &'static str {
        match self {
            Mech::Plain => "PLAIN",
            Mech::ScramSha1 => "SCRAM-SHA-1",
            Mech::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

/// Options every network scenario takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server address with port; must be in 127.0.0.0/8 or [::1] ("localhost:PORT" works too).
    #[arg(long, default_value = "127.0.0.1:5222")]
    pub server: String,
    /// Domain of the accounts.
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Accounts are {prefix}{i}@{domain}.
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Number i of the first account used.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub first: u64,
    /// The password shared by all accounts.
    #[arg(long, default_value = "benchpass")]
    pub password: String,
    /// Resource bound by every session.
    #[arg(long, default_value = "bench")]
    pub resource: String,
    /// Upgrade with STARTTLS (needs --ca or --insecure).
    #[arg(long)]
    pub starttls: bool,
    /// PEM file of the certificate(s) to trust for STARTTLS.
    #[arg(long, requires = "starttls", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Accept any server certificate (loopback targets only).
    #[arg(long, requires = "starttls")]
    pub insecure: bool,
    /// SASL mechanism.
    #[arg(long, value_enum, default_value_t = Mech::Plain)]
    pub mech: Mech,
    /// Hard stop for the whole run, in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_secs: u64,
    /// Longest wait for any one network event, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub timeout: u64,
    /// Worker threads of the tool's tokio runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Server process to sample (CPU from /proc/PID/stat, RSS from /proc/PID/status).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Connections per source address; beyond it 127.0.0.2, 127.0.0.3, … are bound.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub conns_per_source: u64,
}

#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    #[command(flatten)]
    pub common: Common,
    /// Number of accounts that log in (N).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub count: u64,
    /// Logins in progress at a time (C).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,
}

#[derive(Args, Debug, Clone)]
pub struct MsgArgs {
    #[command(flatten)]
    pub common: Common,
    /// Number of account pairs (K); each account sends to its partner.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub pairs: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// Closed loop: messages in flight per direction (W).
    #[arg(long, default_value_t = 1, conflicts_with = "rate", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub window: u64,
    /// Open loop: total messages per second, spread over all senders.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Body size in bytes (padded; at least what the timestamp needs).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=200_000))]
    pub body_bytes: u64,
    /// Seconds to wait for outstanding messages after sending stops.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub drain_secs: u64,
    /// Logins in progress at a time while setting up.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,
}

#[derive(Args, Debug, Clone)]
pub struct OfflineArgs {
    #[command(flatten)]
    pub common: Common,
    /// Messages stored for the offline recipient (M). The recipient is account `first`,
    /// the sender `first + 1`.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=200_000))]
    pub body_bytes: u64,
}

#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    #[command(flatten)]
    pub common: Common,
    /// Messages stored and archived first (M), as in `offline`.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub messages: u64,
    /// Results per page (P, RSM `<max/>`; the server may give fewer).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub page: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=200_000))]
    pub body_bytes: u64,
}

#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sessions to open (N).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub count: u64,
    /// Logins in progress at a time (C).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,
    /// Seconds to hold the sessions open (T).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub hold: u64,
}

#[derive(Args, Debug, Clone)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub common: Common,
    /// Accounts to create (N).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub count: u64,
    /// Registrations in progress at a time (C).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,
}

#[derive(Args, Debug, Clone)]
pub struct AccountsFileArgs {
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Number of accounts.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub count: u64,
    /// Number i of the first account.
    #[arg(long, default_value_t = 1)]
    pub first: u64,
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    #[arg(long, default_value = "benchpass")]
    pub password: String,
}

impl Command {
    /// Checks what clap cannot: the phases of a run must fit in `--max-secs`.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Command::Msg(a) if a.duration + a.drain_secs + a.common.timeout >= a.common.max_secs => {
                Err("--max-secs must exceed --duration + --drain-secs + --timeout".into())
            }
            Command::Msg(a) if a.rate.is_some_and(|r| !(r > 0.0 && r <= 10_000_000.0)) => {
                Err("--rate must be in (0, 10000000]".into())
            }
            Command::Idle(a) if a.hold + a.common.timeout >= a.common.max_secs => {
                Err("--max-secs must exceed --hold + --timeout".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn window_and_rate_exclude_each_other() {
        let args = ["stanzad-bench", "msg", "--window", "4", "--rate", "100"];
        assert!(Cli::try_parse_from(args).is_err());
        let ok = Cli::try_parse_from(["stanzad-bench", "msg", "--rate", "100"]).expect("parses");
        let Command::Msg(msg) = ok.command else { panic!("msg") };
        assert_eq!(msg.rate, Some(100.0));
        assert_eq!(msg.common.mech, Mech::Plain);
    }

    #[test]
    fn phases_must_fit_in_the_run() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).expect("parses").command.check();
        assert!(parse(&["b", "msg", "--duration", "10", "--drain-secs", "5", "--timeout", "5", "--max-secs", "20"])
            .is_err());
        assert!(
            parse(&["b", "msg", "--duration", "10", "--drain-secs", "5", "--timeout", "5", "--max-secs", "21"]).is_ok()
        );
        assert!(parse(&["b", "msg", "--rate", "0"]).is_err());
        assert!(parse(&["b", "idle", "--hold", "120"]).is_err());
        assert!(parse(&["b", "idle", "--hold", "60"]).is_ok());
    }

    #[test]
    fn ca_needs_starttls() {
        assert!(Cli::try_parse_from(["stanzad-bench", "login", "--ca", "x.pem"]).is_err());
        assert!(Cli::try_parse_from(["stanzad-bench", "login", "--starttls", "--insecure"]).is_ok());
    }
}
