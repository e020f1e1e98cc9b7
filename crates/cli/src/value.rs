//! Per-customer value from fitted models: P(alive), expected purchases over
//! a horizon, expected order value, discounted CLV and the value-decline
//! flag. Shared by `predict` and `analyze --clv`.

use anyhow::Result;
use lifecycle_models::{BgNbd, GammaGamma, MbgNbd, Observation, ParetoNbd};

/// The fitted purchase model, whatever its kind.
pub enum Purchase {
    Bg(BgNbd),
    Mbg(MbgNbd),
    Pareto(ParetoNbd),
}

impl Purchase {
    pub fn conditional(&self, t: f64, x: f64, t_x: f64, t_big: f64) -> Result<f64> {
        Ok(match self {
            Purchase::Bg(m) => m.conditional_expected_purchases(t, x, t_x, t_big)?,
            Purchase::Mbg(m) => m.conditional_expected_purchases(t, x, t_x, t_big)?,
            Purchase::Pareto(m) => m.conditional_expected_purchases(t, x, t_x, t_big)?,
        })
    }
    pub fn p_alive(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        match self {
            Purchase::Bg(m) => m.p_alive(x, t_x, t_big),
            Purchase::Mbg(m) => m.p_alive(x, t_x, t_big),
            Purchase::Pareto(m) => m.p_alive(x, t_x, t_big),
        }
    }
    pub fn unconditional(&self, t: f64) -> Result<f64> {
        Ok(match self {
            Purchase::Bg(m) => m.expected_purchases(t)?,
            Purchase::Mbg(m) => m.expected_purchases(t)?,
            Purchase::Pareto(m) => m.expected_purchases(t),
        })
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
}

/// CLV is the expected margin of the purchases of each month of the
/// horizon, discounted at the annual rate; value decline flags a predicted
/// purchase rate below (1 − threshold) of the customer's own rate so far.
pub fn customer_value(
    model: &Purchase,
    gg: Option<&GammaGamma>,
    o: &Observation,
    repeat_mean_value: f64,
    avg_order_value: f64,
    cfg: &ValueConfig,
) -> Result<CustomerValue> {
    let expected = model.conditional(cfg.horizon, o.x, o.t_x, o.t_big)?;
    let order_value = match gg {
        Some(g) => g.conditional_expected_value(o.x, repeat_mean_value),
        None => avg_order_value,
    };
    let step = (365.25 / 12.0) / cfg.unit_days;
    let steps = (cfg.horizon / step).ceil().max(1.0) as usize;
    let mut clv = 0.0;
    let mut previous = 0.0;
    for k in 1..=steps {
        let t = (k as f64 * step).min(cfg.horizon);
        let cumulative = if k == steps {
            expected
        } else {
            model.conditional(t, o.x, o.t_x, o.t_big)?
        };
        let years = t * cfg.unit_days / 365.25;
        clv += cfg.margin * order_value * (cumulative - previous)
            / (1.0 + cfg.discount_rate).powf(years);
        previous = cumulative;
    }
    let historical_rate = (o.t_big > 0.0 && o.x > 0.0).then(|| o.x / o.t_big);
    let predicted_rate = expected / cfg.horizon;
    Ok(CustomerValue {
        p_alive: model.p_alive(o.x, o.t_x, o.t_big),
        expected_purchases: expected,
        order_value,
        clv,
        historical_rate,
        predicted_rate,
        value_decline: historical_rate
            .is_some_and(|h| predicted_rate < (1.0 - cfg.decline_threshold) * h),
    })
}
