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
    period_days: u32,
    acquisition_days: u32,
    next_visitor: u64,
}

impl Extras {
    /// `seed` is the orders' seed (the stream is derived from it).
    pub fn new(seed: u64, period_days: u32, acquisition_days: u32) -> Extras {
        Extras {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15),
            attribute_rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xA076_1D64_78BD_642F),
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
