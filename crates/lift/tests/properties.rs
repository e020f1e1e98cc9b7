//! Invariants over arbitrary inputs: no panic and no NaN whatever the
//! sums (degenerate ones give `None`); intervals contain their estimate;
//! p-values and chances are probabilities; sequential intervals are wider
//! than fixed ones beyond tiny arms; swapping the arms negates the
//! absolute effect and keeps its p-value; corrections never lower a
//! p-value and keep it at most 1.
#![allow(clippy::unwrap_used)]

use lifecycle_lift::bayes::{Prior, posterior};
use lifecycle_lift::{Arm, Scale, effect, multiple, sequential, srm, t_test};
use proptest::prelude::*;

fn arm() -> impl Strategy<Value = Arm> {
    (0u64..5_000, -1e4f64..1e4, 0f64..1e4).prop_map(|(n, mean, sd)| Arm {
        n: n as f64,
        mean,
        var: sd * sd,
    })
}

proptest! {
    #[test]
    fn tests_are_defined_and_consistent(a in arm(), b in arm(), alpha in 0.001f64..0.4) {
        for scale in [Scale::Absolute, Scale::Relative] {
            let Some(e) = effect(&a, &b, scale) else { continue };
            prop_assert!(e.estimate.is_finite() && e.var.is_finite() && e.var >= 0.0);
            let t = t_test(&e, alpha).unwrap();
            prop_assert!((0.0..=1.0).contains(&t.p_value));
            prop_assert!(t.ci.0 <= t.estimate && t.estimate <= t.ci.1);
            let s = sequential::test(&e, a.n + b.n, alpha, sequential::DEFAULT_TUNING).unwrap();
            prop_assert!((0.0..=1.0).contains(&s.p_value));
            // The confidence sequence is asymptotic: wider than the t
            // interval once the arms are not tiny (with a handful of units
            // the t quantile itself is huge).
            if a.n >= 30.0 && b.n >= 30.0 {
                prop_assert!(s.ci.0 <= t.ci.0 + 1e-9 * t.ci.0.abs().max(1.0), "sequential is wider");
            }
            for prior in [None, Some(Prior::GROWTHBOOK)] {
                if let Some(p) = posterior(&e, scale, prior, false, alpha) {
                    prop_assert!((0.0..=1.0).contains(&p.chance_to_win));
                    prop_assert!(p.risk.0 >= 0.0 && p.risk.1 >= 0.0);
                    prop_assert!(!p.mean.is_nan() && !p.sd.is_nan());
                }
            }
        }
        if let (Some(ab), Some(ba)) = (effect(&a, &b, Scale::Absolute), effect(&b, &a, Scale::Absolute)) {
            prop_assert!((ab.estimate + ba.estimate).abs() <= 1e-9 * ab.estimate.abs().max(1.0));
            let (p1, p2) = (t_test(&ab, alpha).unwrap().p_value, t_test(&ba, alpha).unwrap().p_value);
            prop_assert!((p1 - p2).abs() < 1e-9);
        }
    }

    #[test]
    fn corrections_and_srm_are_probabilities(p in prop::collection::vec(0f64..=1.0, 1..12), counts in prop::collection::vec(0u64..100_000, 2..5)) {
        for adj in [multiple::holm(&p), multiple::benjamini_hochberg(&p), multiple::bonferroni(&p)] {
            for (a, raw) in adj.iter().zip(&p) {
                prop_assert!(*a >= *raw - 1e-15 && *a <= 1.0);
            }
        }
        let w = vec![1.0; counts.len()];
        let s = srm::p_value(&counts, &w);
        prop_assert!((0.0..=1.0).contains(&s));
    }
}
