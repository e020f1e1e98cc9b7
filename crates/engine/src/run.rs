//! A model run: what live scoring needs from the whole population, frozen
//! at one moment so that every score between runs is explainable by it.

use lifecycle_models::{BgNbd, FitConfig, GammaGamma, Observation, SpendObservation};
use lifecycle_rfm::{
    AnalysisConfig, Better, CustomerSummary, Cuts, Day, Scoring, SegmentTable, analyze,
};

use lifecycle_tripwires::{History, LearnConfig, Norm, learn, steps};

use crate::scale::Scale;

/// How a run values customers and watches them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunConfig {
    /// Tripwires warn from this share of a norm's days (`None`: trips only).
    pub warning_share: Option<f64>,
    /// The personal-rhythm tripwire's probability threshold (`None`: off).
    pub rhythm: Option<f64>,
    /// The CLV horizon in days.
    pub horizon_days: f64,
    /// Annual discount rate applied month by month.
    pub annual_discount: f64,
    /// Share of revenue that is margin (1: value on revenue).
    pub margin: f64,
    /// A customer's value is *declining* when their CLV falls to this share
    /// of their CLV at the run, or below.
    pub decline_share: f64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            warning_share: Some(0.75),
            rhythm: Some(0.8),
            horizon_days: 365.0,
            annual_discount: 0.10,
            margin: 1.0,
            decline_share: 0.75,
        }
    }
}

/// Everything a run fixed.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRun {
    /// The day the run's population was measured at.
    pub as_of: Day,
    pub recency: Scale,
    pub orders: Scale,
    pub spend: Scale,
    /// BG/NBD in days; `None` when the history cannot identify it.
    pub purchase: Option<BgNbd>,
    /// Gamma-Gamma spend per purchase day; `None` without repeat buyers.
    pub spend_model: Option<GammaGamma>,
    pub config: RunConfig,
    /// Why a part is missing, in plain words.
    pub notes: Vec<String>,
    /// The tripwire norms learned at the run (see [`ModelRun::learn_norms`]).
    pub norms: Vec<Norm>,
}

/// The scales used when a run has no buyers to take quintiles of: days
/// since the last order cut at 30/90/180/365, orders at 2/3/5/10, spend at
/// 50/100/250/1000.
pub fn default_scales() -> (Scale, Scale, Scale) {
    let cuts = |c: [f64; 4], b| Cuts::new(c, b).map(|c| Scale::from_cuts(&c, b));
    match (
        cuts([30.0, 90.0, 180.0, 365.0], Better::Lower),
        cuts([2.0, 3.0, 5.0, 10.0], Better::Higher),
        cuts([50.0, 100.0, 250.0, 1000.0], Better::Higher),
    ) {
        (Ok(r), Ok(f), Ok(m)) => (r, f, m),
        _ => unreachable!("the default cuts are ascending"),
    }
}

impl ModelRun {
    /// A run without a model, on the default scales (before any history).
    pub fn empty(as_of: Day, config: RunConfig) -> ModelRun {
        let (recency, orders, spend) = default_scales();
        ModelRun {
            as_of,
            recency,
            orders,
            spend,
            purchase: None,
            spend_model: None,
            config,
            notes: vec!["no model run yet: default score thresholds, no CLV".into()],
            norms: Vec::new(),
        }
    }

    /// Scores the population by quintiles (or `scoring`'s thresholds) and
    /// fits the BG/NBD (in days) and the Gamma-Gamma on it, as of `as_of`.
    pub fn fit(
        summaries: &[CustomerSummary],
        as_of: Day,
        scoring: &Scoring,
        segments: &SegmentTable,
        config: RunConfig,
    ) -> ModelRun {
        let mut notes = Vec::new();
        let (recency, orders, spend) = match scoring {
            Scoring::Thresholds(t) => (
                Scale::from_cuts(&t.recency_days, Better::Lower),
                Scale::from_cuts(&t.orders, Better::Higher),
                Scale::from_cuts(&t.spend, Better::Higher),
            ),
            Scoring::Quintiles => {
                let analysis = analyze(
                    summaries.to_vec(),
                    as_of,
                    &AnalysisConfig {
                        scoring: Scoring::Quintiles,
                        segments: segments.clone(),
                    },
                );
                let b = &analysis.boundaries;
                match (
                    Scale::from_bands(&b.recency_days, Better::Lower),
                    Scale::from_bands(&b.orders, Better::Higher),
                    Scale::from_bands(&b.spend, Better::Higher),
                ) {
                    (Some(r), Some(f), Some(m)) => (r, f, m),
                    _ => {
                        notes.push("no buyers: default score thresholds".into());
                        default_scales()
                    }
                }
            }
        };
        let buyers = summaries
            .iter()
            .filter(|s| s.first_order.is_some_and(|d| d <= as_of));
        let observations: Vec<Observation> = buyers
            .clone()
            .filter_map(|s| {
                Some(Observation::new(
                    f64::from(s.frequency()),
                    f64::from(s.recency_days()?),
                    f64::from(as_of - s.first_order?),
                ))
            })
            .collect();
        let fit = FitConfig::default();
        let purchase = match BgNbd::fit(&observations, &fit) {
            Ok((m, _)) => Some(m),
            Err(e) => {
                notes.push(format!("no purchase model: {e}"));
                None
            }
        };
        let spends: Vec<SpendObservation> = buyers
            .filter(|s| s.frequency() > 0 && s.repeat_mean_value() > 0.0)
            .map(|s| SpendObservation::new(f64::from(s.frequency()), s.repeat_mean_value()))
            .collect();
        let spend_model = if spends.is_empty() {
            notes.push("no spend model: no repeat buyer with a positive spend".into());
            None
        } else {
            match GammaGamma::fit(&spends, &fit) {
                Ok((m, _)) => Some(m),
                Err(e) => {
                    notes.push(format!("no spend model: {e}"));
                    None
                }
            }
        };
        ModelRun {
            as_of,
            recency,
            orders,
            spend,
            purchase,
            spend_model,
            config,
            notes,
            norms: Vec::new(),
        }
    }

    /// Learns the tripwire norms (k-th to (k+1)-th order, k = 1..=4, and
    /// sign-up to first order when histories know when customers were
    /// first seen) from
    /// the best customers (`best[i]` for `histories[i]`) as of the run's day.
    pub fn learn_norms(&mut self, histories: &[History], best: &[bool]) {
        let config = LearnConfig::default();
        let with_signups = histories.iter().any(|h| h.first_seen.is_some());
        self.norms = steps(&config, with_signups)
            .into_iter()
            .filter_map(|step| learn(histories, best, step, self.as_of, &config))
            .collect();
        if self.norms.is_empty() {
            self.notes
                .push("no tripwire norms: too few best customers took a step".into());
        }
    }
}
