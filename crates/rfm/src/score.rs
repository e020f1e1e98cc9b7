//! R, F and M scores from 1 (worst) to 5 (best).
//!
//! **Quintiles** (the default): a customer's score is
//! `1 + floor(5 × w / n)`, where `n` is the number of scored customers and
//! `w` the number of them with a strictly *worse* value. Tied values therefore
//! always share a score (the rule of a `min` rank), the best value of a
//! population of more than one customer always scores 5 or shares the score of
//! its ties, and the result does not depend on input order. When many
//! customers share a value (one order is the most common frequency) some
//! scores stay empty: e.g. if 55% of customers have one order, they all score
//! F = 1 and two orders score F = 3.
//!
//! **Thresholds**: fixed boundaries given by the business, so that scores do
//! not move with the population.

use crate::ScoreError;

/// Which direction is better for a measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// Four ascending cut points that split a measure into scores 1..=5.
#[derive(Debug, Clone, PartialEq)]
pub struct Cuts {
    cuts: [f64; 4],
    better: Better,
}

impl Cuts {
    /// `cuts` must be finite and strictly ascending.
    ///
    /// With [`Better::Higher`] a value scores `1 + #{cuts <= value}`
    /// (e.g. orders cut at `[2, 3, 5, 10]`: 1 order → 1, 2 → 2, 12 → 5).
    /// With [`Better::Lower`] a value scores `5 - #{cuts < value}`
    /// (e.g. days since the last order cut at `[30, 90, 180, 365]`:
    /// 30 days → 5, 31 → 4, 400 → 1).
    pub fn new(cuts: [f64; 4], better: Better) -> Result<Self, ScoreError> {
        if cuts.iter().any(|c| !c.is_finite()) || cuts.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ScoreError::CutsNotAscending(cuts.to_vec()));
        }
        Ok(Self { cuts, better })
    }

    pub fn cuts(&self) -> [f64; 4] {
        self.cuts
    }

    pub fn score(&self, value: f64) -> u8 {
        match self.better {
            Better::Higher => 1 + self.cuts.iter().filter(|&&c| c <= value).count() as u8,
            Better::Lower => 5 - self.cuts.iter().filter(|&&c| c < value).count() as u8,
        }
    }
}

/// The fixed boundaries of `--rfm-thresholds`.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Days since the last order (lower is better).
    pub recency_days: Cuts,
    /// Number of orders (higher is better).
    pub orders: Cuts,
    /// Net spend (higher is better).
    pub spend: Cuts,
}

/// How scores are computed.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Scoring {
    #[default]
    Quintiles,
    Thresholds(Thresholds),
}

/// The values that received one score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBand {
    pub score: u8,
    pub customers: usize,
    /// Smallest and largest value with this score; `None` when empty.
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Scores every value; returns the scores (in input order) and the bands.
pub fn score_values(
    values: &[f64],
    better: Better,
    cuts: Option<&Cuts>,
) -> (Vec<u8>, [ScoreBand; 5]) {
    let scores = match cuts {
        Some(c) => values.iter().map(|&v| c.score(v)).collect(),
        None => quintile_scores(values, better),
    };
    (scores.clone(), bands(values, &scores))
}

fn quintile_scores(values: &[f64], better: Better) -> Vec<u8> {
    counting_scores(values, better).unwrap_or_else(|| sorted_scores(values, better))
}

/// The same scores in linear time when every value is a small integer
/// (orders, days since the last order): count each value, then the number of
/// strictly worse customers is a running sum.
fn counting_scores(values: &[f64], better: Better) -> Option<Vec<u8>> {
    const MAX_RANGE: f64 = 1_000_000.0;
    let n = values.len();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        if v.fract() != 0.0 || !v.is_finite() {
            return None;
        }
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if n == 0 || hi - lo > MAX_RANGE {
        return None;
    }
    let slot = |v: f64| (v - lo) as usize;
    let mut counts = vec![0usize; slot(hi) + 1];
    for &v in values {
        counts[slot(v)] += 1;
    }
    // worse[k]: customers strictly worse than value lo + k.
    let mut worse = vec![0usize; counts.len()];
    let mut acc = 0;
    match better {
        Better::Higher => {
            for (w, c) in worse.iter_mut().zip(&counts) {
                *w = acc;
                acc += c;
            }
        }
        Better::Lower => {
            for (w, c) in worse.iter_mut().zip(&counts).rev() {
                *w = acc;
                acc += c;
            }
        }
    }
    Some(
        values
            .iter()
            .map(|&v| 1 + ((5 * worse[slot(v)]) / n) as u8)
            .collect(),
    )
}

fn sorted_scores(values: &[f64], better: Better) -> Vec<u8> {
    let n = values.len();
    // (value, index) pairs sorted worst first: contiguous, so the sort stays
    // in cache far better than sorting indices by an indirect key.
    let sign = match better {
        Better::Higher => 1.0,
        Better::Lower => -1.0,
    };
    let mut order: Vec<(f64, u32)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (sign * v, i as u32))
        .collect();
    order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut scores = vec![0u8; n];
    let mut i = 0;
    while i < n {
        let v = order[i].0;
        let mut j = i;
        while j < n && order[j].0 == v {
            j += 1;
        }
        // `i` customers are strictly worse than this tie group.
        let score = 1 + ((5 * i) / n) as u8;
        for &(_, k) in &order[i..j] {
            scores[k as usize] = score;
        }
        i = j;
    }
    scores
}

fn bands(values: &[f64], scores: &[u8]) -> [ScoreBand; 5] {
    let mut out: [ScoreBand; 5] = std::array::from_fn(|i| ScoreBand {
        score: i as u8 + 1,
        customers: 0,
        min: None,
        max: None,
    });
    for (&v, &s) in values.iter().zip(scores) {
        let b = &mut out[usize::from(s) - 1];
        b.customers += 1;
        b.min = Some(b.min.map_or(v, |m| m.min(v)));
        b.max = Some(b.max.map_or(v, |m| m.max(v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[f64], better: Better, expected: &[u8]) {
        let (scores, _) = score_values(values, better, None);
        assert_eq!(scores, expected, "values {values:?}");
    }

    #[test]
    fn quintiles_table() {
        check(&[1.0, 2.0, 3.0, 4.0, 5.0], Better::Higher, &[1, 2, 3, 4, 5]);
        check(&[5.0, 4.0, 3.0, 2.0, 1.0], Better::Lower, &[1, 2, 3, 4, 5]);
        check(&[7.0], Better::Higher, &[1]);
        check(&[], Better::Higher, &[]);
        check(&[2.0, 2.0, 2.0], Better::Higher, &[1, 1, 1]);
        // 6 of 10 tied at the bottom: the next value scores 1 + floor(5*6/10) = 4.
        check(
            &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 9.0],
            Better::Higher,
            &[1, 1, 1, 1, 1, 1, 4, 4, 5, 5],
        );
        check(
            &[10.0, 1.0, 1.0, 3.0, 2.0, 8.0, 8.0, 5.0, 4.0, 6.0],
            Better::Lower,
            &[1, 5, 5, 4, 4, 1, 1, 3, 3, 2],
        );
    }

    #[test]
    fn counting_and_sorting_agree() {
        let mut x: u64 = 7;
        let values: Vec<f64> = (0..5000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) % 97) as f64
            })
            .collect();
        for better in [Better::Higher, Better::Lower] {
            assert_eq!(
                counting_scores(&values, better).unwrap(),
                sorted_scores(&values, better)
            );
        }
        assert!(counting_scores(&[1.5, 2.0], Better::Higher).is_none());
        assert!(counting_scores(&[0.0, 1e9], Better::Higher).is_none());
    }

    #[test]
    fn cuts_table() {
        let f = Cuts::new([2.0, 3.0, 5.0, 10.0], Better::Higher).unwrap();
        let got: Vec<u8> = [1.0, 2.0, 4.0, 5.0, 12.0]
            .iter()
            .map(|&v| f.score(v))
            .collect();
        assert_eq!(got, [1, 2, 3, 4, 5]);
        let r = Cuts::new([30.0, 90.0, 180.0, 365.0], Better::Lower).unwrap();
        let got: Vec<u8> = [0.0, 30.0, 31.0, 180.0, 400.0]
            .iter()
            .map(|&v| r.score(v))
            .collect();
        assert_eq!(got, [5, 5, 4, 3, 1]);
        assert!(Cuts::new([1.0, 1.0, 2.0, 3.0], Better::Higher).is_err());
        assert!(Cuts::new([1.0, f64::NAN, 2.0, 3.0], Better::Higher).is_err());
    }

    #[test]
    fn bands_report_ranges() {
        let (_, b) = score_values(&[1.0, 2.0, 3.0, 4.0, 5.0, 5.0], Better::Higher, None);
        // Two of six tie at the top: 4 are worse, 1 + floor(5*4/6) = 4.
        assert_eq!(b[3].customers, 2);
        assert_eq!(b[3].min, Some(5.0));
        assert_eq!(b[4].customers, 0);
        assert_eq!(b[4].min, None);
        assert_eq!(b[0].max, Some(2.0)); // 1 + floor(5*1/6) = 1
    }
}
