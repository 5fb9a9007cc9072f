#!/usr/bin/env bash
# The load generator against wrk, on the same targets, in one run: throughput and CPU per request
# (c = 50 and c = 500), memory per open connection (5,000 connections), flat memory over a
# sustained run, open-loop start lag at 1,000 req/s, and coordinated omission against a target
# that stalls for one second. Prints every figure with its goal and PASS/FAIL.
#
# Usage: scripts/compare-wrk.sh            (about 5 minutes with the defaults)
# Environment:
#   ROUNDS=3           alternating wrk/harness rounds per target and connection count (medians)
#   DURATION=5         seconds per throughput round
#   SUSTAINED=60       seconds of the memory-flatness run
#   IDLE_CONNECTIONS=5000
#   SKIP_INSTALL=1     do not apt-get install missing tools
#
# Everything runs on 127.0.0.1. nginx runs from its own config in a temporary directory (one
# worker, access log off, a 12-byte file) and is stopped on exit, as is the reference server.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
SUSTAINED=${SUSTAINED:-60}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-5000}
CONNECTIONS=(50 500)

cd "$(dirname "$0")/.."
WORK=$(mktemp -d -t compare-wrk.XXXXXX)
NGINX_PID_FILE="$WORK/logs/nginx.pid"
SERVER_PID=""
FAILED=0

cleanup() {
    if [[ -f "$NGINX_PID_FILE" ]]; then
        kill -QUIT "$(cat "$NGINX_PID_FILE")" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    exec 9>&- 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
    if [[ -n "${SKIP_INSTALL:-}" ]]; then
        log "missing: ${need[*]} (SKIP_INSTALL is set)"
        exit 1
    fi
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    log "installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# Client and server each hold one descriptor per connection.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if ((FD_LIMIT < IDLE_CONNECTIONS + 100)); then
    log "open-file limit $FD_LIMIT: idle-connection check lowered to $((FD_LIMIT - 100)) connections"
    IDLE_CONNECTIONS=$((FD_LIMIT - 100))
fi

log "building the benchmark (release)"
cargo build --release --quiet --example generator_bench
BENCH=target/release/examples/generator_bench
cargo build --release --quiet --bin reference-server 2>/dev/null || true

# --- helpers ---------------------------------------------------------------------------------
# field JSON NAME: a scalar field of a flat one-line JSON object.
field() { sed -E 's/.*"'"$2"'":("[^"]*"|[^,}]*).*/\1/' <<<"$1" | tr -d '"'; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"%.4g\", $1}"; }
free_port() {
    local p
    for p in $(seq 18080 18180); do
        (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    return 1
}

RESULTS=()
# verdict NAME MEASURED GOAL-TEXT PASS(0/1)
verdict() {
    local status=PASS
    if [[ "$4" != 1 ]]; then status=FAIL; FAILED=1; fi
    RESULTS+=("$(printf '%-44s %-28s %-22s %s' "$1" "$2" "$3" "$status")")
}

# run_wrk URL C: prints "requests_per_s cpu_us_per_request"
run_wrk() {
    local out="$WORK/wrk.out" t="$WORK/wrk.time"
    /usr/bin/time -f '%U %S' -o "$t" wrk -t2 -c"$2" -d"${DURATION}s" --timeout 10s "$1" >"$out"
    local rps n
    if grep -qE 'Non-2xx|Socket errors' "$out"; then
        log "wrk saw errors against $1:"
        cat "$out" >&2
        exit 1
    fi
    rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    n=$(awk '/requests in/ {print $1}' "$out")
    awk -v n="$n" -v rps="$rps" '{printf "%s %.3f\n", rps, ($1 + $2) * 1e6 / n}' "$t"
}

# run_harness URL C: prints "requests_per_s cpu_us_per_request errors"
run_harness() {
    local j
    j=$("$BENCH" --url "$1" --connections "$2" --duration "$DURATION")
    printf '%.0f %.3f %s\n' "$(field "$j" requests_per_s)" "$(field "$j" cpu_us_per_request)" "$(field "$j" errors)"
}

# compare NAME URL: wrk and the harness alternately, ROUNDS times per connection count.
compare() {
    local name=$1 url=$2 c i
    for c in "${CONNECTIONS[@]}"; do
        : >"$WORK/w" && : >"$WORK/h"
        for ((i = 1; i <= ROUNDS; i++)); do
            run_wrk "$url" "$c" >>"$WORK/w"
            run_harness "$url" "$c" >>"$WORK/h"
            log "  $name c=$c round $i: wrk $(tail -1 "$WORK/w") | harness $(tail -1 "$WORK/h")"
        done
        local w_rps w_cpu h_rps h_cpu h_err thr cpu
        w_rps=$(cut -d' ' -f1 "$WORK/w" | median)
        w_cpu=$(cut -d' ' -f2 "$WORK/w" | median)
        h_rps=$(cut -d' ' -f1 "$WORK/h" | median)
        h_cpu=$(cut -d' ' -f2 "$WORK/h" | median)
        h_err=$(cut -d' ' -f3 "$WORK/h" | sort -g | tail -1)
        thr=$(calc "$h_rps / $w_rps")
        cpu=$(calc "$h_cpu / $w_cpu")
        log "$name c=$c medians: wrk $w_rps req/s, $w_cpu us/req; harness $h_rps req/s, $h_cpu us/req, errors $h_err"
        verdict "$name c=$c throughput harness/wrk" "$thr ($h_rps/$w_rps)" ">= 0.9, 0 errors" \
            "$(awk -v r="$thr" -v e="$h_err" 'BEGIN {print (r >= 0.9 && e == 0)}')"
        verdict "$name c=$c CPU per request harness/wrk" "$cpu ($h_cpu/$w_cpu us)" "<= 1.5" \
            "$(awk -v r="$cpu" 'BEGIN {print (r <= 1.5)}')"
    done
}

# --- nginx -----------------------------------------------------------------------------------
NGINX_PORT=$(free_port)
mkdir -p "$WORK/html" "$WORK/logs" "$WORK/tmp"
printf 'hello world\n' >"$WORK/html/index.txt"
# nginx workers run as an unprivileged user when started as root: the file must be readable.
chmod 755 "$WORK" "$WORK/html"
chmod 644 "$WORK/html/index.txt"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 20000;
pid $NGINX_PID_FILE;
error_log $WORK/logs/error.log warn;
daemon on;
events { worker_connections 12000; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=8192;
        root $WORK/html;
        default_type text/plain;
    }
}
EOF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/logs/error.log"
NGINX_URL="http://127.0.0.1:$NGINX_PORT/index.txt"
for _ in $(seq 50); do
    (echo >"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && break
    sleep 0.1
done
log "nginx on 127.0.0.1:$NGINX_PORT"

log "== throughput and CPU per request: nginx (${ROUNDS} rounds of ${DURATION} s, alternating)"
compare nginx "$NGINX_URL"

# --- reference server ------------------------------------------------------------------------
SERVER_BIN=target/release/reference-server
if [[ -x "$SERVER_BIN" ]]; then
    mkfifo "$WORK/server.stdin"
    exec 9<>"$WORK/server.stdin" # held open: the server may exit when its stdin closes
    "$SERVER_BIN" --port 0 --profile instant <"$WORK/server.stdin" >"$WORK/server.out" 2>&1 &
    SERVER_PID=$!
    SERVER_ADDR=""
    for _ in $(seq 100); do
        SERVER_ADDR=$(grep -oE '127\.0\.0\.1:[0-9]+' "$WORK/server.out" | head -1 || true)
        [[ -n "$SERVER_ADDR" ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -n "$SERVER_ADDR" ]]; then
        log "== throughput and CPU per request: reference server on $SERVER_ADDR (/health/live)"
        compare reference-server "http://$SERVER_ADDR/health/live"
    else
        log "reference server: no 'listening on 127.0.0.1:PORT' line within 10 s; skipped"
    fi
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
else
    log "reference server: binary not built on this branch; skipped"
fi

# --- memory per open connection --------------------------------------------------------------
log "== memory: $IDLE_CONNECTIONS keep-alive connections, one request a second each (10 s)"
j=$("$BENCH" --url "$NGINX_URL" --idle --connections "$IDLE_CONNECTIONS" --duration 10)
per_conn=$(field "$j" rss_delta_per_connection_kib)
log "  $j"
verdict "harness RSS per open connection (KiB)" "$per_conn (fds $(field "$j" peak_open_fds))" "<= 32" \
    "$(awk -v v="$per_conn" -v e="$(field "$j" errors)" 'BEGIN {print (v <= 32 && e == 0)}')"

# --- flat memory over a sustained run --------------------------------------------------------
log "== memory: sustained closed loop, 50 connections, $SUSTAINED s"
j=$("$BENCH" --url "$NGINX_URL" --connections 50 --duration "$SUSTAINED" --rss-samples)
growth=$(field "$j" rss_growth_pct)
log "  warm $(field "$j" rss_warm_kib) KiB, end $(field "$j" rss_end_kib) KiB, slope $(field "$j" rss_slope_kib_per_min) KiB/min, $(field "$j" recorded) requests"
verdict "harness RSS growth over ${SUSTAINED} s (%)" "$(calc "$growth")" "< 5" \
    "$(awk -v g="$growth" 'BEGIN {print (g < 5)}')"

# --- open-loop pacing ------------------------------------------------------------------------
log "== pacing: 1,000 req/s for 10 s, 50 connections"
j=$("$BENCH" --url "$NGINX_URL" --rate 1000 --connections 50 --duration 10)
lag=$(field "$j" start_lag_p99_ms)
log "  start lag p99 $lag ms, timer lag p99 $(field "$j" timer_lag_p99_ms) ms, corrected p99 $(field "$j" corrected_p99_ms) ms, uncorrected p99 $(field "$j" latency_p99_ms) ms, saturated $(field "$j" saturated)"
verdict "start lag p99 at 1,000 req/s (ms)" "$(calc "$lag") (saturated $(field "$j" saturated))" "<= 2" \
    "$(awk -v v="$lag" 'BEGIN {print (v <= 2)}')"

# --- coordinated omission --------------------------------------------------------------------
log "== coordinated omission: target stalls 1 s during a 10 s run at 1,000 req/s, 50 connections"
j=$("$BENCH" --stall --duration 10)
corr=$(field "$j" corrected_p99_ms)
unc=$(field "$j" latency_p99_ms)
log "  corrected p99 $corr ms, uncorrected p99 $unc ms, late slots $(field "$j" late_slots), saturated $(field "$j" saturated)"
verdict "stall: corrected p99 shows it (ms)" "$(calc "$corr")" ">= 500" \
    "$(awk -v v="$corr" 'BEGIN {print (v >= 500)}')"
verdict "stall: uncorrected p99 hides it (ms)" "$(calc "$unc")" "< 100" \
    "$(awk -v v="$unc" 'BEGIN {print (v < 100)}')"
verdict "stall: run flagged saturated (cap reached)" "$(field "$j" saturated)" "true" \
    "$([[ $(field "$j" saturated) == true ]] && echo 1 || echo 0)"

# --- summary ---------------------------------------------------------------------------------
printf '\n%-44s %-28s %-22s %s\n' "figure" "measured" "goal" "verdict"
printf '%s\n' "${RESULTS[@]}"
printf '(throughput and CPU: medians of %s alternating rounds of %s s; wrk -t2, harness on %s single-threaded runtimes, one per core)\n' \
    "$ROUNDS" "$DURATION" "$(nproc)"
exit "$FAILED"
