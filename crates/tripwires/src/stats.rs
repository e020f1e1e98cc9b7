//! Interval estimates for the backtests: proportions (Wilson), their
//! difference (Newcombe's hybrid score interval), their ratio (Katz's log
//! interval) and a difference of means (Welch, with the normal quantile:
//! the cohorts compared are hundreds of customers or more).

use lifecycle_models::normal_quantile;

/// An estimate with its interval at the level asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

fn z(level: f64) -> f64 {
    normal_quantile(0.5 + level.clamp(0.5, 0.999_999) / 2.0)
}

/// Wilson's score interval for `k` of `n`.
pub fn wilson(k: u64, n: u64, level: f64) -> Option<Estimate> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let z = z(level);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    // At 0 or n the bound is exactly 0 or 1 (rounding would leave 1e-17).
    Some(Estimate {
        value: p,
        low: if k == 0.0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        high: if k == n {
            1.0
        } else {
            (centre + half).min(1.0)
        },
    })
}

/// p1 − p0 with Newcombe's (1998) hybrid score interval (method 10).
pub fn proportion_difference(k1: u64, n1: u64, k0: u64, n0: u64, level: f64) -> Option<Estimate> {
    let a = wilson(k1, n1, level)?;
    let b = wilson(k0, n0, level)?;
    let d = a.value - b.value;
    let low = d - ((a.value - a.low).powi(2) + (b.high - b.value).powi(2)).sqrt();
    let high = d + ((a.high - a.value).powi(2) + (b.value - b.low).powi(2)).sqrt();
    Some(Estimate {
        value: d,
        low,
        high,
    })
}

/// p1 / p0 with Katz's log interval; `None` when either share is zero.
pub fn proportion_ratio(k1: u64, n1: u64, k0: u64, n0: u64, level: f64) -> Option<Estimate> {
    if k1 == 0 || k0 == 0 || n1 == 0 || n0 == 0 {
        return None;
    }
    let (k1, n1, k0, n0) = (k1 as f64, n1 as f64, k0 as f64, n0 as f64);
    let ratio = (k1 / n1) / (k0 / n0);
    let se = (1.0 / k1 - 1.0 / n1 + 1.0 / k0 - 1.0 / n0).max(0.0).sqrt();
    let z = z(level);
    Some(Estimate {
        value: ratio,
        low: ratio * (-z * se).exp(),
        high: ratio * (z * se).exp(),
    })
}

/// Running sums of a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
    /// The sample variance (n − 1).
    pub fn variance(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        let n = self.n as f64;
        Some(((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0))
    }
}

/// mean1 − mean0 with Welch's standard error.
pub fn mean_difference(a: &Moments, b: &Moments, level: f64) -> Option<Estimate> {
    let (ma, mb) = (a.mean()?, b.mean()?);
    let se = (a.variance()? / a.n as f64 + b.variance()? / b.n as f64).sqrt();
    let z = z(level);
    Some(Estimate {
        value: ma - mb,
        low: ma - mb - z * se,
        high: ma - mb + z * se,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newcombe_1998_examples() {
        // Newcombe (1998), Statistics in Medicine 17:873, table II, method
        // 10: 56/70 vs 48/80 → 0.2000 (0.0524, 0.3339); 9/10 vs 3/10 →
        // 0.6000 (0.1705, 0.8090).
        let d = proportion_difference(56, 70, 48, 80, 0.95).unwrap();
        assert!((d.value - 0.2).abs() < 1e-12);
        assert!((d.low - 0.0524).abs() < 5e-4, "{d:?}");
        assert!((d.high - 0.3339).abs() < 5e-4, "{d:?}");
        let d = proportion_difference(9, 10, 3, 10, 0.95).unwrap();
        assert!((d.low - 0.1705).abs() < 5e-4, "{d:?}");
        assert!((d.high - 0.8090).abs() < 5e-4, "{d:?}");
    }

    #[test]
    fn wilson_and_degenerate_inputs() {
        // Newcombe (1998) table I: 81/263 → (0.2553, 0.3662).
        let w = wilson(81, 263, 0.95).unwrap();
        assert!(
            (w.low - 0.2553).abs() < 5e-4 && (w.high - 0.3662).abs() < 5e-4,
            "{w:?}"
        );
        assert!(wilson(0, 0, 0.95).is_none());
        let w = wilson(0, 10, 0.95).unwrap();
        assert_eq!(w.low, 0.0);
        assert!(proportion_ratio(0, 10, 3, 10, 0.95).is_none());
        let r = proportion_ratio(20, 100, 10, 100, 0.95).unwrap();
        assert!((r.value - 2.0).abs() < 1e-12 && r.low < 2.0 && r.high > 2.0);
        let mut a = Moments::default();
        let mut b = Moments::default();
        for x in [1.0, 2.0, 3.0] {
            a.add(x);
            b.add(x + 1.0);
        }
        let d = mean_difference(&a, &b, 0.95).unwrap();
        assert!((d.value + 1.0).abs() < 1e-12);
        // se = sqrt(1/3 + 1/3)
        assert!((d.high - d.value - 1.959_964 * (2.0f64 / 3.0).sqrt()).abs() < 1e-5);
        assert!(mean_difference(&Moments::default(), &b, 0.95).is_none());
    }
}
