//! Synthetic order histories with known true parameters.
//!
//! Each customer is drawn from the BG/NBD purchase process (Fader, Hardie &
//! Lee 2005, "Counting your customers the easy way", section 2): while
//! alive, purchases follow a Poisson process with rate λ ~ Gamma(r, α)
//! (shape r, rate α, per day); after every repeat purchase the customer
//! dies with probability p ~ Beta(a, b). The first purchase starts the clock. Order
//! values follow the Gamma-Gamma spend model (Fader, Hardie & Lee 2005,
//! "RFM and CLV", section 3): per customer ν ~ Gamma(q, γ) (shape q, rate
//! γ), and each order's value z ~ Gamma(p, ν) (shape p, rate ν).
//!
//! Pure: no IO and no clock; the caller writes the orders out. Same seed,
//! same orders. Must never depend on ingestion, storage or the CLI.

pub mod extras;
pub mod shop;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Beta, Distribution, Exp, Gamma, Uniform};

/// The true parameters of the generating process (time unit: days).
#[derive(Debug, Clone, PartialEq)]
pub struct SynthParams {
    /// BG/NBD: shape and rate of the purchase-rate distribution.
    pub r: f64,
    pub alpha: f64,
    /// BG/NBD: Beta parameters of the drop-out probability.
    pub a: f64,
    pub b: f64,
    /// Gamma-Gamma: shape of an order's value, and the shape and rate of ν.
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl Default for SynthParams {
    /// CDNOW-like values: the BG/NBD estimates of Fader, Hardie & Lee (2005)
    /// (r = 0.243, α = 4.414 per week, a = 0.793, b = 2.426) with α in days,
    /// and their Gamma-Gamma estimates (p = 6.25, q = 3.74, γ = 15.44).
    fn default() -> Self {
        SynthParams {
            r: 0.243,
            alpha: 4.414 * 7.0,
            a: 0.793,
            b: 2.426,
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    #[error("parameter {name} = {value} must be finite and positive")]
    BadParameter { name: &'static str, value: f64 },
    #[error("the period must be at least one day, and acquisition within it")]
    BadPeriod,
}

/// One generated order: `day` and `second` are offsets from the period start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthOrder {
    pub customer: u64,
    pub order: u64,
    pub day: u32,
    pub second: u32,
    pub amount: f64,
}

/// A planted effect on one customer's processes: multipliers of the
/// purchase rate λ, of the drop-out probability p (capped at 1) and of
/// every order's value. The default changes nothing (and draws the same
/// numbers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    pub rate: f64,
    pub dropout: f64,
    pub spend: f64,
}

impl Default for Effect {
    fn default() -> Self {
        Effect {
            rate: 1.0,
            dropout: 1.0,
            spend: 1.0,
        }
    }
}

/// Draws customers one at a time.
pub struct Generator {
    rng: Xoshiro256PlusPlus,
    lambda: Gamma<f64>,
    dropout: Beta<f64>,
    nu: Gamma<f64>,
    spend_shape: f64,
    acquisition: Uniform<f64>,
    period_days: f64,
    next_customer: u64,
    next_order: u64,
}

impl Generator {
    /// Customers make their first purchase uniformly within the first
    /// `acquisition_days` of a period of `period_days`.
    pub fn new(
        params: &SynthParams,
        seed: u64,
        period_days: u32,
        acquisition_days: u32,
    ) -> Result<Self, SynthError> {
        for (name, value) in [
            ("r", params.r),
            ("alpha", params.alpha),
            ("a", params.a),
            ("b", params.b),
            ("p", params.p),
            ("q", params.q),
            ("gamma", params.gamma),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(SynthError::BadParameter { name, value });
            }
        }
        if period_days == 0 || acquisition_days == 0 || acquisition_days > period_days {
            return Err(SynthError::BadPeriod);
        }
        let bad = |name| SynthError::BadParameter {
            name,
            value: f64::NAN,
        };
        Ok(Generator {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            lambda: Gamma::new(params.r, 1.0 / params.alpha).map_err(|_| bad("r"))?,
            dropout: Beta::new(params.a, params.b).map_err(|_| bad("a"))?,
            nu: Gamma::new(params.q, 1.0 / params.gamma).map_err(|_| bad("q"))?,
            spend_shape: params.p,
            acquisition: Uniform::new(0.0, f64::from(acquisition_days))
                .map_err(|_| SynthError::BadPeriod)?,
            period_days: f64::from(period_days),
            next_customer: 1,
            next_order: 1,
        })
    }

    /// The id the next customer will have.
    pub fn next_id(&self) -> u64 {
        self.next_customer
    }

    /// Appends the next customer's orders to `out` (at least one).
    pub fn next_customer(&mut self, out: &mut Vec<SynthOrder>) {
        self.next_customer_with(Effect::default(), out);
    }

    /// The next customer's orders with a planted effect on their purchase
    /// rate, drop-out probability and order values.
    pub fn next_customer_with(&mut self, effect: Effect, out: &mut Vec<SynthOrder>) {
        let customer = self.next_customer;
        self.next_customer += 1;
        let lambda = (self.lambda.sample(&mut self.rng) * effect.rate).max(1e-12);
        let p = (self.dropout.sample(&mut self.rng) * effect.dropout).min(1.0);
        let nu = self.nu.sample(&mut self.rng).max(1e-12);
        let value = Gamma::new(self.spend_shape, effect.spend / nu).ok();
        let gap = Exp::new(lambda).ok();
        let mut t = self.acquisition.sample(&mut self.rng);
        let first_order = self.next_order;
        loop {
            let amount = value.as_ref().map_or(0.0, |g| g.sample(&mut self.rng));
            let day = t.floor();
            out.push(SynthOrder {
                customer,
                order: self.next_order,
                day: day as u32,
                second: ((t - day) * 86_400.0).min(86_399.0) as u32,
                amount: (amount * 100.0).round() / 100.0,
            });
            self.next_order += 1;
            // After each repeat purchase (not the first: FHL 2005, section 2)
            // the customer becomes inactive with probability p.
            let first = self.next_order == first_order + 1;
            if !first && Uniform::new(0.0, 1.0).map_or(true, |u| u.sample(&mut self.rng) < p) {
                break;
            }
            match &gap {
                Some(g) => t += g.sample(&mut self.rng),
                None => break,
            }
            if t >= self.period_days {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_orders() {
        let draw = |seed| {
            let mut g = Generator::new(&SynthParams::default(), seed, 730, 365).unwrap();
            let mut out = Vec::new();
            for _ in 0..200 {
                g.next_customer(&mut out);
            }
            out
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn orders_stay_in_the_period_and_customers_start_in_acquisition() {
        let mut g = Generator::new(&SynthParams::default(), 1, 100, 10).unwrap();
        let mut out = Vec::new();
        for _ in 0..2000 {
            g.next_customer(&mut out);
        }
        assert!(
            out.iter()
                .all(|o| o.day < 100 && o.second < 86_400 && o.amount >= 0.0)
        );
        let mut first = std::collections::HashMap::new();
        for o in &out {
            first.entry(o.customer).or_insert(o.day);
        }
        assert_eq!(first.len(), 2000);
        assert!(first.values().all(|&d| d < 10));
    }

    #[test]
    fn mean_spend_matches_the_gamma_gamma_mean() {
        // E[z] = p γ / (q - 1) (Fader, Hardie & Lee 2005, "RFM and CLV", eq. 4 marginal).
        let params = SynthParams::default();
        let mut g = Generator::new(&params, 3, 730, 365).unwrap();
        let mut out = Vec::new();
        for _ in 0..200_000 {
            g.next_customer(&mut out);
        }
        let mut by_customer: std::collections::HashMap<u64, (f64, f64)> = Default::default();
        for o in &out {
            let e = by_customer.entry(o.customer).or_default();
            e.0 += o.amount;
            e.1 += 1.0;
        }
        // Mean over customers of their first order's value is unbiased for E[z].
        let firsts: Vec<f64> = {
            let mut seen = std::collections::HashSet::new();
            out.iter()
                .filter(|o| seen.insert(o.customer))
                .map(|o| o.amount)
                .collect()
        };
        let mean = firsts.iter().sum::<f64>() / firsts.len() as f64;
        let expected = params.p * params.gamma / (params.q - 1.0);
        assert!(
            (mean - expected).abs() / expected < 0.03,
            "{mean} vs {expected}"
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        let p = SynthParams {
            r: -1.0,
            ..SynthParams::default()
        };
        assert!(Generator::new(&p, 1, 10, 5).is_err());
        assert!(Generator::new(&SynthParams::default(), 1, 10, 20).is_err());
    }
}
