//! Tests of [`WindowedSeries::degradation`] on synthetic runs.

use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::*;
use crate::metrics::{Outcome, RequestResult};

/// A run of `windows` one-minute windows with 300 successes each; latency in window `i` is
/// uniform in 20..40 ms times `factor(i)`.
fn run(windows: u64, factor: impl Fn(u64) -> f64) -> WindowedSeries {
    let origin = Instant::now();
    let mut rng = StdRng::seed_from_u64(11);
    let mut series = WindowedSeries::new(origin, Duration::from_secs(60));
    for w in 0..windows {
        for i in 0..300_u64 {
            let t = origin + Duration::from_secs(w * 60) + Duration::from_millis(i * 200);
            let mut r = RequestResult::pending(t, t);
            r.outcome = Outcome::Success;
            let ms = rng.random_range(20.0..40.0) * factor(w);
            r.finished_at = t + Duration::from_secs_f64(ms / 1e3);
            series.record(&r);
        }
    }
    series
}

#[test]
fn a_twofold_slowdown_is_measured_and_significant() {
    // The second half of a 10-minute run is twice as slow.
    let d = run(10, |w| if w >= 5 { 2.0 } else { 1.0 })
        .degradation(3)
        .unwrap();
    assert_eq!(d.early_start, Duration::from_secs(60));
    assert_eq!(d.late_start, Duration::from_secs(420));
    assert_eq!((d.early_count, d.late_count), (900, 900));
    let ratio = d.p95_ratio.unwrap();
    assert!((1.9..2.1).contains(&ratio), "{ratio}");
    assert!((1.9..2.1).contains(&d.p50_ratio.unwrap()));
    let test = d.rank_test.unwrap();
    assert!(test.p_greater < 1e-6, "{test:?}");
    assert!(test.p_two_sided < 1e-6);
    assert!(test.prob_late_slower > 0.95);
    let trend = d.p95_trend.unwrap();
    assert!(trend.slope_ci.lower > 0.0, "{trend:?}");
}

#[test]
fn a_flat_run_is_not_flagged() {
    let d = run(10, |_| 1.0).degradation(3).unwrap();
    let ratio = d.p95_ratio.unwrap();
    assert!((0.95..1.05).contains(&ratio), "{ratio}");
    let test = d.rank_test.unwrap();
    assert!(test.p_greater > 0.05, "{test:?}");
    assert!(test.p_two_sided > 0.05);
    assert!((0.45..0.55).contains(&test.prob_late_slower));
    assert!(d.p95_trend.unwrap().slope_ci.contains(0.0));
}

#[test]
fn warm_up_is_skipped_and_short_runs_have_no_comparison() {
    // A slow first window (warm-up) does not count as "early".
    let d = run(7, |w| if w == 0 { 5.0 } else { 1.0 })
        .degradation(3)
        .unwrap();
    assert!((0.95..1.05).contains(&d.p95_ratio.unwrap()));
    assert!(run(6, |_| 1.0).degradation(3).is_none());
    assert!(run(6, |_| 1.0).degradation(0).is_none());
}

#[test]
fn a_side_without_successes_has_no_ratio_or_test() {
    let origin = Instant::now();
    let mut series = WindowedSeries::new(origin, Duration::from_secs(1));
    for s in 0..5 {
        let t = origin + Duration::from_secs(s);
        let mut r = RequestResult::pending(t, t);
        r.finished_at = t + Duration::from_millis(1);
        r.outcome = if s < 2 {
            Outcome::Success
        } else {
            Outcome::Timeout
        };
        series.record(&r);
    }
    let d = series.degradation(2).unwrap();
    assert_eq!((d.early_count, d.late_count), (1, 0));
    assert_eq!(d.p95_ratio, None);
    assert_eq!(d.rank_test, None);
}

#[test]
fn small_samples_use_the_corrected_normal_approximation() {
    let p = rank_test(vec![1, 2, 3, 4], vec![5, 6, 7, 8]).unwrap();
    // U = 16, mean 8, sd √12: z = (16 − 8 − ½)/√12 = 2.165, one-sided p = 0.0152 (the exact
    // permutation p-value is 1/70 = 0.0143).
    assert_eq!(p.u_late, 16.0);
    assert!((0.0150..0.0154).contains(&p.p_greater), "{p:?}");
    assert!((0.0300..0.0308).contains(&p.p_two_sided), "{p:?}");
    assert_eq!(p.prob_late_slower, 1.0);
    // Equal samples: no evidence either way.
    let p = rank_test(vec![5; 10], vec![5; 10]).unwrap();
    assert!(p.p_greater >= 0.5 && p.p_two_sided > 0.99, "{p:?}");
}
