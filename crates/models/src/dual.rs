//! Forward-mode automatic differentiation with a fixed number of partials,
//! for likelihoods whose analytic gradient is impractical (the Pareto/NBD's
//! hypergeometric terms). Only what those likelihoods need.

use std::ops::{Add, Div, Mul, Neg, Sub};

/// A value and its partial derivatives with respect to N parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dual<const N: usize> {
    pub v: f64,
    pub d: [f64; N],
}

impl<const N: usize> Dual<N> {
    pub fn constant(v: f64) -> Self {
        Dual { v, d: [0.0; N] }
    }

    /// The i-th parameter itself.
    pub fn variable(v: f64, i: usize) -> Self {
        let mut d = [0.0; N];
        d[i] = 1.0;
        Dual { v, d }
    }

    fn chain(self, v: f64, dv: f64) -> Self {
        Dual {
            v,
            d: self.d.map(|x| x * dv),
        }
    }

    pub fn ln(self) -> Self {
        self.chain(self.v.ln(), 1.0 / self.v)
    }

    pub fn exp(self) -> Self {
        let e = self.v.exp();
        self.chain(e, e)
    }

    /// ln Γ, with ψ as the derivative.
    pub fn ln_gamma(self) -> Self {
        self.chain(
            statrs::function::gamma::ln_gamma(self.v),
            statrs::function::gamma::digamma(self.v),
        )
    }
}

impl<const N: usize> Add for Dual<N> {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        let mut d = self.d;
        for (a, b) in d.iter_mut().zip(o.d) {
            *a += b;
        }
        Dual { v: self.v + o.v, d }
    }
}

impl<const N: usize> Sub for Dual<N> {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        self + (-o)
    }
}

impl<const N: usize> Neg for Dual<N> {
    type Output = Self;
    fn neg(self) -> Self {
        Dual {
            v: -self.v,
            d: self.d.map(|x| -x),
        }
    }
}

impl<const N: usize> Mul for Dual<N> {
    type Output = Self;
    fn mul(self, o: Self) -> Self {
        let mut d = [0.0; N];
        for (i, di) in d.iter_mut().enumerate() {
            *di = self.d[i] * o.v + self.v * o.d[i];
        }
        Dual { v: self.v * o.v, d }
    }
}

impl<const N: usize> Div for Dual<N> {
    type Output = Self;
    fn div(self, o: Self) -> Self {
        let inv = 1.0 / o.v;
        let mut d = [0.0; N];
        for (i, di) in d.iter_mut().enumerate() {
            *di = (self.d[i] * o.v - self.v * o.d[i]) * inv * inv;
        }
        Dual { v: self.v * inv, d }
    }
}

impl<const N: usize> Add<f64> for Dual<N> {
    type Output = Self;
    fn add(self, o: f64) -> Self {
        Dual {
            v: self.v + o,
            d: self.d,
        }
    }
}

impl<const N: usize> Sub<f64> for Dual<N> {
    type Output = Self;
    fn sub(self, o: f64) -> Self {
        Dual {
            v: self.v - o,
            d: self.d,
        }
    }
}

impl<const N: usize> Mul<f64> for Dual<N> {
    type Output = Self;
    fn mul(self, o: f64) -> Self {
        Dual {
            v: self.v * o,
            d: self.d.map(|x| x * o),
        }
    }
}

/// ln(e^a + e^b) without overflow.
pub(crate) fn log_add_exp<const N: usize>(a: Dual<N>, b: Dual<N>) -> Dual<N> {
    let (hi, lo) = if a.v >= b.v { (a, b) } else { (b, a) };
    hi + ((lo - hi).exp() + 1.0).ln()
}

/// ln(e^a − e^b) for a > b.
pub(crate) fn log_sub_exp<const N: usize>(a: Dual<N>, b: Dual<N>) -> Dual<N> {
    a + (-((b - a).exp()) + 1.0).ln()
}

/// ln 2F1(a, b; c; z) by its series, for 0 <= z < 1 and a positive sum,
/// with derivatives carried through every term.
pub(crate) fn ln_hyp2f1_series<const N: usize>(
    a: Dual<N>,
    b: Dual<N>,
    c: Dual<N>,
    z: Dual<N>,
) -> Option<Dual<N>> {
    let mut term = Dual::<N>::constant(1.0);
    let mut sum = Dual::<N>::constant(1.0);
    for n in 0..200_000 {
        let nf = n as f64;
        term = term * (a + nf) * (b + nf) / ((c + nf) * (nf + 1.0)) * z;
        sum = sum + term;
        if term.v.abs() <= 1e-16 * sum.v.abs() && nf > 2.0 {
            return (sum.v > 0.0).then(|| sum.ln());
        }
        if !sum.v.is_finite() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_of_a_composite_function() {
        // f(x, y) = ln(x) * y / (x + y) + exp(y) at (2, 3).
        let (x, y) = (Dual::<2>::variable(2.0, 0), Dual::<2>::variable(3.0, 1));
        let f = x.ln() * y / (x + y) + y.exp();
        let h = 1e-6;
        let g = |x: f64, y: f64| x.ln() * y / (x + y) + y.exp();
        let dx = (g(2.0 + h, 3.0) - g(2.0 - h, 3.0)) / (2.0 * h);
        let dy = (g(2.0, 3.0 + h) - g(2.0, 3.0 - h)) / (2.0 * h);
        assert!((f.v - g(2.0, 3.0)).abs() < 1e-12);
        assert!((f.d[0] - dx).abs() < 1e-7 && (f.d[1] - dy).abs() < 1e-6);
        let l = log_add_exp(x, y);
        assert!((l.v - (2f64.exp() + 3f64.exp()).ln()).abs() < 1e-12);
        let s = log_sub_exp(y, x);
        assert!((s.v - (3f64.exp() - 2f64.exp()).ln()).abs() < 1e-12);
    }
}
