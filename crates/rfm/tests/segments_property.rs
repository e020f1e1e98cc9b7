//! Property tests for the invariants of scoring and segmentation:
//! every customer lands in exactly one segment, segment counts and revenue
//! add up to the totals, tied values share a score, and scores are 1..=5.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use lifecycle_rfm::{
    AnalysisConfig, Better, OrderRow, SegmentTable, SummaryBuilder, analyze, score_values,
};
use proptest::prelude::*;

fn orders() -> impl Strategy<Value = Vec<(u8, i16, u8, i32)>> {
    // (customer, day, order key, cents)
    prop::collection::vec((0u8..40, 0i16..400, 0u8..6, -2_000i32..50_000), 0..300)
}

proptest! {
    #[test]
    fn every_customer_in_exactly_one_segment(rows in orders(), visitors in prop::collection::vec((40u8..60, any::<bool>()), 0..10), extra_days in 0i32..100) {
        let mut b = SummaryBuilder::new();
        for &(c, d, k, cents) in &rows {
            b.add_order(&format!("c{c}"), 0, OrderRow { day: i32::from(d), order_key: u64::from(k), amount: f64::from(cents) / 100.0, is_order_total: false });
        }
        for &(v, email) in &visitors {
            b.add_visit(&format!("v{v}"), 1, 5, email);
        }
        let as_of = b.last_order_day().unwrap_or(0) + extra_days;
        let (summaries, _) = b.finish(as_of);
        let n = summaries.len();
        let expected_revenue: f64 = summaries.iter().map(|s| s.total_spend).sum();
        let a = analyze(summaries, as_of, &AnalysisConfig::default());
        let table = SegmentTable::default_table();
        prop_assert_eq!(a.len(), n);
        prop_assert_eq!(a.segments.iter().map(|s| s.customers).sum::<usize>(), n);
        let rev: f64 = a.segments.iter().map(|s| s.revenue).sum();
        prop_assert!((rev - expected_revenue).abs() < 1e-6);
        for c in a.customers() {
            prop_assert!(c.segment < table.segments().len());
            let matching = table.segments().iter().filter(|s| s.rules.iter().any(|r| {
                let p = match c.scores {
                    Some(sc) => lifecycle_rfm::Profile::buyer(c.summary.n_orders, sc.r, sc.f, sc.m),
                    None => lifecycle_rfm::Profile::visitor(c.summary.left_email),
                };
                r.matches(&p)
            })).count();
            prop_assert_eq!(matching, 1);
            if let Some(s) = c.scores {
                for x in [s.r, s.f, s.m] { prop_assert!((1..=5).contains(&x)); }
            }
        }
    }

    #[test]
    fn tied_values_share_a_score(values in prop::collection::vec(0u8..8, 1..200)) {
        let v: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
        for better in [Better::Higher, Better::Lower] {
            let (s, _) = score_values(&v, better, None);
            for i in 0..v.len() {
                for j in 0..v.len() {
                    if v[i] == v[j] { prop_assert_eq!(s[i], s[j]); }
                    let i_better = match better { Better::Higher => v[i] > v[j], Better::Lower => v[i] < v[j] };
                    if i_better { prop_assert!(s[i] >= s[j]); }
                }
            }
        }
    }
}
