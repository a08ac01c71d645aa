//! A status line on stderr about once a second while a phase runs.

use std::time::Instant;
use tokio::task::JoinHandle;
use tokio::time::{interval_at, Duration};

/// Prints `line()` every second until dropped.
pub struct Progress(JoinHandle<()>);

impl Progress {
    pub fn start(label: &'static str, line: impl Fn() -> String + Send + 'static) -> Progress {
        let started = Instant::now();
        Progress(tokio::spawn(async move {
            let period = Duration::from_secs(1);
            let mut tick = interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                eprintln!("[{:>6.1}s] {label}: {}", started.elapsed().as_secs_f64(), line());
            }
        }))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.abort();
    }
}
