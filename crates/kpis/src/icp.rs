//! The ideal customer profile: which values of each dimension (city,
//! gender, age band, channel, first product...) are over-represented among
//! the best customers against the rest, and a lookalike score for the rest:
//! the naive-Bayes log-likelihood ratio of their values (m-estimates
//! shrunk towards the value's overall share, so rare values weigh little),
//! so the customers outside the best segments who look most like the best
//! ones rank first.

use crate::lines::HashMap;

/// One dimension's values among the best customers and the rest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileCounts {
    pub dimension: String,
    /// (value, best customers with it, other customers with it).
    pub values: Vec<(String, u64, u64)>,
}

/// A value over- or under-represented among the best customers.
#[derive(Debug, Clone, PartialEq)]
pub struct Trait {
    pub dimension: String,
    pub value: String,
    /// Its share among the best customers with a known value, and among the rest.
    pub best_share: f64,
    pub rest_share: f64,
    /// `best_share / rest_share`.
    pub index: f64,
    pub best_customers: u64,
    pub p_value: f64,
    /// Benjamini–Hochberg over every value of every dimension.
    pub p_adjusted: f64,
}

/// Every value with at least `min_customers` customers, sorted by adjusted
/// p-value then by index (descending).
pub fn traits(dims: &[ProfileCounts], min_customers: u64) -> Vec<Trait> {
    let mut out = Vec::new();
    for d in dims {
        let best_total: u64 = d.values.iter().map(|v| v.1).sum();
        let rest_total: u64 = d.values.iter().map(|v| v.2).sum();
        if best_total == 0 || rest_total == 0 {
            continue;
        }
        for (value, b, r) in &d.values {
            if b + r < min_customers {
                continue;
            }
            let best_share = *b as f64 / best_total as f64;
            let rest_share = *r as f64 / rest_total as f64;
            let p_value = lifecycle_lift::pooled_z(*r as f64, rest_total, *b as f64, best_total)
                .map_or(1.0, |(_, p)| p);
            out.push(Trait {
                dimension: d.dimension.clone(),
                value: value.clone(),
                best_share,
                rest_share,
                index: if rest_share > 0.0 {
                    best_share / rest_share
                } else {
                    f64::INFINITY
                },
                best_customers: *b,
                p_value,
                p_adjusted: 1.0,
            });
        }
    }
    let p: Vec<f64> = out.iter().map(|t| t.p_value).collect();
    for (t, adj) in out
        .iter_mut()
        .zip(lifecycle_lift::multiple::benjamini_hochberg(&p))
    {
        t.p_adjusted = adj;
    }
    out.sort_by(|a, b| {
        a.p_adjusted
            .total_cmp(&b.p_adjusted)
            .then(b.index.total_cmp(&a.index))
    });
    out
}

/// Per dimension, the log-likelihood ratio of each value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lookalike {
    weights: Vec<HashMap<String, f64>>,
}

impl Lookalike {
    /// The m-estimate's weight, in customers.
    pub const M: f64 = 30.0;

    /// `log((b + m·p) / (B + m)) − log((r + m·p) / (R + m))` per value, with
    /// B and R the dimension's best and other customers with a value, p the
    /// value's share of both and m = [`Lookalike::M`].
    pub fn new(dims: &[ProfileCounts]) -> Lookalike {
        let m = Self::M;
        let weights = dims
            .iter()
            .map(|d| {
                let best: u64 = d.values.iter().map(|v| v.1).sum();
                let rest: u64 = d.values.iter().map(|v| v.2).sum();
                let all = (best + rest).max(1) as f64;
                d.values
                    .iter()
                    .map(|(v, b, r)| {
                        let p = (b + r) as f64 / all;
                        let w = ((*b as f64 + m * p) / (best as f64 + m)).ln()
                            - ((*r as f64 + m * p) / (rest as f64 + m)).ln();
                        (v.clone(), w)
                    })
                    .collect()
            })
            .collect();
        Lookalike { weights }
    }

    /// A customer's score (the sum over their known values) and each
    /// dimension's part (`None` where the value is unknown).
    pub fn score(&self, values: &[Option<&str>]) -> (f64, Vec<Option<f64>>) {
        let parts: Vec<Option<f64>> = self
            .weights
            .iter()
            .zip(values)
            .map(|(w, v)| v.and_then(|v| w.get(v).copied()))
            .collect();
        (parts.iter().flatten().sum(), parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traits_and_scores_by_hand() {
        let dims = vec![
            ProfileCounts {
                dimension: "city".into(),
                // Best: 60 Lyon of 100; rest: 100 Lyon of 900.
                values: vec![("Lyon".into(), 60, 100), ("Paris".into(), 40, 800)],
            },
            ProfileCounts {
                dimension: "gender".into(),
                values: vec![("F".into(), 50, 450), ("M".into(), 50, 450)],
            },
        ];
        let t = traits(&dims, 30);
        let lyon = &t[0];
        assert_eq!(
            (lyon.dimension.as_str(), lyon.value.as_str()),
            ("city", "Lyon")
        );
        assert!((lyon.best_share - 0.6).abs() < 1e-12);
        assert!((lyon.rest_share - 1.0 / 9.0).abs() < 1e-12);
        assert!((lyon.index - 5.4).abs() < 1e-12);
        assert!(lyon.p_adjusted < 1e-6);
        let f = t.iter().find(|x| x.value == "F").unwrap();
        assert!((f.index - 1.0).abs() < 1e-12 && f.p_adjusted > 0.5);
        let model = Lookalike::new(&dims);
        let (s, parts) = model.score(&[Some("Lyon"), None]);
        // p = 160/1000: (60 + 4.8)/130 against (100 + 4.8)/930.
        let w = (64.8f64 / 130.0).ln() - (104.8f64 / 930.0).ln();
        assert!((s - w).abs() < 1e-12);
        assert_eq!(parts[1], None);
        let (paris, _) = model.score(&[Some("Paris"), Some("F")]);
        assert!(paris < 0.0 && paris < s);
    }
}
