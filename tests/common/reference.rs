//! The reference server as a separate process (memory is measured per process), found or built
//! by a path that works under `cargo test`, `cargo nextest run` and IDE runners alike.
//!
//! The server is its own workspace crate, so its binary is not a `CARGO_BIN_EXE_*` of this
//! package. The fixture asks cargo (the one running the tests, `$CARGO`) to build it once per
//! test process, into the target directory the tests were built in, with the same profile:
//! a no-op when it is fresh, and it never leaves a stale binary behind. Set
//! `SEMANTIC_REFERENCE_SERVER` to a binary to skip the build.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

/// How long a spawned reference server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A reference server process, killed on drop (and exiting by itself when this process dies:
/// it runs with `--exit-on-stdin-eof`).
#[derive(Debug)]
pub struct ReferenceProcess {
    child: Child,
    base_url: String,
    // Held open so the server exits when this process dies.
    _stdin: Option<ChildStdin>,
}

impl ReferenceProcess {
    /// Starts the reference server on a free loopback port with `args`.
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(binary())
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
        let stdin = child.stdin.take();
        Self {
            child,
            base_url,
            _stdin: stdin,
        }
    }

    /// Base URL of the server.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ReferenceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference-server binary: `SEMANTIC_REFERENCE_SERVER`, or built once per process.
fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| match std::env::var_os("SEMANTIC_REFERENCE_SERVER") {
        Some(path) => PathBuf::from(path),
        None => build(),
    })
}

/// Builds the reference server with the cargo that runs these tests, in the profile and target
/// directory of this test executable (`<target>/<profile>/deps/<test>`), and returns its path.
fn build() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // <target>/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable under <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("a target directory");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "--package", "reference-server", "--bin"])
        .arg("reference-server")
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // The library with the features these tests were built with, so it is not built twice.
    if cfg!(feature = "resource-intensive") {
        command.args(["--features", "semantic-stress/resource-intensive"]);
    } else if cfg!(feature = "stress") {
        command.args(["--features", "semantic-stress/stress"]);
    }
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let status = command
        .status()
        .expect("run cargo to build the reference server");
    assert!(
        status.success(),
        "cargo build --package reference-server failed ({status}); set SEMANTIC_REFERENCE_SERVER to a built binary"
    );
    profile_dir.join(format!("reference-server{}", std::env::consts::EXE_SUFFIX))
}
