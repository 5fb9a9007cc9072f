#!/usr/bin/env bash
# The harness against NVIDIA AIPerf on the same streamed reference-server target and the same
# core budget: request rate, CPU per output token and TTFT p50/p99 of each, and the ratios.
#
# Usage: scripts/compare-aiperf.sh         (about 2 minutes, plus AIPerf's install the first time)
# Environment:
#   CONCURRENCY=100    streams in flight (both tools: closed loop)
#   DURATION=15        seconds of load per tool
#   TOKEN_RATE=20000   tokens/s asked of the server over all streams (as examples/timing_bench.rs)
#   SKIP_INSTALL=1     use target/aiperf-venv as it is
#
# Both tools meet a fresh reference server started with the same flags; with taskset and two
# cores, the server runs on core 0 and the tool under test on core 1. AIPerf (`aiperf profile
# --endpoint-type messages --streaming`, a local tokenizer, no network) is
# installed with pip in a venv under target/. CPU is user + system time of the tool's whole
# process tree (`/usr/bin/time`, children included: AIPerf runs several processes), divided by
# the output tokens it received. Not part of CI.
set -euo pipefail

CONCURRENCY=${CONCURRENCY:-100}
DURATION=${DURATION:-15}
TOKEN_RATE=${TOKEN_RATE:-20000}

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/target/aiperf-venv"
WORK=$(mktemp -d -t compare-aiperf.XXXXXX)
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${SKIP_INSTALL:-}" && ! -x "$VENV/bin/aiperf" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q aiperf
fi
if [[ ! -x /usr/bin/time ]]; then
    echo "/usr/bin/time is missing (apt-get install time)" >&2
    exit 1
fi

# AIPerf needs a tokenizer to make prompts and count tokens; its `builtin` one downloads its
# encoding, so a small local word-level tokenizer (Hugging Face format) stands in, and the
# reference server's usage figures count the output tokens (--use-server-token-count).
TOKENIZER="$ROOT/target/aiperf-tokenizer"
if [[ ! -f "$TOKENIZER/tokenizer.json" ]]; then
    "$VENV/bin/python" - "$TOKENIZER" <<'PY'
import json, os, sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
out = sys.argv[1]
words = ["[UNK]"] + ("the a of and to in is it that was for on are as with his they at be this "
    "from have or by one had not but what all were when we there can an your which their said if "
    "do will each about how up out them then she many some so these would other into has more her "
    "two like him see time could no make than first been its who now people my made over did "
    "down only way find use may water long little very after words called just where most know").split()
vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.decoder = decoders.WordPiece(prefix="##")
os.makedirs(out, exist_ok=True)
tok.save(os.path.join(out, "tokenizer.json"))
config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]",
          "model_max_length": 1000000}
json.dump(config, open(os.path.join(out, "tokenizer_config.json"), "w"))
PY
fi

cargo build --release -q -p reference-server
cargo build --release -q --example timing_bench
SERVER_BIN="$ROOT/target/release/reference-server"

PIN_SERVER=()
PIN_TOOL=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    PIN_SERVER=(taskset -c 0)
    PIN_TOOL=(taskset -c 1)
fi

# The same shape as examples/timing_bench.rs: decode per stream, replies of about 4 s.
read -r DECODE MAX_TOKENS < <(python3 -c "
d = min(50.0, max(0.5, $TOKEN_RATE / $CONCURRENCY))
print(d, max(3, round(d * 4)))")
CAPACITY=$((CONCURRENCY * 2))

start_server() {
    "${PIN_SERVER[@]}" "$SERVER_BIN" --host 127.0.0.1 --port 0 \
        --decode-tokens-per-sec "$DECODE" --prefill-tokens-per-sec 100000 --engine-tick 5ms \
        --max-batch-size "$CAPACITY" --max-queue "$CAPACITY" --max-hot-agents "$CAPACITY" \
        --cache-budget-mb 65536 >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        if grep -q "listening on" "$WORK/server.out" 2>/dev/null; then
            URL=$(sed -n 's/^listening on //p' "$WORK/server.out" | head -1)
            return
        fi
        sleep 0.1
    done
    echo "reference server did not start" >&2
    cat "$WORK/server.err" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# --- the harness (timing_bench starts and pins its own server with the same flags) ---
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/time -f "%U %S" -o "$WORK/harness.time" \
    "$ROOT/target/release/examples/timing_bench" --agents "$CONCURRENCY" \
    --duration "$DURATION" --token-rate "$TOKEN_RATE" --no-truth >"$WORK/harness.json"

# --- AIPerf ---
start_server
/usr/bin/time -f "%U %S" -o "$WORK/aiperf.time" \
    "${PIN_TOOL[@]}" "$VENV/bin/aiperf" profile \
    --model test-model --tokenizer "$TOKENIZER" --use-server-token-count \
    --endpoint-type messages --streaming \
    --url "$URL" --concurrency "$CONCURRENCY" --benchmark-duration "$DURATION" \
    --prompt-input-tokens-mean 20 --prompt-output-tokens-mean "$MAX_TOKENS" \
    --extra-inputs "max_tokens:$MAX_TOKENS" --ui-type none \
    --output-artifact-dir "$WORK/aiperf" >"$WORK/aiperf.log" 2>&1 || {
    echo "aiperf failed:" >&2
    tail -30 "$WORK/aiperf.log" >&2
    exit 1
}
stop_server
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

AIPERF_JSON=$(find "$WORK/aiperf" -name 'profile_export_aiperf.json' | head -1)
python3 - "$WORK/harness.json" "$WORK/harness.time" "$AIPERF_JSON" "$WORK/aiperf.time" \
    "$CONCURRENCY" "$DURATION" "$LOAD_BEFORE" "$LOAD_AFTER" <<'EOF'
import json, sys
h_json, h_time, a_json, a_time, conc, dur, load_before, load_after = sys.argv[1:]
h = json.loads(open(h_json).read().strip().splitlines()[-1])["levels"][0]
cpu = lambda p: sum(float(x) for x in open(p).read().split()[-2:])
a = json.load(open(a_json))
def metric(name, stat):
    m = a.get(name) or a.get("records", {}).get(name) or {}
    return m.get(stat)
a_tokens = (metric("output_token_throughput", "avg") or 0) * float(dur)
a_sequence = metric("output_sequence_length", "avg")
a_requests = metric("request_count", "avg")
if a_requests and a_sequence:
    a_tokens = a_requests * a_sequence
rows = {
    "request rate (req/s)": (h["requests_per_s"], metric("request_throughput", "avg")),
    "CPU per output token (µs)": (
        cpu(h_time) * 1e6 / max(h["output_tokens"], 1),
        cpu(a_time) * 1e6 / a_tokens if a_tokens else None,
    ),
    "output tokens": (h["output_tokens"], a_tokens or None),
    "TTFT p50 (ms)": (h["ttft_p50_ms"], metric("time_to_first_token", "p50")),
    "TTFT p99 (ms)": (h["ttft_p99_ms"], metric("time_to_first_token", "p99")),
}
print(f"concurrency {conc}, {dur} s each; load average {load_before} before, {load_after} after")
print(f"{'figure':<28}{'harness':>12}{'AIPerf':>12}{'AIPerf/harness':>16}")
for name, (hv, av) in rows.items():
    ratio = av / hv if (hv and av) else None
    f = lambda v: "n/a" if v is None else f"{v:.2f}"
    print(f"{name:<28}{f(hv):>12}{f(av):>12}{f(ratio):>16}")
EOF
