//! One customer's live profile under a model run: scores, segment, value,
//! and the day their recency will next change their scores.

use lifecycle_models::PurchaseModel;
use lifecycle_rfm::{CustomerSummary, Day, Profile, Scores, SegmentTable};
use lifecycle_tripwires::{Progress, Status, next_deadline, standing};

use crate::run::ModelRun;

/// What the customer view shows about a customer's standing.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveProfile {
    pub n_orders: u32,
    pub n_purchase_days: u32,
    pub total_spend: f64,
    pub first_order: Option<Day>,
    pub last_order: Option<Day>,
    pub days_since_last_order: Option<i32>,
    /// `None` for customers without an order.
    pub scores: Option<Scores>,
    /// Index into the segment table.
    pub segment: usize,
    pub value: Option<Value>,
    /// The day the recency score next drops (so the segment may change)
    /// with no new event: the due-time index's key. `None` when it cannot
    /// drop further or the customer has no order.
    pub due_day: Option<Day>,
}

/// The model's outlook for a buyer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value {
    pub p_alive: f64,
    /// Expected purchase days over the run's horizon.
    pub expected_purchases: f64,
    /// Expected value of a purchase day (Gamma-Gamma), when fitted.
    pub expected_order_value: Option<f64>,
    /// Discounted margin over the horizon, when a spend model exists.
    pub clv: Option<f64>,
    /// The day of the expected next order (median time to it), `None`
    /// when the customer more likely never orders again.
    pub next_order_day: Option<Day>,
}

/// A tripwire a customer is at warning on, or has tripped.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenTripwire {
    /// `order_1_to_2`, …, or `personal_rhythm`.
    pub name: String,
    pub status: Status,
    pub since: Day,
    /// The day the episode started (the last order): with the name and
    /// status it identifies a firing, so it is recorded once.
    pub started: Day,
    pub days_overdue: f64,
    /// For the personal rhythm: P(they would have bought again by now).
    pub probability: Option<f64>,
}

/// The customer's open tripwires on `today` and the next day on which one
/// will open with no new event (the deadline index's key).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TripwireState {
    pub open: Vec<OpenTripwire>,
    pub next_deadline: Option<Day>,
}

/// A customer's progress (purchase days, the last, first seen) from their
/// order summary as of a day: what the learned norms' current step needs.
pub fn progress(summary: &CustomerSummary, first_seen: Option<Day>) -> Progress {
    Progress {
        purchase_days: summary.n_purchase_days,
        last_purchase: summary.last_order,
        first_seen,
    }
}

/// The tripwires of a customer with `progress` (purchase days up to today)
/// under `run`: the learned norms of the step they are in, and their
/// personal rhythm under the run's purchase model.
pub fn tripwires(
    run: &ModelRun,
    summary: &CustomerSummary,
    progress: &Progress,
    today: Day,
) -> TripwireState {
    let warning = run.config.warning_share;
    let mut state = TripwireState::default();
    if let Some(s) = standing(progress, &run.norms, today, warning) {
        state.open.push(OpenTripwire {
            name: s.step.key(),
            status: s.status,
            since: s.since,
            started: s.started,
            days_overdue: f64::from(s.days_overdue),
            probability: None,
        });
    }
    state.next_deadline = next_deadline(progress, &run.norms, today, warning).map(|(d, _)| d);
    if let (Some(threshold), Some(model), Some(first), Some(last)) = (
        run.config.rhythm,
        run.purchase.as_ref(),
        summary.first_order,
        summary.last_order,
    ) {
        let x = f64::from(summary.frequency());
        let t_x = f64::from(last - first);
        let since_last = f64::from(today - last);
        match lifecycle_tripwires::overdue(model, x, t_x, since_last, threshold) {
            Some(o) => state.open.push(OpenTripwire {
                name: "personal_rhythm".into(),
                status: Status::Tripped,
                since: today - o.days_overdue.floor() as Day,
                started: last,
                days_overdue: o.days_overdue,
                probability: Some(o.probability),
            }),
            None if x >= 1.0 => {
                // The day the probability will cross the threshold.
                if let Some(q) = model.next_purchase_quantile(threshold, x, t_x, t_x) {
                    let day = last.saturating_add(q.floor() as Day + 1);
                    if day > today && q.is_finite() && q < 1e6 {
                        state.next_deadline = Some(state.next_deadline.map_or(day, |d| d.min(day)));
                    }
                }
            }
            None => {}
        }
    }
    state
}

/// The segment (index into `table`) of `summary` on `today` under `run`,
/// without valuing the customer.
pub fn segment_of(
    run: &ModelRun,
    table: &SegmentTable,
    summary: &CustomerSummary,
    today: Day,
) -> usize {
    let recency = summary.last_order.map(|d| (today - d).max(0));
    let profile = match (summary.n_orders, recency) {
        (1.., Some(r)) => Profile::buyer(
            summary.n_orders,
            run.recency.score(f64::from(r)),
            run.orders.score(f64::from(summary.n_orders)),
            run.spend
                .score((summary.total_spend * 100.0).round() / 100.0),
        ),
        _ => Profile::visitor(summary.left_email),
    };
    table.assign(&profile).unwrap_or(0)
}

/// Scores and values `summary` on `today` under `run`.
pub fn live_profile(
    run: &ModelRun,
    table: &SegmentTable,
    summary: &CustomerSummary,
    today: Day,
) -> LiveProfile {
    let days_since_last_order = summary.last_order.map(|d| (today - d).max(0));
    let scores = match (summary.n_orders, days_since_last_order) {
        (1.., Some(recency)) => Some(Scores {
            r: run.recency.score(f64::from(recency)),
            f: run.orders.score(f64::from(summary.n_orders)),
            m: run
                .spend
                .score((summary.total_spend * 100.0).round() / 100.0),
        }),
        _ => None,
    };
    let profile = match scores {
        Some(s) => Profile::buyer(summary.n_orders, s.r, s.f, s.m),
        None => Profile::visitor(summary.left_email),
    };
    // The table was checked to cover every profile when it was built.
    let segment = table.assign(&profile).unwrap_or(0);
    let due_day = match (summary.last_order, days_since_last_order) {
        (Some(last), Some(recency)) => run
            .recency
            .next_drop(i64::from(recency))
            .and_then(|d| i32::try_from(d).ok())
            .map(|d| last.saturating_add(d)),
        _ => None,
    };
    LiveProfile {
        n_orders: summary.n_orders,
        n_purchase_days: summary.n_purchase_days,
        total_spend: summary.total_spend,
        first_order: summary.first_order,
        last_order: summary.last_order,
        days_since_last_order,
        scores,
        segment,
        value: value(run, summary, today),
        due_day,
    }
}

/// The expected purchase days over the run's horizon, each month's
/// discounted to today at the run's annual rate: CLV is this times the
/// expected order value and the margin. A function of (x, t_x, T) only,
/// so callers valuing many customers can share it between equal histories.
pub fn discounted_purchases(run: &ModelRun, x: f64, t_x: f64, t_big: f64) -> Option<f64> {
    let model = run.purchase.as_ref()?;
    let horizon = run.config.horizon_days;
    let months = (horizon / 30.4375).ceil().max(1.0) as usize;
    let mut total = 0.0;
    let mut before = 0.0;
    for k in 1..=months {
        let t = (k as f64 * 30.4375).min(horizon);
        let cumulative = model.expected(t, x, t_x, t_big).ok()?;
        let discount = (1.0 + run.config.annual_discount).powf(t / 365.25);
        total += (cumulative - before) / discount;
        before = cumulative;
    }
    total.is_finite().then_some(total)
}

/// A customer's CLV under `run` on `today` (discounted purchases × expected
/// order value × margin); `discounted` may come from a cache keyed by
/// (x, t_x, T) (see [`discounted_purchases`]).
pub fn clv_of(
    run: &ModelRun,
    summary: &CustomerSummary,
    today: Day,
    discounted: impl FnOnce(f64, f64, f64) -> Option<f64>,
) -> Option<f64> {
    let first = summary.first_order?;
    let x = f64::from(summary.frequency());
    let t_x = f64::from(summary.recency_days()?);
    let t_big = f64::from((today - first).max(0)).max(t_x);
    let v = run
        .spend_model
        .as_ref()?
        .conditional_expected_value(x, summary.repeat_mean_value());
    let clv = discounted(x, t_x, t_big)? * v * run.config.margin;
    clv.is_finite().then_some(clv)
}

fn value(run: &ModelRun, summary: &CustomerSummary, today: Day) -> Option<Value> {
    let model = run.purchase.as_ref()?;
    let first = summary.first_order?;
    let x = f64::from(summary.frequency());
    let t_x = f64::from(summary.recency_days()?);
    let t_big = f64::from((today - first).max(0)).max(t_x);
    let p_alive = model.p_alive(x, t_x, t_big);
    let horizon = run.config.horizon_days;
    let expected_purchases = model
        .expected(horizon, x, t_x, t_big)
        .ok()
        .filter(|v| v.is_finite())?;
    let expected_order_value = run
        .spend_model
        .as_ref()
        .map(|g| g.conditional_expected_value(x, summary.repeat_mean_value()))
        .filter(|v| v.is_finite());
    let clv = expected_order_value.and_then(|v| {
        let d = discounted_purchases(run, x, t_x, t_big)?;
        let total = d * v * run.config.margin;
        total.is_finite().then_some(total)
    });
    let next_order_day = model
        .next_purchase_quantile(0.5, x, t_x, t_big)
        .filter(|t| t.is_finite() && *t < 1e6)
        .map(|t| today + t.ceil() as i32);
    Some(Value {
        p_alive,
        expected_purchases,
        expected_order_value,
        clv,
        next_order_day,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunConfig;
    use lifecycle_models::BgNbd;
    use lifecycle_rfm::{OrderEntry, Scoring};

    fn entry(day: Day, key: u64, amount: f64) -> OrderEntry {
        OrderEntry {
            day,
            key,
            amount,
            rows: 1,
            is_order: amount >= 0.0,
        }
    }

    fn population() -> Vec<CustomerSummary> {
        // 50 customers: customer i orders i % 5 + 1 times, last on day 100 - 2i.
        (0..50)
            .map(|i| {
                let n = i % 5 + 1;
                let last = 100 - 2 * i;
                let entries: Vec<OrderEntry> = (0..n)
                    .map(|k| entry(last - 20 * (n - 1 - k), k as u64, 10.0 + f64::from(i)))
                    .collect();
                CustomerSummary::from_entries(&format!("c{i}"), &entries, 100)
            })
            .collect()
    }

    #[test]
    fn the_run_population_gets_the_batch_segments() {
        let table = SegmentTable::default_table();
        let people = population();
        let run = ModelRun::fit(
            &people,
            100,
            &Scoring::Quintiles,
            &table,
            RunConfig::default(),
        );
        let analysis = lifecycle_rfm::analyze(
            people.clone(),
            100,
            &lifecycle_rfm::AnalysisConfig {
                scoring: Scoring::Quintiles,
                segments: table.clone(),
            },
        );
        for (i, s) in people.iter().enumerate() {
            let live = live_profile(&run, &table, s, 100);
            let batch = &analysis.scores[i];
            assert_eq!(live.scores, batch.scores, "{}", s.customer_id);
            assert_eq!(
                live.segment,
                usize::from(batch.segment),
                "{}",
                s.customer_id
            );
        }
    }

    #[test]
    fn recency_moves_a_customer_on_the_due_day_and_not_before() {
        let table = SegmentTable::default_table();
        let people = population();
        let run = ModelRun::fit(
            &people,
            100,
            &Scoring::Quintiles,
            &table,
            RunConfig::default(),
        );
        for s in &people {
            let mut today = 100;
            let mut steps = 0;
            while let Some(due) = live_profile(&run, &table, s, today).due_day {
                let before = live_profile(&run, &table, s, due - 1);
                let after = live_profile(&run, &table, s, due);
                assert!(due > today);
                assert!(after.scores.unwrap().r < before.scores.unwrap().r);
                // Nothing changes between today and the day before it is due.
                assert_eq!(
                    live_profile(&run, &table, s, today).scores,
                    before.scores,
                    "{} {today}..{due}",
                    s.customer_id
                );
                today = due;
                steps += 1;
                assert!(steps <= 5);
            }
            assert_eq!(live_profile(&run, &table, s, today).scores.unwrap().r, 1);
        }
    }

    #[test]
    fn a_visitor_trips_the_sign_up_norm_and_a_buyer_their_next_order_norm() {
        use lifecycle_tripwires::{History, Norm, Step};
        let norm = |step, days| Norm {
            step,
            coverage: 0.8,
            days,
            customers: 50,
            observed: 50,
            share: 0.8,
            share_interval: None,
            lift: None,
        };
        let mut run = ModelRun::empty(100, RunConfig::default());
        run.norms = vec![norm(Step::FirstOrder, 10), norm(Step::NextOrder(1), 30)];
        let visitor = CustomerSummary::from_entries("v", &[], 100);
        let seen = History {
            first_seen: Some(95),
            days: vec![],
            values: vec![],
        };
        let t = tripwires(&run, &visitor, &seen.progress(100), 100);
        assert!(t.open.is_empty());
        // Warning from ⌈0.75 × 10⌉ = 8 days, tripped after 10.
        assert_eq!(t.next_deadline, Some(103));
        let t = tripwires(&run, &visitor, &seen.progress(106), 106);
        assert_eq!(t.open[0].name, "signup_to_order_1");
        assert_eq!(t.open[0].status, lifecycle_tripwires::Status::Tripped);
        let buyer = CustomerSummary::from_entries("b", &[entry(50, 1, 10.0)], 100);
        let h = History::from_entries(&[entry(50, 1, 10.0)], Some(40));
        let t = tripwires(&run, &buyer, &h.progress(100), 100);
        assert_eq!(
            progress(&buyer, Some(40)),
            h.progress(100),
            "the summary's progress is the history's"
        );
        assert_eq!(t.open[0].name, "order_1_to_2");
        assert_eq!(t.open[0].since, 81);
    }

    #[test]
    fn value_uses_the_run_models() {
        let table = SegmentTable::default_table();
        let mut run = ModelRun::empty(100, RunConfig::default());
        let s = CustomerSummary::from_entries(
            "a",
            &[entry(10, 1, 20.0), entry(40, 2, 30.0), entry(90, 3, 40.0)],
            100,
        );
        assert_eq!(live_profile(&run, &table, &s, 100).value, None);
        // FHL 2005's CDNOW parameters, per week, rescaled to days.
        run.purchase = Some(
            BgNbd::new(0.243, 4.414, 0.793, 2.426)
                .unwrap()
                .rescaled(1.0 / 7.0)
                .unwrap(),
        );
        let v = live_profile(&run, &table, &s, 100).value.unwrap();
        assert!(v.p_alive > 0.5 && v.p_alive <= 1.0, "{v:?}");
        assert!(v.expected_purchases > 0.0);
        assert_eq!(v.clv, None);
        assert!(v.next_order_day.is_some_and(|d| d > 100));
        run.spend_model = Some(lifecycle_models::GammaGamma::new(6.25, 3.74, 15.44).unwrap());
        let v = live_profile(&run, &table, &s, 100).value.unwrap();
        let clv = v.clv.unwrap();
        // Discounted: below the undiscounted expected purchases × value.
        assert!(clv > 0.0 && clv < v.expected_purchases * v.expected_order_value.unwrap());
        // Absence lowers P(alive) and value.
        let later = live_profile(&run, &table, &s, 400).value.unwrap();
        assert!(later.p_alive < v.p_alive && later.clv.unwrap() < clv);
    }
}
