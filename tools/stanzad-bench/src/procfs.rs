//! CPU time and memory of this process and of the server, from /proc (Linux).
//!
//! CPU time is utime + stime of `/proc/PID/stat` (fields 14 and 15), in clock ticks; the
//! tick rate comes from the kernel (`AT_CLKTCK`, what `getconf CLK_TCK` prints, 100 on
//! Linux), so the resolution is 10 ms. RSS is `VmRSS` of `/proc/PID/status`.

use std::io;
use std::time::Instant;

/// utime + stime of `pid` (this process if `None`), in clock ticks.
pub fn cpu_ticks(pid: Option<u32>) -> io::Result<u64> {
    parse_stat(&std::fs::read_to_string(stat_path(pid, "stat"))?)
}

/// VmRSS of `pid` (this process if `None`), in KiB.
pub fn rss_kib(pid: Option<u32>) -> io::Result<u64> {
    parse_rss(&std::fs::read_to_string(stat_path(pid, "status"))?)
}

fn stat_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// utime + stime from a `stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn parse_stat(line: &str) -> io::Result<u64> {
    let rest = line.rsplit_once(')').ok_or_else(|| bad("no ) in stat"))?.1;
    // After ")": field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let mut next = || fields.next().and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| bad("utime/stime"));
    Ok(next()? + next()?)
}

fn parse_rss(status: &str) -> io::Result<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).ok_or_else(|| bad("no VmRSS"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    kib.parse().map_err(|_| bad("VmRSS value"))
}

/// Clock ticks per second.
pub fn ticks_per_second() -> u64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100,
        hz => hz,
    }
}

/// CPU times at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Instant,
    tool: u64,
    server: Option<u64>,
}

/// CPU used between two samples.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub wall_secs: f64,
    pub tool_secs: f64,
    pub server_secs: Option<f64>,
}

impl Sample {
    /// Samples this process and, if given, the server (`None` if it cannot be read).
    pub fn take(server_pid: Option<u32>) -> Sample {
        Sample {
            at: Instant::now(),
            tool: cpu_ticks(None).unwrap_or(0),
            server: server_pid.and_then(|pid| cpu_ticks(Some(pid)).ok()),
        }
    }

    /// What was used from `self` to `later`.
    pub fn until(&self, later: &Sample) -> CpuUse {
        let hz = ticks_per_second() as f64;
        let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz;
        CpuUse {
            wall_secs: later.at.duration_since(self.at).as_secs_f64(),
            tool_secs: secs(self.tool, later.tool),
            server_secs: self.server.zip(later.server).map(|(a, b)| secs(a, b)),
        }
    }
}

/// Raises the soft limit of open files to the hard limit (each connection is a file).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(_) => limit.current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_the_command_name() {
        let line = "4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 1 2 3";
        assert_eq!(parse_stat(line).expect("parsed"), 325);
        assert!(parse_stat("4242 (short) S 1 2").is_err());
    }

    #[test]
    fn reads_vmrss() {
        let status = "Name:\tstanzad\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_rss(status).expect("parsed"), 12345);
        assert!(parse_rss("Name:\tx\n").is_err());
    }

    #[test]
    fn reads_this_process() {
        assert!(cpu_ticks(None).is_ok());
        assert!(rss_kib(None).expect("rss") > 0);
        assert!(ticks_per_second() >= 100);
    }
}
