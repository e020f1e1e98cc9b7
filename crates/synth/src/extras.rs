//! What a shop knows besides the orders, for the generated customers:
//! behavioural events (a sign-up before the first order, page views, and
//! visitors who never buy) and customer attributes (acquisition channel
//! and cost, city, age). Drawn from their own random streams (one for the
//! events, one for the attributes), so asking for them never changes the
//! orders or each other; independent of the purchase process unless the
//! caller plants an effect of an attribute on it ([`crate::Effect`]).

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, Exp, Uniform};

/// A generated behavioural event.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthEvent {
    /// A buyer of the orders (`C…`) or a visitor who never buys (`V…`).
    pub visitor: bool,
    pub id: u64,
    /// Day of the period and second of the day.
    pub day: u32,
    pub second: u32,
    /// `Signed Up` (with an email address) or `Page Viewed`.
    pub event: &'static str,
    /// The event left an email address (sign-ups do).
    pub email: bool,
}

/// A generated customer's attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthAttributes {
    pub customer: u64,
    pub channel: &'static str,
    pub cost: f64,
    pub city: &'static str,
    pub age: u32,
}

/// One line of a generated order: a product of the shop's catalogue
/// ([`crate::shop::catalogue`]) and its share of the order's amount.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthLine {
    pub product: usize,
    pub quantity: u32,
    /// Price of one unit; the lines of an order add up to its amount.
    pub unit_price: f64,
    /// Cost of one unit (the product's cost rate of the price).
    pub unit_cost: f64,
}

/// Acquisition channels and their typical cost per customer.
pub const CHANNELS: [(&str, f64); 5] = [
    ("search", 25.0),
    ("social", 18.0),
    ("email", 6.0),
    ("display", 32.0),
    ("referral", 12.0),
];
/// The cities customers live in.
pub const CITIES: [&str; 6] = ["Paris", "Lyon", "Marseille", "Lille", "Bordeaux", "Nantes"];

/// Draws the side data, one customer at a time.
pub struct Extras {
    rng: Xoshiro256PlusPlus,
    attribute_rng: Xoshiro256PlusPlus,
    line_rng: Xoshiro256PlusPlus,
    catalogue: Vec<crate::shop::Product>,
    /// Cumulative catalogue weights, for drawing products.
    cumulative: Vec<f64>,
    period_days: u32,
    acquisition_days: u32,
    next_visitor: u64,
}

impl Extras {
    /// `seed` is the orders' seed (the stream is derived from it).
    pub fn new(seed: u64, period_days: u32, acquisition_days: u32) -> Extras {
        let catalogue = crate::shop::catalogue();
        Extras {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15),
            attribute_rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xA076_1D64_78BD_642F),
            line_rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xE703_7ED1_A0B4_28DB),
            cumulative: catalogue
                .iter()
                .scan(0.0, |acc, p| {
                    *acc += p.weight;
                    Some(*acc)
                })
                .collect(),
            catalogue,
            period_days: period_days.max(1),
            acquisition_days: acquisition_days.clamp(1, period_days.max(1)),
            next_visitor: 1,
        }
    }

    fn uniform(&mut self, hi: f64) -> f64 {
        Self::draw(&mut self.rng, hi)
    }

    fn draw(rng: &mut Xoshiro256PlusPlus, hi: f64) -> f64 {
        Uniform::new(0.0, hi.max(f64::MIN_POSITIVE)).map_or(0.0, |u| u.sample(rng))
    }

    fn at(t: f64) -> (u32, u32) {
        let day = t.max(0.0).floor();
        (
            day as u32,
            ((t - day) * 86_400.0).clamp(0.0, 86_399.0) as u32,
        )
    }

    /// Page views between `from` and the period's end: one to four.
    fn views(&mut self, visitor: bool, id: u64, from: f64, out: &mut Vec<SynthEvent>) {
        let n = 1 + (self.uniform(4.0) as u32).min(3);
        let span = f64::from(self.period_days) - from;
        for _ in 0..n {
            let (day, second) = Extras::at(from + self.uniform(span));
            out.push(SynthEvent {
                visitor,
                id,
                day,
                second,
                event: "Page Viewed",
                email: false,
            });
        }
    }

    /// A buyer's events: a first visit a few days (exponential, mean 3)
    /// before their first order at `first` (days into the period), a
    /// sign-up with an email four times out of five, and page views after.
    pub fn buyer_events(&mut self, customer: u64, first: f64, out: &mut Vec<SynthEvent>) {
        let lead = Exp::new(1.0 / 3.0).map_or(0.0, |e| e.sample(&mut self.rng));
        let signed = (first - lead).max(0.0);
        let (day, second) = Extras::at(signed);
        let email = self.uniform(1.0) < 0.8;
        out.push(SynthEvent {
            visitor: false,
            id: customer,
            day,
            second,
            event: if email { "Signed Up" } else { "Page Viewed" },
            email,
        });
        self.views(false, customer, signed, out);
    }

    /// A visitor who never buys: a first visit within the acquisition
    /// window (a sign-up with an email half the time) and page views after.
    pub fn visitor_events(&mut self, out: &mut Vec<SynthEvent>) {
        let id = self.next_visitor;
        self.next_visitor += 1;
        let signed = self.uniform(f64::from(self.acquisition_days));
        let (day, second) = Extras::at(signed);
        let email = self.uniform(1.0) < 0.5;
        out.push(SynthEvent {
            visitor: true,
            id,
            day,
            second,
            event: if email { "Signed Up" } else { "Page Viewed" },
            email,
        });
        self.views(true, id, signed, out);
    }

    /// The catalogue the order lines' products come from.
    pub fn catalogue(&self) -> &[crate::shop::Product] {
        &self.catalogue
    }

    /// An order of `amount` as one to three lines of distinct products
    /// (drawn by the catalogue's brand weights), quantity 1 or 2, whose
    /// totals add up to the amount to the cent; each unit's cost is the
    /// product's cost rate of its price.
    pub fn order_lines(&mut self, amount: f64, out: &mut Vec<SynthLine>) {
        out.clear();
        let rng = &mut self.line_rng;
        let n = 1 + (Self::draw(rng, 3.0) as usize).min(2);
        let total_cents = (amount * 100.0).round() as i64;
        let shares: Vec<f64> = (0..n).map(|_| 0.5 + Self::draw(rng, 1.0)).collect();
        let sum: f64 = shares.iter().sum();
        let mut left = total_cents;
        let top = self.cumulative.last().copied().unwrap_or(1.0);
        for (k, share) in shares.iter().enumerate() {
            let cents = if k + 1 == n {
                left
            } else {
                (((total_cents as f64) * share / sum).round() as i64).clamp(0, left.max(0))
            };
            left -= cents;
            let u = Self::draw(rng, top);
            let mut product = self.cumulative.partition_point(|c| *c < u);
            product = product.min(self.catalogue.len().saturating_sub(1));
            // Distinct products within an order.
            while out.iter().any(|l: &SynthLine| l.product == product) {
                product = (product + 1) % self.catalogue.len().max(1);
            }
            let quantity = if cents % 2 == 0 && Self::draw(rng, 1.0) < 0.2 {
                2
            } else {
                1
            };
            let unit_price = (cents / i64::from(quantity)) as f64 / 100.0;
            let rate = self
                .catalogue
                .get(product)
                .map_or(0.5, |p| p.cost / p.price);
            out.push(SynthLine {
                product,
                quantity,
                unit_price,
                unit_cost: (unit_price * rate * 100.0).round() / 100.0,
            });
        }
    }

    /// Whether to add a visitor after this buyer (`share` visitors per buyer, up to 1).
    pub fn add_visitor(&mut self, share: f64) -> bool {
        self.uniform(1.0) < share
    }

    /// A buyer's attributes: a channel (with its typical cost, ±50%), a
    /// city and an age from 18 to 79, all independent of the orders.
    pub fn attributes(&mut self, customer: u64) -> SynthAttributes {
        let rng = &mut self.attribute_rng;
        let (channel, base) = CHANNELS[(Self::draw(rng, 5.0) as usize).min(4)];
        let cost = (base * (0.5 + Self::draw(rng, 1.0)) * 100.0).round() / 100.0;
        let city = CITIES[(Self::draw(rng, 6.0) as usize).min(5)];
        let age = 18 + (Self::draw(rng, 62.0) as u32).min(61);
        SynthAttributes {
            customer,
            channel,
            cost,
            city,
            age,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_lines_add_up_to_the_order() {
        let mut x = Extras::new(3, 730, 365);
        let mut lines = Vec::new();
        let mut counts = [0usize; 4];
        for k in 0..5000u32 {
            let amount = f64::from(k % 9000) / 7.0 + 0.01;
            x.order_lines(amount, &mut lines);
            counts[lines.len()] += 1;
            let cents: i64 = lines
                .iter()
                .map(|l| (l.unit_price * 100.0).round() as i64 * i64::from(l.quantity))
                .sum();
            assert_eq!(
                cents,
                (amount * 100.0).round() as i64,
                "{amount}: {lines:?}"
            );
            let mut products: Vec<usize> = lines.iter().map(|l| l.product).collect();
            products.sort_unstable();
            products.dedup();
            assert_eq!(products.len(), lines.len());
            assert!(
                lines
                    .iter()
                    .all(|l| l.unit_cost <= l.unit_price.max(0.0) + 0.01)
            );
        }
        assert_eq!(counts[0], 0);
        assert!(counts[1..].iter().all(|c| *c > 1000), "{counts:?}");
    }

    #[test]
    fn same_seed_same_side_data_and_sign_ups_come_first() {
        let draw = || {
            let mut x = Extras::new(7, 730, 365);
            let mut events = Vec::new();
            for c in 1..=500u64 {
                x.buyer_events(c, 100.0 + c as f64 / 10.0, &mut events);
                if x.add_visitor(0.5) {
                    x.visitor_events(&mut events);
                }
            }
            let attrs: Vec<SynthAttributes> = (1..=500).map(|c| x.attributes(c)).collect();
            (events, attrs)
        };
        let (events, attrs) = draw();
        assert_eq!((events.clone(), attrs.clone()), draw());
        let signed = events
            .iter()
            .filter(|e| !e.visitor && e.event == "Signed Up")
            .count();
        assert!(
            (350..450).contains(&signed),
            "{signed} of 500 buyers signed up"
        );
        assert!(events.iter().all(|e| e.email == (e.event == "Signed Up")));
        let visitors: std::collections::BTreeSet<u64> =
            events.iter().filter(|e| e.visitor).map(|e| e.id).collect();
        assert!((200..300).contains(&visitors.len()), "{}", visitors.len());
        // Each buyer's first event comes before their first order.
        let mut first: std::collections::BTreeMap<u64, u32> = Default::default();
        for e in events.iter().filter(|e| !e.visitor) {
            let d = first.entry(e.id).or_insert(e.day);
            *d = (*d).min(e.day);
        }
        assert_eq!(first.len(), 500);
        for (id, day) in first {
            assert!(f64::from(day) <= 100.0 + id as f64 / 10.0);
        }
        assert!(events.iter().all(|e| e.day < 730));
        assert!(
            attrs
                .iter()
                .all(|a| (18..80).contains(&a.age) && a.cost > 0.0)
        );
        let channels: std::collections::BTreeSet<&str> = attrs.iter().map(|a| a.channel).collect();
        assert_eq!(channels.len(), 5);
    }
}
