//! A synthetic shop with planted truths, for testing the insights: customers
//! with attributes (city, country, gender, birth date, acquisition channel
//! and cost), order lines (60 products in 6 categories and 10 brands, with
//! prices, costs and discount codes) and survey answers, where a few effects
//! are planted and everything else is independent:
//!
//! - customers in **Lyon** buy twice as often and drop out half as often;
//! - customers whose first order's main product is of brand **Brittle**
//!   stop after it 85% of the time (35% for the others);
//! - customers acquired through **display** cost about 65 each (the most)
//!   and stop after their first order 70% of the time;
//! - after buying **P07**, half of a customer's later orders start with
//!   **P12** until they have bought it.
//!
//! Gender, age, country, category, discount code and the other cities,
//! brands and channels carry no planted effect (brands' products spread
//! evenly over the categories, so categories inherit none from Brittle).
//! Purchases follow the BG/NBD process (Gamma purchase rates, Beta drop-out
//! after each repeat purchase) plus the first-order drop-out above.
//!
//! Pure: the caller writes the records out. Same seed, same shop.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Beta, Distribution, Exp, Gamma};

/// The planted effects: (dimension, value, what was planted).
pub const PLANTED: &[(&str, &str, &str)] = &[
    (
        "city",
        "Lyon",
        "twice the purchase rate and half the drop-out",
    ),
    (
        "first_brand",
        "Brittle",
        "85% stop after the first order (35% otherwise)",
    ),
    (
        "acquisition_channel",
        "display",
        "acquisition cost about 65 (the highest); 70% stop after the first order",
    ),
    (
        "affinity",
        "P07 -> P12",
        "half of the later orders after P07 start with P12",
    ),
];

/// A product of the shop.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: String,
    pub category: &'static str,
    pub brand: &'static str,
    pub price: f64,
    pub cost: f64,
    pub(crate) weight: f64,
}

const CATEGORIES: [&str; 6] = ["Shoes", "Bags", "Jackets", "Shirts", "Jewellery", "Hats"];
const BRANDS: [(&str, f64); 10] = [
    ("Acme", 0.18),
    ("Borealis", 0.15),
    ("Cobalt", 0.13),
    ("Dune", 0.11),
    ("Ember", 0.10),
    ("Fjord", 0.09),
    ("Brittle", 0.08),
    ("Garnet", 0.06),
    ("Harbor", 0.05),
    ("Indigo", 0.05),
];
const CITIES: [(&str, &str, f64); 14] = [
    ("Lyon", "France", 0.10),
    ("Paris", "France", 0.08),
    ("Marseille", "France", 0.07),
    ("Toulouse", "France", 0.07),
    ("Nice", "France", 0.06),
    ("Nantes", "France", 0.06),
    ("Strasbourg", "France", 0.06),
    ("Montpellier", "France", 0.06),
    ("Bordeaux", "France", 0.06),
    ("Lille", "France", 0.06),
    ("Rennes", "France", 0.06),
    ("Reims", "France", 0.09),
    ("Brussels", "Belgium", 0.06),
    ("Antwerp", "Belgium", 0.05),
];
/// Channels with their share of new customers and mean acquisition cost.
pub const CHANNELS: [(&str, f64, f64); 5] = [
    ("organic", 0.35, 0.0),
    ("search", 0.25, 22.0),
    ("social", 0.20, 18.0),
    ("email", 0.10, 4.0),
    ("display", 0.10, 65.0),
];
const GENDERS: [(&str, f64); 3] = [("F", 0.49), ("M", 0.48), ("X", 0.03)];

/// The shop's catalogue: P01..P60; product i is of category i mod 6 and
/// brand i div 6, so every brand has one product in each category; price
/// is the same for all, cost depends on the brand.
pub fn catalogue() -> Vec<Product> {
    (0..60)
        .map(|i| {
            // One price for every product: what a customer spends then says
            // nothing about what they buy (the RFM segments rank spend), so
            // brands other than Brittle carry no effect of their own.
            let price = 49.0;
            Product {
                id: format!("P{:02}", i + 1),
                category: CATEGORIES[i % 6],
                brand: BRANDS[i / 6].0,
                price,
                cost: (price * (0.4 + ((i / 6) % 5) as f64 * 0.05) * 100.0).round() / 100.0,
                weight: BRANDS[i / 6].1,
            }
        })
        .collect()
}

/// One customer's attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopCustomer {
    pub id: String,
    pub email: String,
    pub city: &'static str,
    pub country: &'static str,
    pub gender: &'static str,
    /// Days from the period start (negative: before it).
    pub birth_day: i32,
    pub channel: &'static str,
    pub acquisition_cost: f64,
}

/// One order line; `day` counts from the period start.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopLine {
    pub order: u64,
    pub day: u32,
    pub second: u32,
    /// Index into [`catalogue`].
    pub product: usize,
    pub quantity: u32,
    pub discount_code: Option<&'static str>,
    /// `price × quantity` (the codes give free shipping, not a price cut);
    /// negative for a return.
    pub amount: f64,
    /// A return of one item of an earlier line (of the same order).
    pub returned: bool,
}

/// A survey answer, review or ticket: `kind` is `nps` (0–10), `ces`
/// (1–7), `review` (1–5) or `ticket` (1 resolved, 0 open).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub kind: &'static str,
    pub value: u32,
    pub day: u32,
}

/// The generator.
pub struct Shop {
    rng: Xoshiro256PlusPlus,
    products: Vec<Product>,
    days: u32,
    acquisition_days: u32,
    next_customer: u64,
    next_order: u64,
}

fn pick<T: Copy>(rng: &mut Xoshiro256PlusPlus, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|i| i.1).sum();
    let mut u = rng.random::<f64>() * total;
    for &(v, w) in items {
        if u < w {
            return v;
        }
        u -= w;
    }
    items[items.len() - 1].0
}

impl Shop {
    /// Customers start within the first `acquisition_days` of `days`.
    pub fn new(seed: u64, days: u32, acquisition_days: u32) -> Shop {
        Shop {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            products: catalogue(),
            days: days.max(1),
            acquisition_days: acquisition_days.clamp(1, days.max(1)),
            next_customer: 1,
            next_order: 1,
        }
    }

    fn product(&mut self) -> usize {
        let total: f64 = self.products.iter().map(|p| p.weight).sum();
        let mut u = self.rng.random::<f64>() * total;
        for (i, p) in self.products.iter().enumerate() {
            if u < p.weight {
                return i;
            }
            u -= p.weight;
        }
        self.products.len() - 1
    }

    /// The next customer with their lines (at least one order) and answers.
    pub fn next_customer(&mut self) -> (ShopCustomer, Vec<ShopLine>, Vec<Answer>) {
        let n = self.next_customer;
        self.next_customer += 1;
        let (city, country) = {
            let items: Vec<((&str, &str), f64)> =
                CITIES.iter().map(|c| ((c.0, c.1), c.2)).collect();
            pick(&mut self.rng, &items)
        };
        let channel = pick(
            &mut self.rng,
            &CHANNELS.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(),
        );
        let base_cost = CHANNELS
            .iter()
            .find(|c| c.0 == channel)
            .map_or(0.0, |c| c.2);
        let acquisition_cost =
            (base_cost * self.rng.random_range(0.7..1.3) * 100.0).round() / 100.0;
        let gender = pick(&mut self.rng, &GENDERS);
        let age_days = self.rng.random_range(18.0..72.0) * 365.2425;
        let customer = ShopCustomer {
            id: format!("C{n:07}"),
            email: format!("c{n}@example.com"),
            city,
            country,
            gender,
            birth_day: -(age_days as i32),
            channel,
            acquisition_cost,
        };
        let lyon = city == "Lyon";
        let rate = Gamma::new(1.2, 1.0 / 60.0)
            .map_or(0.02_f64, |g| g.sample(&mut self.rng))
            .max(1e-6)
            * if lyon { 2.0 } else { 1.0 };
        let dropout = Beta::new(1.0, 4.0).map_or(0.2, |b| b.sample(&mut self.rng))
            * if lyon { 0.5 } else { 1.0 };
        let welcome = self.rng.random::<f64>() < 0.25;
        let mut t = self.rng.random::<f64>() * f64::from(self.acquisition_days);
        let mut lines = Vec::new();
        let mut orders = 0u32;
        let mut bought_p07 = false;
        let mut bought_p12 = false;
        loop {
            let order = self.next_order;
            self.next_order += 1;
            let day = t.floor();
            let code = if orders == 0 && welcome {
                Some("WELCOME10")
            } else if orders > 0 && self.rng.random::<f64>() < 0.05 {
                Some("SPRING")
            } else {
                None
            };
            let count = 1
                + usize::from(self.rng.random::<f64>() < 0.4)
                + usize::from(self.rng.random::<f64>() < 0.15);
            let mut first_product = None;
            for k in 0..count {
                let mut product = self.product();
                if k == 0
                    && orders > 0
                    && bought_p07
                    && !bought_p12
                    && self.rng.random::<f64>() < 0.5
                {
                    product = 11;
                }
                if lines
                    .iter()
                    .any(|l: &ShopLine| l.order == order && l.product == product)
                {
                    continue;
                }
                let quantity = if self.rng.random::<f64>() < 0.8 { 1 } else { 2 };
                let p = &self.products[product];
                let gross = p.price * f64::from(quantity);
                let amount = gross;
                first_product = first_product.or(Some((product, amount)));
                if let Some((_, a)) = first_product
                    && amount > a
                {
                    first_product = Some((product, amount));
                }
                lines.push(ShopLine {
                    order,
                    day: day as u32,
                    second: ((t - day) * 86_400.0).min(86_399.0) as u32,
                    product,
                    quantity,
                    discount_code: code,
                    amount: (amount * 100.0).round() / 100.0,
                    returned: false,
                });
            }
            let order_products: Vec<usize> = lines
                .iter()
                .filter(|l| l.order == order)
                .map(|l| l.product)
                .collect();
            bought_p07 |= order_products.contains(&6);
            bought_p12 |= order_products.contains(&11);
            orders += 1;
            let stop = if orders == 1 {
                // The main product of the first order (the largest line).
                let brittle =
                    first_product.is_some_and(|(p, _)| self.products[p].brand == "Brittle");
                let p = if brittle {
                    0.85
                } else if channel == "display" {
                    0.70
                } else if lyon {
                    0.175
                } else {
                    0.35
                };
                self.rng.random::<f64>() < p
            } else {
                self.rng.random::<f64>() < dropout
            };
            if stop {
                break;
            }
            t += Exp::new(rate).map_or(f64::INFINITY, |e| e.sample(&mut self.rng));
            if t >= f64::from(self.days) {
                break;
            }
        }
        let mut answers = Vec::new();
        let last = lines.last().map_or(0, |l| l.day);
        if self.rng.random::<f64>() < 0.4 {
            let noise: f64 = self.rng.random_range(-2.5..2.5);
            let score = (5.5 + 0.6 * f64::from(orders) + noise)
                .round()
                .clamp(0.0, 10.0);
            answers.push(Answer {
                kind: "nps",
                value: score as u32,
                day: (last + 3).min(self.days - 1),
            });
        }
        if self.rng.random::<f64>() < 0.2 {
            answers.push(Answer {
                kind: "review",
                value: self.rng.random_range(3..=5),
                day: (last + 7).min(self.days - 1),
            });
        }
        if self.rng.random::<f64>() < 0.1 {
            answers.push(Answer {
                kind: "ces",
                value: self.rng.random_range(1..=7),
                day: (last + 2).min(self.days - 1),
            });
        }
        // Support tickets: resolved (1) 85% of the time.
        if self.rng.random::<f64>() < 0.08 {
            answers.push(Answer {
                kind: "ticket",
                value: u32::from(self.rng.random::<f64>() < 0.85),
                day: (last + 1).min(self.days - 1),
            });
        }
        // A line returned now and then: 4% of lines, 3 days later.
        let mut returns = Vec::new();
        for l in &lines {
            if self.rng.random::<f64>() < 0.04 && l.day + 3 < self.days {
                returns.push(ShopLine {
                    day: l.day + 3,
                    quantity: 1,
                    amount: -(l.amount / f64::from(l.quantity) * 100.0).round() / 100.0,
                    returned: true,
                    ..l.clone()
                });
            }
        }
        lines.extend(returns);
        (customer, lines, answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_shop_and_planted_effects_show() {
        let draw = |seed| {
            let mut s = Shop::new(seed, 730, 365);
            (0..300).map(|_| s.next_customer()).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        let mut s = Shop::new(1, 730, 365);
        let (mut lyon, mut other) = ((0u32, 0u32), (0u32, 0u32));
        for _ in 0..5000 {
            let (c, lines, _) = s.next_customer();
            let orders = lines
                .iter()
                .map(|l| l.order)
                .collect::<std::collections::HashSet<_>>()
                .len() as u32;
            assert!(
                orders >= 1
                    && lines
                        .iter()
                        .all(|l| l.day < 730 && (l.amount > 0.0) != l.returned)
            );
            let slot = if c.city == "Lyon" {
                &mut lyon
            } else {
                &mut other
            };
            slot.0 += orders;
            slot.1 += 1;
        }
        let (l, o) = (
            f64::from(lyon.0) / f64::from(lyon.1),
            f64::from(other.0) / f64::from(other.1),
        );
        assert!(l > 1.5 * o, "Lyon {l} orders per customer, others {o}");
        let c = catalogue();
        assert_eq!((c[6].id.as_str(), c[11].id.as_str()), ("P07", "P12"));
        for brand in BRANDS {
            let cats: std::collections::HashSet<_> = c
                .iter()
                .filter(|p| p.brand == brand.0)
                .map(|p| p.category)
                .collect();
            assert_eq!(cats.len(), 6);
        }
    }
}
