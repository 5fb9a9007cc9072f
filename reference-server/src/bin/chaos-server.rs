//! The chaos target as a program: a server that answers each request with a hostile or broken
//! behaviour chosen by its path (`/chaos/<case>/…`); see `reference_server::chaos`.
//!
//! Prints one line `listening on http://ADDR` on stdout once it accepts connections, then
//! serves until ctrl-c or (with `--exit-on-stdin-eof`) the end of its stdin.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reference_server::chaos::{Case, ChaosConfig, ChaosServer};
use tokio::sync::oneshot;

/// A target that answers every request with a hostile or broken reply, chosen by the path
/// `/chaos/<case>/…`.
#[derive(Debug, Parser)]
#[command(name = "chaos-server", version, after_help = cases_help())]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Connections served at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Longest life of one connection, in seconds.
    #[arg(long, default_value_t = 120)]
    connection_lifetime_secs: u64,
    /// Exit when stdin reaches end of file (so a crashed parent never leaves a server).
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

fn cases_help() -> String {
    let names: Vec<&str> = Case::ALL.iter().map(|c| c.name()).collect();
    format!("Cases: {}", names.join(", "))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = ChaosConfig {
        addr: SocketAddr::new(cli.host, cli.port),
        max_connections: cli.max_connections,
        connection_lifetime: Duration::from_secs(cli.connection_lifetime_secs),
    };
    let server = match ChaosServer::start(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("chaos-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on {}", server.base_url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    let stdin_eof = async {
        if !cli.exit_on_stdin_eof {
            return std::future::pending().await;
        }
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let mut buf = [0_u8; 256];
            let mut stdin = std::io::stdin().lock();
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
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = stdin_eof => {}
    }
    server.shutdown().await;
    ExitCode::SUCCESS
}
