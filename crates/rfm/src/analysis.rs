//! Scores and segments every customer and aggregates the segment table.

use crate::score::{Better, ScoreBand, Scoring, score_values};
use crate::segment::{Profile, SegmentTable};
use crate::summary::{CustomerSummary, Day};

/// What `analyze` needs besides the summaries.
#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    pub scoring: Scoring,
    pub segments: SegmentTable,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            scoring: Scoring::Quintiles,
            segments: SegmentTable::default_table(),
        }
    }
}

/// R, F and M scores of a buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scores {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// What the analysis adds to one customer's summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerScore {
    /// Days from the last order to the analysis date; `None` for visitors.
    pub days_since_last_order: Option<i32>,
    /// `None` for visitors.
    pub scores: Option<Scores>,
    /// Index into the segment table.
    pub segment: u16,
}

/// One customer with scores and segment (a view into [`Analysis`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredCustomer<'a> {
    pub summary: &'a CustomerSummary,
    pub days_since_last_order: Option<i32>,
    pub scores: Option<Scores>,
    pub segment: usize,
}

/// Aggregates of one segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentStats {
    pub customers: usize,
    pub revenue: f64,
    pub orders: u64,
    /// Means over the segment's buyers; `None` when it has none.
    pub mean_days_since_last_order: Option<f64>,
    pub mean_orders: Option<f64>,
    pub mean_spend: Option<f64>,
}

/// The score bands actually used, per measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Boundaries {
    /// Over days since the last order (lower is better).
    pub recency_days: [ScoreBand; 5],
    /// Over the number of orders.
    pub orders: [ScoreBand; 5],
    /// Over net spend.
    pub spend: [ScoreBand; 5],
}

/// Totals over all customers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub customers: usize,
    pub buyers: usize,
    pub visitors: usize,
    pub orders: u64,
    pub purchase_days: u64,
    pub revenue: f64,
}

#[derive(Debug, Clone)]
pub struct Analysis {
    pub as_of: Day,
    /// The summaries, in input order (first appearance).
    pub summaries: Vec<CustomerSummary>,
    /// Parallel to `summaries`.
    pub scores: Vec<CustomerScore>,
    /// Parallel to the segment table.
    pub segments: Vec<SegmentStats>,
    pub boundaries: Boundaries,
    pub totals: Totals,
    /// Share of revenue from the top 20% of buyers by spend (the top
    /// `round(0.2 × buyers)` customers, at least one); `None` without buyers
    /// or without positive revenue.
    pub pareto_top20_share: Option<f64>,
}

impl Analysis {
    /// Number of customers.
    pub fn len(&self) -> usize {
        self.summaries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.summaries.is_empty()
    }

    /// The `i`-th customer.
    pub fn customer(&self, i: usize) -> ScoredCustomer<'_> {
        let s = self.scores[i];
        ScoredCustomer {
            summary: &self.summaries[i],
            days_since_last_order: s.days_since_last_order,
            scores: s.scores,
            segment: usize::from(s.segment),
        }
    }

    /// Every customer, in input order.
    pub fn customers(&self) -> impl ExactSizeIterator<Item = ScoredCustomer<'_>> + '_ {
        (0..self.len()).map(|i| self.customer(i))
    }
}

/// Sums with Neumaier's compensation, so that totals over millions of rows
/// stay exact to the cent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sum {
    sum: f64,
    compensation: f64,
}

impl Sum {
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Scores, segments and aggregates. Pure: `as_of` is the analysis day.
pub fn analyze(summaries: Vec<CustomerSummary>, as_of: Day, config: &AnalysisConfig) -> Analysis {
    let buyers: Vec<usize> = (0..summaries.len())
        .filter(|&i| summaries[i].n_orders > 0)
        .collect();
    let recency: Vec<f64> = buyers
        .iter()
        .map(|&i| f64::from(as_of - summaries[i].last_order.unwrap_or(as_of)))
        .collect();
    let orders: Vec<f64> = buyers
        .iter()
        .map(|&i| f64::from(summaries[i].n_orders))
        .collect();
    // Spend is compared to the cent, so that sums of the same orders in a
    // different order (1e-13 apart) still tie.
    let spend: Vec<f64> = buyers
        .iter()
        .map(|&i| (summaries[i].total_spend * 100.0).round() / 100.0)
        .collect();
    let cuts = match &config.scoring {
        Scoring::Quintiles => None,
        Scoring::Thresholds(t) => Some(t),
    };
    // The three scorings are independent sorts: run them side by side.
    let ((r, r_bands), (f, f_bands), (m, m_bands)) = std::thread::scope(|scope| {
        let r =
            scope.spawn(|| score_values(&recency, Better::Lower, cuts.map(|t| &t.recency_days)));
        let f = scope.spawn(|| score_values(&orders, Better::Higher, cuts.map(|t| &t.orders)));
        let m = score_values(&spend, Better::Higher, cuts.map(|t| &t.spend));
        let join = |h: std::thread::ScopedJoinHandle<'_, _>| {
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        (join(r), join(f), m)
    });

    let mut scores: Vec<Option<Scores>> = vec![None; summaries.len()];
    for (k, &i) in buyers.iter().enumerate() {
        scores[i] = Some(Scores {
            r: r[k],
            f: f[k],
            m: m[k],
        });
    }

    let table = &config.segments;
    let mut seg_stats = vec![SegmentStats::default(); table.segments().len()];
    let mut sums = vec![(Sum::default(), 0.0, 0.0, 0.0, 0usize); table.segments().len()];
    let mut totals = Totals::default();
    let mut revenue = Sum::default();
    let mut customer_scores = Vec::with_capacity(summaries.len());
    for (summary, scores) in summaries.iter().zip(scores) {
        let profile = match scores {
            Some(s) => Profile::buyer(summary.n_orders, s.r, s.f, s.m),
            None => Profile::visitor(summary.left_email),
        };
        let segment = table
            .assign(&profile)
            .expect("scores are computed in 1..=5 and visitors need none");
        let days_since_last_order = summary.last_order.map(|d| as_of - d);
        let st = &mut seg_stats[segment];
        let acc = &mut sums[segment];
        st.customers += 1;
        st.orders += u64::from(summary.n_orders);
        acc.0.add(summary.total_spend);
        revenue.add(summary.total_spend);
        totals.customers += 1;
        totals.orders += u64::from(summary.n_orders);
        totals.purchase_days += u64::from(summary.n_purchase_days);
        if let Some(d) = days_since_last_order {
            totals.buyers += 1;
            acc.1 += f64::from(d);
            acc.2 += f64::from(summary.n_orders);
            acc.3 += summary.total_spend;
            acc.4 += 1;
        } else {
            totals.visitors += 1;
        }
        customer_scores.push(CustomerScore {
            days_since_last_order,
            scores,
            segment: segment as u16,
        });
    }
    for (st, (rev, rec, ord, spend, n)) in seg_stats.iter_mut().zip(sums) {
        st.revenue = rev.value();
        if n > 0 {
            let n = n as f64;
            st.mean_days_since_last_order = Some(rec / n);
            st.mean_orders = Some(ord / n);
            st.mean_spend = Some(spend / n);
        }
    }
    totals.revenue = revenue.value();
    let pareto_top20_share = pareto_share(&spend, 0.2);
    Analysis {
        as_of,
        summaries,
        scores: customer_scores,
        segments: seg_stats,
        boundaries: Boundaries {
            recency_days: r_bands,
            orders: f_bands,
            spend: m_bands,
        },
        totals,
        pareto_top20_share,
    }
}

/// Share of the total held by the top `fraction` of values (at least one).
pub fn pareto_share(values: &[f64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut total = Sum::default();
    sorted.iter().for_each(|&v| total.add(v));
    let total = total.value();
    if total <= 0.0 {
        return None;
    }
    let k = ((values.len() as f64 * fraction).round() as usize).clamp(1, values.len());
    let mut top = Sum::default();
    sorted[..k].iter().for_each(|&v| top.add(v));
    Some(top.value() / total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{OrderRow, SummaryBuilder};

    #[test]
    fn pareto_table() {
        assert_eq!(pareto_share(&[], 0.2), None);
        assert_eq!(pareto_share(&[0.0, 0.0], 0.2), None);
        assert_eq!(pareto_share(&[10.0], 0.2), Some(1.0));
        let v = [80.0, 5.0, 5.0, 5.0, 5.0];
        assert_eq!(pareto_share(&v, 0.2), Some(0.8));
    }

    #[test]
    fn compensated_sum_is_exact_where_naive_is_not() {
        let mut s = Sum::default();
        s.add(1e16);
        for _ in 0..10 {
            s.add(1.0);
        }
        s.add(-1e16);
        assert_eq!(s.value(), 10.0);
    }

    #[test]
    fn segment_totals_add_up() {
        let mut b = SummaryBuilder::new();
        for c in 0..50u64 {
            for k in 0..(c % 4 + 1) {
                let day = (c * 3 + k * 10) as Day;
                b.add_order(
                    &format!("c{c}"),
                    c,
                    OrderRow {
                        day,
                        order_key: k,
                        amount: (c as f64) * 1.25 + 1.0,
                        is_order_total: false,
                    },
                );
            }
        }
        b.add_visit("v1", 100, 3, false);
        b.add_visit("v2", 101, 3, true);
        let (s, _) = b.finish(200);
        let a = analyze(s, 200, &AnalysisConfig::default());
        assert_eq!(a.totals.customers, 52);
        assert_eq!(a.totals.visitors, 2);
        let n: usize = a.segments.iter().map(|s| s.customers).sum();
        assert_eq!(n, 52);
        let rev: f64 = a.segments.iter().map(|s| s.revenue).sum();
        assert!((rev - a.totals.revenue).abs() < 1e-9);
        assert_eq!(a.segments[0].customers, 1);
        assert_eq!(a.segments[1].customers, 1);
    }
}
