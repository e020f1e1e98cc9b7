//! The distribution of a customer's future purchases, not only its mean:
//! P(X = n) and quantiles of the purchases in the next `t` given the
//! history, their variance, P(alive) at the end of the window, and forecast
//! intervals for totals over many customers that carry both the purchase
//! process's randomness and the uncertainty of the fitted parameters
//! (delta method on the observed-information covariance).
//!
//! Given the history (x, t_x, T), a customer is alive at T with probability
//! π = P(alive); if alive, the posterior of the purchase rate is λ ~
//! Gamma(r+x, α+T) and, independently, that of the drop-out probability is
//! p ~ Beta(a, b+x) (BG/NBD; b+x+1 for the MBG/NBD, whose customers may also
//! leave at their first purchase) or that of the drop-out rate μ ~ Gamma(s,
//! β+T) (Pareto/NBD). A customer alive at T then behaves like a new customer
//! with those parameters, so for BG/NBD-type models
//! P(X ≥ k | alive) = P(N(t) ≥ k) · E[(1−p)^{k−1}], N(t) a negative binomial
//! count (Fader, Hardie & Lee 2005, eq. 8 and its conditional form); the
//! Pareto/NBD counts purchases in min(τ, t), τ the (Lomax-distributed)
//! remaining lifetime, integrated by Gauss-Legendre quadrature.

use crate::{BgNbd, MbgNbd, ModelError, Observation, ParetoNbd};

/// A purchase model whose future purchases can be described per customer.
pub trait PurchaseModel: Sized + Sync {
    /// `[r, alpha, a, b]` or `[r, alpha, s, beta]`.
    fn parameters(&self) -> [f64; 4];
    fn with_parameters(p: [f64; 4]) -> Result<Self, ModelError>;
    /// Expected purchases in the next `t` given the history.
    fn expected(&self, t: f64, x: f64, t_x: f64, t_big: f64) -> Result<f64, ModelError>;
    /// The distribution of the purchases in the next `t` given the history.
    fn future(&self, t: f64, x: f64, t_x: f64, t_big: f64) -> Result<FuturePurchases, ModelError>;
    /// E[purchases in the next `t` | history, alive at T]: a function of x
    /// and T only, so callers can share it between customers (the
    /// conditional expectation is this times P(alive)).
    fn expected_if_alive(&self, t: f64, x: f64, t_big: f64) -> Result<f64, ModelError>;
    /// P(alive at T | history).
    fn alive(&self, x: f64, t_x: f64, t_big: f64) -> f64;
    /// (E[X], E[X²]) of the purchases in the next `t` if alive at T (x and T
    /// only).
    fn moments_if_alive(&self, t: f64, x: f64, t_big: f64) -> Result<(f64, f64), ModelError> {
        let t_x = if x > 0.0 { t_big } else { 0.0 };
        let f = self.future(t, x, t_x, t_big)?;
        Ok((f.mean_alive, f.second_alive))
    }
    /// P(X(t) = n) and the rest for a customer who has just made their
    /// first purchase (no history: x = t_x = T = 0).
    fn new_customer(&self, t: f64) -> Result<FuturePurchases, ModelError> {
        self.future(t, 0.0, 0.0, 0.0)
    }
    /// ln P(x purchases, the last at t_x, none in (t_x, T]).
    fn history_log_likelihood(&self, x: f64, t_x: f64, t_big: f64) -> f64;

    /// P(no purchase in the next `t` | history) = L(x, t_x, T+t) / L(x,
    /// t_x, T): the same event as observing the history for longer.
    fn no_purchase(&self, t: f64, x: f64, t_x: f64, t_big: f64) -> f64 {
        if t <= 0.0 {
            return 1.0;
        }
        let ratio = self.history_log_likelihood(x, t_x, t_big + t)
            - self.history_log_likelihood(x, t_x, t_big);
        ratio.exp().clamp(0.0, 1.0)
    }

    /// Discounted expected residual transactions: ∫_0^∞ e^{−δt} dE[X(T,
    /// T+t)] = δ ∫_0^∞ e^{−δt} E[X(T, T+t) | history] dt, with continuous
    /// discount rate `delta` per time unit. By quadrature (t = w/(δ(1−w)),
    /// 64 Gauss-Legendre nodes on w ∈ (0, 1), ~1e-14 relative) unless the
    /// model has a closed form (the Pareto/NBD's, Fader, Hardie & Lee 2005).
    fn dert(&self, delta: f64, x: f64, t_x: f64, t_big: f64) -> Result<f64, ModelError> {
        dert_by_quadrature(self, delta, x, t_x, t_big)
    }

    /// The time from T by which the next purchase has happened with
    /// probability `q` (0.5: the median time to the next purchase); `None`
    /// when the probability of ever buying again is not above `q` (a
    /// customer who has probably left has no finite median).
    fn next_purchase_quantile(&self, q: f64, x: f64, t_x: f64, t_big: f64) -> Option<f64> {
        let target = 1.0 - q;
        let scale = t_big.max(1.0);
        let mut hi = scale;
        while self.no_purchase(hi, x, t_x, t_big) > target {
            hi *= 2.0;
            if hi > scale * 1e9 {
                return None;
            }
        }
        let mut lo = 0.0;
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if self.no_purchase(mid, x, t_x, t_big) > target {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo <= 1e-12 * hi {
                break;
            }
        }
        Some(0.5 * (lo + hi))
    }
}

/// The purchases of one customer in the next `t`, given their history.
#[derive(Debug, Clone, PartialEq)]
pub struct FuturePurchases {
    /// P(alive at T).
    pub p_alive: f64,
    /// `at_least[k-1]` = P(X ≥ k | alive at T), for k = 1, 2, … until the
    /// tail is below 1e-13.
    pub at_least: Vec<f64>,
    /// E[X | alive] and E[X² | alive].
    mean_alive: f64,
    second_alive: f64,
    /// P(alive at T + t | alive at T).
    survive_alive: f64,
}

impl FuturePurchases {
    /// E[X].
    pub fn mean(&self) -> f64 {
        self.p_alive * self.mean_alive
    }

    /// Var[X].
    pub fn variance(&self) -> f64 {
        let m = self.mean();
        (self.p_alive * self.second_alive - m * m).max(0.0)
    }

    /// P(X = n).
    pub fn probability(&self, n: usize) -> f64 {
        let at_least = |k: usize| match k {
            0 => 1.0,
            k => self.p_alive * self.at_least.get(k - 1).copied().unwrap_or(0.0),
        };
        (at_least(n) - at_least(n + 1)).max(0.0)
    }

    /// The smallest n with P(X ≤ n) ≥ q.
    pub fn quantile(&self, q: f64) -> usize {
        // P(X ≤ n) = 1 − π P(X ≥ n+1 | alive).
        self.at_least
            .iter()
            .position(|&s| 1.0 - self.p_alive * s >= q)
            .unwrap_or(self.at_least.len())
    }

    /// P(still alive at the end of the window), given the history (and not
    /// given the window's purchases).
    pub fn p_alive_at_end(&self) -> f64 {
        self.p_alive * self.survive_alive
    }
}

/// Terms below this are the end of a tail.
const TAIL: f64 = 1e-13;
/// No customer's window holds more purchases than this.
const MAX_TERMS: usize = 1_000_000;

/// The negative binomial count of a Gamma(shape, rate)-mixed Poisson process
/// over a window `w`: calls `f(k, P(N ≥ k), P(N = k−1))` for k = 1, 2, …
/// until P(N ≥ k) and the caller's term are negligible.
fn nbd_tail(
    shape: f64,
    rate: f64,
    w: f64,
    mut f: impl FnMut(usize, f64, f64) -> f64,
) -> Result<(), ModelError> {
    let q = w / (rate + w);
    let mut pmf = (shape * (rate / (rate + w)).ln()).exp(); // P(N = 0)
    let mut cdf = pmf;
    for k in 1..MAX_TERMS {
        let survival = (1.0 - cdf).max(0.0);
        let term = f(k, survival, pmf);
        if survival < TAIL && term.abs() < TAIL && k as f64 > shape * q / (1.0 - q) {
            return Ok(());
        }
        pmf *= (shape + (k - 1) as f64) / k as f64 * q;
        cdf += pmf;
    }
    Err(ModelError::Numerical(format!(
        "the purchase distribution needs more than {MAX_TERMS} terms (rate shape {shape}, window {w})"
    )))
}

/// BG/NBD-type: alive customers with λ ~ Gamma(shape, rate) and p ~ Beta(a, b).
fn beta_geometric_future(
    p_alive: f64,
    shape: f64,
    rate: f64,
    a: f64,
    b: f64,
    t: f64,
) -> Result<FuturePurchases, ModelError> {
    let mut at_least = Vec::new();
    let (mut mean, mut second, mut survive) = (0.0, 0.0, 0.0);
    // c_k = E[(1−p)^{k−1}] = B(a, b+k−1)/B(a, b).
    let mut c = 1.0;
    nbd_tail(shape, rate, t, |k, survival, pmf_before| {
        // P(alive at the end) = Σ_n P(N = n) E[(1−p)^n] = Σ_k P(N = k−1) c_k.
        survive += pmf_before * c;
        let term = survival * c;
        at_least.push(term);
        mean += term;
        second += (2 * k - 1) as f64 * term;
        c *= (b + (k - 1) as f64) / (a + b + (k - 1) as f64);
        term.max(pmf_before * c)
    })?;
    trim(&mut at_least);
    Ok(FuturePurchases {
        p_alive,
        at_least,
        mean_alive: mean,
        second_alive: second,
        survive_alive: survive.min(1.0),
    })
}

fn trim(at_least: &mut Vec<f64>) {
    while at_least.last().is_some_and(|&s| s < TAIL) {
        at_least.pop();
    }
}

/// The BG/NBD and MBG/NBD share everything but the drop-out posterior:
/// alive at T, p ~ Beta(a, b + x + `$extra`) (the MBG/NBD's customers also
/// had a chance to leave at their first purchase).
macro_rules! beta_geometric_model {
    ($model:ident, $extra:expr) => {
        impl PurchaseModel for $model {
            fn parameters(&self) -> [f64; 4] {
                self.params()
            }
            fn expected_if_alive(&self, t: f64, x: f64, t_big: f64) -> Result<f64, ModelError> {
                $model::expected_if_alive(self, t, x, t_big)
            }
            fn alive(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
                self.p_alive(x, t_x, t_big)
            }
            /// Alive customers buy again after a Lomax(r+x, α+T) wait, so
            /// P(next purchase by t) = P(alive)·[1 − ((α+T)/(α+T+t))^{r+x}]:
            /// closed form.
            fn next_purchase_quantile(&self, q: f64, x: f64, t_x: f64, t_big: f64) -> Option<f64> {
                let [r, alpha, _, _] = self.params();
                let p_alive = self.p_alive(x, t_x, t_big);
                (q < p_alive && q > 0.0)
                    .then(|| (alpha + t_big) * ((-(1.0 - q / p_alive).ln() / (r + x)).exp_m1()))
            }
            fn history_log_likelihood(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
                self.log_likelihood(x, t_x, t_big)
            }
            fn with_parameters(p: [f64; 4]) -> Result<Self, ModelError> {
                $model::new(p[0], p[1], p[2], p[3])
            }
            fn expected(&self, t: f64, x: f64, t_x: f64, t_big: f64) -> Result<f64, ModelError> {
                self.conditional_expected_purchases(t, x, t_x, t_big)
            }
            fn future(
                &self,
                t: f64,
                x: f64,
                t_x: f64,
                t_big: f64,
            ) -> Result<FuturePurchases, ModelError> {
                Observation::new(x, t_x, t_big).check(0)?;
                let [r, alpha, a, b] = self.params();
                beta_geometric_future(
                    self.p_alive(x, t_x, t_big),
                    r + x,
                    alpha + t_big,
                    a,
                    b + x + $extra,
                    t,
                )
            }
        }
    };
}

beta_geometric_model!(BgNbd, 0.0);
beta_geometric_model!(MbgNbd, 1.0);

/// expm1(c ℓ)/c, continuous at c = 0.
fn expm1_over(c: f64, l: f64) -> f64 {
    if (c * l).abs() < 1e-8 {
        l * (1.0 + 0.5 * c * l)
    } else {
        (c * l).exp_m1() / c
    }
}

/// Gauss-Legendre nodes and weights on [−1, 1] (Newton on the Legendre
/// recurrence; Golub-Welsch would do too for this size).
fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(n);
    let nf = n as f64;
    for i in 1..=n {
        let mut z = (std::f64::consts::PI * (i as f64 - 0.25) / (nf + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, z);
            for k in 2..=n {
                let kf = k as f64;
                let p2 = ((2.0 * kf - 1.0) * z * p1 - (kf - 1.0) * p0) / kf;
                p0 = p1;
                p1 = p2;
            }
            derivative = nf * (z * p1 - p0) / (z * z - 1.0);
            let step = p1 / derivative;
            z -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        out.push((z, 2.0 / ((1.0 - z * z) * derivative * derivative)));
    }
    out
}

/// (E[X], E[X²]) for a Gamma(shape, rate)-mixed Poisson count over
/// L = min(τ, t), P(τ > u) = (B/(B+u))^s.
fn pareto_moments(shape: f64, rate: f64, s: f64, big_b: f64, t: f64) -> (f64, f64) {
    let l = (t / big_b).ln_1p();
    let e_l = big_b * expm1_over(1.0 - s, l);
    let e_l2 = 2.0 * big_b * big_b * (expm1_over(2.0 - s, l) - expm1_over(1.0 - s, l));
    let e_lambda = shape / rate;
    let e_lambda2 = shape * (shape + 1.0) / (rate * rate);
    (e_lambda * e_l, e_lambda * e_l + e_lambda2 * e_l2)
}

/// Quadrature nodes for the Pareto/NBD lifetime integral.
const PARETO_NODES: usize = 48;

impl PurchaseModel for ParetoNbd {
    fn parameters(&self) -> [f64; 4] {
        self.params()
    }
    fn moments_if_alive(&self, t: f64, x: f64, t_big: f64) -> Result<(f64, f64), ModelError> {
        let [r, alpha, s, beta] = self.params();
        Ok(pareto_moments(r + x, alpha + t_big, s, beta + t_big, t))
    }
    fn expected_if_alive(&self, t: f64, x: f64, t_big: f64) -> Result<f64, ModelError> {
        Ok(ParetoNbd::expected_if_alive(self, t, x, t_big))
    }
    fn alive(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        self.p_alive(x, t_x, t_big)
    }
    /// FHL 2005 (JMR), eq. 2, as P(alive)·E[λ | alive]·∫e^{−δt}P(τ > t)dt
    /// = P(alive)·(r+x)/(α+T)·(β+T)·e^z E_s(z), z = δ(β+T).
    fn dert(&self, delta: f64, x: f64, t_x: f64, t_big: f64) -> Result<f64, ModelError> {
        Observation::new(x, t_x, t_big).check(0)?;
        let [r, alpha, s, beta] = self.params();
        let z = delta * (beta + t_big);
        let e = crate::special::exp_scaled_en(s, z).ok_or(ModelError::BadParameter {
            name: "discount rate",
            value: delta,
        })?;
        Ok(self.p_alive(x, t_x, t_big) * (r + x) / (alpha + t_big) * (beta + t_big) * e)
    }
    fn history_log_likelihood(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        self.log_likelihood(x, t_x, t_big)
    }
    fn with_parameters(p: [f64; 4]) -> Result<Self, ModelError> {
        ParetoNbd::new(p[0], p[1], p[2], p[3])
    }
    fn expected(&self, t: f64, x: f64, t_x: f64, t_big: f64) -> Result<f64, ModelError> {
        self.conditional_expected_purchases(t, x, t_x, t_big)
    }
    /// Alive at T, the remaining lifetime τ has P(τ > u) = (B/(B+u))^s with
    /// B = β+T; purchases are a Gamma(r+x, α+T)-mixed Poisson count over
    /// L = min(τ, t). Moments in closed form: E[L] = B·(e^{(1−s)ℓ}−1)/(1−s),
    /// E[L²] = 2B²[(e^{(2−s)ℓ}−1)/(2−s) − (e^{(1−s)ℓ}−1)/(1−s)], ℓ = ln(1+t/B);
    /// P(X ≥ k) integrates the count's tail over τ (v = ln(1+u/B) makes the
    /// lifetime density s·e^{−sv}).
    fn future(&self, t: f64, x: f64, t_x: f64, t_big: f64) -> Result<FuturePurchases, ModelError> {
        Observation::new(x, t_x, t_big).check(0)?;
        let [r, alpha, s, beta] = self.params();
        let (shape, rate, big_b) = (r + x, alpha + t_big, beta + t_big);
        let l = (t / big_b).ln_1p();
        let (mean_alive, second_alive) = pareto_moments(shape, rate, s, big_b, t);
        let survive = (-s * l).exp();
        // Tail: the window's end carries P(τ > t); the nodes the rest.
        let mut at_least: Vec<f64> = Vec::new();
        let mut add = |weight: f64, w: f64| {
            nbd_tail(shape, rate, w, |k, survival, _| {
                if at_least.len() < k {
                    at_least.push(0.0);
                }
                at_least[k - 1] += weight * survival;
                weight * survival
            })
        };
        if t > 0.0 {
            add(survive, t)?;
            for (z, wt) in gauss_legendre(PARETO_NODES) {
                let v = 0.5 * l * (z + 1.0);
                let weight = 0.5 * l * wt * s * (-s * v).exp();
                add(weight, big_b * v.exp_m1())?;
            }
        }
        trim(&mut at_least);
        Ok(FuturePurchases {
            p_alive: self.p_alive(x, t_x, t_big),
            at_least,
            mean_alive,
            second_alive,
            survive_alive: survive,
        })
    }
}

/// Nodes of the DERT quadrature.
const DERT_NODES: usize = 64;

/// DERT by quadrature of δ ∫ e^{−δt} E[X(T, T+t)] dt for any model.
pub fn dert_by_quadrature<M: PurchaseModel>(
    model: &M,
    delta: f64,
    x: f64,
    t_x: f64,
    t_big: f64,
) -> Result<f64, ModelError> {
    if !(delta.is_finite() && delta > 0.0) {
        return Err(ModelError::BadParameter {
            name: "discount rate",
            value: delta,
        });
    }
    let mut total = 0.0;
    for (z, weight) in gauss_legendre(DERT_NODES) {
        let w = 0.5 * (z + 1.0);
        let t = w / (delta * (1.0 - w));
        let ce = model.expected(t, x, t_x, t_big)?;
        total += 0.5 * weight * (-w / (1.0 - w)).exp() * ce / ((1.0 - w) * (1.0 - w));
    }
    Ok(total)
}

/// A forecast of total purchases over a group of customers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub mean: f64,
    /// From the purchase process (customers independent given the parameters).
    pub process_sd: f64,
    /// From the parameters' sampling uncertainty (delta method).
    pub parameter_sd: f64,
}

impl Forecast {
    pub fn sd(&self) -> f64 {
        self.process_sd.hypot(self.parameter_sd)
    }

    /// Central interval at `level` (e.g. 0.9), normal approximation.
    pub fn interval(&self, level: f64) -> (f64, f64) {
        let z = normal_quantile(0.5 + level / 2.0);
        (
            (self.mean - z * self.sd()).max(0.0),
            self.mean + z * self.sd(),
        )
    }
}

/// The standard normal quantile.
pub fn normal_quantile(p: f64) -> f64 {
    std::f64::consts::SQRT_2 * statrs::function::erf::erf_inv(2.0 * p - 1.0)
}

/// Gradient of `f` with respect to the model's parameters (central
/// differences with relative steps).
fn parameter_gradient<M: PurchaseModel>(
    model: &M,
    f: impl Fn(&M) -> Result<f64, ModelError>,
) -> Result<[f64; 4], ModelError> {
    let p = model.parameters();
    let mut g = [0.0; 4];
    for j in 0..4 {
        let h = 1e-5 * p[j];
        let (mut up, mut down) = (p, p);
        up[j] += h;
        down[j] -= h;
        g[j] = (f(&M::with_parameters(up)?)? - f(&M::with_parameters(down)?)?) / (2.0 * h);
    }
    Ok(g)
}

fn quadratic_form(g: &[f64; 4], covariance: &[Vec<f64>]) -> f64 {
    let mut v = 0.0;
    for i in 0..4 {
        for j in 0..4 {
            v += g[i]
                * g[j]
                * covariance
                    .get(i)
                    .and_then(|r| r.get(j))
                    .copied()
                    .unwrap_or(0.0);
        }
    }
    v.max(0.0)
}

/// The total purchases of `customers` (with their weights) in the next `t`:
/// mean, process spread, and, given the parameters' covariance, the spread
/// from not knowing the parameters exactly.
pub fn forecast_total<M: PurchaseModel>(
    model: &M,
    covariance: Option<&[Vec<f64>]>,
    t: f64,
    customers: &[Observation],
) -> Result<Forecast, ModelError> {
    // What depends on (x, T) only is computed once per pair.
    let (pairs, pair_of) = distinct_pairs(customers);
    let moments: Vec<(f64, f64)> = pairs
        .iter()
        .map(|&(x, tt)| model.moments_if_alive(t, x, tt))
        .collect::<Result<_, _>>()?;
    let (mean, [variance]) = crate::fit::parallel_sum(customers, |start, chunk| {
        let (mut mean, mut variance) = (0.0, 0.0);
        for (k, o) in chunk.iter().enumerate() {
            let p = model.alive(o.x, o.t_x, o.t_big);
            let (m1, m2) = moments[pair_of[start + k]];
            let m = p * m1;
            mean += o.weight * m;
            variance += o.weight * (p * m2 - m * m).max(0.0);
        }
        (mean, [variance])
    });
    let parameter_sd = match covariance {
        Some(cov) => {
            let total = |m: &M| -> Result<f64, ModelError> {
                let alive: Vec<f64> = pairs
                    .iter()
                    .map(|&(x, tt)| m.expected_if_alive(t, x, tt))
                    .collect::<Result<_, _>>()?;
                let (total, []) = crate::fit::parallel_sum(customers, |start, chunk| {
                    let total = chunk
                        .iter()
                        .enumerate()
                        .map(|(k, o)| {
                            o.weight * m.alive(o.x, o.t_x, o.t_big) * alive[pair_of[start + k]]
                        })
                        .sum::<f64>();
                    (total, [])
                });
                Ok(total)
            };
            quadratic_form(&parameter_gradient(model, total)?, cov).sqrt()
        }
        None => 0.0,
    };
    Ok(Forecast {
        mean,
        process_sd: variance.sqrt(),
        parameter_sd,
    })
}

/// Distinct (x, T) pairs and each customer's index into them.
fn distinct_pairs(customers: &[Observation]) -> (Vec<(f64, f64)>, Vec<usize>) {
    let mut seen: crate::FastMap<[u64; 2], usize> = crate::FastMap::default();
    let mut pairs = Vec::new();
    let index = customers
        .iter()
        .map(|o| {
            *seen
                .entry([o.x.to_bits(), o.t_big.to_bits()])
                .or_insert_with(|| {
                    pairs.push((o.x, o.t_big));
                    pairs.len() - 1
                })
        })
        .collect();
    (pairs, index)
}

/// Standard error of one customer's expected purchases in the next `t`
/// from the parameters' covariance (delta method).
pub fn expected_purchases_se<M: PurchaseModel>(
    model: &M,
    covariance: &[Vec<f64>],
    t: f64,
    o: &Observation,
) -> Result<f64, ModelError> {
    let g = parameter_gradient(model, |m| m.expected(t, o.x, o.t_x, o.t_big))?;
    Ok(quadratic_form(&g, covariance).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        let nodes = gauss_legendre(10);
        let total: f64 = nodes.iter().map(|(_, w)| w).sum();
        assert!((total - 2.0).abs() < 1e-14);
        let x18: f64 = nodes.iter().map(|(z, w)| w * z.powi(18)).sum();
        assert!((x18 - 2.0 / 19.0).abs() < 1e-14, "{x18}");
    }

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.95) - 1.6448536269514722).abs() < 1e-12);
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-12);
    }
}
