//! Results: a table on stdout and, with `--json`, a JSON object in a file.

use serde_json::{json, Map, Value};
use std::path::Path;

use crate::procfs::CpuUse;
use crate::stats::{Failures, Summary};

/// The results of one scenario, in the order they were added.
pub struct Report {
    scenario: &'static str,
    params: Map<String, Value>,
    rows: Vec<(String, Value, &'static str)>,
    notes: Vec<String>,
    /// `false` if something went wrong (failures, lost messages): exit status 1.
    pub ok: bool,
}

impl Report {
    pub fn new(scenario: &'static str) -> Self {
        Report { scenario, params: Map::new(), rows: Vec::new(), notes: Vec::new(), ok: true }
    }

    /// A parameter of the run (shown in the header line and under `params` in JSON).
    pub fn param(&mut self, name: &str, value: impl Into<Value>) {
        self.params.insert(name.to_owned(), value.into());
    }

    /// One result; `key` is the JSON key, `unit` is shown in the table only.
    pub fn add(&mut self, key: &str, value: impl Into<Value>, unit: &'static str) {
        self.rows.push((key.to_owned(), value.into(), unit));
    }

    /// A rate or duration, rounded to 0.01.
    pub fn add_f(&mut self, key: &str, value: f64, unit: &'static str) {
        self.add(key, round2(value), unit);
    }

    /// A line printed under the table (and listed under `notes` in JSON).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// `{prefix}_p50_ms` … `{prefix}_max_ms`.
    pub fn latency(&mut self, prefix: &str, s: &Summary) {
        for (name, ns) in [("p50", s.p50), ("p90", s.p90), ("p99", s.p99), ("max", s.max)] {
            self.add_f(&format!("{prefix}_{name}_ms"), ns as f64 / 1e6, "ms");
        }
    }

    /// Tool and server CPU during a measured phase (keys start with `prefix`), and server CPU
    /// per unit of work.
    pub fn cpu(&mut self, prefix: &str, cpu: &CpuUse, per: &str, units: u64) {
        let pct = |secs: f64| 100.0 * secs / cpu.wall_secs.max(1e-9);
        self.add_f(&format!("{prefix}measured_secs"), cpu.wall_secs, "s");
        self.add_f(&format!("{prefix}tool_cpu_secs"), cpu.tool_secs, "s");
        self.add_f(&format!("{prefix}tool_cpu_percent"), pct(cpu.tool_secs), "% of one core");
        if let Some(server) = cpu.server_secs {
            self.add_f(&format!("{prefix}server_cpu_secs"), server, "s");
            self.add_f(&format!("{prefix}server_cpu_percent"), pct(server), "% of one core");
            if units > 0 {
                self.add_f(&format!("{prefix}server_cpu_us_per_{per}"), server * 1e6 / units as f64, "µs");
            }
        }
    }

    /// Failure count (makes the run fail) and one note per kind.
    pub fn failures(&mut self, key: &str, failures: &Failures) {
        let total = failures.total();
        self.add(key, total, "");
        if total > 0 {
            self.ok = false;
        }
        for line in failures.lines() {
            self.note(format!("{key}: {line}"));
        }
    }

    /// The human table.
    pub fn table(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={}", plain(v))).collect();
        let mut out = format!("stanzad-bench {}  {}\n", self.scenario, params.join(" "));
        for (key, value, unit) in &self.rows {
            out.push_str(&format!("  {key:<32} {:>14} {unit}\n", plain(value)).replace(" \n", "\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        out.push_str(if self.ok { "  result: OK\n" } else { "  result: FAILED\n" });
        out
    }

    pub fn json(&self) -> Value {
        let results: Map<String, Value> = self.rows.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
        json!({ "scenario": self.scenario, "params": self.params, "results": results, "notes": self.notes, "ok": self.ok })
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&self.json()).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn round2(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json_hold_the_same_rows() {
        let mut r = Report::new("login");
        r.param("count", 200);
        r.add("logins_ok", 200, "");
        r.add_f("logins_per_sec", 812.345, "/s");
        r.latency("login", &Summary { count: 1, p50: 1_500_000, p90: 2_000_000, p99: 3_000_000, max: 4_000_000 });
        let table = r.table();
        assert!(table.starts_with("stanzad-bench login  count=200\n"), "{table}");
        assert!(table.contains("logins_per_sec") && table.contains("812.35 /s"), "{table}");
        assert!(table.ends_with("result: OK\n"), "{table}");
        let j = r.json();
        assert_eq!(j["results"]["login_p50_ms"], json!(1.5));
        assert_eq!(j["results"]["logins_ok"], json!(200));
        assert_eq!(j["params"]["count"], json!(200));
    }

    #[test]
    fn failures_fail_the_run() {
        let mut r = Report::new("login");
        let f = Failures::default();
        f.record(&crate::error::BenchError::Timeout("bind result"));
        r.failures("logins_failed", &f);
        assert!(!r.ok);
        assert!(r.table().contains("note: logins_failed: timeout: 1"), "{}", r.table());
    }
}
