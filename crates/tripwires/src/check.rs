//! Who deviates from a learned norm, and since when: a customer waiting for
//! their (k+1)-th order is at *warning* from a share of the norm's days
//! after their k-th and *tripped* once the norm's days have passed without
//! it; a signed-up visitor likewise for the first order.
//!
//! The same rule gives each customer's next deadline (the day their status
//! will change with no new event), which the live engine keeps in its
//! deadline index, so that absence is found without scanning everyone.

use lifecycle_rfm::Day;

use crate::norms::{History, Norm, Step};

/// How far a customer is past a norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Warning,
    Tripped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Warning => "warning",
            Status::Tripped => "tripped",
        }
    }
}

/// A customer's standing against one norm on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub step: Step,
    pub status: Status,
    /// The first day of this status.
    pub since: Day,
    /// Days past the norm's deadline (0 at the deadline; negative while at
    /// warning: days left).
    pub days_overdue: i32,
    /// The day the step started (the k-th order, the sign-up): with the
    /// step, it names the episode, so a firing is recorded once.
    pub started: Day,
}

/// How far along a customer is on a day: their purchase days so far, the
/// last of them, and when they were first seen. What the current step
/// needs, so that a live engine keeping a customer's order summary need
/// not re-read the whole history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub purchase_days: u32,
    pub last_purchase: Option<Day>,
    pub first_seen: Option<Day>,
}

impl History {
    /// The customer's progress as it was known on `as_of` (later purchase
    /// days left out).
    pub fn progress(&self, as_of: Day) -> Progress {
        let k = self.days.partition_point(|&d| d <= as_of);
        Progress {
            purchase_days: u32::try_from(k).unwrap_or(u32::MAX),
            last_purchase: k.checked_sub(1).map(|i| self.days[i]),
            first_seen: self.first_seen,
        }
    }
}

/// The step a customer is in on `as_of` (the order they are waiting for)
/// and when it started; `p` is their progress as of that day.
pub fn current_step(p: &Progress, as_of: Day) -> Option<(Step, Day)> {
    match (p.purchase_days, p.last_purchase) {
        (0, _) | (_, None) => {
            let seen = p.first_seen.filter(|&d| d <= as_of)?;
            Some((Step::FirstOrder, seen))
        }
        (k, Some(last)) => Some((Step::NextOrder(k), last)),
    }
}

/// The first day of the warning (`warning_share` of the norm's days, if
/// any) and of the trip (the day after the norm's last day).
pub fn thresholds(norm: &Norm, warning_share: Option<f64>) -> (Option<i32>, i32) {
    let trip = norm.days as i32 + 1;
    let warning = warning_share
        .filter(|w| *w > 0.0 && *w < 1.0)
        .map(|w| ((f64::from(norm.days) * w).ceil() as i32).max(1))
        .filter(|&w| w < trip);
    (warning, trip)
}

/// The customer's standing on `as_of` against the norm of the step they
/// are in, if they are at warning or tripped.
pub fn standing(
    p: &Progress,
    norms: &[Norm],
    as_of: Day,
    warning_share: Option<f64>,
) -> Option<Standing> {
    let (step, started) = current_step(p, as_of)?;
    let norm = norms.iter().find(|n| n.step == step)?;
    let (warning, trip) = thresholds(norm, warning_share);
    let elapsed = as_of - started;
    let deadline = started.saturating_add(norm.days as i32);
    let (status, since) = if elapsed >= trip {
        (Status::Tripped, started.saturating_add(trip))
    } else if let Some(w) = warning.filter(|&w| elapsed >= w) {
        (Status::Warning, started.saturating_add(w))
    } else {
        return None;
    };
    Some(Standing {
        step,
        status,
        since,
        days_overdue: as_of - deadline,
        started,
    })
}

/// The next day on which the customer's standing changes with no new event
/// (warning, then tripped), `None` once tripped or without a norm.
pub fn next_deadline(
    p: &Progress,
    norms: &[Norm],
    as_of: Day,
    warning_share: Option<f64>,
) -> Option<(Day, Status)> {
    let (step, started) = current_step(p, as_of)?;
    let norm = norms.iter().find(|n| n.step == step)?;
    let (warning, trip) = thresholds(norm, warning_share);
    let elapsed = as_of - started;
    match warning {
        Some(w) if elapsed < w => Some((started.saturating_add(w), Status::Warning)),
        _ if elapsed < trip => Some((started.saturating_add(trip), Status::Tripped)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(step: Step, days: u32) -> Norm {
        Norm {
            step,
            coverage: 0.8,
            days,
            customers: 100,
            observed: 100,
            share: 0.8,
            share_interval: None,
            lift: None,
        }
    }

    /// The standing and the next deadline from a full history.
    fn st(h: &History, norms: &[Norm], as_of: Day, w: Option<f64>) -> Option<Standing> {
        standing(&h.progress(as_of), norms, as_of, w)
    }

    fn nd(h: &History, norms: &[Norm], as_of: Day, w: Option<f64>) -> Option<(Day, Status)> {
        next_deadline(&h.progress(as_of), norms, as_of, w)
    }

    fn h(days: &[Day]) -> History {
        History {
            first_seen: None,
            days: days.to_vec(),
            values: vec![1.0; days.len()],
        }
    }

    #[test]
    fn warning_then_tripped_then_nothing_more() {
        let norms = [norm(Step::NextOrder(1), 20), norm(Step::NextOrder(2), 40)];
        let c = h(&[100]);
        // Warning from 75% of 20 days = day 15; tripped from day 21.
        assert_eq!(st(&c, &norms, 114, Some(0.75)), None);
        assert_eq!(
            nd(&c, &norms, 114, Some(0.75)),
            Some((115, Status::Warning))
        );
        let w = st(&c, &norms, 115, Some(0.75)).unwrap();
        assert_eq!(
            (w.status, w.since, w.days_overdue),
            (Status::Warning, 115, -5)
        );
        assert_eq!(
            nd(&c, &norms, 115, Some(0.75)),
            Some((121, Status::Tripped))
        );
        assert_eq!(
            st(&c, &norms, 120, Some(0.75)).unwrap().status,
            Status::Warning
        );
        let t = st(&c, &norms, 121, Some(0.75)).unwrap();
        assert_eq!(
            (t.status, t.since, t.days_overdue, t.started),
            (Status::Tripped, 121, 1, 100)
        );
        assert_eq!(nd(&c, &norms, 121, Some(0.75)), None);
        // A second order resets the clock for the next norm.
        let c2 = h(&[100, 118]);
        assert_eq!(st(&c2, &norms, 130, Some(0.75)), None);
        assert_eq!(nd(&c2, &norms, 130, None), Some((159, Status::Tripped)));
        // Without a warning share: tripped only.
        assert_eq!(st(&c, &norms, 118, None), None);
        // No norm for the third step.
        assert_eq!(st(&h(&[1, 2, 3]), &norms, 500, None), None);
    }

    #[test]
    fn sign_up_to_first_order() {
        let norms = [norm(Step::FirstOrder, 10)];
        let mut v = h(&[]);
        v.first_seen = Some(50);
        assert_eq!(st(&v, &norms, 61, None).unwrap().status, Status::Tripped);
        assert_eq!(st(&v, &norms, 60, None), None);
        assert_eq!(st(&h(&[]), &norms, 60, None), None);
    }
}
