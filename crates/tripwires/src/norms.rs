//! Norms learned from the best customers: "p% of them placed their
//! (k+1)-th order within N days of their k-th" (and, with events, their
//! first order within N days of signing up), with the evidence, and a
//! temporal backtest of each norm.

use lifecycle_rfm::{Day, OrderEntry};

use crate::km::KaplanMeier;
use crate::stats::{Estimate, Moments, proportion_difference, proportion_ratio, wilson};

/// A customer's purchase days (ascending) with each day's net value, and
/// when they were first seen (sign-up, first visit), if known.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    pub first_seen: Option<Day>,
    pub days: Vec<Day>,
    pub values: Vec<f64>,
}

impl History {
    /// From consolidated orders (a store's entries): each day with an
    /// order is a purchase day; refunds count in the value of their day.
    pub fn from_entries(entries: &[OrderEntry], first_seen: Option<Day>) -> History {
        let mut h = History {
            first_seen,
            ..History::default()
        };
        let mut sorted: Vec<&OrderEntry> = entries.iter().collect();
        sorted.sort_by_key(|e| (e.day, e.key));
        let mut order_days: Vec<Day> = sorted
            .iter()
            .filter(|e| e.is_order)
            .map(|e| e.day)
            .collect();
        order_days.dedup();
        for d in order_days {
            h.days.push(d);
            h.values
                .push(sorted.iter().filter(|e| e.day == d).map(|e| e.amount).sum());
        }
        h
    }

    /// The history as it was known on `day` (later purchases left out).
    pub fn until(&self, day: Day) -> History {
        let n = self.days.partition_point(|&d| d <= day);
        History {
            first_seen: self.first_seen.filter(|&f| f <= day),
            days: self.days[..n].to_vec(),
            values: self.values[..n].to_vec(),
        }
    }

    /// The day of the k-th purchase (1-based).
    pub fn purchase(&self, k: usize) -> Option<Day> {
        k.checked_sub(1).and_then(|i| self.days.get(i).copied())
    }
}

/// Which step of the customer's life a norm is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// From the k-th order to the (k+1)-th.
    NextOrder(u32),
    /// From sign-up / first visit to the first order.
    FirstOrder,
}

impl Step {
    /// The day the clock starts and, if it happened, the day it stopped.
    fn span(&self, h: &History) -> Option<(Day, Option<Day>)> {
        match *self {
            Step::NextOrder(k) => {
                let start = h.purchase(k as usize)?;
                Some((start, h.purchase(k as usize + 1)))
            }
            Step::FirstOrder => {
                let start = h.first_seen?;
                match h.days.first().copied() {
                    // Bought before they were first seen: never a visitor
                    // waiting for a first order.
                    Some(d) if d < start => None,
                    first => Some((start, first)),
                }
            }
        }
    }

    /// The step a [`Step::key`] names.
    pub fn from_key(key: &str) -> Option<Step> {
        if key == "signup_to_order_1" {
            return Some(Step::FirstOrder);
        }
        let rest = key.strip_prefix("order_")?;
        let (k, next) = rest.split_once("_to_")?;
        let k: u32 = k.parse().ok()?;
        (next.parse::<u32>().ok()? == k + 1 && k >= 1).then_some(Step::NextOrder(k))
    }

    /// A short machine name: `order_1_to_2`, `signup_to_order_1`.
    pub fn key(&self) -> String {
        match *self {
            Step::NextOrder(k) => format!("order_{k}_to_{}", k + 1),
            Step::FirstOrder => "signup_to_order_1".into(),
        }
    }
}

/// Time-to-step durations in days: observed, or censored at `as_of`.
pub fn durations<'a>(
    histories: impl Iterator<Item = &'a History>,
    step: Step,
    as_of: Day,
) -> Vec<(f64, bool)> {
    histories
        .filter_map(|h| {
            let (start, end) = step.span(h)?;
            if start > as_of {
                return None;
            }
            Some(match end {
                Some(e) if e <= as_of => (f64::from(e - start), true),
                _ => (f64::from(as_of - start), false),
            })
        })
        .collect()
}

/// How norms are learned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnConfig {
    /// The share of best customers the norm covers (0.8: "80% of them").
    pub coverage: f64,
    /// Learn k → k+1 for k = 1..=max_k.
    pub max_k: u32,
    /// Skip a step with fewer best customers than this.
    pub min_customers: usize,
    /// The outcome of the lift statement: reaching this many orders.
    pub target_orders: u32,
    pub level: f64,
}

impl Default for LearnConfig {
    fn default() -> Self {
        LearnConfig {
            coverage: 0.8,
            max_k: 4,
            min_customers: 30,
            target_orders: 5,
            level: 0.95,
        }
    }
}

/// "Customers who did were r× as likely to reach `target` orders."
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lift {
    pub target_orders: u32,
    /// Customers who kept the norm: reached the target / all of them.
    pub kept: (u64, u64),
    /// Customers who did not.
    pub missed: (u64, u64),
    /// kept share / missed share, with its interval.
    pub ratio: Option<Estimate>,
}

/// One learned norm with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Norm {
    pub step: Step,
    pub coverage: f64,
    /// The deadline in days.
    pub days: u32,
    /// Best customers who had the starting event, and of them how many had
    /// the step observed (the rest are censored).
    pub customers: usize,
    pub observed: usize,
    /// F(days) for the best customers, with its interval.
    pub share: f64,
    pub share_interval: Option<(f64, f64)>,
    /// Over all customers whose window has closed.
    pub lift: Option<Lift>,
}

/// The steps to learn, in order.
pub fn steps(config: &LearnConfig, with_signups: bool) -> Vec<Step> {
    let mut s: Vec<Step> = Vec::new();
    if with_signups {
        s.push(Step::FirstOrder);
    }
    s.extend((1..=config.max_k).map(Step::NextOrder));
    s
}

/// Learns the norm of `step` from the best customers (`best[i]` for
/// `histories[i]`) as of `as_of`: the Kaplan-Meier time by which
/// `coverage` of them had taken it. `None` when too few best customers
/// started the step or the curve never reaches the coverage.
pub fn learn(
    histories: &[History],
    best: &[bool],
    step: Step,
    as_of: Day,
    config: &LearnConfig,
) -> Option<Norm> {
    let best_histories = histories
        .iter()
        .zip(best)
        .filter(|(_, b)| **b)
        .map(|(h, _)| h);
    let data = durations(best_histories, step, as_of);
    if data.len() < config.min_customers {
        return None;
    }
    let km = KaplanMeier::fit(&data);
    let days = km.quantile(config.coverage)?;
    let days_u = days.max(0.0).ceil() as u32;
    let lift = lift(histories, step, days_u, as_of, config);
    Some(Norm {
        step,
        coverage: config.coverage,
        days: days_u,
        customers: km.len(),
        observed: km.observed(),
        share: km.cdf(days),
        share_interval: km.cdf_interval(days, config.level),
        lift,
    })
}

/// Orders (purchase days) a history reached by `as_of`.
fn orders_by(h: &History, as_of: Day) -> u32 {
    h.days.partition_point(|&d| d <= as_of) as u32
}

fn lift(
    histories: &[History],
    step: Step,
    days: u32,
    as_of: Day,
    config: &LearnConfig,
) -> Option<Lift> {
    let target = match step {
        Step::NextOrder(k) => config.target_orders.max(k + 2),
        Step::FirstOrder => 2,
    };
    let (mut kept, mut missed) = ((0u64, 0u64), (0u64, 0u64));
    for h in histories {
        let Some((start, end)) = step.span(h) else {
            continue;
        };
        let deadline = start.saturating_add(days as i32);
        if deadline > as_of {
            continue; // the window has not closed
        }
        let reached = u64::from(orders_by(h, as_of) >= target);
        match end {
            Some(e) if e <= deadline => {
                kept.0 += reached;
                kept.1 += 1;
            }
            _ => {
                missed.0 += reached;
                missed.1 += 1;
            }
        }
    }
    if kept.1 == 0 || missed.1 == 0 {
        return None;
    }
    Some(Lift {
        target_orders: target,
        kept,
        missed,
        ratio: proportion_ratio(kept.0, kept.1, missed.0, missed.1, config.level),
    })
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The norm in plain words, e.g. "80% of your Champions placed their 2nd
/// order within 27 days of their 1st (n=1,204). Customers who did were
/// 3.1× as likely to reach 5 orders."
pub fn describe(norm: &Norm, best: &str) -> String {
    let pct = (norm.coverage * 100.0).round();
    let what = match norm.step {
        Step::NextOrder(k) => format!(
            "placed their {} order within {} days of their {}",
            ordinal(k + 1),
            norm.days,
            ordinal(k)
        ),
        Step::FirstOrder => format!(
            "placed their first order within {} days of signing up",
            norm.days
        ),
    };
    let mut s = format!(
        "{pct}% of your {best} {what} (n={}).",
        thousands(norm.customers)
    );
    if let Some(l) = &norm.lift {
        let kept = l.kept.0 as f64 / l.kept.1 as f64;
        let missed = l.missed.0 as f64 / l.missed.1 as f64;
        match l.ratio {
            Some(r) => s.push_str(&format!(
                " Customers who did were {:.1}× as likely to reach {} orders ({:.0}% vs {:.0}%).",
                r.value,
                l.target_orders,
                kept * 100.0,
                missed * 100.0
            )),
            None => s.push_str(&format!(
                " Of customers who did, {:.0}% reached {} orders; of those who did not, {:.0}%.",
                kept * 100.0,
                l.target_orders,
                missed * 100.0
            )),
        }
    }
    s
}

/// How a norm is judged out of sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BacktestConfig {
    /// Norms are learned on the history up to this day.
    pub split: Day,
    /// Outcomes are measured over this many days after the deadline.
    pub horizon_days: u32,
    pub level: f64,
}

/// What happened after the deadline to one group of the cohort.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outcome {
    pub customers: u64,
    /// Ordered again within the horizon.
    pub repeaters: u64,
    pub revenue: Moments,
}

/// A norm learned before the split and judged on deadlines after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    pub norm: Norm,
    pub split: Day,
    pub horizon_days: u32,
    /// Customers whose deadline fell in [split, as_of − horizon].
    pub kept: Outcome,
    pub tripped: Outcome,
    /// Repeat rate kept − tripped, and revenue per customer kept − tripped.
    pub repeat_difference: Option<Estimate>,
    pub repeat_rates: (Option<Estimate>, Option<Estimate>),
    pub revenue_difference: Option<Estimate>,
}

/// The default split for `step`: the day by which half of the customers
/// who reached the step's start had reached it, so that about half the
/// starts are learned from and half judged.
pub fn default_split(histories: &[History], step: Step, as_of: Day) -> Option<Day> {
    let mut starts: Vec<Day> = histories
        .iter()
        .filter_map(|h| match step {
            Step::NextOrder(k) => h.purchase(k as usize),
            Step::FirstOrder => h.first_seen,
        })
        .filter(|&d| d <= as_of)
        .collect();
    if starts.is_empty() {
        return None;
    }
    let mid = starts.len() / 2;
    let (_, median, _) = starts.select_nth_unstable(mid);
    Some(*median)
}

/// Learns `step`'s norm on the history up to `config.split` (the best
/// customers as they were then: `best_at_split`) and judges it on the
/// customers whose deadline falls after the split and whose outcome window
/// `(deadline, deadline + horizon]` has closed by `as_of`: those who kept
/// the norm against those who tripped it, by their repeat rate and
/// revenue in that window. Learning and judging never see the same
/// outcomes, so choosing the best customers on their outcome cannot
/// flatter the norm.
pub fn backtest(
    histories: &[History],
    best_at_split: &[bool],
    step: Step,
    as_of: Day,
    learn_config: &LearnConfig,
    config: &BacktestConfig,
) -> Option<Backtest> {
    let before: Vec<History> = histories.iter().map(|h| h.until(config.split)).collect();
    let norm = learn(&before, best_at_split, step, config.split, learn_config)?;
    let horizon = config.horizon_days as i32;
    let mut kept = Outcome::default();
    let mut tripped = Outcome::default();
    for h in histories {
        let Some((start, end)) = step.span(h) else {
            continue;
        };
        let deadline = start.saturating_add(norm.days as i32);
        if deadline < config.split || deadline.saturating_add(horizon) > as_of {
            continue;
        }
        let group = match end {
            Some(e) if e <= deadline => &mut kept,
            _ => &mut tripped,
        };
        let mut revenue = 0.0;
        let mut repeated = false;
        for (d, v) in h.days.iter().zip(&h.values) {
            if *d > deadline && *d <= deadline + horizon {
                repeated = true;
                revenue += v;
            }
        }
        group.customers += 1;
        group.repeaters += u64::from(repeated);
        group.revenue.add(revenue);
    }
    Some(Backtest {
        repeat_difference: proportion_difference(
            kept.repeaters,
            kept.customers,
            tripped.repeaters,
            tripped.customers,
            config.level,
        ),
        repeat_rates: (
            wilson(kept.repeaters, kept.customers, config.level),
            wilson(tripped.repeaters, tripped.customers, config.level),
        ),
        revenue_difference: crate::stats::mean_difference(
            &kept.revenue,
            &tripped.revenue,
            config.level,
        ),
        norm,
        split: config.split,
        horizon_days: config.horizon_days,
        kept,
        tripped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(days: &[Day]) -> History {
        History {
            first_seen: None,
            days: days.to_vec(),
            values: vec![10.0; days.len()],
        }
    }

    #[test]
    fn durations_censor_open_windows() {
        let hs = [h(&[0, 10]), h(&[0]), h(&[5, 100]), h(&[200])];
        let d = durations(hs.iter(), Step::NextOrder(1), 50);
        // 10 observed; 50 censored; 45 censored (the 2nd order is after
        // as_of); the fourth starts after as_of.
        assert_eq!(d, vec![(10.0, true), (50.0, false), (45.0, false)]);
        let mut signup = h(&[30]);
        signup.first_seen = Some(20);
        let mut never = h(&[]);
        never.first_seen = Some(40);
        let d = durations([signup, never].iter(), Step::FirstOrder, 50);
        assert_eq!(d, vec![(10.0, true), (10.0, false)]);
    }

    #[test]
    fn a_hand_built_norm_with_censoring_and_lift() {
        // 40 best customers: 32 reorder after 1..=32 days, 8 were seen for
        // only 5 days (censored). KM: the 8 censored at 5 drop out of the
        // risk set, so F reaches 0.8 when 80% of the 32 + adjustment...
        let mut hs = Vec::new();
        for i in 1..=32 {
            hs.push(h(&[0, i]));
        }
        for _ in 0..8 {
            hs.push(h(&[95]));
        }
        let best = vec![true; hs.len()];
        let config = LearnConfig {
            min_customers: 10,
            ..LearnConfig::default()
        };
        let norm = learn(&hs, &best, Step::NextOrder(1), 100, &config).unwrap();
        // The censored 8 (at 5 days) were at risk for days 1..5 only:
        // S(5) = Π_{t=1..5} (1 − 1/(41 − t)) = 35/40; afterwards 27 at risk
        // with one event a day, so F(t) = 1 − (35/40)(32 − t)/27 for t ≥ 5;
        // F ≥ 0.8 first at t = 26 (F = 0.8056).
        assert_eq!(norm.days, 26);
        assert!((norm.share - (1.0 - 35.0 / 40.0 * 6.0 / 27.0)).abs() < 1e-12);
        assert_eq!((norm.customers, norm.observed), (40, 32));
        // A naive quantile that counted the censored as failures would say
        // "never" (only 32/40 = 80% by day 32) or 32 days.
        let text = describe(&norm, "Champions");
        assert!(
            text.starts_with(
                "80% of your Champions placed their 2nd order within 26 days of their 1st (n=40)."
            ),
            "{text}"
        );
    }

    #[test]
    fn lift_compares_customers_whose_window_closed() {
        // Kept the norm (2nd order within 10 days): 4 customers, 2 reach 5
        // orders. Missed: 4 customers, 1 reaches 5. A fifth started too late.
        let hs = vec![
            h(&[0, 5, 20, 30, 40]),
            h(&[0, 5, 20, 30, 41]),
            h(&[0, 5]),
            h(&[0, 8]),
            h(&[0, 50, 60, 70, 80]),
            h(&[0, 50]),
            h(&[0]),
            h(&[0]),
            h(&[95]),
        ];
        let config = LearnConfig::default();
        let l = lift(&hs, Step::NextOrder(1), 10, 100, &config).unwrap();
        assert_eq!(l.target_orders, 5);
        assert_eq!(l.kept, (2, 4));
        assert_eq!(l.missed, (1, 4));
        assert!((l.ratio.unwrap().value - 2.0).abs() < 1e-12);
    }

    #[test]
    fn backtest_learns_before_and_judges_after_the_split() {
        // Before the split (day 100): best customers reorder within 10
        // days. After it: customers starting on day 100..150; those who
        // reorder within 10 days go on buying, the others do not.
        let mut hs = Vec::new();
        let mut best = Vec::new();
        for i in 0..50 {
            hs.push(h(&[i, i + 1 + i % 10]));
            best.push(true);
        }
        for i in 0..40 {
            let s = 100 + i;
            if i % 2 == 0 {
                hs.push(h(&[s, s + 3, s + 40]));
            } else {
                hs.push(h(&[s]));
            }
            best.push(false);
        }
        let lc = LearnConfig {
            min_customers: 10,
            ..LearnConfig::default()
        };
        let bc = BacktestConfig {
            split: 100,
            horizon_days: 60,
            level: 0.95,
        };
        let bt = backtest(&hs, &best, Step::NextOrder(1), 300, &lc, &bc).unwrap();
        assert_eq!(bt.norm.days, 8);
        // The cohort: deadlines in [100, 240]: the 40 later customers and
        // the early ones whose deadline (start + 8) is ≥ 100: none.
        assert_eq!(bt.kept.customers + bt.tripped.customers, 40);
        assert_eq!((bt.kept.customers, bt.kept.repeaters), (20, 20));
        assert_eq!((bt.tripped.customers, bt.tripped.repeaters), (20, 0));
        let d = bt.repeat_difference.unwrap();
        assert!((d.value - 1.0).abs() < 1e-12 && d.low > 0.5);
        let r = bt.revenue_difference.unwrap();
        assert!((r.value - 10.0).abs() < 1e-12);
    }

    #[test]
    fn from_entries_makes_purchase_days() {
        let e = |day, key, amount: f64| OrderEntry {
            day,
            key,
            amount,
            rows: 1,
            is_order: amount >= 0.0,
        };
        let hist = History::from_entries(
            &[e(5, 2, 10.0), e(1, 1, 4.0), e(5, 3, 6.0), e(7, 9, -3.0)],
            Some(0),
        );
        assert_eq!(hist.days, vec![1, 5]);
        assert_eq!(hist.values, vec![4.0, 16.0]);
        assert_eq!(hist.until(4).days, vec![1]);
        assert_eq!(ordinal(2), "2nd");
        assert_eq!(ordinal(11), "11th");
        assert_eq!(ordinal(23), "23rd");
        assert_eq!(thousands(1204), "1,204");
        for s in [Step::FirstOrder, Step::NextOrder(1), Step::NextOrder(12)] {
            assert_eq!(Step::from_key(&s.key()), Some(s));
        }
        assert_eq!(Step::from_key("order_1_to_3"), None);
    }
}
