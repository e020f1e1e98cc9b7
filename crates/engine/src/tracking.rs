//! The tracking chart's figures (Fader, Hardie & Lee 2005, Figure 2): week
//! by week, the cumulative repeat purchases that happened against those a
//! purchase model expected.

use std::collections::BTreeMap;

use lifecycle_rfm::Day;

/// One week of the tracking chart: its number (1-based), the cumulative
/// repeat purchases that happened and those expected.
pub type TrackingPoint = (usize, f64, f64);

/// For each week from the first customer's first purchase to `last`: the
/// cumulative repeat purchases, actual (`repeats_by_day`: purchase days
/// after each customer's first, counted by day) and predicted (each
/// customer's expected repeat purchases since their first purchase,
/// `expected(t)` with `t` in the model's time unit, summed; customers are
/// grouped by first day so the model is asked once per distinct day and
/// week). `firsts` counts customers by first purchase day. `Ok(None)`
/// without customers.
pub fn tracking<E>(
    firsts: &BTreeMap<Day, f64>,
    repeats_by_day: &BTreeMap<Day, u64>,
    last: Day,
    unit_days: f64,
    expected: impl Fn(f64) -> Result<f64, E>,
) -> Result<Option<Vec<TrackingPoint>>, E> {
    let Some(&start) = firsts.keys().next() else {
        return Ok(None);
    };
    let weeks = ((last - start) / 7 + 1).max(1) as usize;
    let mut actual = vec![0.0f64; weeks];
    for (&d, &n) in repeats_by_day.range(start..) {
        let w = ((d - start) / 7) as usize;
        if let Some(a) = actual.get_mut(w) {
            *a += n as f64;
        }
    }
    let mut points = Vec::with_capacity(weeks);
    let mut cumulative = 0.0;
    for (w, a) in actual.iter().enumerate() {
        cumulative += a;
        // The week's last day (the data's last day in a partial last week):
        // a purchase on day D is at t = D − first day.
        let last_day = (start + 7 * (w as Day + 1) - 1).min(last);
        let mut predicted = 0.0;
        for (&f, &n) in firsts.range(..last_day) {
            predicted += n * expected(f64::from(last_day - f) / unit_days)?;
        }
        points.push((w + 1, cumulative, predicted));
    }
    Ok(Some(points))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_expectations_by_week() {
        // Two customers first buying on day 0, one on day 7; repeats on
        // days 3 and 10; "expected" is one purchase a week.
        let firsts = BTreeMap::from([(0, 2.0), (7, 1.0)]);
        let repeats = BTreeMap::from([(3, 1), (10, 1)]);
        let points = tracking(&firsts, &repeats, 13, 1.0, |t| Ok::<f64, ()>(t / 7.0))
            .unwrap()
            .unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].0, 1);
        assert_eq!(points[0].1, 1.0);
        // Week 1 ends on day 6: 2 customers × 6/7.
        assert!((points[0].2 - 12.0 / 7.0).abs() < 1e-12);
        assert_eq!(points[1].1, 2.0);
        // Week 2 ends on day 13: 2 × 13/7 + 1 × 6/7.
        assert!((points[1].2 - 32.0 / 7.0).abs() < 1e-12);
        let none = tracking(&BTreeMap::new(), &repeats, 13, 1.0, |_| Ok::<f64, ()>(0.0));
        assert_eq!(none, Ok(None));
    }
}
