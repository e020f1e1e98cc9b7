//! Customer KPIs from order histories: the cohort matrix by acquisition
//! month (customers active and revenue per month since acquisition),
//! period retention (of the customers active in a month, the share active
//! in the next), the repeat-purchase rate, value concentration (the top
//! 20%'s share of revenue, the Gini coefficient) and the distribution of
//! the time between orders.
//!
//! Also new-customer stickiness by group, anomalies (attribute values over-
//! or under-represented in a segment), LTV:CAC, and from order lines
//! ([`lines`]): first-order facts, margin, upsell affinities.
//!
//! It owns the definitions of these KPIs and computes them in one pass
//! over customers' consolidated orders (`lifecycle_rfm::OrderEntry`, as
//! `SummaryBuilder::for_each_customer_orders` yields them). It is pure: no
//! IO, no clock (the last day is an argument); it depends only on
//! `lifecycle-rfm` and `lifecycle-lift` (tests, corrections) and must never
//! depend on readers, the store or the CLI.

pub mod experience;
pub mod icp;
pub mod lines;

use lifecycle_rfm::{Day, OrderEntry};

/// A calendar month as months since 1970-01 (0 = January 1970).
pub type Month = i32;

/// The (year, month 1..=12) of a day since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
pub fn civil(day: Day) -> (i32, u32) {
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u32)
}

/// The month of a day.
pub fn month_of(day: Day) -> Month {
    let (y, m) = civil(day);
    (y - 1970) * 12 + m as i32 - 1
}

/// `YYYY-MM`.
pub fn month_label(m: Month) -> String {
    format!("{:04}-{:02}", 1970 + m.div_euclid(12), m.rem_euclid(12) + 1)
}

/// One acquisition cohort.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    pub month: Month,
    pub size: u64,
    /// Customers with an order in each month since acquisition (offset 0 first).
    pub active: Vec<u64>,
    /// Net order amounts of the cohort's customers in each month since acquisition.
    pub revenue: Vec<f64>,
}

/// Retention from one period (month, quarter or year) to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodRetention {
    /// The period's first month.
    pub month: Month,
    /// Customers active in the period before and in this one.
    pub retained: u64,
    /// Customers active in the period before.
    pub previous_active: u64,
}

/// A retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Month,
    Quarter,
    Year,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Month, Period::Quarter, Period::Year];

    pub fn months(self) -> i32 {
        match self {
            Period::Month => 1,
            Period::Quarter => 3,
            Period::Year => 12,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.name() == s.trim())
    }

    /// `2024-03`, `2024-Q1` or `2024` for the period starting in `month`.
    pub fn label(self, month: Month) -> String {
        let y = 1970 + month.div_euclid(12);
        match self {
            Period::Month => month_label(month),
            Period::Quarter => format!("{y:04}-Q{}", month.rem_euclid(12) / 3 + 1),
            Period::Year => format!("{y:04}"),
        }
    }
}

impl PeriodRetention {
    pub fn rate(&self) -> Option<f64> {
        (self.previous_active > 0).then(|| self.retained as f64 / self.previous_active as f64)
    }
}

/// The time between consecutive purchase days, pooled over customers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Gaps {
    pub count: u64,
    pub mean: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
}

/// Every KPI of this crate.
#[derive(Debug, Clone, PartialEq)]
pub struct Kpis {
    /// Customers with at least one order.
    pub customers: u64,
    pub cohorts: Vec<Cohort>,
    pub period_retention: Vec<PeriodRetention>,
    /// The same by quarter and by year (the periods' first months; the
    /// last period may not be over yet).
    pub quarterly_retention: Vec<PeriodRetention>,
    pub yearly_retention: Vec<PeriodRetention>,
    /// Share of customers with at least two purchase days.
    pub repeat_rate: f64,
    /// The top 20% of customers (⌈0.2·N⌉ by revenue) and their share of revenue.
    pub pareto_top_n: u64,
    pub pareto_top20_share: Option<f64>,
    pub gini: Option<f64>,
    /// The Lorenz curve at 101 points: (share of customers from the
    /// smallest, their share of revenue), from (0, 0) to (1, 1).
    pub lorenz: Vec<(f64, f64)>,
    pub gaps: Gaps,
    /// The distribution of the gaps: (from, to days, count) in bins of 7,
    /// 14 or 30 days (by the 90th percentile), the last open-ended from
    /// the 99th percentile.
    pub gap_histogram: Vec<(u32, Option<u32>, u64)>,
}

impl Kpis {
    /// Retention by the given period.
    pub fn retention(&self, p: Period) -> &[PeriodRetention] {
        match p {
            Period::Month => &self.period_retention,
            Period::Quarter => &self.quarterly_retention,
            Period::Year => &self.yearly_retention,
        }
    }
}

/// Accumulates customers one at a time.
#[derive(Debug, Default)]
pub struct KpiBuilder {
    first: Option<Month>,
    last: Option<Month>,
    /// (cohort month, offset) → (active, revenue), grown as needed.
    cells: Vec<(Month, Vec<u64>, Vec<f64>, u64)>,
    /// Active customers by month, and those also active the month before.
    active: Vec<(Month, u64, u64)>,
    /// The same by quarter and by year (keyed by quarter or year number).
    active_quarters: Vec<(i32, u64, u64)>,
    active_years: Vec<(i32, u64, u64)>,
    customers: u64,
    repeaters: u64,
    totals: Vec<f64>,
    gaps: Vec<f64>,
}

impl KpiBuilder {
    pub fn new() -> KpiBuilder {
        KpiBuilder::default()
    }

    fn cohort(&mut self, month: Month) -> usize {
        match self.cells.iter().position(|c| c.0 == month) {
            Some(i) => i,
            None => {
                self.cells.push((month, Vec::new(), Vec::new(), 0));
                self.cells.len() - 1
            }
        }
    }

    fn active_slot(&mut self, month: Month) -> usize {
        match self.active.iter().position(|a| a.0 == month) {
            Some(i) => i,
            None => {
                self.active.push((month, 0, 0));
                self.active.len() - 1
            }
        }
    }

    /// One customer's consolidated orders and refunds (sorted by day).
    pub fn add(&mut self, entries: &[OrderEntry]) {
        let Some(first_order) = entries.iter().filter(|e| e.is_order).map(|e| e.day).min() else {
            return;
        };
        self.customers += 1;
        let cohort_month = month_of(first_order);
        let k = self.cohort(cohort_month);
        self.cells[k].3 += 1;
        let mut months: Vec<Month> = Vec::new();
        let mut days: Vec<Day> = Vec::new();
        let mut total = 0.0;
        for e in entries {
            let m = month_of(e.day);
            let offset = (m - cohort_month).max(0) as usize;
            let cell = &mut self.cells[k];
            if cell.2.len() <= offset {
                cell.1.resize(offset + 1, 0);
                cell.2.resize(offset + 1, 0.0);
            }
            cell.2[offset] += e.amount;
            total += e.amount;
            if e.is_order {
                if !months.contains(&m) {
                    months.push(m);
                }
                if days.last() != Some(&e.day) {
                    days.push(e.day);
                }
            }
            self.first = Some(self.first.map_or(m, |f| f.min(m)));
            self.last = Some(self.last.map_or(m, |l| l.max(m)));
        }
        months.sort_unstable();
        for (i, &m) in months.iter().enumerate() {
            let offset = (m - cohort_month).max(0) as usize;
            self.cells[k].1[offset] += 1;
            let s = self.active_slot(m);
            self.active[s].1 += 1;
            if i > 0 && months[i - 1] == m - 1 {
                self.active[s].2 += 1;
            }
        }
        for (len, list) in [(3, &mut self.active_quarters), (12, &mut self.active_years)] {
            let mut periods: Vec<i32> = months.iter().map(|m| m.div_euclid(len)).collect();
            periods.dedup();
            for (i, &p) in periods.iter().enumerate() {
                let s = match list.iter().position(|a| a.0 == p) {
                    Some(s) => s,
                    None => {
                        list.push((p, 0, 0));
                        list.len() - 1
                    }
                };
                list[s].1 += 1;
                if i > 0 && periods[i - 1] == p - 1 {
                    list[s].2 += 1;
                }
            }
        }
        days.sort_unstable();
        days.dedup();
        if days.len() >= 2 {
            self.repeaters += 1;
        }
        self.gaps
            .extend(days.windows(2).map(|w| f64::from(w[1] - w[0])));
        self.totals.push(total);
    }

    /// The KPIs up to the last month seen.
    pub fn finish(mut self) -> Kpis {
        let (first, last) = match (self.first, self.last) {
            (Some(f), Some(l)) => (f, l),
            _ => {
                return Kpis {
                    customers: 0,
                    cohorts: Vec::new(),
                    period_retention: Vec::new(),
                    quarterly_retention: Vec::new(),
                    yearly_retention: Vec::new(),
                    repeat_rate: 0.0,
                    pareto_top_n: 0,
                    pareto_top20_share: None,
                    gini: None,
                    lorenz: Vec::new(),
                    gaps: Gaps::default(),
                    gap_histogram: Vec::new(),
                };
            }
        };
        self.cells.sort_by_key(|c| c.0);
        let cohorts = self
            .cells
            .into_iter()
            .map(|(month, mut active, mut revenue, size)| {
                let span = (last - month + 1).max(0) as usize;
                active.resize(span, 0);
                revenue.resize(span, 0.0);
                Cohort {
                    month,
                    size,
                    active,
                    revenue,
                }
            })
            .collect();
        let count = |m: Month, v: &[(Month, u64, u64)]| {
            v.iter().find(|a| a.0 == m).map_or((0, 0), |a| (a.1, a.2))
        };
        let period_retention = (first + 1..=last)
            .map(|m| PeriodRetention {
                month: m,
                retained: count(m, &self.active).1,
                previous_active: count(m - 1, &self.active).0,
            })
            .collect();
        let by = |len: i32, active: &[(i32, u64, u64)]| -> Vec<PeriodRetention> {
            (first.div_euclid(len) + 1..=last.div_euclid(len))
                .map(|p| PeriodRetention {
                    month: p * len,
                    retained: count(p, active).1,
                    previous_active: count(p - 1, active).0,
                })
                .collect()
        };
        let quarterly_retention = by(3, &self.active_quarters);
        let yearly_retention = by(12, &self.active_years);
        let conc = concentration(self.totals);
        let mut gaps = self.gaps;
        gaps.sort_by(f64::total_cmp);
        let q = |p: f64| quantile(&gaps, p);
        let gap_histogram = histogram(&gaps);
        Kpis {
            customers: self.customers,
            cohorts,
            period_retention,
            quarterly_retention,
            yearly_retention,
            repeat_rate: if self.customers > 0 {
                self.repeaters as f64 / self.customers as f64
            } else {
                0.0
            },
            pareto_top_n: conc.top_n,
            pareto_top20_share: conc.top20_share,
            gini: conc.gini,
            lorenz: conc.lorenz,
            gaps: Gaps {
                count: gaps.len() as u64,
                mean: if gaps.is_empty() {
                    0.0
                } else {
                    gaps.iter().sum::<f64>() / gaps.len() as f64
                },
                p25: q(0.25),
                p50: q(0.5),
                p75: q(0.75),
                p90: q(0.9),
            },
            gap_histogram,
        }
    }
}

/// Bins of sorted day counts: 7, 14 or 30 days wide (by the 90th
/// percentile), up to the 99th percentile, then one open-ended bin.
pub fn histogram(sorted: &[f64]) -> Vec<(u32, Option<u32>, u64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let p90 = quantile(sorted, 0.9);
    let width: u32 = if p90 <= 120.0 {
        7
    } else if p90 <= 365.0 {
        14
    } else {
        30
    };
    let end = (quantile(sorted, 0.99).max(0.0) as u32)
        .div_ceil(width)
        .max(1)
        * width;
    let mut out: Vec<(u32, Option<u32>, u64)> = (0..end / width)
        .map(|i| (i * width, Some((i + 1) * width), 0))
        .collect();
    out.push((end, None, 0));
    let last = out.len() - 1;
    for &g in sorted {
        let i = ((g.max(0.0) as u32) / width) as usize;
        out[i.min(last)].2 += 1;
    }
    out
}

/// How concentrated a total (revenue, margin) is over customers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Concentration {
    /// ⌈0.2·N⌉: the top 20% of customers.
    pub top_n: u64,
    /// Their share of the sum (`None` when it is 0).
    pub top20_share: Option<f64>,
    pub gini: Option<f64>,
    /// (share of customers from the smallest, their share of the sum) at
    /// 101 points.
    pub lorenz: Vec<(f64, f64)>,
}

/// The Pareto share, Gini coefficient and Lorenz curve of per-customer totals.
pub fn concentration(mut totals: Vec<f64>) -> Concentration {
    let n = totals.len();
    totals.sort_by(|a, b| b.total_cmp(a));
    let sum: f64 = totals.iter().sum();
    let top_n = (0.2 * n as f64).ceil() as usize;
    let top20_share = (sum != 0.0).then(|| totals[..top_n.min(n)].iter().sum::<f64>() / sum);
    // Gini over ascending totals: Σ (2i − N − 1) x_i / (N Σx), i from 1.
    let gini = (sum != 0.0 && n > 0).then(|| {
        let nf = n as f64;
        totals
            .iter()
            .rev()
            .enumerate()
            .map(|(i, x)| (2.0 * (i + 1) as f64 - nf - 1.0) * x)
            .sum::<f64>()
            / (nf * sum)
    });
    Concentration {
        top_n: top_n as u64,
        top20_share,
        gini,
        lorenz: lorenz(&totals, sum),
    }
}

/// The Lorenz curve of customer totals sorted descending: at each whole
/// percent of customers (smallest first), their cumulative share of the sum.
fn lorenz(descending: &[f64], sum: f64) -> Vec<(f64, f64)> {
    let n = descending.len();
    if n == 0 || sum == 0.0 {
        return Vec::new();
    }
    let mut cumulative = Vec::with_capacity(n + 1);
    cumulative.push(0.0);
    let mut acc = 0.0;
    for x in descending.iter().rev() {
        acc += x;
        cumulative.push(acc);
    }
    (0..=100)
        .map(|p| {
            let k = (p * n).div_ceil(100).min(n);
            (p as f64 / 100.0, cumulative[k] / sum)
        })
        .collect()
}

/// A quantile with numpy's default (linear) interpolation; 0 when empty.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let h = (sorted.len() - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(day: Day, amount: f64) -> OrderEntry {
        OrderEntry {
            day,
            key: day as u64,
            amount,
            rows: 1,
            is_order: amount >= 0.0,
        }
    }

    /// 1997-01-01 is day 9862.
    const JAN: Day = 9862;

    #[test]
    fn months_and_labels() {
        assert_eq!(civil(JAN), (1997, 1));
        assert_eq!(month_label(month_of(JAN + 31)), "1997-02");
        assert_eq!(month_label(month_of(0)), "1970-01");
        assert_eq!(month_label(month_of(-1)), "1969-12");
    }

    /// Three customers by hand: A (Jan, Feb, Apr), B (Jan only, twice on
    /// one day), C (Feb, Mar, with a refund in Mar).
    #[test]
    fn small_history_by_hand() {
        let mut b = KpiBuilder::new();
        b.add(&[e(JAN, 10.0), e(JAN + 35, 20.0), e(JAN + 95, 30.0)]);
        b.add(&[
            e(JAN + 3, 5.0),
            OrderEntry {
                key: 99,
                ..e(JAN + 3, 5.0)
            },
        ]);
        b.add(&[e(JAN + 40, 40.0), e(JAN + 60, 8.0), e(JAN + 61, -8.0)]);
        let k = b.finish();
        assert_eq!(k.customers, 3);
        let jan = &k.cohorts[0];
        assert_eq!(
            (month_label(jan.month), jan.size),
            ("1997-01".to_string(), 2)
        );
        assert_eq!(jan.active, vec![2, 1, 0, 1]);
        assert_eq!(jan.revenue, vec![20.0, 20.0, 0.0, 30.0]);
        let feb = &k.cohorts[1];
        assert_eq!((feb.size, feb.active.clone()), (1, vec![1, 1, 0]));
        assert_eq!(feb.revenue, vec![40.0, 0.0, 0.0]);
        // Feb: of Jan's 2 active, A is active again; Mar: of Feb's 2 (A, C), C.
        let r: Vec<(u64, u64)> = k
            .period_retention
            .iter()
            .map(|p| (p.retained, p.previous_active))
            .collect();
        assert_eq!(r, vec![(1, 2), (1, 2), (0, 1)]);
        // A and C have two purchase days or more; B one.
        assert!((k.repeat_rate - 2.0 / 3.0).abs() < 1e-12);
        // Totals 60, 10, 40: the top ⌈0.6⌉ = 1 customer has 60/110.
        assert_eq!(k.pareto_top_n, 1);
        assert!((k.pareto_top20_share.unwrap() - 60.0 / 110.0).abs() < 1e-12);
        // Gini of (10, 40, 60): Σ(2i−4)x = −2·10 + 0 + 2·60 = 100; /(3·110).
        assert!((k.gini.unwrap() - 100.0 / 330.0).abs() < 1e-12);
        // Gaps: A 35, 60; C 20.
        assert_eq!(k.gaps.count, 3);
        assert!((k.gaps.mean - 115.0 / 3.0).abs() < 1e-12);
        assert_eq!(k.gaps.p50, 35.0);
        // Lorenz: the smallest third (10 of 110) then two thirds (50).
        assert_eq!(k.lorenz.len(), 101);
        assert_eq!(k.lorenz[0], (0.0, 0.0));
        assert_eq!(k.lorenz[100], (1.0, 1.0));
        assert!((k.lorenz[33].1 - 10.0 / 110.0).abs() < 1e-12);
        assert!((k.lorenz[34].1 - 50.0 / 110.0).abs() < 1e-12);
    }

    #[test]
    fn nothing_is_defined() {
        let k = KpiBuilder::new().finish();
        assert_eq!(k.customers, 0);
        assert!(k.pareto_top20_share.is_none() && k.gini.is_none());
    }
}

/// New-customer stickiness for one group (an acquisition channel, a
/// campaign): of the customers whose first order is at least `window` days
/// before the analysis day, the share with another purchase day within the
/// window (Wilson 95% interval), and the mean value of their first
/// `value_days` (customers acquired at least that long ago).
#[derive(Debug, Clone, PartialEq)]
pub struct Stickiness {
    pub group: String,
    /// Customers whose window had closed by the analysis day.
    pub new_customers: u64,
    pub repeated: u64,
    pub rate: f64,
    pub ci: (f64, f64),
    /// Customers old enough for the value window, and their mean value.
    pub value_customers: u64,
    pub value_mean: Option<f64>,
}

/// The Wilson score interval at 95% for k successes in n.
pub fn wilson95(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (kf, nf) = (k as f64, n as f64);
    let p = kf / nf;
    let den = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / den;
    let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / den;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Accumulates stickiness by group.
#[derive(Debug)]
pub struct StickinessBuilder {
    as_of: Day,
    window: i32,
    value_days: i32,
    groups: Vec<(String, u64, u64, u64, f64)>,
    /// Group name → index into `groups`.
    index: lines::HashMap<String, usize>,
}

impl StickinessBuilder {
    /// `window`: days for the second order (e.g. 90); `value_days`: the
    /// value window (e.g. 365).
    pub fn new(as_of: Day, window: i32, value_days: i32) -> StickinessBuilder {
        StickinessBuilder {
            as_of,
            window,
            value_days,
            groups: vec![("all".to_string(), 0, 0, 0, 0.0)],
            index: lines::HashMap::default(),
        }
    }

    fn slot(&mut self, group: &str) -> usize {
        if let Some(&i) = self.index.get(group) {
            return i;
        }
        self.groups.push((group.to_string(), 0, 0, 0, 0.0));
        self.index.insert(group.to_string(), self.groups.len() - 1);
        self.groups.len() - 1
    }

    /// One customer of `group` (None: counted in "all" only).
    pub fn add(&mut self, group: Option<&str>, entries: &[OrderEntry]) {
        let Some(first) = entries.iter().filter(|e| e.is_order).map(|e| e.day).min() else {
            return;
        };
        let closed = first + self.window <= self.as_of;
        let repeated = entries
            .iter()
            .any(|e| e.is_order && e.day > first && e.day <= first + self.window);
        let old = first + self.value_days <= self.as_of;
        let value: f64 = entries
            .iter()
            .filter(|e| e.day >= first && e.day < first + self.value_days)
            .map(|e| e.amount)
            .sum();
        let slot = group
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(|g| self.slot(g));
        for s in std::iter::once(0).chain(slot) {
            let g = &mut self.groups[s];
            if closed {
                g.1 += 1;
                g.2 += u64::from(repeated);
            }
            if old {
                g.3 += 1;
                g.4 += value;
            }
        }
    }

    /// "all" first, then the groups by size.
    pub fn finish(self) -> Vec<Stickiness> {
        let mut out: Vec<Stickiness> = self
            .groups
            .into_iter()
            .map(|(group, n, k, vn, vs)| Stickiness {
                group,
                new_customers: n,
                repeated: k,
                rate: if n > 0 { k as f64 / n as f64 } else { 0.0 },
                ci: wilson95(k, n),
                value_customers: vn,
                value_mean: (vn > 0).then(|| vs / vn as f64),
            })
            .collect();
        out.get_mut(1..).unwrap_or_default().sort_by(|a, b| {
            b.new_customers
                .cmp(&a.new_customers)
                .then(a.group.cmp(&b.group))
        });
        out
    }
}

#[cfg(test)]
mod stickiness_tests {
    use super::*;

    fn e(day: Day, amount: f64) -> OrderEntry {
        OrderEntry {
            day,
            key: day as u64,
            amount,
            rows: 1,
            is_order: true,
        }
    }

    #[test]
    fn windows_are_censored_and_groups_compared() {
        let mut s = StickinessBuilder::new(1000, 90, 365);
        // Social: two customers, one back within 90 days; old enough for value.
        s.add(Some("social"), &[e(100, 10.0), e(150, 20.0), e(600, 5.0)]);
        s.add(Some("social"), &[e(200, 40.0)]);
        // Search: back after the window; and one too recent to judge.
        s.add(Some("search"), &[e(100, 30.0), e(300, 30.0)]);
        s.add(Some("search"), &[e(950, 30.0), e(960, 30.0)]);
        let rows = s.finish();
        assert_eq!(rows[0].group, "all");
        assert_eq!((rows[0].new_customers, rows[0].repeated), (3, 1));
        let social = rows.iter().find(|r| r.group == "social").unwrap();
        assert_eq!((social.new_customers, social.repeated), (2, 1));
        assert_eq!(social.value_customers, 2);
        assert_eq!(social.value_mean, Some((30.0 + 40.0) / 2.0));
        let search = rows.iter().find(|r| r.group == "search").unwrap();
        assert_eq!((search.new_customers, search.repeated), (1, 0));
        // Wilson for 1/2 at 95%: (0.0945, 0.9055).
        assert!((social.ci.0 - 0.094_531).abs() < 1e-5 && (social.ci.1 - 0.905_469).abs() < 1e-5);
    }
}

/// One attribute's customers per outcome: for each value, its customers
/// and how many of them have each outcome (parallel to the outcome
/// totals: the segments, and outcomes that overlap them such as "one-time
/// buyer").
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeCounts {
    pub attribute: String,
    /// (value, customers with it, of them per outcome).
    pub values: Vec<(String, u64, Vec<u64>)>,
}

/// An over- or under-representation of an attribute value in a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub attribute: String,
    pub value: String,
    pub segment: usize,
    /// Customers with the value, and how many of them are in the segment.
    pub customers: u64,
    pub in_segment: u64,
    pub rate: f64,
    /// The segment's share among the customers without the value.
    pub rate_others: f64,
    /// `rate / rate_others`: how many times as likely (Haldane-corrected
    /// when a cell is zero).
    pub lift: f64,
    /// Katz's 95% interval of the risk ratio.
    pub ci: Option<(f64, f64)>,
    pub p_value: f64,
    /// Benjamini–Hochberg over every value of every attribute and segment.
    pub p_adjusted: f64,
}

/// Every (attribute value, outcome) with at least `min_customers`
/// customers having the value, against the customers without it (of
/// `total`), sorted by adjusted p-value then by how far the lift is from 1.
pub fn anomalies(
    counts: &[AttributeCounts],
    segment_totals: &[u64],
    total: u64,
    min_customers: u64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for a in counts {
        for (value, n, per_segment) in &a.values {
            let n = *n;
            if n < min_customers || n >= total {
                continue;
            }
            for (s, (&k, &seg_total)) in per_segment.iter().zip(segment_totals).enumerate() {
                if seg_total == 0 {
                    continue;
                }
                let (k_rest, n_rest) = (seg_total.saturating_sub(k), total - n);
                let rate = k as f64 / n as f64;
                let rate_others = k_rest as f64 / n_rest as f64;
                if rate_others == 0.0 && rate == 0.0 {
                    continue;
                }
                // With a zero cell, Haldane's correction (half a customer
                // added to each cell) keeps the ratio and its interval finite.
                let (kc, nc, krc, nrc) = if k == 0 || k_rest == 0 {
                    (
                        k as f64 + 0.5,
                        n as f64 + 1.0,
                        k_rest as f64 + 0.5,
                        n_rest as f64 + 1.0,
                    )
                } else {
                    (k as f64, n as f64, k_rest as f64, n_rest as f64)
                };
                let lift = (kc / nc) / (krc / nrc);
                let se = (1.0 / kc - 1.0 / nc + 1.0 / krc - 1.0 / nrc)
                    .max(0.0)
                    .sqrt();
                let z = 1.959_963_984_540_054;
                let ci = Some(((lift.ln() - z * se).exp(), (lift.ln() + z * se).exp()));
                let p_value = lifecycle_lift::pooled_z(k_rest as f64, n_rest, k as f64, n)
                    .map_or(1.0, |(_, p)| p);
                out.push(Finding {
                    attribute: a.attribute.clone(),
                    value: value.clone(),
                    segment: s,
                    customers: n,
                    in_segment: k,
                    rate,
                    rate_others,
                    lift,
                    ci,
                    p_value,
                    p_adjusted: 1.0,
                });
            }
        }
    }
    let p: Vec<f64> = out.iter().map(|f| f.p_value).collect();
    for (f, adj) in out
        .iter_mut()
        .zip(lifecycle_lift::multiple::benjamini_hochberg(&p))
    {
        f.p_adjusted = adj;
    }
    out.sort_by(|a, b| {
        a.p_adjusted
            .total_cmp(&b.p_adjusted)
            .then(b.lift.ln().abs().total_cmp(&a.lift.ln().abs()))
    });
    out
}

#[cfg(test)]
mod anomaly_tests {
    use super::*;

    #[test]
    fn an_over_represented_value_is_found_with_its_interval() {
        // Two segments; Lyon: 100 customers, 60 in segment 0; others: 900, 180 in it.
        let counts = [AttributeCounts {
            attribute: "city".into(),
            values: vec![
                ("Lyon".into(), 100, vec![60, 40]),
                ("Paris".into(), 900, vec![180, 720]),
            ],
        }];
        let f = anomalies(&counts, &[240, 760], 1000, 30);
        let lyon0 = f
            .iter()
            .find(|x| x.value == "Lyon" && x.segment == 0)
            .unwrap();
        assert!((lyon0.lift - 0.6 / 0.2).abs() < 1e-12);
        let (lo, hi) = lyon0.ci.unwrap();
        // Katz: se = sqrt(1/60 − 1/100 + 1/180 − 1/900).
        let se = (1.0f64 / 60.0 - 0.01 + 1.0 / 180.0 - 1.0 / 900.0).sqrt();
        assert!((lo - (3.0f64.ln() - 1.959_963_984_540_054 * se).exp()).abs() < 1e-12);
        assert!(hi > 3.0 && lo < 3.0);
        assert!(lyon0.p_adjusted < 1e-6);
        assert!(
            anomalies(&counts, &[240, 760], 1000, 200)
                .iter()
                .all(|x| x.value != "Lyon"),
            "below the minimum"
        );
    }
}

/// Predicted value against acquisition cost for one group (a channel).
#[derive(Debug, Clone, PartialEq)]
pub struct LtvCac {
    pub group: String,
    /// Customers with both a predicted CLV and an acquisition cost.
    pub customers: u64,
    pub mean_clv: f64,
    pub mean_cac: f64,
    /// `mean_clv / mean_cac` (`None` when the cost is 0).
    pub ratio: Option<f64>,
}

/// LTV:CAC per group from (group, predicted CLV, acquisition cost) rows;
/// rows without a finite CLV or a cost are left out. "all" first, then the
/// groups by name.
pub fn ltv_cac<'a>(rows: impl Iterator<Item = (Option<&'a str>, f64, Option<f64>)>) -> Vec<LtvCac> {
    let mut acc: Vec<(String, u64, f64, f64)> = vec![("all".into(), 0, 0.0, 0.0)];
    for (group, clv, cost) in rows {
        let Some(cost) = cost.filter(|c| c.is_finite() && *c >= 0.0) else {
            continue;
        };
        if !clv.is_finite() {
            continue;
        }
        let mut slots = vec![0];
        if let Some(g) = group.map(str::trim).filter(|g| !g.is_empty()) {
            let i = match acc.iter().position(|a| a.0 == g) {
                Some(i) => i,
                None => {
                    acc.push((g.to_string(), 0, 0.0, 0.0));
                    acc.len() - 1
                }
            };
            slots.push(i);
        }
        for s in slots {
            acc[s].1 += 1;
            acc[s].2 += clv;
            acc[s].3 += cost;
        }
    }
    acc.get_mut(1..)
        .unwrap_or_default()
        .sort_by(|a, b| a.0.cmp(&b.0));
    acc.into_iter()
        .filter(|a| a.1 > 0)
        .map(|(group, n, clv, cost)| {
            let (mean_clv, mean_cac) = (clv / n as f64, cost / n as f64);
            LtvCac {
                group,
                customers: n,
                mean_clv,
                mean_cac,
                ratio: (mean_cac > 0.0).then(|| mean_clv / mean_cac),
            }
        })
        .collect()
}

#[cfg(test)]
mod ltv_tests {
    use super::*;

    #[test]
    fn ratios_by_channel() {
        let rows = [
            (Some("social"), 100.0, Some(20.0)),
            (Some("social"), 50.0, Some(30.0)),
            (Some("search"), 80.0, Some(0.0)),
            (None, 10.0, Some(5.0)),
            (Some("search"), f64::NAN, Some(3.0)),
            (Some("search"), 40.0, None),
        ];
        let r = ltv_cac(rows.into_iter());
        assert_eq!(r[0].group, "all");
        assert_eq!(r[0].customers, 4);
        assert!((r[0].ratio.unwrap() - (240.0 / 4.0) / (55.0 / 4.0)).abs() < 1e-12);
        let social = r.iter().find(|x| x.group == "social").unwrap();
        assert!((social.ratio.unwrap() - 75.0 / 25.0).abs() < 1e-12);
        let search = r.iter().find(|x| x.group == "search").unwrap();
        assert_eq!(
            (search.customers, search.ratio),
            (1, None),
            "a zero cost has no ratio"
        );
    }
}

/// Margin earned per acquired customer, month by month since acquisition,
/// per group (acquisition channel): what the payback period is read from.
#[derive(Debug, Default)]
pub struct PaybackBuilder {
    last_month: Month,
    /// Group → (customers, margin by month offset, customers observed at
    /// least that many months).
    groups: std::collections::BTreeMap<String, (u64, Vec<f64>, Vec<u64>)>,
}

/// How long a group's customers take to earn back their acquisition cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Payback {
    pub group: String,
    pub customers: u64,
    pub mean_cac: f64,
    /// Mean cumulative margin per customer after each month since
    /// acquisition (offset 0 = the acquisition month), over the customers
    /// observed that long.
    pub cumulative: Vec<f64>,
    /// The first month offset where the cumulative margin reaches the mean
    /// CAC (`Some(0)`: within the acquisition month; `None`: not yet).
    pub months: Option<usize>,
}

impl PaybackBuilder {
    /// Months after `as_of`'s month are not observed.
    pub fn new(as_of: Day) -> PaybackBuilder {
        PaybackBuilder {
            last_month: month_of(as_of),
            groups: std::collections::BTreeMap::new(),
        }
    }

    /// One customer's orders, their group and their margin rate (margin
    /// per unit of revenue).
    pub fn add(&mut self, group: &str, entries: &[OrderEntry], margin_rate: f64) {
        let Some(first) = entries.iter().filter(|e| e.is_order).map(|e| e.day).min() else {
            return;
        };
        let cohort = month_of(first);
        let observed = (self.last_month - cohort + 1).max(0) as usize;
        let g = self
            .groups
            .entry(group.to_string())
            .or_insert_with(|| (0, Vec::new(), Vec::new()));
        g.0 += 1;
        if g.1.len() < observed {
            g.1.resize(observed, 0.0);
            g.2.resize(observed, 0);
        }
        for c in &mut g.2[..observed] {
            *c += 1;
        }
        for e in entries {
            let offset = (month_of(e.day) - cohort).max(0) as usize;
            if offset < observed {
                g.1[offset] += e.amount * margin_rate;
            }
        }
    }

    /// Each group's payback against its mean CAC (`cac` per group; groups
    /// without one are left out).
    pub fn finish(self, cac: impl Fn(&str) -> Option<f64>) -> Vec<Payback> {
        self.groups
            .into_iter()
            .filter_map(|(group, (customers, margin, observed))| {
                let mean_cac = cac(&group)?;
                let mut acc = 0.0;
                let cumulative: Vec<f64> = margin
                    .iter()
                    .zip(&observed)
                    .take_while(|(_, n)| **n > 0)
                    .map(|(m, n)| {
                        acc += m / *n as f64;
                        acc
                    })
                    .collect();
                let months = cumulative.iter().position(|c| *c >= mean_cac);
                Some(Payback {
                    group,
                    customers,
                    mean_cac,
                    cumulative,
                    months,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod payback_tests {
    use super::*;

    #[test]
    fn quarterly_and_yearly_retention_by_hand() {
        let o = |day: Day| OrderEntry {
            day,
            key: day as u64,
            amount: 10.0,
            rows: 1,
            is_order: true,
        };
        // A: 2024-01-10, 2024-04-10; B: 2024-02-10, 2024-03-10;
        // C: 2024-05-10, 2025-02-10.
        let mut k = KpiBuilder::new();
        k.add(&[o(19_732), o(19_823)]);
        k.add(&[o(19_763), o(19_792)]);
        k.add(&[o(19_853), o(20_129)]);
        let k = k.finish();
        let q: Vec<(String, u64, u64)> = k
            .retention(Period::Quarter)
            .iter()
            .map(|p| {
                (
                    Period::Quarter.label(p.month),
                    p.retained,
                    p.previous_active,
                )
            })
            .collect();
        assert_eq!(
            q,
            [
                ("2024-Q2".to_string(), 1, 2),
                ("2024-Q3".to_string(), 0, 2),
                ("2024-Q4".to_string(), 0, 0),
                ("2025-Q1".to_string(), 0, 0),
            ]
        );
        let y = k.retention(Period::Year);
        assert_eq!(
            (
                Period::Year.label(y[0].month),
                y[0].retained,
                y[0].previous_active
            ),
            ("2025".to_string(), 1, 3)
        );
        assert_eq!(k.retention(Period::Month).len(), 13, "2024-02 to 2025-02");
        assert_eq!(Period::parse("quarter"), Some(Period::Quarter));
    }

    #[test]
    fn gap_histogram_by_hand() {
        // p90 of 1..=100 is 90.1 → weeks; p99 is 99.01 → bins to 105.
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let h = histogram(&v);
        assert_eq!(h[0], (0, Some(7), 6), "1..=6");
        assert_eq!(h[1], (7, Some(14), 7));
        assert_eq!(h.len(), 16);
        assert_eq!(h[15], (105, None, 0));
        assert_eq!(h.iter().map(|b| b.2).sum::<u64>(), 100);
        assert!(histogram(&[]).is_empty());
    }

    fn e(day: Day, amount: f64) -> OrderEntry {
        OrderEntry {
            day,
            key: day as u64,
            amount,
            rows: 1,
            is_order: true,
        }
    }

    #[test]
    fn payback_by_hand() {
        // As of 2024-03-31 (day 19813). Two search customers acquired in
        // January 2024 (day 19723): one spends 40 then 40 in March, the
        // other 20 in January only. Margin rate 0.5, CAC 25.
        let jan = 19_723;
        let mut b = PaybackBuilder::new(19_813);
        b.add("search", &[e(jan, 40.0), e(jan + 60, 40.0)], 0.5);
        b.add("search", &[e(jan + 5, 20.0)], 0.5);
        // A March customer is observed one month only.
        b.add("search", &[e(jan + 61, 100.0)], 0.5);
        let p = b.finish(|g| (g == "search").then_some(25.0));
        let s = &p[0];
        assert_eq!(s.customers, 3);
        // Month 0: (20 + 10 + 50) / 3; month 1: 0 / 2; month 2: 20 / 2.
        let m0 = 80.0 / 3.0;
        assert!((s.cumulative[0] - m0).abs() < 1e-12);
        assert!((s.cumulative[1] - m0).abs() < 1e-12);
        assert!((s.cumulative[2] - (m0 + 10.0)).abs() < 1e-12);
        assert_eq!(s.months, Some(0));
        let p = PaybackBuilder::new(19_813);
        assert!(p.finish(|_| Some(1.0)).is_empty());
    }
}
