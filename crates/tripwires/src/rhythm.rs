//! The personal-rhythm tripwire: a repeat buyer is overdue when, given
//! their own purchase history, they would by now have bought again with
//! probability above a threshold, and have not.
//!
//! With the history as it stood at the last purchase (x repeat purchases,
//! recency t_x, age T = t_x), the fitted purchase model gives P(no purchase
//! in the next t) (`PurchaseModel::no_purchase`); the customer is overdue
//! once 1 − P(no purchase in the t days since) exceeds the threshold, and
//! overdue by t − q where q is the day that probability crossed it.

use lifecycle_models::PurchaseModel;

/// An overdue repeat buyer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overdue {
    /// P(they would have bought again by now | history at their last purchase).
    pub probability: f64,
    /// Days since the probability crossed the threshold.
    pub days_overdue: f64,
}

/// Checks one customer: `x` repeat purchases, `t_x` from first to last
/// purchase and `since_last` since the last one, all in the model's time
/// unit. One-time buyers (x = 0) have no rhythm of their own: `None`.
pub fn overdue<M: PurchaseModel>(
    model: &M,
    x: f64,
    t_x: f64,
    since_last: f64,
    threshold: f64,
) -> Option<Overdue> {
    if x < 1.0 || since_last <= 0.0 || !(0.0..1.0).contains(&threshold) {
        return None;
    }
    let probability = 1.0 - model.no_purchase(since_last, x, t_x, t_x);
    if probability.is_nan() || probability <= threshold {
        return None;
    }
    let crossed = model.next_purchase_quantile(threshold, x, t_x, t_x)?;
    Some(Overdue {
        probability,
        days_overdue: (since_last - crossed).max(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_models::BgNbd;

    #[test]
    fn a_regular_buyer_who_stops_becomes_overdue() {
        // CDNOW's BG/NBD (FHL 2005, per week).
        let m = BgNbd::new(0.243, 4.414, 0.793, 2.426).unwrap();
        // Ten repeat purchases over 20 weeks: about one every two weeks.
        assert!(overdue(&m, 10.0, 20.0, 1.0, 0.8).is_none());
        let o = overdue(&m, 10.0, 20.0, 12.0, 0.8).unwrap();
        assert!(o.probability > 0.8 && o.days_overdue > 0.0, "{o:?}");
        // Overdue by exactly the time since the 80% point.
        let q = m.next_purchase_quantile(0.8, 10.0, 20.0, 20.0).unwrap();
        assert!((o.days_overdue - (12.0 - q)).abs() < 1e-9);
        // A one-time buyer has no rhythm; a rare buyer is not overdue yet.
        assert!(overdue(&m, 0.0, 0.0, 50.0, 0.8).is_none());
        assert!(overdue(&m, 1.0, 30.0, 5.0, 0.8).is_none());
    }
}
