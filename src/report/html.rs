//! [`Report::html`]: one self-contained page per run for a browser — every verdict in a table,
//! the figures, and every chart as inline SVG (no file or network fetch).

use std::fmt::Write as _;

use super::Report;
use super::charts::{Chart, title};

/// The page's style: plain, readable, no external resource.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
tr.fail td{background:#fde8e8}tr.inconclusive td{background:#fff6d6}tr.pass td.status{color:#060}tr.fail td.status{color:#a00;font-weight:bold}\
pre{background:#f6f6f6;padding:1em;overflow-x:auto}figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}";

impl Report {
    /// The report as one self-contained HTML page: status, every verdict (check, threshold,
    /// measured value, message), the text summary, configuration and figures, and every chart
    /// of [`charts`](Self::charts) inline.
    ///
    /// # Errors
    ///
    /// As [`charts`](Self::charts), when a chart cannot be drawn.
    pub fn html(&self) -> crate::Result<String> {
        Ok(self.html_with(&self.charts()?))
    }

    /// The page with `charts` inline (drawn once by the caller).
    pub(crate) fn html_with(&self, charts: &[Chart]) -> String {
        let mut s = String::with_capacity(64 * 1024);
        let name = escape(&self.name);
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name} — {}</title><style>{STYLE}</style></head><body>\n",
            self.status()
        );
        let _ = writeln!(
            s,
            "<h1>{name} — <span id=\"status\">{}</span></h1>\n<p>Target: <code>{}</code></p>",
            self.status(),
            escape(&self.target)
        );
        let _ = writeln!(s, "<h2>Verdicts</h2>");
        if self.verdicts.is_empty() {
            let _ = writeln!(s, "<p id=\"no-verdicts\">No checks ran.</p>");
        } else {
            let _ = writeln!(
                s,
                "<table id=\"verdicts\"><thead><tr><th></th><th>check</th><th>threshold</th><th>measured</th><th>message</th></tr></thead><tbody>"
            );
            for v in &self.verdicts {
                let status = v.status.label();
                let class = match v.status {
                    crate::checks::Status::Pass => "pass",
                    crate::checks::Status::Fail => "fail",
                    crate::checks::Status::Inconclusive => "inconclusive",
                    crate::checks::Status::NotApplicable => "not-applicable",
                };
                let _ = writeln!(
                    s,
                    "<tr class=\"verdict {class}\" data-check=\"{}\"><td class=\"status\">{status}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&v.label()),
                    escape(&v.label()),
                    escape(&v.threshold),
                    escape(&v.measured),
                    escape(&v.message)
                );
            }
            let _ = writeln!(s, "</tbody></table>");
        }
        let _ = writeln!(
            s,
            "<h2>Summary</h2>\n<pre id=\"summary\">{}</pre>",
            escape(&self.text())
        );
        if !charts.is_empty() {
            let _ = writeln!(s, "<h2>Charts</h2>");
        }
        for chart in charts {
            let _ = writeln!(
                s,
                "<figure id=\"chart-{kind}\" class=\"chart\" data-kind=\"{kind}\">{}<figcaption>{}</figcaption></figure>",
                inline_svg(&chart.svg),
                escape(title(chart.kind)),
                kind = chart.kind,
            );
        }
        for (heading, map) in [("Configuration", &self.config), ("Figures", &self.figures)] {
            if map.is_empty() {
                continue;
            }
            let _ = writeln!(s, "<h2>{heading}</h2><table>");
            for (k, v) in map {
                let value = match v {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let _ = writeln!(
                    s,
                    "<tr><td><code>{}</code></td><td>{}</td></tr>",
                    escape(k),
                    escape(&value)
                );
            }
            let _ = writeln!(s, "</table>");
        }
        s.push_str("</body></html>\n");
        s
    }
}

/// An SVG document ready to sit inside HTML: without its XML declaration.
fn inline_svg(svg: &str) -> &str {
    let svg = svg.trim_start();
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or(svg, |(_, body)| body.trim_start()),
        None => svg,
    }
}

/// Text made safe for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
