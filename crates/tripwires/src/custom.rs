//! Custom tripwires: a desired action (an event, optionally with property
//! values) that must follow a starting event, or a date such as a
//! subscription renewal, within a window; optionally a warning point
//! before the deadline ("at day 21 of 30": nudge at full margin before the
//! customer is lost, incentive after).

use lifecycle_rfm::Day;

use crate::check::Status;

/// An event by name, with property values it must have (compared as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMatch {
    pub event: String,
    pub properties: Vec<(String, String)>,
}

impl EventMatch {
    /// Whether an event called `name`, whose property values `property`
    /// gives (as text), matches.
    pub fn matches(&self, name: &str, property: impl Fn(&str) -> Option<String>) -> bool {
        name == self.event
            && self
                .properties
                .iter()
                .all(|(k, v)| property(k).as_deref() == Some(v.as_str()))
    }
}

/// What starts a tripwire's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Event(EventMatch),
    /// A date trait of the customer (e.g. `renewal_date`).
    DateTrait(String),
}

/// One custom tripwire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTripwire {
    pub name: String,
    pub start: Start,
    pub action: EventMatch,
    /// The action must come within this many days of the start.
    pub within_days: u32,
    /// Warn from this many days after the start (before `within_days`).
    pub warn_at_days: Option<u32>,
}

/// A customer's event as the evaluation needs it: its day and whether it
/// matched the tripwire's start and its action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Happening {
    pub day: Day,
    pub start: bool,
    pub action: bool,
}

/// The standing of one customer against a custom tripwire on `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CustomStanding {
    /// At warning or tripped: (status, since, days overdue, episode start).
    pub open: Option<(Status, Day, i32, Day)>,
    /// The next day the standing changes with no new event.
    pub next_deadline: Option<Day>,
}

/// Evaluates `tw` for a customer with these `happenings` (any order) and,
/// for a date-started tripwire, the date trait's day. The episode is the
/// latest start on or before today; an action on or after it (and not
/// after today) satisfies it.
pub fn evaluate(
    tw: &CustomTripwire,
    happenings: &[Happening],
    date_trait: Option<Day>,
    today: Day,
) -> CustomStanding {
    let start = match tw.start {
        Start::Event(_) => happenings
            .iter()
            .filter(|h| h.start && h.day <= today)
            .map(|h| h.day)
            .max(),
        Start::DateTrait(_) => date_trait.filter(|&d| d <= today),
    };
    let Some(start) = start else {
        // A future date trait: its first deadline is ahead.
        return CustomStanding {
            open: None,
            next_deadline: date_trait
                .filter(|&d| d > today)
                .map(|d| d.saturating_add(first_step(tw))),
        };
    };
    if happenings
        .iter()
        .any(|h| h.action && h.day >= start && h.day <= today)
    {
        return CustomStanding::default();
    }
    let elapsed = today - start;
    let trip = tw.within_days as i32 + 1;
    let warn = tw
        .warn_at_days
        .map(|w| w as i32)
        .filter(|&w| w > 0 && w < trip);
    let deadline = start.saturating_add(tw.within_days as i32);
    if elapsed >= trip {
        return CustomStanding {
            open: Some((
                Status::Tripped,
                start.saturating_add(trip),
                today - deadline,
                start,
            )),
            next_deadline: None,
        };
    }
    match warn {
        Some(w) if elapsed >= w => CustomStanding {
            open: Some((
                Status::Warning,
                start.saturating_add(w),
                today - deadline,
                start,
            )),
            next_deadline: Some(start.saturating_add(trip)),
        },
        Some(w) => CustomStanding {
            open: None,
            next_deadline: Some(start.saturating_add(w)),
        },
        None => CustomStanding {
            open: None,
            next_deadline: Some(start.saturating_add(trip)),
        },
    }
}

fn first_step(tw: &CustomTripwire) -> i32 {
    tw.warn_at_days
        .map(|w| w as i32)
        .filter(|&w| w > 0 && w <= tw.within_days as i32)
        .unwrap_or(tw.within_days as i32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tw() -> CustomTripwire {
        CustomTripwire {
            name: "activation".into(),
            start: Start::Event(EventMatch {
                event: "Email Signup".into(),
                properties: vec![],
            }),
            action: EventMatch {
                event: "Order Completed".into(),
                properties: vec![("category".into(), "refill".into())],
            },
            within_days: 30,
            warn_at_days: Some(21),
        }
    }

    fn hap(day: Day, start: bool, action: bool) -> Happening {
        Happening { day, start, action }
    }

    #[test]
    fn karmaloop_style_warning_then_trip() {
        let t = tw();
        let h = [hap(100, true, false)];
        assert_eq!(evaluate(&t, &h, None, 110).next_deadline, Some(121));
        assert_eq!(evaluate(&t, &h, None, 110).open, None);
        let w = evaluate(&t, &h, None, 121);
        assert_eq!(w.open, Some((Status::Warning, 121, -9, 100)));
        assert_eq!(w.next_deadline, Some(131));
        let x = evaluate(&t, &h, None, 131);
        assert_eq!(x.open, Some((Status::Tripped, 131, 1, 100)));
        assert_eq!(x.next_deadline, None);
        // The action in time closes it; an earlier action does not count.
        assert_eq!(
            evaluate(
                &t,
                &[hap(100, true, false), hap(120, false, true)],
                None,
                140
            ),
            CustomStanding::default()
        );
        assert!(
            evaluate(
                &t,
                &[hap(90, false, true), hap(100, true, false)],
                None,
                140
            )
            .open
            .is_some()
        );
        // A new start opens a new episode.
        let again = evaluate(
            &t,
            &[hap(100, true, false), hap(135, true, false)],
            None,
            140,
        );
        assert_eq!(again.open, None);
        assert_eq!(again.next_deadline, Some(156));
        // No start, no tripwire.
        assert_eq!(evaluate(&t, &[], None, 140), CustomStanding::default());
    }

    #[test]
    fn date_started_and_property_filters() {
        let mut t = tw();
        t.start = Start::DateTrait("renewal_date".into());
        assert_eq!(evaluate(&t, &[], Some(200), 150).next_deadline, Some(221));
        assert_eq!(
            evaluate(&t, &[], Some(200), 231).open.map(|o| o.0),
            Some(Status::Tripped)
        );
        let m = &t.action;
        assert!(m.matches("Order Completed", |k| {
            (k == "category").then(|| "refill".to_string())
        }));
        assert!(!m.matches("Order Completed", |_| None));
        assert!(!m.matches("Order Refunded", |_| Some("refill".into())));
    }
}
