//! Fixtures shared by the test binaries: the target server (a spawned reference server, or the
//! external one named by `SEMANTIC_BASE_URL`), settings from the environment, and report
//! writing.
//!
//! Each test binary uses a subset of these helpers.
#![allow(dead_code, unreachable_pub)]

pub mod scenarios;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use semantic_stress::{StressConfig, StressHarness};

/// How long a spawned reference server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The server a test runs against.
#[derive(Debug)]
pub struct Target {
    base_url: String,
    pid: Option<u32>,
    child: Option<Child>,
    // Held open so the server exits when this process dies (`--exit-on-stdin-eof`).
    _stdin: Option<ChildStdin>,
    admin_key: Option<String>,
    timeout: Option<Duration>,
}

impl Target {
    /// The external server of `SEMANTIC_BASE_URL` if set, else a fresh reference server
    /// started with `args` (a profile for this test: pool size, speeds, faults).
    pub fn start(args: &[&str]) -> Self {
        let target = match std::env::var("SEMANTIC_BASE_URL") {
            Ok(url) if !url.trim().is_empty() => Self::external(url),
            _ => Self::reference(args),
        };
        announce(&target);
        target
    }

    /// A fresh reference server started with `args`, whatever the environment says.
    pub fn reference(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reference-server"))
            .args(["--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-eof"])
            .args(args)
            .env_remove("ANTHROPIC_API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the reference-server binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "reference server did not print its address within {STARTUP_TIMEOUT:?}: {other:?}"
                );
            }
        };
        let base_url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from reference server: {line:?}"))
            .trim()
            .to_owned();
        let pid = child.id();
        let stdin = child.stdin.take();
        Self {
            base_url,
            pid: Some(pid),
            child: Some(child),
            _stdin: stdin,
            admin_key: None,
            timeout: None,
        }
    }

    fn external(url: String) -> Self {
        let pid = std::env::var("SEMANTIC_SERVER_PID")
            .ok()
            .and_then(|p| p.trim().parse().ok());
        Self {
            base_url: url.trim().to_owned(),
            pid,
            child: None,
            _stdin: None,
            admin_key: std::env::var("SEMANTIC_ADMIN_KEY").ok(),
            timeout: None,
        }
    }

    /// Base URL of the server.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The server's process id, when known (spawned, or `SEMANTIC_SERVER_PID`).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether this is a reference server spawned for this test.
    pub fn is_reference(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the spawned server process is still running (always true for external ones).
    pub fn is_alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Harness settings for this target: the environment's `SEMANTIC_*` overrides on top of
    /// the seed's defaults, with this target's URL.
    pub fn config(&self) -> StressConfig {
        let config = StressConfig::from_env()
            .expect("valid SEMANTIC_* environment")
            .base_url(self.base_url.clone());
        match self.timeout {
            Some(t) => config.timeout(t),
            None => config,
        }
    }

    /// Uses `timeout` per request instead of the default 30 s (fault tests that must end
    /// quickly against a server that stops answering).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A harness with `config` adjustments applied.
    pub fn harness(&self, adjust: impl FnOnce(StressConfig) -> StressConfig) -> StressHarness {
        StressHarness::new(adjust(self.config())).expect("valid harness configuration")
    }

    /// Resets an external server's caches after a test: `DELETE /admin/caches` with
    /// `X-Admin-Key` when `SEMANTIC_ADMIN_KEY` is set. Runs when the target is dropped, so also
    /// after a failed test; bounded by a 5 s timeout. A spawned server is simply stopped.
    fn cleanup(&self) {
        let Some(key) = &self.admin_key else { return };
        let authority = self
            .base_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let result = (|| -> std::io::Result<String> {
            use std::io::{Read, Write};
            use std::net::ToSocketAddrs;
            let addr = authority
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))?;
            let timeout = Duration::from_secs(5);
            let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            write!(
                stream,
                "DELETE /admin/caches HTTP/1.1\r\nHost: {authority}\r\nX-Admin-Key: {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            let mut head = [0u8; 64];
            let n = stream.read(&mut head)?;
            Ok(String::from_utf8_lossy(&head[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned())
        })();
        match result {
            Ok(status) if status.contains(" 2") => {}
            Ok(status) => eprintln!("cleanup: DELETE /admin/caches answered {status:?}"),
            Err(e) => eprintln!("cleanup: DELETE /admin/caches failed: {e}"),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.cleanup();
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Says once per test binary which server the tests run against and where reports go.
fn announce(target: &Target) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let what = if target.is_reference() {
            format!(
                "the embedded reference server (a fresh one per test; this one at {}); set SEMANTIC_BASE_URL to test your own",
                target.base_url()
            )
        } else {
            format!(
                "{} (SEMANTIC_BASE_URL); memory from {}",
                target.base_url(),
                target.pid().map_or("nowhere: set SEMANTIC_SERVER_PID".to_owned(), |p| format!("pid {p}"))
            )
        };
        eprintln!("semantic-stress: testing {what}");
        eprintln!("semantic-stress: reports go to {}", reports_dir().display());
    });
}

/// `SEMANTIC_STRESS_TEST_DURATION` in seconds, or `default`.
pub fn env_duration(default: Duration) -> Duration {
    std::env::var("SEMANTIC_STRESS_TEST_DURATION")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(default, Duration::from_secs_f64)
}

/// `SEMANTIC_STRESS_TEST_WORKERS`, or `default`.
pub fn env_workers(default: usize) -> usize {
    std::env::var("SEMANTIC_STRESS_TEST_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `SEMANTIC_STRESS_TEST_RATE_LIMIT` in requests/s, or `default`.
pub fn env_rate(default: f64) -> f64 {
    std::env::var("SEMANTIC_STRESS_TEST_RATE_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Where reports go: `target/stress-reports/` (or under `CARGO_TARGET_DIR`).
pub fn reports_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("stress-reports")
}

/// Writes `value` as pretty JSON to `target/stress-reports/NAME.json` and returns the path.
pub fn write_json(name: &str, value: &impl serde::Serialize) -> PathBuf {
    let dir = reports_dir();
    std::fs::create_dir_all(&dir).expect("create target/stress-reports");
    let path = dir.join(format!("{name}.json"));
    let json = serde_json::to_vec_pretty(value).expect("report serializes");
    std::fs::write(&path, json).expect("write report");
    path
}

/// Compares with the baseline named by `SEMANTIC_STRESS_BASELINE` (if set), prints the
/// report's summary, writes its JSON, Markdown and charts to `target/stress-reports/` (and
/// updates the index there), and fails the test with every failed verdict when one failed.
pub fn finish(report: &semantic_stress::Report) {
    let mut report = report.clone();
    report.compare_with_env_baseline();
    println!("{}", report.text());
    let dir = reports_dir();
    report.write_all(&dir).expect("write the reports");
    println!(
        "report: {}",
        dir.join(format!("{}.md", report.file_stem())).display()
    );
    assert!(
        report.passed(),
        "{} failed:\n{}",
        report.name,
        report.failures()
    );
}
