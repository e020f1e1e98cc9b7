//! Score scales frozen at a model run, so that one customer can be scored
//! live without re-ranking everyone.
//!
//! At a model run the population is scored by quintiles (or fixed
//! thresholds) and each score's band of values is recorded. Between runs a
//! customer's value is placed on those bands: every value a run scored gets
//! the same score again, and a value between two bands gets the worse
//! neighbouring score. The scale also says when a growing recency will
//! next cross a boundary, which is what moves a customer to another segment
//! without any new event.

use lifecycle_rfm::{Better, Cuts, ScoreBand};

use crate::EngineError;

/// A frozen 1..=5 scale for one measure.
///
/// For [`Better::Lower`] (days since the last order) the steps are upper
/// bounds, ascending: a value scores the score of the first step whose
/// bound is `>=` it, and the last bound is infinite. For [`Better::Higher`]
/// (orders, spend) the steps are lower bounds, ascending: a value scores
/// the score of the last step whose bound is `<=` it, and the first bound
/// is minus infinity.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    better: Better,
    steps: Vec<(f64, u8)>,
}

impl Scale {
    /// The scale a run's score bands define; `None` when every band is
    /// empty (no buyers).
    pub fn from_bands(bands: &[ScoreBand; 5], better: Better) -> Option<Scale> {
        let mut steps: Vec<(f64, u8)> = match better {
            Better::Lower => bands
                .iter()
                .rev()
                .filter_map(|b| Some((b.max?, b.score)))
                .collect(),
            Better::Higher => bands
                .iter()
                .filter_map(|b| Some((b.min?, b.score)))
                .collect(),
        };
        match better {
            Better::Lower => steps.last_mut()?.0 = f64::INFINITY,
            Better::Higher => steps.first_mut()?.0 = f64::NEG_INFINITY,
        }
        Some(Scale { better, steps })
    }

    /// The scale of fixed thresholds (`--rfm-thresholds`).
    pub fn from_cuts(cuts: &Cuts, better: Better) -> Scale {
        let c = cuts.cuts();
        let steps = match better {
            Better::Lower => vec![
                (c[0], 5),
                (c[1], 4),
                (c[2], 3),
                (c[3], 2),
                (f64::INFINITY, 1),
            ],
            Better::Higher => vec![
                (f64::NEG_INFINITY, 1),
                (c[0], 2),
                (c[1], 3),
                (c[2], 4),
                (c[3], 5),
            ],
        };
        Scale { better, steps }
    }

    /// Rebuilds a stored scale, checking its shape.
    pub fn from_steps(better: Better, steps: Vec<(f64, u8)>) -> Result<Scale, EngineError> {
        let bad = |why: &str| EngineError::BadScale(format!("{why}: {steps:?}"));
        if steps.is_empty() {
            return Err(bad("no steps"));
        }
        if steps.iter().any(|&(_, s)| !(1..=5).contains(&s)) {
            return Err(bad("scores must be 1..=5"));
        }
        if steps.iter().any(|&(b, _)| b.is_nan()) || steps.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(bad("bounds must be strictly ascending"));
        }
        let scores_ok = match better {
            Better::Lower => steps.windows(2).all(|w| w[0].1 > w[1].1),
            Better::Higher => steps.windows(2).all(|w| w[0].1 < w[1].1),
        };
        if !scores_ok {
            return Err(bad("scores must get worse along the scale"));
        }
        let open_ended = match better {
            Better::Lower => steps.last().is_some_and(|s| s.0 == f64::INFINITY),
            Better::Higher => steps.first().is_some_and(|s| s.0 == f64::NEG_INFINITY),
        };
        if !open_ended {
            return Err(bad("the scale must cover every value"));
        }
        Ok(Scale { better, steps })
    }

    pub fn better(&self) -> Better {
        self.better
    }

    /// The steps: (bound, score); see the type's documentation.
    pub fn steps(&self) -> &[(f64, u8)] {
        &self.steps
    }

    pub fn score(&self, value: f64) -> u8 {
        match self.better {
            Better::Lower => self
                .steps
                .iter()
                .find(|&&(ub, _)| value <= ub)
                .or(self.steps.last())
                .map_or(1, |s| s.1),
            Better::Higher => self
                .steps
                .iter()
                .rev()
                .find(|&&(lb, _)| lb <= value)
                .or(self.steps.first())
                .map_or(1, |s| s.1),
        }
    }

    /// For a lower-is-better scale of whole days: the smallest whole value
    /// above `value` that scores differently (the day the score drops),
    /// `None` when the score is already the scale's worst.
    pub fn next_drop(&self, value: i64) -> Option<i64> {
        if self.better != Better::Lower {
            return None;
        }
        let v = value as f64;
        let i = self.steps.iter().position(|&(ub, _)| v <= ub)?;
        let ub = self.steps.get(i)?.0;
        if i + 1 >= self.steps.len() || !ub.is_finite() {
            return None;
        }
        Some(ub.floor() as i64 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_rfm::score_values;

    #[test]
    fn a_frozen_scale_scores_the_run_population_as_the_run_did() {
        let values: Vec<f64> = [1, 1, 2, 5, 9, 14, 30, 31, 60, 61, 200, 365, 366, 700]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        for better in [Better::Lower, Better::Higher] {
            let (scores, bands) = score_values(&values, better, None);
            let scale = Scale::from_bands(&bands, better).unwrap();
            for (v, s) in values.iter().zip(&scores) {
                assert_eq!(scale.score(*v), *s, "{better:?} {v}");
            }
            // Rebuilt from its steps, the same scale.
            let again = Scale::from_steps(better, scale.steps().to_vec()).unwrap();
            assert_eq!(again, scale);
        }
    }

    #[test]
    fn values_outside_and_between_bands() {
        let values = [10.0, 20.0, 30.0, 40.0, 50.0];
        let (_, bands) = score_values(&values, Better::Lower, None);
        let scale = Scale::from_bands(&bands, Better::Lower).unwrap();
        assert_eq!(scale.score(0.0), 5);
        assert_eq!(scale.score(10.0), 5);
        assert_eq!(scale.score(15.0), 4);
        assert_eq!(scale.score(1e9), 1);
        // Recency 10 (score 5) drops to 4 on day 11, 4 to 3 on day 21.
        assert_eq!(scale.next_drop(10), Some(11));
        assert_eq!(scale.next_drop(11), Some(21));
        assert_eq!(scale.next_drop(50), None);
        let (_, bands) = score_values(&values, Better::Higher, None);
        let scale = Scale::from_bands(&bands, Better::Higher).unwrap();
        assert_eq!(scale.score(-5.0), 1);
        assert_eq!(scale.score(45.0), 4);
        assert_eq!(scale.score(1e9), 5);
        assert_eq!(scale.next_drop(3), None);
    }

    #[test]
    fn thresholds_agree_with_cuts() {
        let cuts = Cuts::new([30.0, 90.0, 180.0, 365.0], Better::Lower).unwrap();
        let scale = Scale::from_cuts(&cuts, Better::Lower);
        for v in [0.0, 30.0, 31.0, 90.0, 91.0, 365.0, 366.0, 1000.0] {
            assert_eq!(scale.score(v), cuts.score(v), "{v}");
        }
        assert_eq!(scale.next_drop(30), Some(31));
        let cuts = Cuts::new([2.0, 3.0, 5.0, 10.0], Better::Higher).unwrap();
        let scale = Scale::from_cuts(&cuts, Better::Higher);
        for v in [0.0, 1.0, 2.0, 4.0, 5.0, 12.0] {
            assert_eq!(scale.score(v), cuts.score(v), "{v}");
        }
    }

    #[test]
    fn empty_and_malformed() {
        let empty = [ScoreBand {
            score: 1,
            customers: 0,
            min: None,
            max: None,
        }; 5];
        assert!(Scale::from_bands(&empty, Better::Lower).is_none());
        assert!(Scale::from_steps(Better::Lower, vec![]).is_err());
        assert!(Scale::from_steps(Better::Lower, vec![(5.0, 5), (3.0, 4)]).is_err());
        assert!(Scale::from_steps(Better::Lower, vec![(5.0, 5), (10.0, 4)]).is_err());
        assert!(Scale::from_steps(Better::Lower, vec![(5.0, 4), (f64::INFINITY, 5)]).is_err());
        assert!(Scale::from_steps(Better::Lower, vec![(5.0, 5), (f64::INFINITY, 4)]).is_ok());
    }
}
