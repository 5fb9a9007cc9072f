//! Straight-line trends with a confidence interval on the slope: [`fit_trend`] → [`Trend`].
//!
//! The definitions are stated in the [`metrics`](crate::metrics#trends) module docs.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Confidence level of every interval this module reports.
const LEVEL: f64 = 0.95;

/// A two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceInterval {
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

impl ConfidenceInterval {
    /// Whether `value` lies within the bounds (inclusive).
    pub fn contains(&self, value: f64) -> bool {
        self.lower <= value && value <= self.upper
    }

    /// The interval with both bounds multiplied by a positive `factor` (a change of unit).
    pub(crate) fn scaled(self, factor: f64) -> Self {
        Self {
            level: self.level,
            lower: self.lower * factor,
            upper: self.upper * factor,
        }
    }
}

/// A least-squares line `y = intercept + slope·x` and the uncertainty of its slope. See the
/// [definitions](crate::metrics#trends) for the method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Number of points fitted.
    pub n: usize,
    /// Change of `y` per unit of `x`.
    pub slope: f64,
    /// `y` at `x = 0`.
    pub intercept: f64,
    /// Standard error of the slope.
    pub slope_std_error: f64,
    /// 95% confidence interval of the slope (Student's t, `n − 2` degrees of freedom).
    pub slope_ci: ConfidenceInterval,
    /// Share of the variance of `y` explained by the line.
    pub r_squared: f64,
}

/// Fits a straight line by ordinary least squares.
///
/// Returns `None` with fewer than 3 points (no residual degree of freedom), with a non-finite
/// coordinate, or when every `x` is equal (no slope is defined).
///
/// Time: O(n). Memory: O(1).
///
/// # Example
///
/// ```
/// use semantic_stress::metrics::fit_trend;
///
/// let trend = fit_trend(&[(1.0, 2.0), (2.0, 4.0), (3.0, 5.0), (4.0, 4.0), (5.0, 5.0)]).unwrap();
/// assert!((trend.slope - 0.6).abs() < 1e-12);
/// assert!(trend.slope_ci.contains(0.0));
/// ```
pub fn fit_trend(points: &[(f64, f64)]) -> Option<Trend> {
    let n = points.len();
    if n < 3 || points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return None;
    }
    // Point counts stay far below 2^53, where usize → f64 is exact.
    let nf = n as f64;
    let x_mean = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let y_mean = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in points {
        let (dx, dy) = (x - x_mean, y - y_mean);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = y_mean - slope * x_mean;
    let ss_res: f64 = points
        .iter()
        .map(|&(x, y)| (y - intercept - slope * x).powi(2))
        .sum();
    let dof = nf - 2.0;
    let slope_std_error = (ss_res / dof / sxx).sqrt();
    let half_width = t_quantile(0.5 + LEVEL / 2.0, dof) * slope_std_error;
    let r_squared = if syy > 0.0 {
        (1.0 - ss_res / syy).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(Trend {
        n,
        slope,
        intercept,
        slope_std_error,
        slope_ci: ConfidenceInterval {
            level: LEVEL,
            lower: slope - half_width,
            upper: slope + half_width,
        },
        r_squared,
    })
}

/// The `p` quantile of Student's t with `dof > 0` degrees of freedom.
fn t_quantile(p: f64, dof: f64) -> f64 {
    // Location 0, scale 1 and dof ≥ 1 are valid parameters, so construction cannot fail.
    StudentsT::new(0.0, 1.0, dof)
        .expect("standard Student's t with positive degrees of freedom")
        .inverse_cdf(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn textbook_example_matches_hand_computation() {
        // x̄ = 3, ȳ = 4, Sxx = 10, Sxy = 6 → b = 0.6, a = 2.2; SSres = 2.4, s² = 0.8,
        // SE = √0.08; t(0.975, 3) = 3.182446; Syy = 6 → r² = 0.6.
        let t = fit_trend(&[(1.0, 2.0), (2.0, 4.0), (3.0, 5.0), (4.0, 4.0), (5.0, 5.0)]).unwrap();
        assert_eq!(t.n, 5);
        assert!(close(t.slope, 0.6, 1e-12));
        assert!(close(t.intercept, 2.2, 1e-12));
        assert!(close(t.slope_std_error, 0.08_f64.sqrt(), 1e-12));
        let half = 3.182_446_305 * 0.08_f64.sqrt();
        assert!(close(t.slope_ci.lower, 0.6 - half, 1e-6));
        assert!(close(t.slope_ci.upper, 0.6 + half, 1e-6));
        assert!(close(t.r_squared, 0.6, 1e-12));
        assert_eq!(t.slope_ci.level, 0.95);
    }

    #[test]
    fn t_quantiles_match_tables() {
        assert!(close(t_quantile(0.975, 1.0), 12.706_204_736, 1e-6));
        assert!(close(t_quantile(0.975, 10.0), 2.228_138_852, 1e-6));
        assert!(close(t_quantile(0.975, 1000.0), 1.962_339_081, 1e-6));
    }

    #[test]
    fn an_exact_line_has_a_zero_width_interval() {
        let points: Vec<_> = (0..20)
            .map(|i| (f64::from(i), 3.0 - 0.5 * f64::from(i)))
            .collect();
        let t = fit_trend(&points).unwrap();
        assert!(close(t.slope, -0.5, 1e-12));
        assert!(close(t.intercept, 3.0, 1e-12));
        assert!(close(t.slope_ci.upper - t.slope_ci.lower, 0.0, 1e-9));
        assert!(close(t.r_squared, 1.0, 1e-12));
    }

    #[test]
    fn a_flat_series_has_zero_slope() {
        let points: Vec<_> = (0..10).map(|i| (f64::from(i), 7.0)).collect();
        let t = fit_trend(&points).unwrap();
        assert_eq!(t.slope, 0.0);
        assert!(t.slope_ci.contains(0.0));
        assert_eq!(t.r_squared, 1.0);
    }

    #[test]
    fn degenerate_inputs_have_no_trend() {
        assert!(fit_trend(&[]).is_none());
        assert!(fit_trend(&[(0.0, 1.0), (1.0, 2.0)]).is_none());
        assert!(fit_trend(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]).is_none());
        assert!(fit_trend(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)]).is_none());
    }
}
