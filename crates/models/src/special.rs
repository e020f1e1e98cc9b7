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
    if z <= 0.9 || is_nonpositive_integer(a) || is_nonpositive_integer(b) {
        if let Some(v) = series(a, b, c, z) {
            return Ok(v);
        }
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
}
