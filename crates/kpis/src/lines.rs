//! Order lines: what each customer bought (product, category, brand,
//! quantity, revenue, cost, discount code), and what follows from it: the
//! first order's product, category, brand and discount code (for
//! stickiness and anomalies), margin per customer (for the Pareto share of
//! margin), and upsell affinities ("customers who bought A later bought B")
//! with each customer's next best product.

use lifecycle_rfm::Day;

/// A hash map with a fast, fixed (deterministic) hasher.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// Interned names (customer ids, products, categories, brands, codes).
#[derive(Debug, Clone, Default)]
pub struct Names {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    /// The id of `s`, added when new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
    pub fn get(&self, s: &str) -> Option<u32> {
        self.index.get(s).copied()
    }
    /// The name of an id (empty for an unknown id).
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One order line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Index into [`LineTable::customers`].
    pub customer: u32,
    pub day: Day,
    /// Local hour of day (0–23) when the date had a time.
    pub hour: Option<u8>,
    pub product: u32,
    pub category: Option<u32>,
    pub brand: Option<u32>,
    pub quantity: f64,
    /// Net amount of the line (after its discount).
    pub revenue: f64,
    /// Cost of goods of the line, when known.
    pub cost: Option<f64>,
    pub discount: Option<u32>,
}

/// Every line of an order-lines file with its name tables.
#[derive(Debug, Clone, Default)]
pub struct LineTable {
    pub lines: Vec<Line>,
    pub customers: Names,
    pub products: Names,
    pub categories: Names,
    pub brands: Names,
    pub discounts: Names,
}

/// What one customer's lines say.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerLines {
    pub first_day: Day,
    /// The first day's largest line (by revenue; the earliest in the file
    /// on a tie) and its category and brand.
    pub first_product: u32,
    pub first_category: Option<u32>,
    pub first_brand: Option<u32>,
    /// A discount code used on the first day.
    pub first_discount: Option<u32>,
    pub revenue: f64,
    /// Revenue less cost over the lines with a cost (`None` when no line has one).
    pub margin: Option<f64>,
    /// Distinct products with the day each was first bought, in that order.
    pub products: Vec<(u32, Day)>,
    /// Distinct categories and brands bought.
    pub categories: Vec<u32>,
    pub brands: Vec<u32>,
    /// Lines by weekday (0 = Monday) and by hour (when dates had times).
    pub weekdays: [u32; 7],
    pub hours: [u32; 24],
    /// Lines bought, and lines returned (a negative quantity or amount).
    pub lines: u32,
    pub returned: u32,
}

impl Line {
    /// A return: a negative quantity or amount.
    pub fn is_return(&self) -> bool {
        self.quantity < 0.0 || self.revenue < 0.0
    }
}

/// The weekday of a day since 1970-01-01 (a Thursday), 0 = Monday.
pub fn weekday(day: Day) -> usize {
    (i64::from(day) + 3).rem_euclid(7) as usize
}

/// Groups the lines by customer (sorting them by customer and day, the
/// order they came in kept within a day): one entry per customer of the table, `None`
/// for a customer without lines.
pub fn by_customer(table: &mut LineTable) -> Vec<Option<CustomerLines>> {
    let n = table.customers.len();
    if table.lines.is_sorted_by_key(|l| l.customer) {
        // Already grouped (as the reader leaves them): order each
        // customer's lines by day, file order kept within a day.
        for group in table.lines.chunk_by_mut(|a, b| a.customer == b.customer) {
            group.sort_by_key(|l| l.day);
        }
    } else {
        table.lines.sort_by_key(|l| (l.customer, l.day));
    }
    let mut out: Vec<Option<CustomerLines>> = vec![None; n];
    for chunk in table.lines.chunk_by(|a, b| a.customer == b.customer) {
        let Some(first) = chunk.iter().find(|l| !l.is_return()) else {
            continue;
        };
        let first_day = first.day;
        let mut best = first;
        let mut first_discount = None;
        for l in chunk
            .iter()
            .skip_while(|l| l.day < first_day)
            .take_while(|l| l.day == first_day)
        {
            if l.is_return() {
                continue;
            }
            if l.revenue > best.revenue {
                best = l;
            }
            first_discount = first_discount.or(l.discount);
        }
        let mut products: Vec<(u32, Day)> = Vec::new();
        let mut categories = Vec::new();
        let mut brands = Vec::new();
        let (mut revenue, mut margin) = (0.0, None::<f64>);
        let mut weekdays = [0u32; 7];
        let mut hours = [0u32; 24];
        let (mut lines, mut returned) = (0u32, 0u32);
        for l in chunk {
            revenue += l.revenue;
            if let Some(c) = l.cost {
                *margin.get_or_insert(0.0) += l.revenue - c;
            }
            if l.is_return() {
                returned += 1;
                continue;
            }
            lines += 1;
            if !products.iter().any(|p| p.0 == l.product) {
                products.push((l.product, l.day));
            }
            if let Some(c) = l.category
                && !categories.contains(&c)
            {
                categories.push(c);
            }
            if let Some(b) = l.brand
                && !brands.contains(&b)
            {
                brands.push(b);
            }
            weekdays[weekday(l.day)] += 1;
            if let Some(h) = l.hour {
                hours[usize::from(h.min(23))] += 1;
            }
        }
        if let Some(slot) = out.get_mut(first.customer as usize) {
            *slot = Some(CustomerLines {
                first_day,
                first_product: best.product,
                first_category: best.category,
                first_brand: best.brand,
                first_discount,
                revenue,
                margin,
                products,
                categories,
                brands,
                weekdays,
                hours,
                lines,
                returned,
            });
        }
    }
    out
}

/// "Customers who bought A later bought B".
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub antecedent: u32,
    pub consequent: u32,
    /// Customers who bought B on a day after they first bought A.
    pub customers: u64,
    /// Customers who bought A, and who bought B.
    pub antecedent_customers: u64,
    pub consequent_customers: u64,
    /// `customers / all customers`.
    pub support: f64,
    /// `customers / antecedent_customers`.
    pub confidence: f64,
    /// `confidence / P(B)`, the usual lift.
    pub lift: f64,
    /// Customers expected to buy B after A if product choice did not depend
    /// on A: for each buyer of A with m products first bought later,
    /// `1 − (1 − p_B)^m`, with `p_B` B's share of all later first purchases.
    /// This accounts for frequent buyers buying more of everything.
    pub expected: f64,
    /// `customers / expected`.
    pub lift_adjusted: f64,
    /// One-sided: more buyers of B after A than expected (normal
    /// approximation of the sum of Bernoulli trials, continuity-corrected).
    pub p_value: f64,
    /// Benjamini–Hochberg over every rule tested.
    pub p_adjusted: f64,
}

/// Products counted per customer for affinities (the first ones bought):
/// bounds the pairs of very large baskets.
pub const MAX_PRODUCTS_PER_CUSTOMER: usize = 64;

/// Every rule A → B seen for at least `min_customers` customers, sorted by
/// adjusted p-value then by adjusted lift (descending).
pub fn affinities(customers: &[Option<CustomerLines>], min_customers: u64) -> Vec<Rule> {
    const M: usize = MAX_PRODUCTS_PER_CUSTOMER;
    let items = |c: &CustomerLines| -> usize { c.products.len().min(M) };
    // Pass 1: buyers of each product, and its share of later first purchases.
    let mut n_customers = 0u64;
    let mut bought: HashMap<u32, u64> = HashMap::default();
    let mut later: HashMap<u32, u64> = HashMap::default();
    let mut later_total = 0u64;
    for c in customers.iter().flatten() {
        n_customers += 1;
        for &(a, day) in &c.products[..items(c)] {
            *bought.entry(a).or_insert(0) += 1;
            if day > c.first_day {
                *later.entry(a).or_insert(0) += 1;
                later_total += 1;
            }
        }
    }
    if n_customers == 0 || later_total == 0 {
        return Vec::new();
    }
    let share = |p: u32| {
        later
            .get(&p)
            .map_or(0.0, |&n| n as f64 / later_total as f64)
    };
    // Pass 2: pairs. For each buyer of A: m, the products first bought
    // after A, and e, the share of later purchases taken by the products
    // already bought by A's day (they cannot be bought "later"), kept as
    // cells (A, m) → (buyers, Σ 1/(1 − e)); and for the pairs where B was
    // already bought by A's day, Σ m/(1 − e) to take out of the expectation.
    let mut pairs: HashMap<(u32, u32), (u64, f64)> = HashMap::default();
    let mut cells: HashMap<u32, Vec<(u64, f64)>> = HashMap::default();
    for c in customers.iter().flatten() {
        let list = &c.products[..items(c)];
        for (i, &(a, day)) in list.iter().enumerate() {
            let split = list.partition_point(|p| p.1 <= day);
            let (before, after) = list.split_at(split);
            let e: f64 = before.iter().map(|p| share(p.0)).sum();
            let inv = 1.0 / (1.0 - e).max(1e-9);
            let m = after.len();
            let cell = &mut cells.entry(a).or_insert_with(|| vec![(0, 0.0); M + 1])[m];
            cell.0 += 1;
            cell.1 += inv;
            for &(b, _) in after {
                pairs.entry((a, b)).or_insert((0, 0.0)).0 += 1;
            }
            if m > 0 {
                for (j, &(b, _)) in before.iter().enumerate() {
                    if j != i {
                        pairs.entry((a, b)).or_insert((0, 0.0)).1 += m as f64 * inv;
                    }
                }
            }
        }
    }
    let mut rules: Vec<Rule> = pairs
        .into_iter()
        .filter(|&(_, (k, _))| k >= min_customers)
        .filter_map(|((a, b), (k, prior))| {
            let n_a = *bought.get(&a)?;
            let n_b = *bought.get(&b)?;
            let p_b = share(b);
            let (mut expected, mut variance) = (0.0, 0.0);
            for (m, &(count, inv_sum)) in cells.get(&a)?.iter().enumerate() {
                if count == 0 || m == 0 {
                    continue;
                }
                // Drawing m distinct products from those not yet bought:
                // B is among them with probability ≈ m·p_B/(1 − e).
                let q = (m as f64 * p_b * inv_sum / count as f64).min(1.0);
                expected += count as f64 * q;
                variance += count as f64 * q * (1.0 - q);
            }
            // Buyers of A who had B already cannot buy it later.
            let expected = (expected - p_b * prior).max(0.0);
            let observed = k as f64;
            let p_value = if variance > 0.0 {
                lifecycle_lift::normal_sf((observed - 0.5 - expected) / variance.sqrt())
            } else {
                1.0
            };
            let confidence = observed / n_a as f64;
            Some(Rule {
                antecedent: a,
                consequent: b,
                customers: k,
                antecedent_customers: n_a,
                consequent_customers: n_b,
                support: observed / n_customers as f64,
                confidence,
                lift: confidence / (n_b as f64 / n_customers as f64),
                expected,
                lift_adjusted: if expected > 0.0 {
                    observed / expected
                } else {
                    f64::INFINITY
                },
                p_value,
                p_adjusted: 1.0,
            })
        })
        .collect();
    let p: Vec<f64> = rules.iter().map(|r| r.p_value).collect();
    for (r, adj) in rules
        .iter_mut()
        .zip(lifecycle_lift::multiple::benjamini_hochberg(&p))
    {
        r.p_adjusted = adj;
    }
    rules.sort_by(|x, y| {
        x.p_adjusted
            .total_cmp(&y.p_adjusted)
            .then(y.lift_adjusted.total_cmp(&x.lift_adjusted))
            .then((x.antecedent, x.consequent).cmp(&(y.antecedent, y.consequent)))
    });
    rules
}

/// A product to offer one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NextBest {
    pub product: u32,
    /// The product bought that makes it likely.
    pub because: u32,
    pub confidence: f64,
}

/// For each customer, the product not yet bought with the highest
/// confidence among the rules whose antecedent they bought (rules with an
/// adjusted p-value under `alpha` only).
pub fn next_best(
    customers: &[Option<CustomerLines>],
    rules: &[Rule],
    alpha: f64,
) -> Vec<Option<NextBest>> {
    let mut by_antecedent: HashMap<u32, Vec<&Rule>> = HashMap::default();
    for r in rules.iter().filter(|r| r.p_adjusted < alpha) {
        by_antecedent.entry(r.antecedent).or_default().push(r);
    }
    for list in by_antecedent.values_mut() {
        list.sort_by(|x, y| {
            y.confidence
                .total_cmp(&x.confidence)
                .then(x.consequent.cmp(&y.consequent))
        });
    }
    customers
        .iter()
        .map(|c| {
            let c = c.as_ref()?;
            let has = |p: u32| c.products.iter().any(|x| x.0 == p);
            let mut best: Option<NextBest> = None;
            for &(a, _) in &c.products {
                let Some(list) = by_antecedent.get(&a) else {
                    continue;
                };
                if let Some(r) = list.iter().find(|r| !has(r.consequent))
                    && best.is_none_or(|b| r.confidence > b.confidence)
                {
                    best = Some(NextBest {
                        product: r.consequent,
                        because: a,
                        confidence: r.confidence,
                    });
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(table: &mut LineTable, customer: &str, day: Day, product: &str, revenue: f64) {
        let customer = table.customers.intern(customer);
        let product = table.products.intern(product);
        table.lines.push(Line {
            customer,
            day,
            hour: None,
            product,
            category: None,
            brand: None,
            quantity: 1.0,
            revenue,
            cost: Some(revenue * 0.6),
            discount: None,
        });
    }

    #[test]
    fn customer_facts_by_hand() {
        let mut t = LineTable::default();
        line(&mut t, "b", 5, "x", 10.0);
        line(&mut t, "a", 3, "y", 4.0);
        line(&mut t, "a", 1, "x", 2.0);
        line(&mut t, "a", 1, "z", 6.0);
        line(&mut t, "a", 0, "w", -3.0);
        t.lines[4].quantity = -1.0;
        let code = t.discounts.intern("WELCOME");
        t.lines[2].discount = Some(code);
        let c = by_customer(&mut t);
        let a = c[1].as_ref().unwrap();
        assert_eq!(a.first_day, 1);
        assert_eq!(
            t.products.name(a.first_product),
            "z",
            "largest line of day 1"
        );
        assert_eq!(a.first_discount, Some(code));
        assert!(
            (a.revenue - 9.0).abs() < 1e-12,
            "the return counts in revenue"
        );
        assert!((a.margin.unwrap() - 3.6).abs() < 1e-12);
        assert_eq!((a.lines, a.returned), (3, 1));
        let names: Vec<(&str, Day)> = a
            .products
            .iter()
            .map(|p| (t.products.name(p.0), p.1))
            .collect();
        assert_eq!(names, vec![("x", 1), ("z", 1), ("y", 3)]);
        // 1970-01-02 was a Friday (4), 1970-01-04 a Sunday (6).
        assert_eq!(a.weekdays[4], 2);
        assert_eq!(a.weekdays[6], 1);
        assert_eq!(c[0].as_ref().unwrap().first_day, 5);
    }

    #[test]
    fn grouped_and_scattered_lines_give_the_same_facts() {
        let mut scattered = LineTable::default();
        for (c, d, p, r) in [
            ("a", 5, "x", 1.0),
            ("b", 2, "y", 3.0),
            ("a", 1, "z", 2.0),
            ("b", 2, "x", 3.0),
            ("a", 5, "y", 4.0),
        ] {
            line(&mut scattered, c, d, p, r);
        }
        let mut grouped = scattered.clone();
        // Grouped by customer (as the reader leaves them), file order kept.
        grouped.lines.sort_by_key(|l| l.customer);
        assert!(!scattered.lines.is_sorted_by_key(|l| l.customer));
        let (g, s) = (by_customer(&mut grouped), by_customer(&mut scattered));
        assert_eq!(g, s);
        let b = g[1].as_ref().unwrap();
        assert_eq!(
            scattered.products.name(b.first_product),
            "y",
            "a tie goes to the earlier line"
        );
    }

    #[test]
    fn a_rule_by_hand() {
        // 4 customers: x then y (2), x only (1), y only (1).
        let mut t = LineTable::default();
        line(&mut t, "1", 0, "x", 1.0);
        line(&mut t, "1", 5, "y", 1.0);
        line(&mut t, "2", 0, "x", 1.0);
        line(&mut t, "2", 9, "y", 1.0);
        line(&mut t, "3", 0, "x", 1.0);
        line(&mut t, "4", 0, "y", 1.0);
        line(&mut t, "4", 3, "z", 1.0);
        let c = by_customer(&mut t);
        let rules = affinities(&c, 1);
        let (x, y) = (t.products.get("x").unwrap(), t.products.get("y").unwrap());
        let r = rules
            .iter()
            .find(|r| r.antecedent == x && r.consequent == y)
            .unwrap();
        assert_eq!(
            (r.customers, r.antecedent_customers, r.consequent_customers),
            (2, 3, 3)
        );
        assert!((r.support - 0.5).abs() < 1e-12);
        assert!((r.confidence - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.lift - (2.0 / 3.0) / 0.75).abs() < 1e-12);
        // Later first purchases: y (1), y (2), z (4): p_y = 2/3. Buyers of x
        // with one later product: 2, with none: 1 → expected 2 × 2/3.
        assert!((r.expected - 4.0 / 3.0).abs() < 1e-12);
        assert!((r.lift_adjusted - 1.5).abs() < 1e-12);
        let next = next_best(&c, &rules, 1.1);
        assert_eq!(
            next[2].map(|n| n.product),
            Some(y),
            "customer 3 bought x only"
        );
        assert!(next[0].is_none_or(|n| n.product != y), "already bought");
    }

    #[test]
    fn independent_choices_give_no_significant_rule() {
        // 3,000 customers, 2–4 orders of one product among 10 uniformly: no
        // rule should survive the correction (a fixed LCG for the draws).
        let mut t = LineTable::default();
        let mut s: u64 = 42;
        let mut next = || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 33) as u32
        };
        for c in 0..3000 {
            let orders = 2 + next() % 3;
            for o in 0..orders {
                let p = format!("p{}", next() % 10);
                line(&mut t, &c.to_string(), (o * 10) as Day, &p, 1.0);
            }
        }
        let c = by_customer(&mut t);
        let rules = affinities(&c, 5);
        assert!(rules.len() > 50);
        let mean = rules.iter().map(|r| r.lift_adjusted).sum::<f64>() / rules.len() as f64;
        assert!((mean - 1.0).abs() < 0.05, "mean adjusted lift {mean}");
        assert!(
            rules.iter().filter(|r| r.p_adjusted < 0.05).count() <= 1,
            "{:?}",
            rules.iter().take(3).collect::<Vec<_>>()
        );
    }
}
