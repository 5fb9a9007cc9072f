//! [`Report::markdown`]: a summary a person reads at a glance.

use std::fmt::Write as _;
use std::time::Duration;

use super::Report;
use super::baseline::{Comparison, Delta};
use crate::metrics::{LatencySummary, LoadMetrics, ServingMetrics};

impl Report {
    /// The report as Markdown: verdict table (threshold, measured value, message), request
    /// counts, latency table, throughput, cache, generator, baseline comparison, memory and
    /// degradation figures, configuration, other figures and, when the report has a
    /// [`Series`](super::Series), links to its charts (`STEM-KIND.svg`, written beside it by
    /// [`write_all`](Self::write_all)).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# {} — {}\n", cell(&self.name), self.status());
        let _ = writeln!(s, "Target: `{}`\n", self.target);
        self.md_verdicts(&mut s);
        if let Some(m) = &self.metrics {
            md_load(&mut s, m);
        }
        if let Some(g) = &self.generator {
            let _ = writeln!(s, "## Generator\n");
            let _ = writeln!(
                s,
                "{} steps, {} late; timer lag p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {}\n",
                g.slots,
                g.late_slots,
                g.timer_lag_p50_ms,
                g.timer_lag_p99_ms,
                g.timer_lag_max_ms,
                if g.saturated {
                    "**generator saturated**: the figures describe the generator as much as the server"
                } else {
                    "kept up with its schedule"
                }
            );
        }
        let _ = writeln!(s, "{}\n", self.trust().line());
        if let Some(cleanup) = &self.cleanup {
            let _ = writeln!(s, "{}\n", cell(&cleanup.to_string()));
        }
        if let Some(c) = &self.baseline {
            md_baseline(&mut s, c);
        }
        self.md_series(&mut s);
        self.md_server(&mut s);
        self.md_charts(&mut s);
        md_map(&mut s, "Configuration", &self.config);
        md_map(&mut s, "Figures", &self.figures);
        s
    }

    fn md_verdicts(&self, s: &mut String) {
        let _ = writeln!(s, "## Verdicts\n");
        if self.verdicts.is_empty() {
            let _ = writeln!(s, "No checks ran.\n");
            return;
        }
        let _ = writeln!(s, "| | check | threshold | measured | message |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for v in &self.verdicts {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} |",
                match v.status {
                    crate::checks::Status::Pass => "PASS".to_owned(),
                    other => format!("**{other}**"),
                },
                v.label(),
                cell(&v.threshold),
                cell(&v.measured),
                cell(&v.message)
            );
        }
        s.push('\n');
    }

    fn md_series(&self, s: &mut String) {
        let Some(series) = &self.series else {
            return;
        };
        let _ = writeln!(s, "## Over time\n");
        let _ = writeln!(
            s,
            "{} windows, {} server memory samples.\n",
            series.windows.len(),
            series.memory_samples.len()
        );
        if let Some(m) = &series.memory {
            let _ = writeln!(
                s,
                "- Server memory after {:.0} s warm-up: {:.1} → {:.1} MiB ({:+.1}%), slope {:+.2} MiB/h (95% CI {:+.2} … {:+.2}), {} samples over {:.0} s",
                m.warmup.as_secs_f64(),
                m.first_bytes as f64 / MIB,
                m.last_bytes as f64 / MIB,
                m.relative_growth * 100.0,
                m.slope_bytes_per_hour / MIB,
                m.slope_ci_bytes_per_hour.lower / MIB,
                m.slope_ci_bytes_per_hour.upper / MIB,
                m.n_samples,
                m.span.as_secs_f64()
            );
        }
        if let Some(d) = &series.degradation {
            let ratio = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{r:.2}×"));
            let _ = writeln!(
                s,
                "- Early vs late ({} windows each): p50 {} → {} ({}), p95 {} → {} ({})",
                d.windows_per_side,
                ms(d.early_p50),
                ms(d.late_p50),
                ratio(d.p50_ratio),
                ms(d.early_p95),
                ms(d.late_p95),
                ratio(d.p95_ratio)
            );
        }
        let _ = writeln!(s);
    }

    fn md_server(&self, s: &mut String) {
        let Some(server) = &self.server else {
            return;
        };
        let _ = writeln!(s, "## Server metrics (`/metrics`)\n");
        let m = &server.summary;
        let num = |x: Option<f64>, scale: f64| {
            x.map_or("not exposed".to_owned(), |x| format!("{:.1}", x * scale))
        };
        let _ = writeln!(
            s,
            "{} samples every {:.1} s. KV-cache usage peak {} %; requests running peak {}, waiting peak {}, waiting at the end {}; prefix-cache hit rate {} % of {} queried tokens; preemptions {}.\n",
            m.samples,
            server.interval.as_secs_f64(),
            num(m.kv_cache_usage_max, 100.0),
            num(m.requests_running_max, 1.0),
            num(m.requests_waiting_max, 1.0),
            num(m.requests_waiting_last, 1.0),
            num(m.prefix_cache_hit_rate, 100.0),
            num(m.prefix_cache_queries, 1.0),
            num(m.preemptions, 1.0)
        );
        if let Some(e) = &server.error {
            let _ = writeln!(s, "Note: {}\n", cell(e));
        }
    }

    fn md_charts(&self, s: &mut String) {
        let stem = self.file_stem();
        for kind in super::charts::kinds(self) {
            let _ = writeln!(s, "![{}]({stem}-{kind}.svg)\n", super::charts::title(kind));
        }
    }
}

fn md_load(s: &mut String, m: &LoadMetrics) {
    let _ = writeln!(s, "## Requests\n");
    let _ = writeln!(
        s,
        "| total | ok | rejected | errors | error rate | rejection rate |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {:.2}% | {:.2}% |\n",
        m.total,
        m.successful,
        m.rejected,
        m.errors,
        m.error_rate * 100.0,
        m.rejection_rate * 100.0
    );
    let c = &m.counts;
    let _ = writeln!(
        s,
        "Classes: success {}, rejected {}, client error {}, server error {}, timeout {}, connect {}, protocol {}. Statuses: {}. Retry-After missing: {}.\n",
        c.success,
        c.rejected,
        c.client_error,
        c.server_error,
        c.timeout,
        c.connect,
        c.protocol,
        m.status_codes
            .iter()
            .map(|(k, v)| format!("{k} × {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        m.retry_after_missing
    );
    let _ = writeln!(s, "## Latency (ms)\n");
    let _ = writeln!(s, "| | n | p50 | p90 | p95 | p99 | p99.9 | max |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, l) in [
        ("successes", &m.success_latency),
        ("failures", &m.failure_latency),
        ("all, from intended start", &m.corrected_latency),
        ("all, from actual start", &m.uncorrected_latency),
        ("scheduler lag", &m.scheduler_lag),
    ] {
        if l.count > 0 {
            latency_row(s, name, l);
        }
    }
    md_serving(s, &m.serving);
    let _ = writeln!(s, "\n## Throughput\n");
    let _ = writeln!(
        s,
        "{:.1} requests/s ({:.1} succeeded/s) and {:.0} output tokens/s ({} tokens) over {:.2} s.\n",
        m.throughput_rps,
        m.success_rps,
        m.output_tokens_per_s,
        m.output_tokens,
        m.duration.as_secs_f64()
    );
    let cache = &m.cache;
    if cache.eligible > 0 || cache.prompt_tokens > 0 {
        let rate = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{:.1}%", r * 100.0));
        let _ = writeln!(s, "## Cache\n");
        let _ = writeln!(
            s,
            "Request hit rate {} ({} of {} follow-ups); token hit rate {} ({} cached of {} prompt tokens, {} written).\n",
            rate(cache.request_hit_rate),
            cache.hits,
            cache.eligible,
            rate(cache.token_hit_rate),
            cache.cache_read_tokens,
            cache.prompt_tokens,
            cache.cache_creation_tokens
        );
    }
}

/// TTFT, ITL, TPOT, end-to-end latency, per-request rate, stalls and goodput.
fn md_serving(s: &mut String, m: &ServingMetrics) {
    let _ = writeln!(s, "\n## Serving (ms)\n");
    if m.streamed == 0 {
        let _ = writeln!(
            s,
            "No reply streamed: time to first token, inter-token latency and time per output token were not measured.\n"
        );
    } else {
        let _ = writeln!(s, "| | n | p50 | p90 | p95 | p99 | p99.9 | max |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for (name, l) in [
            ("TTFT (from intended start)", &m.ttft),
            ("ITL (gaps between deltas)", &m.itl),
            ("TPOT (per request)", &m.tpot),
            ("end-to-end (successes)", &m.e2e_latency),
        ] {
            if let Some(l) = l {
                latency_row(s, name, l);
            }
        }
        let _ = writeln!(s);
        if let Some(r) = &m.output_tokens_per_s_per_request {
            let _ = writeln!(
                s,
                "Output tokens/s per request: mean {:.1}, p50 {:.1}, 90% of requests above {:.1}, 99% above {:.1}, slowest {:.1}.\n",
                r.mean, r.p50, r.p10, r.p1, r.min
            );
        }
        let _ = writeln!(
            s,
            "{} streamed replies; {} stalls (gaps over {}) in {} of them.\n",
            m.streamed,
            m.stalls,
            ms(m.stall_gap),
            m.requests_with_stalls
        );
    }
    let g = &m.goodput;
    let _ = writeln!(s, "### Goodput\n");
    if g.per_slo.is_empty() {
        let _ = writeln!(s, "No SLO set: goodput is not defined.\n");
        return;
    }
    let _ = writeln!(
        s,
        "{}\n",
        match g.goodput_rps {
            Some(rps) => format!(
                "**{rps:.2} requests/s** met every SLO ({} requests, {}).",
                g.met_all,
                share(g.met_share)
            ),
            None => format!(
                "Not measured: {} successes lack a figure an SLO needs (a reply that did not stream has no TTFT or TPOT).",
                g.unjudged
            ),
        }
    );
    let _ = writeln!(s, "| SLO | limit | met | measured | share of requests |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for o in &g.per_slo {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            o.slo,
            ms(o.limit),
            o.met,
            o.measured,
            share(o.share)
        );
    }
    s.push('\n');
}

fn share(x: Option<f64>) -> String {
    x.map_or("n/a".to_owned(), |x| format!("{:.1}%", x * 100.0))
}

fn latency_row(s: &mut String, name: &str, l: &LatencySummary) {
    let f = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let _ = writeln!(
        s,
        "| {name} | {} | {} | {} | {} | {} | {} | {} |",
        l.count,
        f(l.p50),
        f(l.p90),
        f(l.p95),
        f(l.p99),
        f(l.p999),
        f(l.max)
    );
}

fn md_baseline(s: &mut String, c: &Comparison) {
    let _ = writeln!(s, "## Against baseline `{}`\n", c.baseline_name);
    let _ = writeln!(s, "| figure | baseline | current | change | relative |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    let rows = [
        ("p95 (ms)", c.p95_ms, 1.0),
        ("p99 (ms)", c.p99_ms, 1.0),
        ("throughput (req/s)", c.throughput_rps, 1.0),
        ("error rate (%)", c.error_rate, 100.0),
        (
            "memory slope (MiB/h)",
            c.memory_slope_bytes_per_hour,
            1.0 / MIB,
        ),
    ];
    for (name, delta, scale) in rows {
        if let Some(d) = delta {
            delta_row(s, name, &d, scale);
        }
    }
    let _ = writeln!(
        s,
        "\n{}\n",
        if c.regressed() {
            format!("**Regressed**: {}.", c.regressions.join("; "))
        } else {
            "No regression.".to_owned()
        }
    );
}

fn delta_row(s: &mut String, name: &str, d: &Delta, scale: f64) {
    let _ = writeln!(
        s,
        "| {name} | {:.2} | {:.2} | {:+.2} | {} |",
        d.baseline * scale,
        d.current * scale,
        d.absolute * scale,
        d.relative
            .map_or("n/a".to_owned(), |r| format!("{:+.1}%", r * 100.0))
    );
}

fn md_map(s: &mut String, title: &str, map: &serde_json::Map<String, serde_json::Value>) {
    if map.is_empty() {
        return;
    }
    let _ = writeln!(s, "## {title}\n");
    let _ = writeln!(s, "| key | value |");
    let _ = writeln!(s, "|---|---|");
    for (k, v) in map {
        let value = match v {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let _ = writeln!(s, "| `{k}` | {} |", cell(&value));
    }
    s.push('\n');
}

const MIB: f64 = 1024.0 * 1024.0;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Text made safe for one Markdown table cell: pipes escaped, line breaks as `<br>`.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "<br>")
}
