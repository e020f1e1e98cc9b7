//! Special functions: log-gamma and digamma from `statrs` (Lanczos, 16
//! digits), and the Gauss hypergeometric function 2F1, written here because
//! no maintained crate evaluates it for the negative and near-one arguments
//! the BTYD models produce.
//!
//! 2F1(a, b; c; z) is summed as its power series (Abramowitz & Stegun
//! 15.1.1) for 0 <= z < 1, which converges for any real a, b and any c that
//! is not a non-positive integer, and keeps the sign of negative values
//! (where taking a logarithm, as `lifetimes` does, gives NaN). Close to
//! z = 1 the series is replaced by the connection formula A&S 15.3.6.
//!
//! `exp_scaled_en(s, z)` = e^z E_s(z), the generalised exponential integral
//! scaled by e^z (equivalently z^{s−1} U(s, s, z), Tricomi's confluent
//! function of the Pareto/NBD DERT), also written here.

pub use statrs::function::gamma::{digamma, gamma, ln_gamma};

/// Why 2F1 could not be evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hyp2f1Error {
    /// c is zero or a negative integer.
    PoleInC,
    /// z outside [0, 1).
    OutOfDomain,
    /// Neither the series nor the transformation converged.
    NoConvergence,
}

const MAX_TERMS: usize = 200_000;

fn series(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    let mut compensation = 0.0f64;
    for n in 0..MAX_TERMS {
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        // Neumaier summation: the terms may alternate in sign.
        let t = sum + term;
        if sum.abs() >= term.abs() {
            compensation += (sum - t) + term;
        } else {
            compensation += (term - t) + sum;
        }
        sum = t;
        if term == 0.0
            || (term.abs() <= 1e-17 * sum.abs()
                && n > 2.0
                && (a + n).abs() > 1.0
                && (b + n).abs() > 1.0)
        {
            return Some(sum + compensation);
        }
        if !sum.is_finite() {
            return None;
        }
    }
    None
}

fn is_nonpositive_integer(x: f64) -> bool {
    x <= 0.0 && x.fract() == 0.0
}

/// Gauss's hypergeometric function 2F1(a, b; c; z) for real parameters and
/// 0 <= z < 1.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Result<f64, Hyp2f1Error> {
    if is_nonpositive_integer(c) {
        return Err(Hyp2f1Error::PoleInC);
    }
    if !(0.0..1.0).contains(&z) {
        return Err(Hyp2f1Error::OutOfDomain);
    }
    if z == 0.0 || a == 0.0 || b == 0.0 {
        return Ok(1.0);
    }
    // Terminating series: a or b a negative integer.
    if (z <= 0.9 || is_nonpositive_integer(a) || is_nonpositive_integer(b))
        && let Some(v) = series(a, b, c, z)
    {
        return Ok(v);
    }
    // A&S 15.3.6, valid when c - a - b is not an integer.
    let d = c - a - b;
    if d.fract() != 0.0 && !is_nonpositive_integer(c - a) && !is_nonpositive_integer(c - b) {
        let w = 1.0 - z;
        let g1 = gamma(c) * gamma(d) / (gamma(c - a) * gamma(c - b));
        let g2 = gamma(c) * gamma(-d) / (gamma(a) * gamma(b));
        let f1 = series(a, b, 1.0 - d, w);
        let f2 = series(c - a, c - b, d + 1.0, w);
        if let (Some(f1), Some(f2)) = (f1, f2) {
            let v = g1 * f1 + w.powf(d) * g2 * f2;
            if v.is_finite() {
                return Ok(v);
            }
        }
    }
    series(a, b, c, z).ok_or(Hyp2f1Error::NoConvergence)
}

/// Euler-Mascheroni constant.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// e^z E_s(z) = e^z ∫_1^∞ e^{−zt} t^{−s} dt for s > 0, z > 0, which is
/// z^{s−1} U(s, s, z) (DLMF 8.19.1, 13.6.6). For z ≥ 1 (or s within 1e-3
/// of an integer with small z) the modified Lentz continued fraction
/// (DLMF 8.19.17) converges for all s; for small z with 0 < s < 1 the
/// positive series of the lower incomplete gamma function, e^z Γ(1−s)
/// z^{s−1} − Σ_k z^k / Π_{j≤k}(1−s+j) (DLMF 8.7.1), and for s ≥ 1 the
/// recurrence E_{s+1}(z) = (e^{−z} − z E_s(z))/s (DLMF 8.19.12) from
/// s − ⌊s⌋ (E₁ by its series, DLMF 6.6.2).
pub fn exp_scaled_en(s: f64, z: f64) -> Option<f64> {
    if !(s > 0.0 && z > 0.0 && s.is_finite() && z.is_finite()) {
        return None;
    }
    let frac = s - s.floor();
    // Within 1e-3 of an integer (but not on one) the series lose digits to
    // cancellation: the continued fraction is slow there but accurate.
    let near_integer = frac != 0.0 && !(1e-3..=1.0 - 1e-3).contains(&frac);
    if z >= 1.0 || near_integer {
        return continued_fraction_en(s, z);
    }
    if s < 1.0 {
        return small_z_en(s, z);
    }
    // Upward recurrence from s0 in (0, 1] (s0 = 1 when s is an integer).
    let s0 = if frac == 0.0 { 1.0 } else { frac };
    let mut e = if s0 == 1.0 {
        exp_scaled_e1(z)?
    } else {
        small_z_en(s0, z)?
    };
    let mut k = s0;
    while k < s - 0.5 {
        // e^z E_{k+1} = (1 − z e^z E_k)/k
        e = (1.0 - z * e) / k;
        k += 1.0;
    }
    Some(e)
}

fn continued_fraction_en(s: f64, z: f64) -> Option<f64> {
    let tiny = 1e-300;
    let mut b = z + s;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..2_000_000 {
        let fi = i as f64;
        let an = -fi * (s + fi - 1.0);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            return Some(h);
        }
    }
    None
}

/// 0 < s < 1, any z > 0 (used for z < 1).
fn small_z_en(s: f64, z: f64) -> Option<f64> {
    let a = 1.0 - s;
    let mut term = 1.0 / a;
    let mut total = term;
    for k in 1..10_000 {
        term *= z / (a + k as f64);
        total += term;
        if term.abs() <= 1e-17 * total.abs() {
            break;
        }
    }
    // e^z E_s(z) = z^{s−1} [e^z Γ(1−s) − z^{1−s} Σ]: U(s,s,z) times z^{s−1}.
    let u = z.exp() * gamma(a) - z.powf(a) * total;
    Some(z.powf(s - 1.0) * u)
}

/// e^z E₁(z) for z < 1.
fn exp_scaled_e1(z: f64) -> Option<f64> {
    let mut sum = 0.0;
    let mut term = 1.0;
    for k in 1..200 {
        let kf = k as f64;
        term *= -z / kf;
        sum += term / kf;
        if term.abs() < 1e-18 {
            break;
        }
    }
    Some(z.exp() * (-EULER_GAMMA - z.ln() - sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from `scipy.special.hyp2f1` (SciPy 1.14.1).
    const CASES: &[(f64, f64, f64, f64, f64)] = &[
        (1.0, 1.0, 2.0, 0.5, 1.386_294_361_119_890_1),
        (0.5, 0.5, 1.5, 0.25, std::f64::consts::FRAC_PI_3), // 2F1(½,½;3⁄2;¼) = arcsin(½)/½
        (2.0, 3.0, 4.0, 0.3, 1.691_282_299_329_312_4),
        (
            -0.3,
            -0.69,
            -0.19,
            0.902_527_075_812_274_3,
            -0.210_699_363_293_596_31,
        ),
        (0.243, 2.426, 2.219, 0.5, 1.207_097_007_044_041_7),
        (1.5, 2.5, 0.7, 0.95, 56_279.085_830_654_934),
        (0.3, 0.7, 1.9, 0.99, 1.237_429_482_615_037_4),
    ];

    #[test]
    fn against_scipy() {
        for &(a, b, c, z, want) in CASES {
            let got = hyp2f1(a, b, c, z).unwrap();
            assert!(
                (got - want).abs() <= 1e-12 * want.abs(),
                "2F1({a},{b};{c};{z}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn series_and_connection_formula_agree_near_one() {
        for &(a, b, c) in &[
            (0.3, 0.7, 1.9),
            (-0.3, -0.69, -0.19),
            (1.2, 0.4, 2.9),
            (2.5, 1.5, 0.7),
        ] {
            for z in [0.91, 0.95, 0.99] {
                let direct = series(a, b, c, z).unwrap();
                let via = hyp2f1(a, b, c, z).unwrap();
                assert!(
                    (direct - via).abs() <= 1e-10 * direct.abs().max(1.0),
                    "{a},{b},{c},{z}: {direct} vs {via}"
                );
            }
        }
    }

    #[test]
    fn domain_errors() {
        assert_eq!(hyp2f1(1.0, 1.0, -2.0, 0.5), Err(Hyp2f1Error::PoleInC));
        assert_eq!(hyp2f1(1.0, 1.0, 2.0, 1.0), Err(Hyp2f1Error::OutOfDomain));
        assert_eq!(hyp2f1(1.0, 1.0, 2.0, 0.0), Ok(1.0));
    }

    /// U(s, s, z) = z^{1−s} e^z E_s(z) against mpmath's `hyperu` at 50
    /// digits (the same values from e^z Γ(1−s, z) and ∫e^{−v}(z+v)^{−s}dv).
    #[test]
    fn confluent_u_matches_mpmath() {
        for (s, z, want) in [
            (0.606f64, 0.5f64, 0.921_265_712_772_988_7),
            (0.606, 30.0, 0.124_865_874_915_649_4),
            (1.5, 2.0, 0.222_401_404_721_365_02),
            (2.0, 0.1, 7.985_357_455_291_548),
            (0.3, 100.0, 0.250_444_655_394_036_25),
        ] {
            let u = z.powf(1.0 - s) * exp_scaled_en(s, z).unwrap();
            assert!(
                (u / want - 1.0).abs() < 1e-13,
                "U({s},{s},{z}) = {u} vs {want}"
            );
        }
        // The branches agree where they meet.
        for s in [0.2, 0.606, 1.0, 1.7, 3.0, 4.4] {
            for z in [0.05, 0.3, 0.99] {
                let a = exp_scaled_en(s, z).unwrap();
                let b = continued_fraction_en(s, z).unwrap();
                assert!((a / b - 1.0).abs() < 1e-11, "s={s} z={z}: {a} vs {b}");
            }
        }
        assert!(exp_scaled_en(0.0, 1.0).is_none());
    }
}
