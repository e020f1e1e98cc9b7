//! F17, the beta-binomial comparison of two conversion rates with Beta(1, 1)
//! priors: P(p_B > p_A) by Evan Miller's exact sum and the expected loss
//! `E[max(p_A − p_B, 0)]` by numerical integration.

use statrs::function::beta::{beta_reg, ln_beta};

/// P(p_B > p_A) with posteriors Beta(1 + x, 1 + n − x); `None` for counts
/// that are not whole or exceed n, or more than 10^6 conversions in B.
pub fn chance_to_beat(x_a: u64, n_a: u64, x_b: u64, n_b: u64) -> Option<f64> {
    if x_a > n_a || x_b > n_b || x_b > 1_000_000 {
        return None;
    }
    let (aa, ba) = (1.0 + x_a as f64, 1.0 + (n_a - x_a) as f64);
    let (ab, bb) = (1.0 + x_b as f64, 1.0 + (n_b - x_b) as f64);
    let mut total = 0.0;
    for i in 0..(ab as u64) {
        let i = i as f64;
        total +=
            (ln_beta(aa + i, ba + bb) - (bb + i).ln() - ln_beta(1.0 + i, bb) - ln_beta(aa, ba))
                .exp();
    }
    Some(total.clamp(0.0, 1.0))
}

fn beta_pdf(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 || x >= 1.0 {
        return 0.0;
    }
    ((a - 1.0) * x.ln() + (b - 1.0) * (1.0 - x).ln() - ln_beta(a, b)).exp()
}

/// Adaptive Simpson on [a, b].
fn simpson(f: &dyn Fn(f64) -> f64, a: f64, b: f64, tol: f64, depth: u32) -> f64 {
    let c = 0.5 * (a + b);
    let (fa, fb, fc) = (f(a), f(b), f(c));
    let whole = (b - a) / 6.0 * (fa + 4.0 * fc + fb);
    simpson_step(f, a, b, fa, fb, fc, whole, tol, depth)
}

#[allow(clippy::too_many_arguments)]
fn simpson_step(
    f: &dyn Fn(f64) -> f64,
    a: f64,
    b: f64,
    fa: f64,
    fb: f64,
    fc: f64,
    whole: f64,
    tol: f64,
    depth: u32,
) -> f64 {
    let c = 0.5 * (a + b);
    let (d, e) = (0.5 * (a + c), 0.5 * (c + b));
    let (fd, fe) = (f(d), f(e));
    let left = (c - a) / 6.0 * (fa + 4.0 * fd + fc);
    let right = (b - c) / 6.0 * (fc + 4.0 * fe + fb);
    if depth == 0 || (left + right - whole).abs() <= 15.0 * tol {
        return left + right + (left + right - whole) / 15.0;
    }
    simpson_step(f, a, c, fa, fc, fd, left, tol / 2.0, depth - 1)
        + simpson_step(f, c, b, fc, fb, fe, right, tol / 2.0, depth - 1)
}

/// `E[max(p_A − p_B, 0)]`: the expected loss of choosing B.
pub fn expected_loss(x_a: u64, n_a: u64, x_b: u64, n_b: u64) -> Option<f64> {
    if x_a > n_a || x_b > n_b {
        return None;
    }
    let (aa, ba) = (1.0 + x_a as f64, 1.0 + (n_a - x_a) as f64);
    let (ab, bb) = (1.0 + x_b as f64, 1.0 + (n_b - x_b) as f64);
    let mean_b = ab / (ab + bb);
    // E[max(a − p_B, 0)] = a I_a(αB, βB) − mean_B I_a(αB + 1, βB).
    let inner = |a: f64| a * beta_reg(ab, bb, a) - mean_b * beta_reg(ab + 1.0, bb, a);
    let f = |a: f64| beta_pdf(a, aa, ba) * inner(a);
    // Integrate where A's density lives (± 14 sd), in pieces.
    let (m, sd) = (
        aa / (aa + ba),
        (aa * ba / ((aa + ba).powi(2) * (aa + ba + 1.0))).sqrt(),
    );
    let (lo, hi) = ((m - 14.0 * sd).max(0.0), (m + 14.0 * sd).min(1.0));
    let pieces = 64;
    let w = (hi - lo) / pieces as f64;
    let total: f64 = (0..pieces)
        .map(|k| {
            let a = lo + k as f64 * w;
            simpson(&f, a, a + w, 1e-12, 30)
        })
        .sum();
    Some(total.max(0.0))
}
