//! One pass over order rows into per-customer summaries.
//!
//! Rows arrive in any order. Each customer keeps a short list of
//! `(day, order key)` entries; neighbouring rows of the same order are merged
//! as they arrive, and the list is sorted and merged once more at the end.
//! Memory therefore grows with customers and distinct orders, not with rows
//! of line-item exports.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

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
    /// The amount is the whole order's total, repeated on each row of the
    /// order (as exports do on line-item rows): rows of one order count it
    /// once instead of summing. Negative totals (refunds) then stand alone.
    pub is_order_total: bool,
}

const NONNEG_FLAG: u32 = 1 << 31;
const TOTAL_FLAG: u32 = 1 << 30;
const FLAGS: u32 = NONNEG_FLAG | TOTAL_FLAG;
/// Separates a refund of an order total from the order itself.
const REFUND_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

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
        u64::from(self.rows_and_flag & !FLAGS)
    }
    fn has_nonneg(&self) -> bool {
        self.rows_and_flag & NONNEG_FLAG != 0
    }
    fn absorb(&mut self, other: &Entry) {
        let rows = (self.rows() + other.rows()).min(u64::from(!FLAGS)) as u32;
        let both_totals = self.rows_and_flag & other.rows_and_flag & TOTAL_FLAG != 0;
        let flag = (self.rows_and_flag | other.rows_and_flag) & FLAGS;
        self.rows_and_flag = rows | flag;
        if both_totals && self.amount >= 0.0 && other.amount >= 0.0 {
            // The same order total repeated: count it once.
            self.amount = self.amount.max(other.amount);
        } else {
            self.amount += other.amount;
        }
    }
}

/// What is known about one customer while rows are still arriving.
#[derive(Debug, Clone, Default)]
struct History {
    /// The first entry, inline (most customers have one order, and then no
    /// allocation is needed); empty while `rows() == 0`.
    first: Entry,
    rest: Vec<Entry>,
    visited: bool,
    left_email: bool,
    first_seen: Option<Day>,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            day: 0,
            rows_and_flag: 0,
            key: 0,
            amount: 0.0,
        }
    }
}

impl History {
    fn push(&mut self, row: OrderRow) {
        let refund_of_total = row.is_order_total && row.amount < 0.0;
        let entry = Entry {
            day: row.day,
            rows_and_flag: 1
                | if row.amount >= 0.0 { NONNEG_FLAG } else { 0 }
                | if row.is_order_total { TOTAL_FLAG } else { 0 },
            key: if refund_of_total {
                row.order_key ^ REFUND_SALT
            } else {
                row.order_key
            },
            amount: row.amount,
        };
        let last = match self.rest.last_mut() {
            Some(last) => last,
            None if self.first.rows() == 0 => {
                self.first = entry;
                return;
            }
            None => &mut self.first,
        };
        if last.day == entry.day && last.key == entry.key {
            last.absorb(&entry);
        } else {
            self.rest.push(entry);
        }
    }

    fn merge(&mut self, other: History) {
        if other.first.rows() > 0 {
            if self.first.rows() == 0 {
                self.first = other.first;
            } else {
                self.rest.push(other.first);
            }
        }
        self.rest.extend(other.rest);
        self.visited |= other.visited;
        self.left_email |= other.left_email;
        self.first_seen = min_opt(self.first_seen, other.first_seen);
    }
}

fn id_of<'a>(arena: &'a str, slot: &Slot) -> &'a str {
    let start = slot.id_start as usize;
    &arena[start..start + slot.id_len as usize]
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
///
/// Customers are spread over [`SHARDS`] shards by hash. In each shard the ids
/// live in one arena and the hash table holds indices into it, so a new
/// customer costs no allocation of its own, and consecutive rows of one
/// customer skip the hash look-up altogether. Shards merge and finish in
/// parallel.
#[derive(Debug)]
pub struct SummaryBuilder {
    /// The same fixed seed in every builder, so that shards of two builders
    /// hold the same customers and merge pairwise.
    hasher: FixedState,
    shards: Vec<Shard>,
    /// (shard, index) of the customer of the previous row.
    last: Option<(usize, u32)>,
    max_day: Option<Day>,
}

/// Number of shards of a [`SummaryBuilder`].
pub const SHARDS: usize = 16;

impl Default for SummaryBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

#[derive(Debug, Default)]
struct Shard {
    /// (hash, index): the stored hash makes growing the table cheap.
    index: HashTable<(u64, u32)>,
    /// All customer ids of the shard, concatenated.
    arena: String,
    customers: Vec<Slot>,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    hash: u64,
    id_start: u64,
    id_len: u32,
    /// Where the customer first appeared in the input (e.g. its line):
    /// customers come out in this order.
    position: u64,
    history: History,
}

fn shard_of(hash: u64) -> usize {
    // Middle bits: hashbrown uses the low bits for the bucket and the top
    // seven for its tag.
    ((hash >> 40) as usize) % SHARDS
}

impl Shard {
    fn with_capacity(customers: usize) -> Shard {
        Shard {
            index: HashTable::with_capacity(customers),
            arena: String::with_capacity(customers * 12),
            customers: Vec::with_capacity(customers),
        }
    }

    fn id(&self, i: u32) -> &str {
        id_of(&self.arena, &self.customers[i as usize])
    }

    /// The index of `customer` (with its `hash`), inserted if new.
    fn find_or_insert(&mut self, hash: u64, customer: &str, position: u64) -> u32 {
        let (arena, customers) = (&self.arena, &self.customers);
        let found = self
            .index
            .find(hash, |&(h, i)| {
                h == hash && id_of(arena, &customers[i as usize]) == customer
            })
            .copied();
        match found {
            Some((_, i)) => {
                let slot = &mut self.customers[i as usize];
                slot.position = slot.position.min(position);
                i
            }
            None => {
                let i = u32::try_from(self.customers.len())
                    .expect("fewer than 2^32 customers per shard");
                self.customers.push(Slot {
                    hash,
                    id_start: self.arena.len() as u64,
                    id_len: customer.len() as u32,
                    position,
                    history: History::default(),
                });
                self.arena.push_str(customer);
                self.index.insert_unique(hash, (hash, i), |&(h, _)| h);
                i
            }
        }
    }

    fn merge(&mut self, mut other: Shard) {
        if other.customers.len() > self.customers.len() {
            std::mem::swap(self, &mut other);
        }
        self.index.reserve(other.customers.len(), |&(h, _)| h);
        self.customers.reserve(other.customers.len());
        for slot in other.customers {
            let id = id_of(&other.arena, &slot);
            let i = self.find_or_insert(slot.hash, id, slot.position);
            self.customers[i as usize].history.merge(slot.history);
        }
    }
}

impl SummaryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder with room for about `customers` customers.
    pub fn with_capacity(customers: usize) -> Self {
        SummaryBuilder {
            hasher: FixedState::with_seed(0x6c69_6665_6379_636c),
            shards: (0..SHARDS)
                .map(|_| Shard::with_capacity(customers / SHARDS))
                .collect(),
            last: None,
            max_day: None,
        }
    }

    /// Number of distinct customers seen so far.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.customers.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.customers.is_empty())
    }

    fn slot(&mut self, customer: &str, position: u64) -> &mut Slot {
        let (shard, i) = match self.last {
            Some((shard, i)) if self.shards[shard].id(i) == customer => {
                let slot = &mut self.shards[shard].customers[i as usize];
                slot.position = slot.position.min(position);
                (shard, i)
            }
            _ => {
                let hash = self.hasher.hash_one(customer);
                let shard = shard_of(hash);
                (
                    shard,
                    self.shards[shard].find_or_insert(hash, customer, position),
                )
            }
        };
        self.last = Some((shard, i));
        &mut self.shards[shard].customers[i as usize]
    }

    /// Adds one order row of `customer`; `position` orders customers in the
    /// output by first appearance (use the input line).
    pub fn add_order(&mut self, customer: &str, position: u64, row: OrderRow) {
        self.max_day = Some(self.max_day.map_or(row.day, |m| m.max(row.day)));
        self.slot(customer, position).history.push(row);
    }

    /// Records a behavioural event (a visit) of `customer` on `day`;
    /// `left_email` when the event carries or records an email address.
    pub fn add_visit(&mut self, customer: &str, position: u64, day: Day, left_email: bool) {
        let h = &mut self.slot(customer, position).history;
        h.visited = true;
        h.left_email |= left_email;
        h.first_seen = min_opt(h.first_seen, Some(day));
    }

    /// Combines another builder's rows into this one (shards in parallel).
    pub fn merge(&mut self, other: SummaryBuilder) {
        self.max_day = match (self.max_day, other.max_day) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.last = None;
        let mut pairs: Vec<(&mut Shard, Shard)> =
            self.shards.iter_mut().zip(other.shards).collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .max(1);
        let per = pairs.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for group in pairs.chunks_mut(per) {
                scope.spawn(move || {
                    for (mine, theirs) in group.iter_mut() {
                        mine.merge(std::mem::take(theirs));
                    }
                });
            }
        });
    }

    /// The latest day of any order row, if there is one.
    pub fn last_order_day(&self) -> Option<Day> {
        self.max_day
    }

    /// How many customers made a repeat purchase on each day up to `as_of`
    /// (every purchase day of a customer after their first), counting only
    /// customers whose first purchase is on or before `cohort_end` (the
    /// calibration cohort of a tracking chart; `as_of` for everyone).
    pub fn repeat_purchases_by_day(
        &self,
        as_of: Day,
        cohort_end: Day,
    ) -> std::collections::BTreeMap<Day, u64> {
        // Per shard group in parallel, counted in a dense vector by day
        // (offset from the earliest day seen), then merged.
        fn count(shards: &[Shard], as_of: Day, cohort_end: Day) -> (Day, Vec<u64>) {
            let mut base: Option<Day> = None;
            let mut counts: Vec<u64> = Vec::new();
            let mut days: Vec<Day> = Vec::new();
            for slot in shards.iter().flat_map(|s| &s.customers) {
                let h = &slot.history;
                days.clear();
                days.extend(
                    std::iter::once(&h.first)
                        .chain(&h.rest)
                        .filter(|e| e.rows() > 0 && e.has_nonneg() && e.day <= as_of)
                        .map(|e| e.day),
                );
                days.sort_unstable();
                days.dedup();
                if days.first().is_none_or(|&f| f > cohort_end) || days.len() < 2 {
                    continue;
                }
                let lo = days[1];
                let b = *base.get_or_insert(lo);
                if lo < b {
                    let shift = (b - lo) as usize;
                    counts.splice(0..0, std::iter::repeat_n(0, shift));
                    base = Some(lo);
                }
                let b = base.unwrap_or(lo);
                for &d in &days[1..] {
                    let k = (d - b) as usize;
                    if k >= counts.len() {
                        counts.resize(k + 1, 0);
                    }
                    counts[k] += 1;
                }
            }
            (base.unwrap_or(0), counts)
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .max(1);
        let per = self.shards.len().div_ceil(threads).max(1);
        let parts: Vec<(Day, Vec<u64>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .shards
                .chunks(per)
                .map(|group| scope.spawn(move || count(group, as_of, cohort_end)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut out = std::collections::BTreeMap::new();
        for (base, counts) in parts {
            for (k, n) in counts.into_iter().enumerate() {
                if n > 0 {
                    *out.entry(base + k as Day).or_insert(0) += n;
                }
            }
        }
        out
    }
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

    /// One customer's summary from their consolidated orders as a store
    /// keeps them (what [`SummaryBuilder::for_each_customer_orders`]
    /// yields), counted exactly as [`SummaryBuilder::finish`] counts them;
    /// entries after `as_of` are left out. The live engine re-summarises a
    /// customer this way when an order arrives.
    pub fn from_entries(customer_id: &str, entries: &[OrderEntry], as_of: Day) -> CustomerSummary {
        let mut scratch: Vec<Entry> = entries
            .iter()
            .filter(|e| e.day <= as_of && e.rows > 0)
            .map(|e| Entry {
                day: e.day,
                rows_and_flag: (e.rows.min(u64::from(!FLAGS)) as u32)
                    | if e.is_order { NONNEG_FLAG } else { 0 },
                key: e.key,
                amount: e.amount,
            })
            .collect();
        scratch.sort_unstable_by_key(|e| (e.day, e.key));
        let mut s = CustomerSummary {
            customer_id: customer_id.into(),
            first_order: None,
            last_order: None,
            n_orders: 0,
            n_purchase_days: 0,
            total_spend: 0.0,
            first_day_value: 0.0,
            repeat_days_value: 0.0,
            visited: false,
            left_email: false,
            first_seen: None,
        };
        let (_, refund_amount) = summarize(&scratch, &mut s);
        s.total_spend += refund_amount;
        s
    }

    /// Adds one more consolidated entry (a store's row: its own day and
    /// key) dated on or after every entry already summarised, as
    /// [`CustomerSummary::from_entries`] would count it: a live store keeps
    /// a customer's summary this way instead of re-reading the history on
    /// every order. Sums may differ from a re-count in the last bits (the
    /// additions come in arrival order).
    pub fn push_entry(&mut self, e: &OrderEntry) {
        if e.rows == 0 {
            return;
        }
        if e.is_order {
            self.add_order(e.day, e.amount);
        } else {
            self.total_spend += e.amount;
        }
    }

    /// Counts one order on `day`, on or after every order counted so far.
    #[inline]
    fn add_order(&mut self, day: Day, amount: f64) {
        self.n_orders += 1;
        self.total_spend += amount;
        if self.last_order != Some(day) {
            self.n_purchase_days += 1;
            self.first_order.get_or_insert(day);
            self.last_order = Some(day);
        }
        if self.n_purchase_days == 1 {
            self.first_day_value += amount;
        } else {
            self.repeat_days_value += amount;
        }
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

/// Sorted entries (rows of one order adjacent) with the entries of each
/// (day, order) combined: the orders and refunds as `finish` counts them.
fn consolidated(entries: &[Entry]) -> impl Iterator<Item = Entry> + '_ {
    let mut k = 0;
    std::iter::from_fn(move || {
        let mut e = *entries.get(k)?;
        k += 1;
        while k < entries.len() && entries[k].day == e.day && entries[k].key == e.key {
            e.absorb(&entries[k]);
            k += 1;
        }
        Some(e)
    })
}

/// Adds sorted entries (rows of one order adjacent) to `s`, a summary
/// without orders yet; returns the rows and amount of the refunds that
/// matched no order.
fn summarize(entries: &[Entry], s: &mut CustomerSummary) -> (u64, f64) {
    let mut refund_rows = 0u64;
    let mut refund_amount = 0.0;
    for e in consolidated(entries) {
        if e.has_nonneg() {
            s.add_order(e.day, e.amount);
        } else {
            refund_rows += e.rows();
            refund_amount += e.amount;
        }
    }
    (refund_rows, refund_amount)
}

/// One consolidated order of a customer as `finish` sees it: the rows of
/// one order on one day combined (a repeated order total counted once).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderEntry {
    pub day: Day,
    /// [`OrderRow::order_key`] (refunds of an order total carry a salted key).
    pub key: u64,
    /// Net amount of the rows.
    pub amount: f64,
    /// Input rows combined into this entry.
    pub rows: u64,
    /// At least one row was an order (amount >= 0); otherwise it is a refund.
    pub is_order: bool,
}

impl SummaryBuilder {
    /// Calls `f` with each customer's id and consolidated orders and
    /// refunds up to `as_of` (sorted by day and key), in input order: what
    /// a store keeps so that the same summaries can be rebuilt from it.
    /// Customers with nothing up to `as_of` (visitors) are skipped.
    pub fn for_each_customer_orders(&self, as_of: Day, mut f: impl FnMut(&str, &[OrderEntry])) {
        let mut order: Vec<(u64, usize, usize)> = Vec::with_capacity(self.len());
        for (k, sh) in self.shards.iter().enumerate() {
            order.extend(
                sh.customers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.position, k, i)),
            );
        }
        order.sort_unstable();
        let mut scratch: Vec<Entry> = Vec::new();
        let mut out: Vec<OrderEntry> = Vec::new();
        for (_, k, i) in order {
            let shard = &self.shards[k];
            let slot = &shard.customers[i];
            let h = &slot.history;
            scratch.clear();
            if h.first.rows() > 0 {
                scratch.push(h.first);
            }
            scratch.extend_from_slice(&h.rest);
            scratch.retain(|e| e.day <= as_of && e.rows() > 0);
            scratch.sort_by_key(|e| (e.day, e.key));
            out.clear();
            out.extend(consolidated(&scratch).map(|e| OrderEntry {
                day: e.day,
                key: e.key,
                amount: e.amount,
                rows: e.rows(),
                is_order: e.has_nonneg(),
            }));
            if !out.is_empty() {
                f(id_of(&shard.arena, slot), &out);
            }
        }
    }

    /// Adds a consolidated entry back (as read from a store): the inverse
    /// of [`SummaryBuilder::for_each_customer_orders`].
    pub fn add_entry(&mut self, customer: &str, position: u64, e: OrderEntry) {
        if e.is_order && e.amount < 0.0 {
            // An order whose refunds on the same day exceed it: keep it an
            // order (a zero-amount row marks it) with the net amount.
            self.add_order(
                customer,
                position,
                OrderRow {
                    day: e.day,
                    order_key: e.key,
                    amount: 0.0,
                    is_order_total: false,
                },
            );
        }
        self.add_order(
            customer,
            position,
            OrderRow {
                day: e.day,
                order_key: e.key,
                amount: e.amount,
                is_order_total: false,
            },
        );
    }

    /// Finishes every customer as of `as_of` (rows after it are ignored and
    /// counted). Customers come out sorted by id.
    pub fn finish(self, as_of: Day) -> (Vec<CustomerSummary>, FinishStats) {
        let shards = &self.shards[..];
        let mut order: Vec<(u64, u16, u32)> = Vec::with_capacity(self.len());
        for (k, sh) in shards.iter().enumerate() {
            order.extend(
                sh.customers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.position, k as u16, i as u32)),
            );
        }
        let id = |&(_, k, i): &(u64, u16, u32)| shards[usize::from(k)].id(i);
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| id(a).cmp(id(b))));
        // Contiguous ranges of the output order, one per core, then joined.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .max(1);
        let per = order.len().div_ceil(threads).max(1);
        let parts: Vec<(Vec<CustomerSummary>, FinishStats)> = std::thread::scope(|scope| {
            let handles: Vec<_> = order
                .chunks(per)
                .map(|range| scope.spawn(move || finish_range(shards, range, as_of)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut out = Vec::with_capacity(order.len());
        let mut stats = FinishStats::default();
        for (part, st) in parts {
            out.extend(part);
            stats.rows_after_as_of += st.rows_after_as_of;
            stats.refund_rows += st.refund_rows;
            stats.refund_amount += st.refund_amount;
            stats.refund_only_customers += st.refund_only_customers;
            stats.refund_only_amount += st.refund_only_amount;
        }
        // Freeing millions of small histories takes a while: do it off the
        // critical path.
        let shards = self.shards;
        std::thread::spawn(move || drop(shards));
        (out, stats)
    }
}

fn finish_range(
    shards: &[Shard],
    range: &[(u64, u16, u32)],
    as_of: Day,
) -> (Vec<CustomerSummary>, FinishStats) {
    let mut stats = FinishStats::default();
    let mut out = Vec::with_capacity(range.len());
    let mut scratch: Vec<Entry> = Vec::new();
    for &(_, k, i) in range {
        let shard = &shards[usize::from(k)];
        let slot = &shard.customers[i as usize];
        let h = &slot.history;
        let mut s = CustomerSummary {
            customer_id: id_of(&shard.arena, slot).into(),
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
        let single: [Entry; 1];
        let entries: &[Entry] = if h.rest.is_empty() {
            if h.first.rows() > 0 && h.first.day > as_of {
                stats.rows_after_as_of += h.first.rows();
                &[]
            } else if h.first.rows() > 0 {
                single = [h.first];
                &single
            } else {
                &[]
            }
        } else {
            scratch.clear();
            scratch.push(h.first);
            scratch.extend_from_slice(&h.rest);
            if scratch.iter().any(|e| e.day > as_of) {
                stats.rows_after_as_of += scratch
                    .iter()
                    .filter(|e| e.day > as_of)
                    .map(Entry::rows)
                    .sum::<u64>();
                scratch.retain(|e| e.day <= as_of);
            }
            if !scratch.is_sorted_by_key(|e| (e.day, e.key)) {
                scratch.sort_unstable_by_key(|e| (e.day, e.key));
            }
            &scratch
        };
        let (refund_rows, refund_amount) = summarize(entries, &mut s);
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
    (out, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    proptest::proptest! {
        /// Entries pushed one by one in day order (any order within a day)
        /// summarise as `from_entries` counts them all at once.
        #[test]
        fn push_entry_counts_as_from_entries(
            raw in proptest::collection::vec((0i32..40, 0u64..6, -50i32..500, 0u64..3), 0..40)
        ) {
            let mut entries: Vec<OrderEntry> = Vec::new();
            for (day, key, cents, rows) in raw {
                // The store keeps one entry per (day, key).
                if entries.iter().any(|e| e.day == day && e.key == key) {
                    continue;
                }
                entries.push(OrderEntry {
                    day,
                    key,
                    amount: f64::from(cents) / 100.0,
                    rows,
                    is_order: cents >= 0,
                });
            }
            // Arrival order: by day, keys within a day in any order.
            entries.sort_by_key(|e| (e.day, std::cmp::Reverse(e.key)));
            let all = CustomerSummary::from_entries("c", &entries, Day::MAX);
            let mut pushed = CustomerSummary::from_entries("c", &[], Day::MAX);
            for e in &entries {
                pushed.push_entry(e);
            }
            proptest::prop_assert_eq!(pushed.n_orders, all.n_orders);
            proptest::prop_assert_eq!(pushed.n_purchase_days, all.n_purchase_days);
            proptest::prop_assert_eq!(pushed.first_order, all.first_order);
            proptest::prop_assert_eq!(pushed.last_order, all.last_order);
            for (a, b) in [
                (pushed.total_spend, all.total_spend),
                (pushed.first_day_value, all.first_day_value),
                (pushed.repeat_days_value, all.repeat_days_value),
            ] {
                proptest::prop_assert!((a - b).abs() < 1e-9, "{a} vs {b}");
            }
        }
    }

    fn row(day: Day, key: u64, amount: f64) -> OrderRow {
        OrderRow {
            day,
            order_key: key,
            amount,
            is_order_total: false,
        }
    }

    #[test]
    fn repeated_order_totals_count_once_and_refunds_stand_alone() {
        let total = |day, key, amount| OrderRow {
            is_order_total: true,
            ..row(day, key, amount)
        };
        let mut b = SummaryBuilder::new();
        b.add_order("a", 0, total(1, 7, 30.0)); // order 7, line 1
        b.add_order("a", 0, total(1, 7, 30.0)); // order 7, line 2 repeats the total
        b.add_order("a", 0, total(2, 8, 10.0));
        b.add_order("a", 0, total(3, 7, -5.0)); // partial refund of order 7
        let (s, stats) = b.finish(5);
        assert_eq!(s[0].n_orders, 2);
        assert_eq!(s[0].total_spend, 35.0);
        assert_eq!(stats.refund_rows, 1);
    }

    #[test]
    fn repeat_purchases_are_counted_by_day() {
        let mut b = SummaryBuilder::new();
        // a: first day 10, repeats on 20 and 30 (two orders on 30).
        for (day, key) in [(10, 1), (20, 2), (30, 3), (30, 4)] {
            b.add_order("a", 0, row(day, key, 5.0));
        }
        // b: first day 3, repeat on 5 (earlier than a's repeats) and 40
        // (after the analysis day).
        for (day, key) in [(3, 5), (5, 6), (40, 7)] {
            b.add_order("b", 1, row(day, key, 5.0));
        }
        // c: a refund on day 8 is no purchase day; first day 25 is after
        // the cohort's end in the second count.
        b.add_order("c", 2, row(25, 8, 5.0));
        b.add_order("c", 2, row(28, 9, 5.0));
        b.add_order("c", 2, row(8, 10, -5.0));
        let all = b.repeat_purchases_by_day(35, 35);
        let want: BTreeMap<Day, u64> = [(5, 1), (20, 1), (28, 1), (30, 1)].into();
        assert_eq!(all, want);
        let cohort = b.repeat_purchases_by_day(35, 12);
        let want: BTreeMap<Day, u64> = [(5, 1), (20, 1), (30, 1)].into();
        assert_eq!(cohort, want);
    }

    #[test]
    fn rows_of_one_order_and_days_are_merged() {
        let mut b = SummaryBuilder::new();
        b.add_order("a", 0, row(10, 1, 5.0));
        b.add_order("a", 0, row(10, 1, 7.0)); // same order, second line
        b.add_order("a", 0, row(10, 2, 3.0)); // second order, same day
        b.add_order("a", 0, row(17, 3, 10.0));
        b.add_order("a", 0, row(10, 1, 1.0)); // late line of the first order
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
        b.add_order("a", 0, row(1, 1, 50.0));
        b.add_order("a", 0, row(1, 1, -5.0)); // discount line of order 1
        b.add_order("a", 0, row(3, 9, -20.0)); // refund invoice
        b.add_order("z", 1, row(3, 4, -8.0)); // refund only: left out
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
        b.add_order("a", 0, row(1, 1, 0.0));
        b.add_order("a", 0, row(2, 2, 0.0));
        let (s, _) = b.finish(2);
        assert_eq!(s[0].n_orders, 2);
        assert_eq!(s[0].n_purchase_days, 2);
    }

    #[test]
    fn rows_after_as_of_are_counted_and_ignored() {
        let mut b = SummaryBuilder::new();
        b.add_order("a", 0, row(1, 1, 1.0));
        b.add_order("a", 0, row(9, 2, 1.0));
        b.add_order("a", 0, row(9, 2, 1.0));
        b.add_order("b", 1, row(9, 3, 1.0));
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
            whole.add_order(c, 0, row(d, k, v));
        }
        let (mut left, mut right) = (SummaryBuilder::new(), SummaryBuilder::new());
        for (i, (c, d, k, v)) in rows.into_iter().enumerate() {
            let half = if i % 2 == 0 { &mut left } else { &mut right };
            half.add_order(c, 0, row(d, k, v));
        }
        left.merge(right);
        assert_eq!(whole.finish(10), left.finish(10));
    }

    #[test]
    fn visitors_without_orders_are_kept() {
        let mut b = SummaryBuilder::new();
        b.add_visit("v", 0, 3, false);
        b.add_visit("v", 0, 2, true);
        let (s, _) = b.finish(5);
        assert_eq!(s[0].n_orders, 0);
        assert!(s[0].visited && s[0].left_email);
        assert_eq!(s[0].first_seen, Some(2));
        assert_eq!(s[0].first_order, None);
    }
}
