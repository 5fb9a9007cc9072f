//! Calibrates a server: the latency of one request alone, decode tokens/s, the concurrency at
//! which throughput stops rising and the capacity there, for requests of N output tokens.
//!
//! ```sh
//! cargo run --example calibrate                       # an in-process reference server
//! SEMANTIC_BASE_URL=http://localhost:8080 SEMANTIC_PROFILE=llama.cpp \
//!     cargo run --example calibrate -- 100            # max_tokens 100
//! ```

use std::time::Duration;

use reference_server::{ReferenceServer, ServerConfig};
use semantic_stress::StressConfig;
use semantic_stress::suite::{self, Target};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let max_tokens: u32 = std::env::args()
        .nth(1)
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(200);
    let external = std::env::var("SEMANTIC_BASE_URL").is_ok_and(|u| !u.trim().is_empty());
    let embedded = if external {
        None
    } else {
        Some(ReferenceServer::start(ServerConfig::default()).await?)
    };
    let target = match &embedded {
        Some(server) => Target::new(StressConfig::new(server.base_url())),
        None => Target::from_env().await?,
    };
    eprintln!(
        "calibrating {} (profile {}: {})",
        target.base_url(),
        target.profile_ref().name,
        target.profile_reason()
    );
    let c = suite::calibrate(&target, max_tokens, Duration::from_secs(60)).await?;
    println!("{}", serde_json::to_string_pretty(&c)?);
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    Ok(())
}
