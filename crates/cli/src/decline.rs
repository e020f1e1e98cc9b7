//! Value decline: checking the flag against what customers did next, and
//! comparing two scoring runs.
//!
//! A flagged customer (predicted purchase rate well below their own rate so
//! far) is, almost by construction, one whose last purchase is long ago, so
//! a raw comparison with everyone else flatters the flag. The matched
//! comparison holds the history fixed: customers are grouped by repeat
//! purchases x and by tenure T (4-week bands), and in every group with both
//! kinds the unflagged customers' holdout purchases are averaged; weighting
//! the groups by their flagged customers gives what the flagged would have
//! bought had they behaved like unflagged customers with the same x and T
//! (an average effect on the flagged, with a normal-approximation interval).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::input_err;

/// One repeat buyer at the calibration end and their holdout purchases.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub x: f64,
    /// Tenure in weeks.
    pub t_weeks: f64,
    pub flagged: bool,
    pub holdout: f64,
}

/// A mean with its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    pub se: f64,
    pub n: usize,
}

impl Estimate {
    fn of(values: &[f64]) -> Estimate {
        let n = values.len();
        let nf = n.max(1) as f64;
        let mean = values.iter().sum::<f64>() / nf;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (nf - 1.0).max(1.0);
        Estimate {
            mean,
            se: (var / nf).sqrt(),
            n,
        }
    }

    /// "mean ± 1.96 se".
    pub fn show(&self) -> String {
        format!("{:.3} ± {:.3}", self.mean, 1.96 * self.se)
    }
}

/// Flagged customers' holdout purchases against matched unflagged ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matched {
    pub flagged: Estimate,
    /// What the same flagged customers' groups bought when unflagged.
    pub matched_unflagged: Estimate,
    /// flagged − matched, with its standard error.
    pub difference: Estimate,
    /// Groups (x, T band) that had both kinds.
    pub groups: usize,
}

/// The raw comparison (all flagged vs all unflagged).
pub fn raw(outcomes: &[Outcome]) -> (Estimate, Estimate) {
    let pick = |f: bool| -> Vec<f64> {
        outcomes
            .iter()
            .filter(|o| o.flagged == f)
            .map(|o| o.holdout)
            .collect()
    };
    (Estimate::of(&pick(true)), Estimate::of(&pick(false)))
}

/// The matched comparison; `None` when no group has both kinds.
pub fn matched(outcomes: &[Outcome]) -> Option<Matched> {
    type Group = (Vec<f64>, Vec<f64>);
    let mut groups: BTreeMap<(u32, u32), Group> = BTreeMap::new();
    for o in outcomes {
        let key = (o.x.min(1e6) as u32, (o.t_weeks / 4.0).max(0.0) as u32);
        let g = groups.entry(key).or_default();
        if o.flagged {
            g.0.push(o.holdout);
        } else {
            g.1.push(o.holdout);
        }
    }
    let both: Vec<&Group> = groups
        .values()
        .filter(|(f, u)| !f.is_empty() && !u.is_empty())
        .collect();
    let n_flagged: usize = both.iter().map(|g| g.0.len()).sum();
    if n_flagged == 0 {
        return None;
    }
    // Within-group variances, pooled over the groups with two or more
    // members, stand in for the groups with one.
    let pooled = |pick: fn(&Group) -> &Vec<f64>| {
        let (mut ss, mut df) = (0.0, 0.0);
        for g in &both {
            let v = pick(g);
            if v.len() > 1 {
                let e = Estimate::of(v);
                ss += e.se * e.se * (v.len() as f64) * (v.len() - 1) as f64;
                df += (v.len() - 1) as f64;
            }
        }
        if df > 0.0 { ss / df } else { 0.0 }
    };
    let (pooled_f, pooled_u) = (pooled(|g| &g.0), pooled(|g| &g.1));
    // The stratified estimator: Σ w_g (ȳ_f,g − ȳ_u,g), w_g = n_f,g / N_f,
    // with variance Σ w_g² (s²_f,g/n_f,g + s²_u,g/n_u,g).
    let (mut mean_f, mut mean_u, mut var_f, mut var_u) = (0.0, 0.0, 0.0, 0.0);
    for (f, u) in &both {
        let w = f.len() as f64 / n_flagged as f64;
        let (ef, eu) = (Estimate::of(f), Estimate::of(u));
        let within = |e: &Estimate, n: usize, pooled: f64| {
            if n > 1 {
                e.se * e.se
            } else {
                pooled / n as f64
            }
        };
        mean_f += w * ef.mean;
        mean_u += w * eu.mean;
        var_f += w * w * within(&ef, f.len(), pooled_f);
        var_u += w * w * within(&eu, u.len(), pooled_u);
    }
    let flagged = Estimate {
        mean: mean_f,
        se: var_f.sqrt(),
        n: n_flagged,
    };
    let matched_unflagged = Estimate {
        mean: mean_u,
        se: var_u.sqrt(),
        n: both.iter().map(|g| g.1.len()).sum(),
    };
    Some(Matched {
        flagged,
        matched_unflagged,
        difference: Estimate {
            mean: mean_f - mean_u,
            se: (var_f + var_u).sqrt(),
            n: n_flagged,
        },
        groups: both.len(),
    })
}

/// A previous run's `predictions.csv`: CLV by customer id.
pub fn read_previous(path: &Path) -> Result<std::collections::HashMap<String, f64>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("{}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}", path.display()))?
        .clone();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(id), Some(clv)) = (col("customer_id"), col("clv")) else {
        return Err(input_err(format!(
            "{}: --previous needs a predictions.csv from an earlier `lifecycle predict` (columns customer_id and clv)",
            path.display()
        )));
    };
    let mut out = std::collections::HashMap::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{}", path.display()))?;
        let line = record.position().map_or(0, |p| p.line());
        let value = record.get(clv).unwrap_or("");
        let v: f64 = value.parse().map_err(|_| {
            input_err(format!(
                "{}:{line}: column 'clv': \"{value}\" is not a number",
                path.display()
            ))
        })?;
        out.insert(record.get(id).unwrap_or("").to_string(), v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(x: f64, t: f64, flagged: bool, holdout: f64) -> Outcome {
        Outcome {
            x,
            t_weeks: t,
            flagged,
            holdout,
        }
    }

    /// Matching removes a difference that comes only from history: here the
    /// flag means nothing within a group, but flagged customers sit in the
    /// low-purchase group.
    #[test]
    fn matching_removes_confounding_by_history() {
        let mut v = Vec::new();
        for i in 0..100 {
            let y = f64::from(i % 3);
            // Group A (x = 1): buys 0-2; 90 flagged, 10 not.
            v.push(o(1.0, 30.0, i < 90, y));
            // Group B (x = 8): buys 10-12; 10 flagged, 90 not.
            v.push(o(8.0, 30.0, i < 10, y + 10.0));
        }
        let (f, u) = raw(&v);
        assert!(f.mean < u.mean - 5.0);
        let m = matched(&v).unwrap();
        assert_eq!(m.groups, 2);
        assert!(m.difference.mean.abs() < 0.3, "{m:?}");
        assert!(m.difference.mean.abs() < 1.96 * m.difference.se + 0.3);
    }

    #[test]
    fn no_overlap_no_comparison() {
        assert!(matched(&[o(1.0, 1.0, true, 0.0), o(2.0, 1.0, false, 1.0)]).is_none());
    }
}
