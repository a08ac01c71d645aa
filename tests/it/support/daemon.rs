//! The real binary as a user runs it: `stanzad serve` as a child process (killed with
//! SIGKILL to test durability, or stopped with SIGTERM), `stanzad adduser` and `deluser`.

use super::{Client, Mech};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of every account made here.
pub const PW: &str = "pw";

/// A `stanzad serve` process, killed (SIGKILL) and reaped when dropped; on a failing test
/// its log is printed.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Daemon {
    /// Starts `stanzad serve` on `dir`/data with plaintext allowed on a free loopback port
    /// (cwd `dir`, so its certificates go there) and waits until it accepts connections.
    pub async fn start(dir: &Path, run: usize) -> Daemon {
        Daemon::start_with(dir, run, "").await
    }

    /// Like [`Daemon::start`], with `config` (TOML) as its configuration file.
    pub async fn start_with(dir: &Path, run: usize, config: &str) -> Daemon {
        Daemon::try_start_with(dir, run, config).await.unwrap_or_else(|why| panic!("{why}"))
    }

    /// Like [`Daemon::start`], on a store this test process has just closed: sled's own
    /// threads may hold its lock a moment longer, so a server that found it locked is
    /// started again (for 10 s at most).
    pub async fn start_after_closing(dir: &Path, run: usize) -> Daemon {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Daemon::try_start_with(dir, run, "").await {
                Ok(daemon) => return daemon,
                Err(why) if why.contains("lock") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    /// Starts `stanzad serve`; what it logged when it exits instead of listening.
    async fn try_start_with(dir: &Path, run: usize, config: &str) -> Result<Daemon, String> {
        let config_path = dir.join(format!("stanzad-{run}.toml"));
        std::fs::write(&config_path, config).expect("write the configuration");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            listener.local_addr().expect("local address").port()
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.join(format!("serve-{run}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = stanzad(dir)
            .args(["serve", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--c2s-addr", &addr.to_string(), "--tls-addr", "off", "--allow-plaintext"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn stanzad serve");
        let mut daemon = Daemon { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = daemon.child.try_wait().expect("child status") {
                return Err(format!("stanzad serve exited with {status}:\n{}", daemon.log_text()));
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(daemon);
            }
            assert!(Instant::now() < deadline, "stanzad serve does not listen on {addr}:\n{}", daemon.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the server logged so far (its stdout and stderr).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The file the server logs to; it stays after [`Daemon::kill`].
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits up to `limit` for the server to exit by itself; its status, if it did.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM: the graceful shutdown a supervisor asks for.
    pub fn terminate(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a child's pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM stanzad");
    }

    /// SIGTERM (a graceful shutdown: storage flushed), and wait for it to exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                assert!(status.success(), "stanzad serve exited with {status}:\n{}", self.log_text());
                return;
            }
            assert!(Instant::now() < deadline, "stanzad serve does not stop:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL stanzad");
        self.child.wait().expect("reap stanzad");
    }

    /// A bound session of `user` over plaintext (SCRAM-SHA-256).
    pub async fn session(&self, user: &str, resource: &str) -> Client {
        let mut client = Client::connect(self.addr).await;
        client.open_stream().await;
        client
            .authenticate(Mech::ScramSha256, user, PW)
            .await
            .unwrap_or_else(|condition| panic!("login of {user} failed: {condition}"));
        client.bind(Some(resource)).await;
        client
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} ----\n{}", self.log.display(), self.log_text());
        }
    }
}

/// `stanzad serve` with `config` (TOML) as its configuration file, expected to refuse to
/// start: waits (30 s at most) for it to exit with a failure; what it printed.
pub fn serve_refused(dir: &Path, config: &str) -> String {
    let config_path = dir.join("refused.toml");
    std::fs::write(&config_path, config).expect("write the configuration");
    let child = stanzad(dir)
        .args(["serve", "--config"])
        .arg(&config_path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--c2s-addr", "127.0.0.1:0", "--tls-addr", "off", "--allow-plaintext"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stanzad serve");
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(output) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        panic!("stanzad serve did not exit");
    };
    let output = output.expect("stanzad serve's output");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "stanzad serve started:\n{text}");
    text
}

fn stanzad(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stanzad"));
    command.current_dir(dir).env("RUST_LOG", "info").env("NO_COLOR", "1");
    command
}

/// `stanzad adduser JID --password-stdin --data-dir DIR/data`, no server running.
pub fn adduser(dir: &Path, jid: &str) {
    let mut child = stanzad(dir)
        .args(["adduser", jid, "--password-stdin", "--data-dir"])
        .arg(dir.join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stanzad adduser");
    child.stdin.take().expect("stdin").write_all(format!("{PW}\n").as_bytes()).expect("write the password");
    finish(child, &format!("adduser {jid}"));
}

/// `stanzad deluser JID --data-dir DIR/data`, no server running.
pub fn deluser(dir: &Path, jid: &str) {
    let child = stanzad(dir)
        .args(["deluser", jid, "--data-dir"])
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stanzad deluser");
    finish(child, &format!("deluser {jid}"));
}

/// Waits (30 s at most) for a command to succeed.
fn finish(mut child: Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("command status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("stanzad {what} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "stanzad {what}: {status}");
}
