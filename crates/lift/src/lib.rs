//! Lift statistics: what a campaign added compared with doing nothing,
//! with the formulas of `../shared/specs/lift-statistics.md` (GrowthBook's
//! current stats engine and the standard references), numbered F1–F20
//! there and here.
//!
//! It owns the per-arm unit statistics (mean, proportion, ratio by the
//! delta method, CUPED regression adjustment), the effect estimates
//! (absolute and relative, Welch degrees of freedom), the frequentist,
//! Bayesian and sequential tests, the sample-ratio-mismatch check,
//! multiple-testing corrections, power and sample size, the Fieller
//! interval, beta-binomial comparisons, winsorisation and incremental
//! totals. Degenerate inputs (an empty arm, a zero baseline, no variance)
//! give `None` or a defined value, never NaN and never a panic.
//!
//! It is pure: no IO, no clock, no randomness, no serialisation; it depends
//! on `statrs` for distributions and must never depend on the store,
//! server, readers or CLI.

pub mod bayes;
pub mod betabinom;
pub mod multiple;
pub mod power;
pub mod readout;
pub mod sequential;
pub mod srm;
pub mod winsor;

use statrs::distribution::{Continuous, ContinuousCDF, Normal, StudentsT};

/// One arm's unit-level statistic: units, mean and unit variance.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Arm {
    pub n: f64,
    pub mean: f64,
    /// The unit variance s².
    pub var: f64,
}

impl Arm {
    /// F1, a mean metric from `n`, `S = Σy`, `Q = Σy²`:
    /// `μ = S/n`, `s² = (Q − S²/n)/(n − 1)` (0 when n ≤ 1).
    pub fn mean(n: u64, sum: f64, sum_squares: f64) -> Arm {
        let nf = n as f64;
        if n == 0 {
            return Arm::default();
        }
        let var = if n <= 1 {
            0.0
        } else {
            ((sum_squares - sum * sum / nf) / (nf - 1.0)).max(0.0)
        };
        Arm {
            n: nf,
            mean: sum / nf,
            var,
        }
    }

    /// F2, a proportion metric: `p = S/n`, `s² = p(1 − p)`.
    pub fn proportion(n: u64, conversions: f64) -> Arm {
        if n == 0 {
            return Arm::default();
        }
        let p = conversions / n as f64;
        Arm {
            n: n as f64,
            mean: p,
            var: (p * (1.0 - p)).max(0.0),
        }
    }

    /// F8, a ratio metric (Σm/Σd per customer population) by the delta
    /// method; `None` when the denominators sum to zero.
    pub fn ratio(s: &RatioSums) -> Option<Arm> {
        if s.n == 0 {
            return None;
        }
        let n = s.n as f64;
        let m = Arm::mean(s.n, s.m_sum, s.m_sum_squares);
        let d = Arm::mean(s.n, s.d_sum, s.d_sum_squares);
        if d.mean == 0.0 {
            return None;
        }
        let cov = if s.n <= 1 {
            0.0
        } else {
            (s.md_sum - s.m_sum * s.d_sum / n) / (n - 1.0)
        };
        let var = m.var / d.mean.powi(2) - 2.0 * cov * m.mean / d.mean.powi(3)
            + m.mean.powi(2) * d.var / d.mean.powi(4);
        Some(Arm {
            n,
            mean: s.m_sum / s.d_sum,
            var: var.max(0.0),
        })
    }
}

/// A ratio metric's sums over an arm's customers (numerator m, denominator d).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RatioSums {
    pub n: u64,
    pub m_sum: f64,
    pub m_sum_squares: f64,
    pub d_sum: f64,
    pub d_sum_squares: f64,
    pub md_sum: f64,
}

/// A metric and its pre-period covariate over an arm (CUPED, F9).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CupedSums {
    pub n: u64,
    pub y_sum: f64,
    pub y_sum_squares: f64,
    pub x_sum: f64,
    pub x_sum_squares: f64,
    pub xy_sum: f64,
}

/// The scale of an effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// `μ_B − μ_A`, in metric units.
    Absolute,
    /// `(μ_B − μ_A)/|μ_A|`, a fraction.
    Relative,
}

/// A Gaussian estimate of the effect of B over A.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    pub estimate: f64,
    pub var: f64,
    /// Welch–Satterthwaite degrees of freedom (F5).
    pub dof: f64,
    pub control_mean: f64,
    pub treatment_mean: f64,
}

/// F5 from unit variances.
fn welch_dof(a_var: f64, a_n: f64, b_var: f64, b_n: f64) -> f64 {
    let (va, vb) = (a_var / a_n, b_var / b_n);
    let den = vb * vb / (b_n - 1.0) + va * va / (a_n - 1.0);
    let dof = (va + vb).powi(2) / den;
    if dof.is_finite() && dof > 0.0 {
        dof
    } else {
        f64::INFINITY
    }
}

/// F3 / F4 with F5: the effect of B over A. `None`, as GrowthBook's
/// engine refuses them, when an arm is empty or has no variance (an arm of
/// one unit, a rate of 0 or 1) or the control mean is 0 (on either scale).
pub fn effect(a: &Arm, b: &Arm, scale: Scale) -> Option<Effect> {
    if a.n < 1.0 || b.n < 1.0 || a.var <= 0.0 || b.var <= 0.0 || a.mean == 0.0 {
        return None;
    }
    let dof = welch_dof(a.var, a.n, b.var, b.n);
    let (estimate, var) = match scale {
        Scale::Absolute => (b.mean - a.mean, a.var / a.n + b.var / b.n),
        Scale::Relative => {
            if a.mean == 0.0 {
                return None;
            }
            (
                (b.mean - a.mean) / a.mean.abs(),
                b.var / (a.mean.powi(2) * b.n) + a.var * b.mean.powi(2) / (a.mean.powi(4) * a.n),
            )
        }
    };
    (estimate.is_finite() && var.is_finite()).then_some(Effect {
        estimate,
        var,
        dof,
        control_mean: a.mean,
        treatment_mean: b.mean,
    })
}

/// Which form of the covariance F9 uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CupedKind {
    /// Mean metrics (F1 variances, sample covariances).
    Means,
    /// Post and pre are both proportions (F2 variances, population covariance).
    Proportions,
}

fn var_of(n: f64, sum: f64, sum_squares: f64, kind: CupedKind) -> f64 {
    if n < 1.0 {
        return 0.0;
    }
    match kind {
        CupedKind::Means if n <= 1.0 => 0.0,
        CupedKind::Means => ((sum_squares - sum * sum / n) / (n - 1.0)).max(0.0),
        CupedKind::Proportions => {
            let p = sum / n;
            (p * (1.0 - p)).max(0.0)
        }
    }
}

fn cov_of(n: f64, x_sum: f64, y_sum: f64, xy_sum: f64, kind: CupedKind) -> f64 {
    match kind {
        _ if n < 1.0 => 0.0,
        CupedKind::Proportions => xy_sum / n - x_sum * y_sum / (n * n),
        CupedKind::Means if n <= 1.0 => 0.0,
        CupedKind::Means => (xy_sum - x_sum * y_sum / n) / (n - 1.0),
    }
}

/// F9, CUPED: θ pooled over both arms; per arm `ȳ − θx̄` and
/// `s²_y + θ²s²_x − 2θ cov`; the relative variance of GrowthBook main.
/// With θ = 0 (no variation in the covariate or the metric) it is the
/// unadjusted analysis (F1/F2, F3/F4). `None` as [`effect`], on the
/// adjusted means and variances.
pub fn cuped_effect(a: &CupedSums, b: &CupedSums, kind: CupedKind, scale: Scale) -> Option<Effect> {
    if a.n == 0 || b.n == 0 {
        return None;
    }
    let n = (a.n + b.n) as f64;
    let pooled_var_x = var_of(
        n,
        a.x_sum + b.x_sum,
        a.x_sum_squares + b.x_sum_squares,
        kind,
    );
    let pooled_cov = cov_of(
        n,
        a.x_sum + b.x_sum,
        a.y_sum + b.y_sum,
        a.xy_sum + b.xy_sum,
        kind,
    );
    let pooled_var_y = var_of(
        n,
        a.y_sum + b.y_sum,
        a.y_sum_squares + b.y_sum_squares,
        kind,
    );
    // No variation before or after: nothing to adjust with (GrowthBook main).
    let theta = if pooled_var_x > 0.0 && pooled_var_y > 0.0 {
        pooled_cov / pooled_var_x
    } else {
        0.0
    };
    let arm = |s: &CupedSums| {
        let n = s.n as f64;
        let y_mean = s.y_sum / n;
        let x_mean = s.x_sum / n;
        let y_var = var_of(n, s.y_sum, s.y_sum_squares, kind);
        let x_var = var_of(n, s.x_sum, s.x_sum_squares, kind);
        let cov = cov_of(n, s.x_sum, s.y_sum, s.xy_sum, kind);
        let adj_var = (y_var + theta * theta * x_var - 2.0 * theta * cov).max(0.0);
        (
            n,
            y_mean,
            x_mean,
            y_var,
            x_var,
            cov,
            y_mean - theta * x_mean,
            adj_var,
        )
    };
    let (na, ya, _, yva, xva, cova, adja, adjva) = arm(a);
    let (nb, yb, _, yvb, _, _, adjb, adjvb) = arm(b);
    if theta == 0.0 {
        let plain = |n: f64, mean: f64, var: f64| Arm { n, mean, var };
        return effect(&plain(na, ya, yva), &plain(nb, yb, yvb), scale);
    }
    if adjva <= 0.0 || adjvb <= 0.0 || adja == 0.0 {
        return None;
    }
    let dof = welch_dof(adjva, na, adjvb, nb);
    let (estimate, var) = match scale {
        Scale::Absolute => (adjb - adja, adjva / na + adjvb / nb),
        Scale::Relative => {
            if ya == 0.0 {
                return None;
            }
            let y2 = ya * ya;
            (
                (adjb - adja) / ya.abs(),
                adjvb / (nb * y2)
                    + (yva * yb * yb / y2 - 2.0 * theta * cova * yb / ya + theta * theta * xva)
                        / (na * y2),
            )
        }
    };
    (estimate.is_finite() && var.is_finite() && var >= 0.0).then_some(Effect {
        estimate,
        var,
        dof,
        control_mean: ya,
        treatment_mean: yb,
    })
}

/// A two-sided test's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestResult {
    pub estimate: f64,
    /// √Var.
    pub se: f64,
    pub ci: (f64, f64),
    /// `2 · t.sf(|t|; ν)` (the precise form; 1 when there is no variance
    /// and no effect, 0 when there is an effect and no variance).
    pub p_value: f64,
    pub dof: f64,
}

/// `0 < x < 1` (false for NaN).
pub(crate) fn in_unit(x: f64) -> bool {
    x > 0.0 && x < 1.0
}

/// `x > 0` (false for NaN).
pub(crate) fn positive(x: f64) -> bool {
    x > 0.0
}

/// The quantile of Student's t (the normal when ν is infinite).
pub fn t_quantile(p: f64, dof: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return f64::NAN;
    }
    if dof.is_finite()
        && let Ok(t) = StudentsT::new(0.0, 1.0, dof)
    {
        // statrs's inverse is good to ~1e-5 at large ν; Newton steps on
        // the (accurate) distribution function bring it to machine level.
        let mut x = t.inverse_cdf(p);
        for _ in 0..4 {
            let f = t.pdf(x);
            if !positive(f) || !x.is_finite() {
                break;
            }
            let step = (t.cdf(x) - p) / f;
            x -= step;
            if step.abs() <= 1e-15 * x.abs().max(1.0) {
                break;
            }
        }
        return x;
    }
    normal_quantile(p)
}

/// `t.sf(x; ν)`.
pub fn t_sf(x: f64, dof: f64) -> f64 {
    if dof.is_finite()
        && let Ok(t) = StudentsT::new(0.0, 1.0, dof)
    {
        return t.sf(x);
    }
    normal_sf(x)
}

fn std_normal() -> Normal {
    Normal::standard()
}

/// Φ.
pub fn normal_cdf(x: f64) -> f64 {
    std_normal().cdf(x)
}

/// 1 − Φ.
pub fn normal_sf(x: f64) -> f64 {
    std_normal().sf(x)
}

/// Φ⁻¹ (NaN outside [0, 1]).
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return f64::NAN;
    }
    std_normal().inverse_cdf(p)
}

/// φ.
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// F6, the two-sided t test at level `alpha`; `None` when alpha is not
/// in (0, 1).
pub fn t_test(e: &Effect, alpha: f64) -> Option<TestResult> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return None;
    }
    let se = e.var.max(0.0).sqrt();
    if se == 0.0 {
        let p = if e.estimate == 0.0 { 1.0 } else { 0.0 };
        return Some(TestResult {
            estimate: e.estimate,
            se,
            ci: (e.estimate, e.estimate),
            p_value: p,
            dof: e.dof,
        });
    }
    let t = e.estimate / se;
    let p = (2.0 * t_sf(t.abs(), e.dof)).clamp(0.0, 1.0);
    let q = t_quantile(1.0 - alpha / 2.0, e.dof);
    Some(TestResult {
        estimate: e.estimate,
        se,
        ci: (e.estimate - q * se, e.estimate + q * se),
        p_value: p,
        dof: e.dof,
    })
}

/// F3b, the pooled two-proportion z statistic and its two-sided p-value.
pub fn pooled_z(conv_a: f64, n_a: u64, conv_b: f64, n_b: u64) -> Option<(f64, f64)> {
    if n_a == 0 || n_b == 0 {
        return None;
    }
    let (na, nb) = (n_a as f64, n_b as f64);
    let pooled = (conv_a + conv_b) / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return None;
    }
    let z = (conv_b / nb - conv_a / na) / se;
    Some((z, (2.0 * normal_sf(z.abs())).clamp(0.0, 1.0)))
}

/// F18, Fieller's interval for the relative lift `μ_B/μ_A − 1`; `None`
/// when `g ≥ 1` (the control mean is not distinguishable from 0).
pub fn fieller(a: &Arm, b: &Arm, alpha: f64) -> Option<(f64, f64)> {
    if a.n < 1.0 || b.n < 1.0 || a.mean == 0.0 || !(alpha > 0.0 && alpha < 1.0) {
        return None;
    }
    let z = normal_quantile(1.0 - alpha / 2.0);
    let (va, vb) = (a.var / a.n, b.var / b.n);
    let g = z * z * va / (a.mean * a.mean);
    if g >= 1.0 {
        return None;
    }
    let r = b.mean / a.mean;
    let half = (z / a.mean) * (r * r * va + (1.0 - g) * vb).sqrt();
    let lo = (r - half) / (1.0 - g) - 1.0;
    let hi = (r + half) / (1.0 - g) - 1.0;
    Some((lo.min(hi), lo.max(hi)))
}

/// F19a, the incremental total over the treated population: the absolute
/// effect per unit and its interval, times the treated units.
pub fn incremental_total(absolute: &TestResult, n_treated: f64) -> (f64, (f64, f64)) {
    (
        absolute.estimate * n_treated,
        (absolute.ci.0 * n_treated, absolute.ci.1 * n_treated),
    )
}

/// F19b, GrowthBook main's scaled impact per day: the absolute effect
/// times the units of all arms, over the traffic share and the days.
pub fn scaled_impact(absolute: f64, n_all_arms: f64, traffic: f64, days: f64) -> Option<f64> {
    (positive(traffic) && positive(days)).then(|| absolute * n_all_arms / traffic / days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_from_sums() {
        let a = Arm::mean(4, 10.0, 30.0);
        assert_eq!(a.mean, 2.5);
        assert!((a.var - (30.0 - 25.0) / 3.0).abs() < 1e-12);
        assert_eq!(Arm::mean(1, 5.0, 25.0).var, 0.0);
        assert_eq!(Arm::mean(0, 0.0, 0.0), Arm::default());
        let p = Arm::proportion(100, 20.0);
        assert!((p.var - 0.16).abs() < 1e-12);
    }

    #[test]
    fn degenerate_inputs_are_defined() {
        let empty = Arm::default();
        let a = Arm::proportion(1000, 0.0);
        let b = Arm::proportion(1000, 5.0);
        assert!(effect(&empty, &b, Scale::Absolute).is_none());
        assert!(effect(&a, &b, Scale::Relative).is_none(), "zero baseline");
        assert!(
            effect(&a, &b, Scale::Absolute).is_none(),
            "no variance in control"
        );
        let (z, p) = pooled_z(0.0, 1000, 5.0, 1000).unwrap();
        assert!(z > 2.0 && p < 0.05, "the pooled z still answers: {z} {p}");
        let same = effect(&b, &b, Scale::Relative).unwrap();
        let t = t_test(&same, 0.05).unwrap();
        assert_eq!(t.estimate, 0.0);
        assert!((t.p_value - 1.0).abs() < 1e-12);
        let flat = Arm {
            n: 10.0,
            mean: 1.0,
            var: 0.0,
        };
        assert!(effect(&flat, &flat, Scale::Absolute).is_none());
        assert!(t_test(&same, 0.0).is_none());
        assert!(fieller(&a, &b, 0.05).is_none());
    }
}
