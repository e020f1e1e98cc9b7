//! One pass over order rows into per-customer summaries.
//!
//! Rows arrive in any order. Each customer keeps a short list of
//! `(day, order key)` entries; neighbouring rows of the same order are merged
//! as they arrive, and the list is sorted and merged once more at the end.
//! Memory therefore grows with customers and distinct orders, not with rows
//! of line-item exports.

use hashbrown::HashMap;

/// A calendar day, counted from 1970-01-01 in the analysis time zone.
pub type Day = i32;

/// One input row, already parsed and converted to the analysis currency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderRow {
    /// The local calendar day of the purchase.
    pub day: Day,
    /// Identifies the order within the customer: a hash of the order id when
    /// the input has one, otherwise the local timestamp in seconds (so rows
    /// with the same customer and timestamp are one order).
    pub order_key: u64,
    /// The row's amount; negative for refunds and credits.
    pub amount: f64,
}

const NONNEG_FLAG: u32 = 1 << 31;

#[derive(Debug, Clone, Copy)]
struct Entry {
    day: Day,
    /// Row count in the low 31 bits; bit 31 is set when any row of the entry
    /// had an amount >= 0 (an order, not only a refund).
    rows_and_flag: u32,
    key: u64,
    amount: f64,
}

impl Entry {
    fn rows(&self) -> u64 {
        u64::from(self.rows_and_flag & !NONNEG_FLAG)
    }
    fn has_nonneg(&self) -> bool {
        self.rows_and_flag & NONNEG_FLAG != 0
    }
    fn absorb(&mut self, other: &Entry) {
        let rows = (self.rows() + other.rows()).min(u64::from(!NONNEG_FLAG)) as u32;
        let flag = (self.rows_and_flag | other.rows_and_flag) & NONNEG_FLAG;
        self.rows_and_flag = rows | flag;
        self.amount += other.amount;
    }
}

/// What is known about one customer while rows are still arriving.
#[derive(Debug, Clone, Default)]
struct History {
    entries: Vec<Entry>,
    visited: bool,
    left_email: bool,
    first_seen: Option<Day>,
}

impl History {
    fn push(&mut self, row: OrderRow) {
        let entry = Entry {
            day: row.day,
            rows_and_flag: 1 | if row.amount >= 0.0 { NONNEG_FLAG } else { 0 },
            key: row.order_key,
            amount: row.amount,
        };
        if let Some(last) = self.entries.last_mut()
            && last.day == entry.day
            && last.key == entry.key
        {
            last.absorb(&entry);
            return;
        }
        self.entries.push(entry);
    }

    fn merge(&mut self, mut other: History) {
        self.entries.append(&mut other.entries);
        self.visited |= other.visited;
        self.left_email |= other.left_email;
        self.first_seen = min_opt(self.first_seen, other.first_seen);
    }
}

fn min_opt(a: Option<Day>, b: Option<Day>) -> Option<Day> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Accumulates rows for many customers; mergeable, so that input chunks can be
/// aggregated in parallel and combined.
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    customers: HashMap<Box<str>, History>,
}

/// Counts of what [`SummaryBuilder::finish`] left out or treated specially.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinishStats {
    /// Input rows dated after the analysis date (ignored).
    pub rows_after_as_of: u64,
    /// Refund rows (negative amounts) that matched no order of their own:
    /// subtracted from the customer's spend.
    pub refund_rows: u64,
    /// The sum of those refunds (a negative number or zero).
    pub refund_amount: f64,
    /// Customers who had only refunds and no order or visit (left out).
    pub refund_only_customers: u64,
    /// The amount of those customers' refunds (left out of every total).
    pub refund_only_amount: f64,
}

/// The per-customer facts every later computation starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSummary {
    pub customer_id: Box<str>,
    /// `None` for visitors without an order.
    pub first_order: Option<Day>,
    pub last_order: Option<Day>,
    /// Distinct orders (rows of one order id, or of one timestamp, are one).
    pub n_orders: u32,
    /// Distinct days with at least one order.
    pub n_purchase_days: u32,
    /// Net spend: orders plus refunds.
    pub total_spend: f64,
    /// Value of the first purchase day (its orders summed).
    pub first_day_value: f64,
    /// Sum of the values of the purchase days after the first.
    pub repeat_days_value: f64,
    /// The customer appears in the events file.
    pub visited: bool,
    /// The customer left an email address (sign-up, subscription, identify).
    pub left_email: bool,
    /// First event day, if any events were read.
    pub first_seen: Option<Day>,
}

impl CustomerSummary {
    /// Mean order value (net spend / orders); 0 without orders.
    pub fn avg_order_value(&self) -> f64 {
        if self.n_orders == 0 {
            0.0
        } else {
            self.total_spend / f64::from(self.n_orders)
        }
    }

    /// Repeat purchase days: `x` of the BTYD models (Fader, Hardie & Lee 2005).
    pub fn frequency(&self) -> u32 {
        self.n_purchase_days.saturating_sub(1)
    }

    /// Days from the first to the last purchase day: `t_x` of the BTYD models.
    pub fn recency_days(&self) -> Option<i32> {
        Some(self.last_order? - self.first_order?)
    }

    /// Days from the first purchase day to `as_of`: `T` of the BTYD models.
    pub fn age_days(&self, as_of: Day) -> Option<i32> {
        Some(as_of - self.first_order?)
    }

    /// Mean value of the repeat purchase days (the first day excluded), as
    /// the Gamma-Gamma spend model wants it; 0 when there is no repeat day.
    pub fn repeat_mean_value(&self) -> f64 {
        match self.frequency() {
            0 => 0.0,
            x => self.repeat_days_value / f64::from(x),
        }
    }
}

impl SummaryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct customers seen so far.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    fn history(&mut self, customer: &str) -> &mut History {
        if !self.customers.contains_key(customer) {
            self.customers.insert(customer.into(), History::default());
        }
        self.customers
            .get_mut(customer)
            .expect("inserted just above")
    }

    /// Adds one order row of `customer`.
    pub fn add_order(&mut self, customer: &str, row: OrderRow) {
        self.history(customer).push(row);
    }

    /// Records a behavioural event (a visit) of `customer` on `day`;
    /// `left_email` when the event carries or records an email address.
    pub fn add_visit(&mut self, customer: &str, day: Day, left_email: bool) {
        let h = self.history(customer);
        h.visited = true;
        h.left_email |= left_email;
        h.first_seen = min_opt(h.first_seen, Some(day));
    }

    /// Combines another builder's rows into this one.
    pub fn merge(&mut self, other: SummaryBuilder) {
        if self.customers.len() < other.customers.len() {
            let mine = std::mem::replace(&mut self.customers, other.customers);
            return self.merge(SummaryBuilder { customers: mine });
        }
        for (id, h) in other.customers {
            match self.customers.get_mut(&id) {
                Some(mine) => mine.merge(h),
                None => {
                    self.customers.insert(id, h);
                }
            }
        }
    }

    /// The latest day of any order row, if there is one.
    pub fn last_order_day(&self) -> Option<Day> {
        self.customers
            .values()
            .flat_map(|h| h.entries.iter().map(|e| e.day))
            .max()
    }

    /// Finishes every customer as of `as_of` (rows after it are ignored and
    /// counted). Customers come out sorted by id.
    pub fn finish(self, as_of: Day) -> (Vec<CustomerSummary>, FinishStats) {
        let mut stats = FinishStats::default();
        let mut out = Vec::with_capacity(self.customers.len());
        for (id, mut h) in self.customers {
            h.entries.retain(|e| {
                let keep = e.day <= as_of;
                if !keep {
                    stats.rows_after_as_of += e.rows();
                }
                keep
            });
            h.entries.sort_unstable_by_key(|e| (e.day, e.key));
            let mut merged: Vec<Entry> = Vec::with_capacity(h.entries.len());
            for e in &h.entries {
                match merged.last_mut() {
                    Some(last) if last.day == e.day && last.key == e.key => last.absorb(e),
                    _ => merged.push(*e),
                }
            }
            let mut s = CustomerSummary {
                customer_id: id,
                first_order: None,
                last_order: None,
                n_orders: 0,
                n_purchase_days: 0,
                total_spend: 0.0,
                first_day_value: 0.0,
                repeat_days_value: 0.0,
                visited: h.visited,
                left_email: h.left_email,
                first_seen: h.first_seen,
            };
            let mut refund_rows = 0u64;
            let mut refund_amount = 0.0;
            let mut current_day: Option<Day> = None;
            for e in &merged {
                if !e.has_nonneg() {
                    refund_rows += e.rows();
                    refund_amount += e.amount;
                    continue;
                }
                s.n_orders += 1;
                s.total_spend += e.amount;
                if current_day != Some(e.day) {
                    current_day = Some(e.day);
                    s.n_purchase_days += 1;
                    s.first_order.get_or_insert(e.day);
                    s.last_order = Some(e.day);
                }
                if s.n_purchase_days == 1 {
                    s.first_day_value += e.amount;
                } else {
                    s.repeat_days_value += e.amount;
                }
            }
            if s.n_orders == 0 && !s.visited {
                if refund_rows > 0 {
                    stats.refund_only_customers += 1;
                    stats.refund_only_amount += refund_amount;
                }
                continue;
            }
            stats.refund_rows += refund_rows;
            stats.refund_amount += refund_amount;
            s.total_spend += refund_amount;
            out.push(s);
        }
        out.sort_unstable_by(|a, b| a.customer_id.cmp(&b.customer_id));
        (out, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: Day, key: u64, amount: f64) -> OrderRow {
        OrderRow {
            day,
            order_key: key,
            amount,
        }
    }

    #[test]
    fn rows_of_one_order_and_days_are_merged() {
        let mut b = SummaryBuilder::new();
        b.add_order("a", row(10, 1, 5.0));
        b.add_order("a", row(10, 1, 7.0)); // same order, second line
        b.add_order("a", row(10, 2, 3.0)); // second order, same day
        b.add_order("a", row(17, 3, 10.0));
        b.add_order("a", row(10, 1, 1.0)); // late line of the first order
        let (s, stats) = b.finish(20);
        let a = &s[0];
        assert_eq!(a.n_orders, 3);
        assert_eq!(a.n_purchase_days, 2);
        assert_eq!(a.total_spend, 26.0);
        assert_eq!(a.first_day_value, 16.0);
        assert_eq!(a.repeat_days_value, 10.0);
        assert_eq!(a.frequency(), 1);
        assert_eq!(a.recency_days(), Some(7));
        assert_eq!(a.age_days(20), Some(10));
        assert_eq!(a.repeat_mean_value(), 10.0);
        assert_eq!(stats, FinishStats::default());
    }

    #[test]
    fn refunds_subtract_but_are_not_orders() {
        let mut b = SummaryBuilder::new();
        b.add_order("a", row(1, 1, 50.0));
        b.add_order("a", row(1, 1, -5.0)); // discount line of order 1
        b.add_order("a", row(3, 9, -20.0)); // refund invoice
        b.add_order("z", row(3, 4, -8.0)); // refund only: left out
        let (s, stats) = b.finish(5);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].n_orders, 1);
        assert_eq!(s[0].n_purchase_days, 1);
        assert_eq!(s[0].total_spend, 25.0);
        assert_eq!(stats.refund_rows, 1);
        assert_eq!(stats.refund_amount, -20.0);
        assert_eq!(stats.refund_only_customers, 1);
        assert_eq!(stats.refund_only_amount, -8.0);
    }

    #[test]
    fn zero_amount_orders_count() {
        let mut b = SummaryBuilder::new();
        b.add_order("a", row(1, 1, 0.0));
        b.add_order("a", row(2, 2, 0.0));
        let (s, _) = b.finish(2);
        assert_eq!(s[0].n_orders, 2);
        assert_eq!(s[0].n_purchase_days, 2);
    }

    #[test]
    fn rows_after_as_of_are_counted_and_ignored() {
        let mut b = SummaryBuilder::new();
        b.add_order("a", row(1, 1, 1.0));
        b.add_order("a", row(9, 2, 1.0));
        b.add_order("a", row(9, 2, 1.0));
        b.add_order("b", row(9, 3, 1.0));
        let (s, stats) = b.finish(5);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].n_orders, 1);
        assert_eq!(stats.rows_after_as_of, 3);
    }

    #[test]
    fn merge_equals_single_pass() {
        let rows = [
            ("a", 1, 1, 2.0),
            ("b", 2, 2, 3.0),
            ("a", 4, 3, 4.0),
            ("a", 1, 1, 1.0),
        ];
        let mut whole = SummaryBuilder::new();
        for (c, d, k, v) in rows {
            whole.add_order(c, row(d, k, v));
        }
        let (mut left, mut right) = (SummaryBuilder::new(), SummaryBuilder::new());
        for (i, (c, d, k, v)) in rows.into_iter().enumerate() {
            let half = if i % 2 == 0 { &mut left } else { &mut right };
            half.add_order(c, row(d, k, v));
        }
        left.merge(right);
        assert_eq!(whole.finish(10), left.finish(10));
    }

    #[test]
    fn visitors_without_orders_are_kept() {
        let mut b = SummaryBuilder::new();
        b.add_visit("v", 3, false);
        b.add_visit("v", 2, true);
        let (s, _) = b.finish(5);
        assert_eq!(s[0].n_orders, 0);
        assert!(s[0].visited && s[0].left_email);
        assert_eq!(s[0].first_seen, Some(2));
        assert_eq!(s[0].first_order, None);
    }
}
