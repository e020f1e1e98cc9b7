//! Per-customer value from fitted models: P(alive), expected purchases over
//! a horizon, expected order value, discounted CLV (net of acquisition cost
//! when known), the median time to the next order, the value-decline flag,
//! and optional intervals. Shared by `predict` and `analyze --clv`.
//!
//! Everything that depends only on a customer's (x, t_x, T) is computed
//! once per distinct history ([`Outlooks`]): customers measured in whole
//! days share histories, so this is a fraction of the customers.

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

use anyhow::Result;
use lifecycle_models::{
    BgNbd, Forecast, FuturePurchases, GammaGamma, MbgNbd, Observation, ParetoNbd, PurchaseModel,
    expected_purchases_se, forecast_total, normal_quantile,
};

/// The fitted purchase model, whatever its kind.
pub enum Purchase {
    Bg(BgNbd),
    Mbg(MbgNbd),
    Pareto(ParetoNbd),
}

/// Runs `$body` with `$m` bound to the concrete model.
macro_rules! with_model {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            Purchase::Bg($m) => $body,
            Purchase::Mbg($m) => $body,
            Purchase::Pareto($m) => $body,
        }
    };
}

impl Purchase {
    pub fn conditional(&self, t: f64, x: f64, t_x: f64, t_big: f64) -> Result<f64> {
        Ok(with_model!(self, m => m.expected(t, x, t_x, t_big)?))
    }
    pub fn expected_if_alive(&self, t: f64, x: f64, t_big: f64) -> Result<f64> {
        Ok(with_model!(self, m => m.expected_if_alive(t, x, t_big)?))
    }
    pub fn p_alive(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        with_model!(self, m => m.p_alive(x, t_x, t_big))
    }
    pub fn unconditional(&self, t: f64) -> Result<f64> {
        Ok(match self {
            Purchase::Bg(m) => m.expected_purchases(t)?,
            Purchase::Mbg(m) => m.expected_purchases(t)?,
            Purchase::Pareto(m) => m.expected_purchases(t),
        })
    }
    pub fn params(&self) -> [f64; 4] {
        with_model!(self, m => m.params())
    }
    pub fn future(&self, t: f64, o: &Observation) -> Result<FuturePurchases> {
        Ok(with_model!(self, m => m.future(t, o.x, o.t_x, o.t_big)?))
    }
    /// A customer who has just made their first purchase: E[X(t)], P(X(t) = n).
    pub fn new_customer(&self, t: f64) -> Result<FuturePurchases> {
        Ok(with_model!(self, m => m.new_customer(t)?))
    }
    /// Median time to the next purchase, `None` if it is more likely never.
    pub fn next_purchase(&self, o: &Observation) -> Option<f64> {
        with_model!(self, m => m.next_purchase_quantile(0.5, o.x, o.t_x, o.t_big))
    }
    /// Discounted expected residual transactions at continuous rate `delta`.
    pub fn dert(&self, delta: f64, o: &Observation) -> Result<f64> {
        Ok(with_model!(self, m => m.dert(delta, o.x, o.t_x, o.t_big)?))
    }
    pub fn expected_se(&self, covariance: &[Vec<f64>], t: f64, o: &Observation) -> Result<f64> {
        Ok(with_model!(self, m => expected_purchases_se(m, covariance, t, o)?))
    }
    /// Total purchases of `customers` in the next `t`, with its spread.
    pub fn forecast(
        &self,
        covariance: Option<&[Vec<f64>]>,
        t: f64,
        customers: &[Observation],
    ) -> Result<Forecast> {
        Ok(with_model!(self, m => forecast_total(m, covariance, t, customers)?))
    }
}

/// How value is computed.
#[derive(Debug, Clone, Copy)]
pub struct ValueConfig {
    /// Horizon in the model's time unit.
    pub horizon: f64,
    /// Length of the model's time unit in days.
    pub unit_days: f64,
    pub margin: f64,
    /// Annual.
    pub discount_rate: f64,
    pub decline_threshold: f64,
}

/// What depends only on a customer's history (x, t_x, T).
#[derive(Debug, Clone, Copy)]
pub struct Outlook {
    pub p_alive: f64,
    /// Expected purchases over the horizon.
    pub expected: f64,
    /// The same, each month's purchases discounted to today.
    pub discounted: f64,
    /// Median time to the next purchase in model units, `None` when the
    /// customer more likely never buys again.
    pub next_purchase: Option<f64>,
    pub spread: Option<Spread>,
    /// Discounted expected purchases over the whole remaining lifetime.
    pub dert: Option<f64>,
}

/// Intervals at the requested level.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Central prediction interval of the purchases over the horizon.
    pub purchases: (usize, usize),
    /// Standard error of the expected purchases from the parameters'
    /// uncertainty (delta method).
    pub expected_se: f64,
    /// P(alive at the end of the horizon).
    pub p_alive_end: f64,
}

/// Outlooks per distinct history.
pub struct Outlooks<'a> {
    model: &'a Purchase,
    cfg: ValueConfig,
    covariance: Option<&'a [Vec<f64>]>,
    level: Option<f64>,
    /// Continuous discount rate per time unit for DERT, when wanted.
    lifetime: Option<f64>,
    cache: HashMap<[u64; 3], Outlook>,
    /// (expected, discounted) purchases if alive, by (x, T).
    if_alive: HashMap<[u64; 2], (f64, f64)>,
}

impl<'a> Outlooks<'a> {
    /// With `level` (e.g. 0.9), outlooks carry intervals; they need the
    /// parameters' covariance for the parameter part.
    pub fn new(
        model: &'a Purchase,
        cfg: ValueConfig,
        covariance: Option<&'a [Vec<f64>]>,
        level: Option<f64>,
    ) -> Self {
        Outlooks {
            model,
            cfg,
            covariance,
            level,
            lifetime: None,
            cache: HashMap::default(),
            if_alive: HashMap::default(),
        }
    }

    /// Also compute the value of the whole remaining lifetime (DERT),
    /// discounted continuously at the annual rate of the configuration.
    pub fn with_lifetime(mut self) -> Self {
        let per_year = 365.25 / self.cfg.unit_days;
        self.lifetime = Some((1.0 + self.cfg.discount_rate).ln() / per_year);
        self
    }

    pub fn get(&mut self, o: &Observation) -> Result<Outlook> {
        let key = [o.x.to_bits(), o.t_x.to_bits(), o.t_big.to_bits()];
        if let Some(v) = self.cache.get(&key) {
            return Ok(*v);
        }
        let v = self.compute(o)?;
        self.cache.insert(key, v);
        Ok(v)
    }

    /// Expected purchases over the horizon and their discounted sum (each
    /// month's increment discounted at the annual rate), if alive at T.
    fn if_alive(&mut self, x: f64, t_big: f64) -> Result<(f64, f64)> {
        let key = [x.to_bits(), t_big.to_bits()];
        if let Some(v) = self.if_alive.get(&key) {
            return Ok(*v);
        }
        let (model, cfg) = (self.model, &self.cfg);
        let step = (365.25 / 12.0) / cfg.unit_days;
        let steps = (cfg.horizon / step).ceil().max(1.0) as usize;
        let (mut discounted, mut previous) = (0.0, 0.0);
        for k in 1..=steps {
            let t = (k as f64 * step).min(cfg.horizon);
            let cumulative = model.expected_if_alive(t, x, t_big)?;
            let years = t * cfg.unit_days / 365.25;
            discounted += (cumulative - previous) / (1.0 + cfg.discount_rate).powf(years);
            previous = cumulative;
        }
        self.if_alive.insert(key, (previous, discounted));
        Ok((previous, discounted))
    }

    fn compute(&mut self, o: &Observation) -> Result<Outlook> {
        let (expected_alive, discounted_alive) = self.if_alive(o.x, o.t_big)?;
        let (model, cfg) = (self.model, &self.cfg);
        let p_alive = model.p_alive(o.x, o.t_x, o.t_big);
        let (expected, discounted) = (p_alive * expected_alive, p_alive * discounted_alive);
        let spread = match self.level {
            Some(level) => {
                let f = model.future(cfg.horizon, o)?;
                let tail = (1.0 - level) / 2.0;
                let expected_se = match self.covariance {
                    Some(c) => model.expected_se(c, cfg.horizon, o)?,
                    None => 0.0,
                };
                Some(Spread {
                    purchases: (f.quantile(tail), f.quantile(1.0 - tail)),
                    expected_se,
                    p_alive_end: f.p_alive_at_end(),
                })
            }
            None => None,
        };
        Ok(Outlook {
            p_alive,
            expected,
            discounted,
            next_purchase: model.next_purchase(o),
            spread,
            dert: match self.lifetime {
                Some(delta) => Some(model.dert(delta, o)?),
                None => None,
            },
        })
    }
}

/// One customer's predicted value.
#[derive(Debug, Clone, Copy)]
pub struct CustomerValue {
    pub p_alive: f64,
    pub expected_purchases: f64,
    pub order_value: f64,
    pub clv: f64,
    /// Repeat purchases per time unit so far; `None` without repeat purchases.
    pub historical_rate: Option<f64>,
    pub predicted_rate: f64,
    pub value_decline: bool,
    /// CLV interval from the purchase model's parameter uncertainty.
    pub clv_interval: Option<(f64, f64)>,
    /// Expected margin of the whole remaining lifetime, discounted.
    pub residual_clv: Option<f64>,
}

/// CLV is the expected margin of the purchases of each month of the
/// horizon, discounted at the annual rate; value decline flags a predicted
/// purchase rate below (1 − threshold) of the customer's own rate so far.
/// The CLV interval scales CLV by the relative standard error of the
/// expected purchases (the spend model's own uncertainty is not included).
pub fn customer_value(
    out: &Outlook,
    gg: Option<&GammaGamma>,
    o: &Observation,
    repeat_mean_value: f64,
    avg_order_value: f64,
    cfg: &ValueConfig,
    level: Option<f64>,
) -> CustomerValue {
    let order_value = match gg {
        Some(g) => g.conditional_expected_value(o.x, repeat_mean_value),
        None => avg_order_value,
    };
    let clv = cfg.margin * order_value * out.discounted;
    let historical_rate = (o.t_big > 0.0 && o.x > 0.0).then(|| o.x / o.t_big);
    let predicted_rate = out.expected / cfg.horizon;
    let clv_interval = match (out.spread, level) {
        (Some(s), Some(level)) if out.expected > 0.0 => {
            let z = normal_quantile(0.5 + level / 2.0);
            let rel = z * s.expected_se / out.expected;
            Some(((clv * (1.0 - rel)).max(0.0), clv * (1.0 + rel)))
        }
        (Some(_), Some(_)) => Some((0.0, 0.0)),
        _ => None,
    };
    CustomerValue {
        p_alive: out.p_alive,
        expected_purchases: out.expected,
        order_value,
        clv,
        historical_rate,
        predicted_rate,
        value_decline: historical_rate
            .is_some_and(|h| predicted_rate < (1.0 - cfg.decline_threshold) * h),
        clv_interval,
        residual_clv: out.dert.map(|d| cfg.margin * order_value * d),
    }
}

/// The tracking chart's points for `customers` under `model`
/// ([`lifecycle_engine::tracking`]; `by_day`: repeat purchases by day).
/// `None` without customers.
pub fn tracking<'s>(
    customers: impl IntoIterator<Item = &'s lifecycle_rfm::CustomerSummary>,
    model: &Purchase,
    last: lifecycle_rfm::Day,
    unit_days: f64,
    by_day: &std::collections::BTreeMap<lifecycle_rfm::Day, u64>,
) -> Result<Option<Vec<(usize, f64, f64)>>> {
    let mut firsts: std::collections::BTreeMap<lifecycle_rfm::Day, f64> =
        std::collections::BTreeMap::new();
    for s in customers {
        if let Some(f) = s.first_order {
            *firsts.entry(f).or_default() += 1.0;
        }
    }
    lifecycle_engine::tracking(&firsts, by_day, last, unit_days, |t| model.unconditional(t))
}
