//! What a store keeps of a customer (`for_each_customer_orders`) is enough
//! to rebuild the same summaries (`add_entry`): any mix of orders, line
//! items, repeated order totals, refunds and rows after the analysis date.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use lifecycle_rfm::{OrderRow, SummaryBuilder};
use proptest::prelude::*;

fn rows() -> impl Strategy<Value = Vec<(u8, i32, u64, i32, bool)>> {
    prop::collection::vec(
        (0u8..6, 0i32..40, 0u64..4, -60i32..120, any::<bool>()),
        0..80,
    )
}

proptest! {
    #[test]
    fn summaries_survive_the_store(rows in rows(), as_of in 10i32..45) {
        let mut original = SummaryBuilder::new();
        for (i, &(c, day, key, cents, total)) in rows.iter().enumerate() {
            original.add_order(
                &format!("c{c}"),
                i as u64,
                OrderRow { day, order_key: key, amount: f64::from(cents) / 4.0, is_order_total: total },
            );
        }
        let mut rebuilt = SummaryBuilder::new();
        let mut position = 0;
        let mut one_by_one = Vec::new();
        original.for_each_customer_orders(as_of, |id, entries| {
            for e in entries {
                rebuilt.add_entry(id, position, *e);
            }
            position += 1;
            one_by_one.push(lifecycle_rfm::CustomerSummary::from_entries(id, entries, as_of));
        });
        let (want, _) = original.finish(as_of);
        let (got, _) = rebuilt.finish(as_of);
        let key = |s: &lifecycle_rfm::CustomerSummary| {
            (s.customer_id.to_string(), s.n_orders, s.n_purchase_days, s.first_order, s.last_order,
             (s.total_spend * 4.0).round() as i64, (s.first_day_value * 4.0).round() as i64,
             (s.repeat_days_value * 4.0).round() as i64)
        };
        let mut want: Vec<_> = want.iter().map(key).collect();
        let mut got: Vec<_> = got.iter().map(key).collect();
        // The live engine's per-customer summary agrees too (customers with
        // only refunds are left out by finish).
        let mut single: Vec<_> = one_by_one.iter().filter(|s| s.n_orders > 0).map(key).collect();
        want.sort();
        got.sort();
        single.sort();
        let with_orders: Vec<_> = want.iter().filter(|k| k.1 > 0).cloned().collect();
        prop_assert_eq!(&with_orders, &single);
        prop_assert_eq!(want, got);
    }
}
