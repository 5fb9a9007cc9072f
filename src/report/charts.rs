//! SVG charts of a sustained run's [`Series`], drawn with plotters' SVG backend.
//!
//! # Charts
//!
//! - **latency** ([`latency`]): p50, p95 and p99 of the successes of each window.
//! - **throughput** ([`throughput`]): requests per second of each window (left axis) and the
//!   share of rejected and of failed requests in it (right axis, %).
//! - **serving** ([`serving`]): TTFT p50/p95 (left axis) and ITL p50/p95 (right axis) of
//!   each window with streamed successes, in ms.
//! - **server** ([`server`]): the server's KV-cache usage (left axis, %) and requests running
//!   and waiting (right axis) per `/metrics` sample.
//! - **memory** ([`memory`]): server resident memory per sample and, dashed, the line fitted
//!   after warm-up ([`MemoryTrend::trend`]: `rss_bytes = intercept + slope·at_s`), drawn from
//!   the warm-up offset to the last sample.
//!
//! A window is drawn at its middle (`start + width/2`). Windows without successes have no
//! latency and are left out of the latency chart. The time axis is in seconds, or in minutes
//! when the run spans more than ten minutes. Each series is one `<polyline>` with a `<text>`
//! legend label naming it ([`LATENCY_SERIES`], [`THROUGHPUT_SERIES`], [`MEMORY_SERIES`]).
//!
//! The SVG backend writes text as `<text>` elements: no font is loaded, the viewer renders it.
//!
//! [`MemoryTrend::trend`]: crate::metrics::MemoryTrend::trend

use std::path::PathBuf;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{Report, Series};
use crate::Error;

pub use super::serving_charts::{server, serving};

/// Legend labels of the latency chart.
pub const LATENCY_SERIES: [&str; 3] = ["p50", "p95", "p99"];
/// Legend labels of the throughput chart.
pub const THROUGHPUT_SERIES: [&str; 3] = ["throughput (req/s)", "rejected (%)", "errors (%)"];
/// Legend labels of the memory chart.
pub const MEMORY_SERIES: [&str; 2] = ["server RSS", "fitted trend"];
/// Legend labels of the serving chart.
pub const SERVING_SERIES: [&str; 4] = ["TTFT p50", "TTFT p95", "ITL p50", "ITL p95"];
/// Legend labels of the server chart.
pub const SERVER_SERIES: [&str; 3] = ["KV-cache usage (%)", "running", "waiting"];

const SIZE: (u32, u32) = (960, 480);
const MIB: f64 = 1024.0 * 1024.0;
const ORANGE: RGBColor = RGBColor(230, 120, 0);
const GREEN_DARK: RGBColor = RGBColor(0, 140, 60);

/// One chart: its kind (the file name suffix) and its SVG document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// `latency`, `throughput`, `serving`, `server` or `memory`.
    pub kind: &'static str,
    /// The SVG document.
    pub svg: String,
}

impl Chart {
    /// The chart's file name for a report whose [`file_stem`](Report::file_stem) is `stem`:
    /// `STEM-KIND.svg`.
    pub fn file_name(&self, stem: &str) -> String {
        format!("{stem}-{}.svg", self.kind)
    }
}

impl Report {
    /// The charts of this report's [`Series`]; empty when it has none. A chart whose data is
    /// missing (no window with successes, fewer than two memory samples) is left out.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when plotters fails to draw (the path is the chart's file name).
    pub fn charts(&self) -> crate::Result<Vec<Chart>> {
        let stem = self.file_stem();
        let drawn = match &self.series {
            Some(series) => vec![
                latency(series),
                throughput(series),
                serving(series),
                server(self.server.as_ref(), Some(series)),
                memory(series),
            ],
            None => vec![server(self.server.as_ref(), None)],
        };
        drawn
            .into_iter()
            .filter_map(|c| c.transpose())
            .map(|c| {
                c.map_err(|(kind, reason)| Error::Io {
                    path: PathBuf::from(format!("{stem}-{kind}.svg")),
                    source: std::io::Error::other(reason),
                })
            })
            .collect()
    }
}

/// The kinds of chart drawn for a report, in order: `latency` when a window has successes,
/// `throughput` when there is a window, `serving` when a window has a TTFT, `server` with two
/// `/metrics` samples or more, `memory` with two memory samples or more.
pub fn kinds(report: &Report) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    let server = report.server.as_ref().is_some_and(|s| s.samples.len() >= 2);
    let Some(series) = &report.series else {
        if server {
            kinds.push("server");
        }
        return kinds;
    };
    if series.windows.iter().any(|w| w.latency.count > 0) {
        kinds.push("latency");
    }
    if !series.windows.is_empty() {
        kinds.push("throughput");
    }
    if series.windows.iter().any(|w| w.ttft.is_some()) {
        kinds.push("serving");
    }
    if server {
        kinds.push("server");
    }
    if series.memory_samples.len() >= 2 {
        kinds.push("memory");
    }
    kinds
}

/// A chart's title, by kind.
pub fn title(kind: &str) -> &'static str {
    match kind {
        "latency" => "Latency per window",
        "throughput" => "Throughput and failures per window",
        "serving" => "Time to first token and inter-token latency per window",
        "server" => "Server KV-cache usage and queue",
        _ => "Server memory",
    }
}

/// The outcome of drawing one chart: the failure carries the chart's kind.
pub type Drawn = Result<Option<Chart>, (&'static str, String)>;

/// The latency percentiles of each window with successes, in milliseconds.
pub fn latency(series: &Series) -> Drawn {
    let axis = TimeAxis::of(series);
    let points: Vec<(f64, [f64; 3])> = series
        .windows
        .iter()
        .filter(|w| w.latency.count > 0)
        .map(|w| {
            let l = &w.latency;
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            (axis.mid(w), [ms(l.p50), ms(l.p95), ms(l.p99)])
        })
        .collect();
    if points.is_empty() {
        return Ok(None);
    }
    let top = upper(points.iter().flat_map(|(_, v)| v.iter().copied()), 1.25);
    draw("latency", |root| {
        let mut chart = frame(root, "Latency of successes per window", &axis, 0.0..top, 0)?;
        chart
            .configure_mesh()
            .x_desc(axis.desc())
            .y_desc("latency (ms)")
            .draw()
            .map_err(text)?;
        for (i, color) in [BLUE, ORANGE, RED].into_iter().enumerate() {
            let line = points.iter().map(|(x, v)| (*x, v[i]));
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)).point_size(2))
                .map_err(text)?
                .label(LATENCY_SERIES[i])
                .legend(move |(x, y)| legend_line(x, y, color));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// Requests per second per window, and the rejected and failed shares of its requests.
pub fn throughput(series: &Series) -> Drawn {
    if series.windows.is_empty() {
        return Ok(None);
    }
    let axis = TimeAxis::of(series);
    let share = |n: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    let top = upper(series.windows.iter().map(|w| w.throughput_rps), 1.6);
    let pct_top = upper(
        series
            .windows
            .iter()
            .flat_map(|w| [share(w.rejected, w.requests), share(w.errors, w.requests)])
            .chain([1.0]),
        1.6,
    );
    draw("throughput", |root| {
        let mut chart = frame(
            root,
            "Throughput and failures per window",
            &axis,
            0.0..top,
            60,
        )?
        .set_secondary_coord(axis.range(), 0.0..pct_top);
        chart
            .configure_mesh()
            .x_desc(axis.desc())
            .y_desc("requests per second")
            .draw()
            .map_err(text)?;
        chart
            .configure_secondary_axes()
            .y_desc("share of the window's requests (%)")
            .draw()
            .map_err(text)?;
        let rps = series
            .windows
            .iter()
            .map(|w| (axis.mid(w), w.throughput_rps));
        chart
            .draw_series(LineSeries::new(rps, BLUE.stroke_width(2)).point_size(2))
            .map_err(text)?
            .label(THROUGHPUT_SERIES[0])
            .legend(|(x, y)| legend_line(x, y, BLUE));
        let rejected = series
            .windows
            .iter()
            .map(|w| (axis.mid(w), share(w.rejected, w.requests)));
        chart
            .draw_secondary_series(LineSeries::new(rejected, ORANGE.stroke_width(2)))
            .map_err(text)?
            .label(THROUGHPUT_SERIES[1])
            .legend(|(x, y)| legend_line(x, y, ORANGE));
        let errors = series
            .windows
            .iter()
            .map(|w| (axis.mid(w), share(w.errors, w.requests)));
        chart
            .draw_secondary_series(LineSeries::new(errors, RED.stroke_width(2)))
            .map_err(text)?
            .label(THROUGHPUT_SERIES[2])
            .legend(|(x, y)| legend_line(x, y, RED));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(text)
    })
}

/// Server resident memory per sample, with the trend fitted after warm-up.
pub fn memory(series: &Series) -> Drawn {
    let samples = &series.memory_samples;
    if samples.len() < 2 {
        return Ok(None);
    }
    let axis = TimeAxis::of(series);
    let points: Vec<(f64, f64)> = samples
        .iter()
        // RSS values stay far below 2^53 bytes, where u64 → f64 is exact.
        .map(|s| (axis.x(s.at.as_secs_f64()), s.rss_bytes as f64 / MIB))
        .collect();
    let fit: Option<(Vec<(f64, f64)>, String)> = series.memory.map(|m| {
        let line = |t: f64| (axis.x(t), (m.trend.intercept + m.trend.slope * t) / MIB);
        let last = samples.iter().map(|s| s.at).max().unwrap_or_default();
        let caption = format!(
            "{} ({:+.1} MiB/h, 95% CI {:+.1}…{:+.1})",
            MEMORY_SERIES[1],
            m.slope_bytes_per_hour / MIB,
            m.slope_ci_bytes_per_hour.lower / MIB,
            m.slope_ci_bytes_per_hour.upper / MIB
        );
        let ends = vec![line(m.warmup.as_secs_f64()), line(last.as_secs_f64())];
        (ends, caption)
    });
    let ys = points.iter().chain(fit.iter().flat_map(|f| f.0.iter()));
    let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), &(_, y)| {
        (lo.min(y), hi.max(y))
    });
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.01).max(0.5);
    draw("memory", |root| {
        let range = (lo - pad).max(0.0)..hi + pad;
        let mut chart = frame(root, "Server resident memory", &axis, range, 0)?;
        chart
            .configure_mesh()
            .x_desc(axis.desc())
            .y_desc("resident memory (MiB)")
            .draw()
            .map_err(text)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                BLUE.stroke_width(2),
            ))
            .map_err(text)?
            .label(MEMORY_SERIES[0])
            .legend(|(x, y)| legend_line(x, y, BLUE));
        if let Some((ends, caption)) = &fit {
            let style = GREEN_DARK.stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(ends.iter().copied(), 8, 5, style))
                .map_err(text)?
                .label(caption.as_str())
                .legend(|(x, y)| legend_line(x, y, GREEN_DARK));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

pub(super) type Root<'b> = DrawingArea<SVGBackend<'b>, Shift>;
/// A chart on an area borrowed for `'a` of an SVG backend writing into a string borrowed for `'b`.
pub(super) type Cartesian<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws one chart into a string.
pub(super) fn draw(
    kind: &'static str,
    plot: impl FnOnce(&Root<'_>) -> Result<(), String>,
) -> Drawn {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(text)
            .and_then(|()| plot(&root))
            .and_then(|()| root.present().map_err(text));
        drawn.map_err(|e| (kind, e))?;
    }
    Ok(Some(Chart { kind, svg }))
}

/// A captioned chart over the time axis and `y`, with room for a right axis when
/// `right_label_area` is positive.
pub(super) fn frame<'a, 'b>(
    root: &'a Root<'b>,
    caption: &str,
    axis: &TimeAxis,
    y: std::ops::Range<f64>,
    right_label_area: u32,
) -> Result<Cartesian<'a, 'b>, String> {
    ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .right_y_label_area_size(right_label_area)
        .build_cartesian_2d(axis.range(), y)
        .map_err(text)
}

pub(super) fn legend<'a, 'b: 'a>(
    chart: &mut Cartesian<'a, 'b>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(text)
}

pub(super) fn legend_line(x: i32, y: i32, color: RGBColor) -> PathElement<(i32, i32)> {
    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// The top of a y axis holding `values`, `headroom` times their maximum (which is taken as at
/// least 1, so that an all-zero series still draws); the headroom keeps the legend clear.
pub(super) fn upper(values: impl Iterator<Item = f64>, headroom: f64) -> f64 {
    values
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * headroom
}

pub(super) fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The time axis: seconds, or minutes for runs longer than ten minutes.
#[derive(Debug, Clone, Copy)]
pub(super) struct TimeAxis {
    /// Seconds per unit.
    per_unit: f64,
    /// The run's end in seconds.
    end_s: f64,
}

impl TimeAxis {
    pub(super) fn of(series: &Series) -> Self {
        let windows = series
            .windows
            .iter()
            .map(|w| (w.start + w.width).as_secs_f64());
        let samples = series.memory_samples.iter().map(|s| s.at.as_secs_f64());
        Self::ending(windows.chain(samples).fold(0.0_f64, f64::max))
    }

    /// An axis from 0 to `end_s` seconds (at least 1).
    pub(super) fn ending(end_s: f64) -> Self {
        let end_s = end_s.max(1.0);
        let per_unit = if end_s > 600.0 { 60.0 } else { 1.0 };
        Self { per_unit, end_s }
    }

    pub(super) fn x(self, seconds: f64) -> f64 {
        seconds / self.per_unit
    }

    pub(super) fn mid(self, w: &crate::metrics::Window) -> f64 {
        self.x((w.start + w.width / 2).as_secs_f64())
    }

    pub(super) fn range(self) -> std::ops::Range<f64> {
        0.0..self.x(self.end_s)
    }

    pub(super) fn desc(self) -> &'static str {
        if self.per_unit > 1.0 {
            "time since start (min)"
        } else {
            "time since start (s)"
        }
    }
}
