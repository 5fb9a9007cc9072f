//! Live progress of a long run, for a person watching: [`ProgressPrinter`].
//!
//! The library prints nothing by itself. A caller that wants progress creates a printer and
//! passes it as the run's progress callback:
//!
//! ```no_run
//! # use std::time::Duration;
//! use semantic_stress::Sustained;
//! use semantic_stress::report::progress::ProgressPrinter;
//!
//! let options = Sustained::new(Duration::from_secs(3600))
//!     .progress(Duration::from_secs(1), ProgressPrinter::stderr("soak").into_callback());
//! ```
//!
//! On a terminal the printer redraws one line in place (`\r`); elsewhere (CI logs, files) it
//! writes a whole line at most once per [`log_every`](ProgressPrinter::log_every) (30 s by
//! default; the first update always), so that a log shows the run is alive without flooding.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::Progress;

/// Default interval between log lines when the output is not a terminal.
const DEFAULT_LOG_EVERY: Duration = Duration::from_secs(30);

/// Turns [`Progress`] updates into a progress line (on a terminal) or periodic log lines.
///
/// Each line reads
/// `[label]  120/3600 s (3%) | 1234 req (10.3/s) | errors 0.12% | rejected 1.50% | server rss 123.4 MiB`,
/// with rates over the requests sent so far.
pub struct ProgressPrinter {
    label: String,
    terminal: bool,
    log_every: Duration,
    state: Mutex<State>,
}

struct State {
    out: Box<dyn Write + Send>,
    /// `elapsed` of the last line logged (not on a terminal).
    last_logged: Option<Duration>,
    /// A terminal line is drawn and not yet ended by a newline.
    line_open: bool,
}

impl std::fmt::Debug for ProgressPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressPrinter")
            .field("label", &self.label)
            .field("terminal", &self.terminal)
            .field("log_every", &self.log_every)
            .finish_non_exhaustive()
    }
}

impl ProgressPrinter {
    /// A printer that **writes to the process's standard error**, redrawing one line when
    /// stderr is a terminal ([`IsTerminal`]) and logging a line every 30 s otherwise.
    ///
    /// It writes to the stderr handle directly, so test harnesses that capture `eprintln!`
    /// output do not hide it: a long test shows it is alive without `--nocapture`.
    pub fn stderr(label: impl Into<String>) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Self::with_writer(label, std::io::stderr(), terminal)
    }

    /// A printer writing to `out`; `terminal` chooses the redrawn line over log lines.
    pub fn with_writer(
        label: impl Into<String>,
        out: impl Write + Send + 'static,
        terminal: bool,
    ) -> Self {
        Self {
            label: label.into(),
            terminal,
            log_every: DEFAULT_LOG_EVERY,
            state: Mutex::new(State {
                out: Box::new(out),
                last_logged: None,
                line_open: false,
            }),
        }
    }

    /// Logs at most one line per `every` of run time when not on a terminal (default 30 s).
    #[must_use]
    pub fn log_every(mut self, every: Duration) -> Self {
        self.log_every = every;
        self
    }

    /// Shows one update: redraws the line on a terminal; elsewhere logs a line when
    /// [`log_every`](Self::log_every) has passed since the last one, or when the run is over.
    ///
    /// Write errors are ignored: progress output must never stop a run.
    pub fn update(&self, p: &Progress) {
        let line = self.line(p);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let done = p.elapsed >= p.total;
        if self.terminal {
            // `\r` back to the line's start, then ESC[2K erases the previous, longer text.
            let _ = write!(state.out, "\r\x1b[2K{line}");
            if done {
                let _ = writeln!(state.out);
            }
            state.line_open = !done;
        } else {
            let due = state
                .last_logged
                .is_none_or(|last| p.elapsed.saturating_sub(last) >= self.log_every);
            if !(due || done) {
                return;
            }
            state.last_logged = Some(p.elapsed);
            let _ = writeln!(state.out, "{line}");
        }
        let _ = state.out.flush();
    }

    /// Ends a redrawn terminal line with a newline, so that later output starts on its own
    /// line. Also done when the printer is dropped.
    pub fn finish(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.line_open {
            let _ = writeln!(state.out);
            let _ = state.out.flush();
            state.line_open = false;
        }
    }

    /// The printer as a progress callback for
    /// [`Sustained::progress`](crate::Sustained::progress).
    pub fn into_callback(self) -> impl Fn(&Progress) + Send + Sync + 'static {
        let printer = Arc::new(self);
        move |p| printer.update(p)
    }

    /// The text of one update.
    pub fn line(&self, p: &Progress) -> String {
        let secs = p.elapsed.as_secs_f64();
        let total = p.total.as_secs_f64();
        let pct = |n: u64| {
            if p.sent == 0 {
                0.0
            } else {
                // Counts stay far below 2^53: the conversion is exact.
                100.0 * n as f64 / p.sent as f64
            }
        };
        let mut s = format!("[{}] {secs:>6.0}/{total:.0} s", self.label);
        if total > 0.0 {
            let _ = write!(s, " ({:.0}%)", (100.0 * secs / total).min(100.0));
        }
        let rate = if secs > 0.0 {
            p.sent as f64 / secs
        } else {
            0.0
        };
        let _ = write!(
            s,
            " | {} req ({rate:.1}/s) | errors {:.2}% | rejected {:.2}% | p95 {} | server rss ",
            p.sent,
            pct(p.errors),
            pct(p.rejected),
            p.recent_p95.map_or("n/a".to_owned(), |d| format!(
                "{:.1} ms",
                d.as_secs_f64() * 1000.0
            ))
        );
        match p.server_rss_bytes {
            Some(b) => {
                let _ = write!(s, "{:.1} MiB", b as f64 / (1024.0 * 1024.0));
            }
            None => s.push_str("n/a"),
        }
        s
    }
}

impl Drop for ProgressPrinter {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn at(secs: u64) -> Progress {
        Progress {
            elapsed: Duration::from_secs(secs),
            total: Duration::from_secs(100),
            sent: 200,
            errors: 2,
            rejected: 10,
            server_rss_bytes: Some(64 * 1024 * 1024),
            recent_p95: Some(Duration::from_millis(42)),
        }
    }

    #[test]
    fn log_lines_are_throttled_and_the_last_is_kept() {
        let out = Shared::default();
        let p = ProgressPrinter::with_writer("soak", out.clone(), false)
            .log_every(Duration::from_secs(30));
        for t in [1, 10, 31, 40, 62, 100] {
            p.update(&at(t));
        }
        let text = out.text();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains("errors 1.00% | rejected 5.00% | p95 42.0 ms | server rss 64.0 MiB"));
        assert!(!text.contains('\r'));
    }

    #[test]
    fn terminal_redraws_one_line_and_ends_it() {
        let out = Shared::default();
        let p = ProgressPrinter::with_writer("soak", out.clone(), true);
        p.update(&at(1));
        p.update(&at(2));
        assert_eq!(out.text().matches('\r').count(), 2);
        assert!(!out.text().contains('\n'));
        drop(p);
        assert!(out.text().ends_with('\n'));
    }
}
