//! The fuzz targets of `fuzz/` on a stable toolchain: random mutations of the seed inputs in
//! `fuzz/seeds/<target>/`, run through the same checks as the libFuzzer targets
//! (`fuzz/checks.rs`) for a bounded time. No coverage feedback, so weaker than
//! `cargo +nightly fuzz run`, but it needs nothing beyond stable Rust.
//!
//! ```sh
//! cargo run --release --example fuzz -- sse_parser --seconds 60
//! cargo run --release --example fuzz -- usage_reader --seconds 60 --seed 7
//! ```
//!
//! Prints one line of figures; on a failed check it writes the input to
//! `fuzz/artifacts/stable-<target>-<n>` and exits 1.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

// The example uses the checks through a path, as the fuzz targets do.
#[allow(dead_code)]
#[path = "../fuzz/checks.rs"]
mod checks;

/// Most inputs kept to mutate further.
const POOL: usize = 512;
/// Longest input generated.
const MAX_LEN: usize = 4096;
/// Byte strings that matter to the parsers, spliced in by the mutator.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"data: ",
    b"data:",
    b"event: ",
    b": ",
    b"{",
    b"}",
    b"\"",
    b"\\",
    b"\\u00e9",
    b"\xff",
    b"\xc3",
    b"\xe2\x9c",
    b"message_start",
    b"content_block_delta",
    b"message_delta",
    b"message_stop",
    b"error",
    b"usage",
    b"output_tokens",
    b"input_tokens",
    b"text",
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let target = args
        .next()
        .context("usage: fuzz <sse_parser|usage_reader> [--seconds N] [--seed S]")?;
    let mut seconds = 60u64;
    let mut seed = 0x5eed_u64;
    while let Some(flag) = args.next() {
        let value = args.next().context("flag without value")?;
        match flag.as_str() {
            "--seconds" => seconds = value.parse().context("--seconds")?,
            "--seed" => seed = value.parse().context("--seed")?,
            other => bail!("unknown flag {other}"),
        }
    }
    let check: fn(&[u8]) = match target.as_str() {
        "sse_parser" => checks::sse_parser,
        "usage_reader" => checks::usage_reader,
        other => bail!("unknown target {other}; expected sse_parser or usage_reader"),
    };
    let fuzz_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut pool = seeds(&fuzz_dir.join("seeds").join(&target))?;
    let mut rng = StdRng::seed_from_u64(seed);
    // A failed check is reported by its input, not by the panic message alone.
    std::panic::set_hook(Box::new(|_| {}));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let input = mutate(&pool, &mut rng);
            runs += 1;
            if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
                let dir = fuzz_dir.join("artifacts");
                std::fs::create_dir_all(&dir)?;
                let path = dir.join(format!("stable-{target}-{runs}"));
                std::fs::write(&path, &input)?;
                bail!(
                    "check failed after {runs} runs; input in {}",
                    path.display()
                );
            }
            if pool.len() < POOL {
                pool.push(input);
            } else if rng.random_bool(0.01) {
                let i = rng.random_range(0..pool.len());
                pool[i] = input;
            }
        }
    }
    println!(
        "{{\"target\":\"{target}\",\"runs\":{runs},\"seconds\":{seconds},\"seed\":{seed},\"failures\":0}}"
    );
    Ok(())
}

fn seeds(dir: &std::path::Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("seeds in {}", dir.display()))? {
        out.push(std::fs::read(entry?.path())?);
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    Ok(out)
}

/// One input: a pool member with one to eight random edits.
fn mutate(pool: &[Vec<u8>], rng: &mut StdRng) -> Vec<u8> {
    let mut input = pool[rng.random_range(0..pool.len())].clone();
    for _ in 0..rng.random_range(1..=8) {
        let at = rng.random_range(0..=input.len());
        match rng.random_range(0..6) {
            0 if !input.is_empty() => {
                let i = rng.random_range(0..input.len());
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 => input.insert(at, rng.random()),
            2 if at < input.len() => {
                let end = rng.random_range(at..=input.len().min(at + 64));
                input.drain(at..end);
            }
            3 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            4 => {
                let other = &pool[rng.random_range(0..pool.len())];
                let from = rng.random_range(0..=other.len());
                let end = rng.random_range(from..=other.len().min(from + 256));
                input.splice(at..at, other[from..end].iter().copied());
            }
            _ if at < input.len() => {
                let end = rng.random_range(at..=input.len().min(at + 32));
                let copy = input[at..end].to_vec();
                input.splice(end..end, copy);
            }
            _ => {}
        }
    }
    input.truncate(MAX_LEN);
    input
}
