//! The reference server as a program.
//!
//! Prints one line `listening on http://ADDR` on stdout once it accepts connections, then
//! serves until SIGTERM, ctrl-c or (with `--exit-on-stdin-eof`) the end of its stdin, drains
//! in-flight requests within the drain timeout, and exits 0. Every flag also reads an
//! environment variable; see `reference-server --help`.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;
use reference_server::{ReferenceServer, ServerArgs};
use tokio::sync::oneshot;

/// Reference implementation of the semantic caching server (Anthropic Messages API with
/// per-agent KV caches), with injectable faults.
#[derive(Debug, Parser)]
#[command(name = "reference-server", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    /// Shut down when stdin reaches end of file (so a crashed parent never leaves a server).
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.server.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("reference-server: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match ReferenceServer::start(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("reference-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let announced =
        writeln!(stdout, "listening on {}", server.base_url()).and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(e) = announced {
        eprintln!("reference-server: cannot write to stdout: {e}");
    }
    let reason = wait_for_stop(cli.exit_on_stdin_eof).await;
    eprintln!("reference-server {}: {reason}; draining", server.addr());
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Waits for SIGTERM, ctrl-c or (if asked) stdin EOF; says which.
async fn wait_for_stop(watch_stdin: bool) -> &'static str {
    let stdin_eof = async {
        if !watch_stdin {
            return std::future::pending().await;
        }
        // A plain thread: a blocking read in tokio's pool would keep the runtime from exiting.
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let mut buf = [0_u8; 256];
            let mut stdin = std::io::stdin().lock();
            // A signal may interrupt the read (EINTR): that is not the end of stdin.
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
        let _ = rx.await;
    };
    let sigterm = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        () = sigterm => "terminated",
        () = stdin_eof => "stdin closed",
    }
}
