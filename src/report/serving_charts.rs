//! The serving chart (TTFT and ITL per window) and the server chart (KV-cache usage and queue
//! per `/metrics` sample); see [`charts`](super::charts).

use plotters::prelude::*;

use super::Series;
use super::charts::{
    Drawn, SERVER_SERIES, SERVING_SERIES, TimeAxis, draw, frame, legend_line, text, upper,
};
use crate::ServerMetrics;

const ORANGE: RGBColor = RGBColor(230, 120, 0);
const PURPLE: RGBColor = RGBColor(120, 60, 170);

/// TTFT p50/p95 (left axis) and ITL p50/p95 (right axis) of each window with streamed
/// successes, in milliseconds; `None` when no window has a TTFT.
pub fn serving(series: &Series) -> Drawn {
    let axis = TimeAxis::of(series);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let ttft: Vec<(f64, f64, f64)> = series
        .windows
        .iter()
        .filter_map(|w| w.ttft.map(|t| (axis.mid(w), ms(t.p50), ms(t.p95))))
        .collect();
    if ttft.is_empty() {
        return Ok(None);
    }
    let itl: Vec<(f64, f64, f64)> = series
        .windows
        .iter()
        .filter_map(|w| w.itl.map(|t| (axis.mid(w), ms(t.p50), ms(t.p95))))
        .collect();
    let top = upper(ttft.iter().map(|p| p.2), 1.4);
    let itl_top = upper(itl.iter().map(|p| p.2), 1.4);
    draw("serving", |root| {
        let mut chart = frame(
            root,
            "Time to first token and inter-token latency per window",
            &axis,
            0.0..top,
            60,
        )?
        .set_secondary_coord(axis.range(), 0.0..itl_top);
        chart
            .configure_mesh()
            .x_desc(axis.desc())
            .y_desc("TTFT (ms)")
            .draw()
            .map_err(text)?;
        chart
            .configure_secondary_axes()
            .y_desc("ITL: gap between deltas (ms)")
            .draw()
            .map_err(text)?;
        for (i, color) in [(0, BLUE), (1, RED)] {
            let line = ttft.iter().map(|p| (p.0, if i == 0 { p.1 } else { p.2 }));
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)).point_size(2))
                .map_err(text)?
                .label(SERVING_SERIES[i])
                .legend(move |(x, y)| legend_line(x, y, color));
        }
        for (i, color) in [(2, ORANGE), (3, PURPLE)] {
            let line = itl.iter().map(|p| (p.0, if i == 2 { p.1 } else { p.2 }));
            chart
                .draw_secondary_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(text)?
                .label(SERVING_SERIES[i])
                .legend(move |(x, y)| legend_line(x, y, color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(text)
    })
}

/// The server's KV-cache usage (left axis, %) and requests running and waiting (right axis) per
/// `/metrics` sample, on the run's time axis; `None` with fewer than two samples.
pub fn server(server: Option<&ServerMetrics>, series: Option<&Series>) -> Drawn {
    let Some(server) = server.filter(|s| s.samples.len() >= 2) else {
        return Ok(None);
    };
    let last = server
        .samples
        .iter()
        .map(|s| s.at.as_secs_f64())
        .fold(0.0_f64, f64::max);
    let axis = series.map_or_else(
        || TimeAxis::ending(last),
        |s| TimeAxis::ending(TimeAxis::of(s).range().end.max(last)),
    );
    let t = |s: &crate::ServerSample| axis.x(s.at.as_secs_f64());
    let kv: Vec<(f64, f64)> = server
        .samples
        .iter()
        .filter_map(|s| s.kv_cache_usage.map(|v| (t(s), v * 100.0)))
        .collect();
    let running: Vec<(f64, f64)> = server
        .samples
        .iter()
        .filter_map(|s| s.requests_running.map(|v| (t(s), v)))
        .collect();
    let waiting: Vec<(f64, f64)> = server
        .samples
        .iter()
        .filter_map(|s| s.requests_waiting.map(|v| (t(s), v)))
        .collect();
    let queue_top = upper(running.iter().chain(&waiting).map(|p| p.1), 1.4);
    draw("server", |root| {
        let mut chart = frame(
            root,
            "Server: KV-cache usage and requests (from /metrics)",
            &axis,
            0.0..110.0,
            60,
        )?
        .set_secondary_coord(axis.range(), 0.0..queue_top);
        chart
            .configure_mesh()
            .x_desc(axis.desc())
            .y_desc("KV-cache usage (%)")
            .draw()
            .map_err(text)?;
        chart
            .configure_secondary_axes()
            .y_desc("requests")
            .draw()
            .map_err(text)?;
        chart
            .draw_series(LineSeries::new(kv.iter().copied(), BLUE.stroke_width(2)))
            .map_err(text)?
            .label(SERVER_SERIES[0])
            .legend(|(x, y)| legend_line(x, y, BLUE));
        for (i, points, color) in [(1, &running, ORANGE), (2, &waiting, RED)] {
            chart
                .draw_secondary_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(text)?
                .label(SERVER_SERIES[i])
                .legend(move |(x, y)| legend_line(x, y, color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(text)
    })
}
