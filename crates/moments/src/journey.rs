//! Walking one customer through a moment's journey: a pure state machine.
//! The caller stores the [`Enrolment`], calls [`advance`] when it is due
//! (its wait ended) or when an event of the customer arrives, and carries
//! out the [`Action`]s (sends go through an outbox under their
//! deterministic key, so a retried step never sends twice).

use crate::{Condition, EventFilter, Moment, Op, Step, assignment};

/// Why an enrolment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The goal was reached (and the moment exits on it).
    Goal,
    /// The journey ran out of steps.
    Completed,
    /// An `exit` step.
    ExitStep,
    /// Branches went round in circles (a definition error caught at run time).
    Loop,
}

impl Ended {
    pub const ALL: [Ended; 4] = [Ended::Goal, Ended::Completed, Ended::ExitStep, Ended::Loop];

    pub fn name(self) -> &'static str {
        match self {
            Ended::Goal => "goal",
            Ended::Completed => "completed",
            Ended::ExitStep => "exit",
            Ended::Loop => "loop",
        }
    }

    pub fn parse(s: &str) -> Option<Ended> {
        Ended::ALL.into_iter().find(|e| e.name() == s)
    }
}

/// One customer's walk through one version of a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrolment {
    pub customer: String,
    pub moment: String,
    pub version: u32,
    pub entered_ms: i64,
    /// Index of the next step to run.
    pub step: usize,
    /// A wait in progress ends at this time (or on its event).
    pub wait_until_ms: Option<i64>,
    /// In the moment's holdout or the global control group: walks the
    /// journey, receives nothing.
    pub held_out: bool,
    pub ended: Option<Ended>,
}

impl Enrolment {
    pub fn new(
        moment: &Moment,
        customer: &str,
        entered_ms: i64,
        global_control: bool,
    ) -> Enrolment {
        let salt = format!("{}:{}", moment.name, moment.version);
        Enrolment {
            customer: customer.to_string(),
            moment: moment.name.clone(),
            version: moment.version,
            entered_ms,
            step: 0,
            wait_until_ms: None,
            held_out: global_control || assignment::held_out(&salt, customer, moment.holdout),
            ended: None,
        }
    }

    /// The key of a step's send: the same step of the same enrolment always
    /// has the same key, whatever retries and restarts happen.
    pub fn key(&self, step: usize) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.moment, self.version, self.customer, self.entered_ms, step
        )
    }
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send (or, when `held_out`, record as held out without sending).
    Send {
        key: String,
        step: usize,
        channel: crate::Channel,
        template: String,
        subject: Option<String>,
        held_out: bool,
    },
    UpdateTrait {
        name: String,
        value: String,
    },
    /// Wake the enrolment at this time (the due-time index).
    WakeAt(i64),
    Ended(Ended),
}

/// An event of the customer, as the journey sees it.
pub struct Event<'a> {
    pub name: &'a str,
    pub at_ms: i64,
    pub property: &'a dyn Fn(&str) -> Option<String>,
}

/// The customer's profile, as conditions see it: `segment`, `phase`,
/// `clv`, `p_alive`, `orders`, `trait.NAME`.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl EventFilter {
    /// The event has this name and every required property value.
    pub fn matches(&self, e: &Event<'_>) -> bool {
        e.name == self.event
            && self
                .properties
                .iter()
                .all(|(k, v)| (e.property)(k).as_deref() == Some(v.as_str()))
    }
}

fn matches(f: &EventFilter, e: &Event<'_>) -> bool {
    f.matches(e)
}

impl Moment {
    /// The end of the goal's attribution window for an entry at `entered_ms`.
    pub fn goal_window_end(&self, entered_ms: i64) -> i64 {
        entered_ms + i64::from(self.goal.within_days) * 86_400_000
    }

    /// The event reaches the goal of an enrolment entered at `entered_ms`
    /// (within the attribution window), whether or not the goal exits.
    pub fn reaches_goal(&self, entered_ms: i64, e: &Event<'_>) -> bool {
        e.at_ms >= entered_ms
            && e.at_ms <= self.goal_window_end(entered_ms)
            && self.goal.event.matches(e)
    }
}

/// The condition holds for the profile `lookup` describes (numbers compared
/// as numbers, anything else as text; a missing field never holds).
pub fn holds(c: &Condition, lookup: Lookup<'_>) -> bool {
    let Some(actual) = lookup(&c.field) else {
        return false;
    };
    match (actual.parse::<f64>(), c.value.parse::<f64>()) {
        (Ok(a), Ok(b)) => match c.op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        },
        _ => match c.op {
            Op::Eq => actual == c.value,
            Op::Ne => actual != c.value,
            Op::Lt => actual < c.value,
            Op::Le => actual <= c.value,
            Op::Gt => actual > c.value,
            Op::Ge => actual >= c.value,
        },
    }
}

const DAY_MS: f64 = 86_400_000.0;

/// Runs the enrolment as far as it can go at `now_ms` (after `event`, if
/// one just arrived): sends, trait updates, branches and splits run at
/// once; a wait stops the walk until its time or its event.
pub fn advance(
    moment: &Moment,
    e: &mut Enrolment,
    now_ms: i64,
    event: Option<&Event<'_>>,
    lookup: Lookup<'_>,
) -> Vec<Action> {
    let mut out = Vec::new();
    if e.ended.is_some() {
        return out;
    }
    if let Some(ev) = event
        && moment.goal.exits
        && moment.reaches_goal(e.entered_ms, ev)
    {
        e.ended = Some(Ended::Goal);
        out.push(Action::Ended(Ended::Goal));
        return out;
    }
    let label = |l: &str| {
        moment
            .steps
            .iter()
            .position(|s| s.label.as_deref() == Some(l))
    };
    let mut budget = 10_000;
    while budget > 0 {
        budget -= 1;
        let Some(s) = moment.steps.get(e.step) else {
            e.ended = Some(Ended::Completed);
            out.push(Action::Ended(Ended::Completed));
            return out;
        };
        match &s.step {
            Step::Send {
                channel,
                template,
                subject,
            } => {
                out.push(Action::Send {
                    key: e.key(e.step),
                    step: e.step,
                    channel: *channel,
                    template: template.clone(),
                    subject: subject.clone(),
                    held_out: e.held_out,
                });
                e.step += 1;
            }
            Step::Wait { days, until } => {
                let due = match e.wait_until_ms {
                    Some(t) => t,
                    None => {
                        let t = now_ms + (days * DAY_MS) as i64;
                        e.wait_until_ms = Some(t);
                        t
                    }
                };
                let event_ends_it = match (until, event) {
                    (Some(f), Some(ev)) => matches(f, ev),
                    _ => false,
                };
                if now_ms >= due || event_ends_it {
                    e.wait_until_ms = None;
                    e.step += 1;
                } else {
                    out.push(Action::WakeAt(due));
                    return out;
                }
            }
            Step::Branch {
                condition,
                then,
                otherwise,
            } => {
                let next = if holds(condition, lookup) {
                    label(then)
                } else {
                    match otherwise {
                        Some(o) => label(o),
                        None => Some(e.step + 1),
                    }
                };
                e.step = next.unwrap_or(moment.steps.len());
            }
            Step::Split { arms } => {
                let salt = format!("{}:{}:split:{}", e.moment, e.version, e.step);
                let x = assignment::position(&salt, &e.customer);
                let mut acc = 0.0;
                let mut chosen = arms.last().map(|a| a.1.as_str());
                for (w, l) in arms {
                    acc += w;
                    if x < acc {
                        chosen = Some(l.as_str());
                        break;
                    }
                }
                e.step = chosen.and_then(label).unwrap_or(moment.steps.len());
            }
            Step::UpdateTrait { name, value } => {
                out.push(Action::UpdateTrait {
                    name: name.clone(),
                    value: value.clone(),
                });
                e.step += 1;
            }
            Step::Exit => {
                e.ended = Some(Ended::ExitStep);
                out.push(Action::Ended(Ended::ExitStep));
                return out;
            }
        }
    }
    e.ended = Some(Ended::Loop);
    out.push(Action::Ended(Ended::Loop));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Audience, Channel, Goal, LabeledStep, Reentry, Trigger};

    fn step(label: Option<&str>, step: Step) -> LabeledStep {
        LabeledStep {
            label: label.map(String::from),
            step,
        }
    }

    fn send(template: &str) -> Step {
        Step::Send {
            channel: Channel::Email,
            template: template.into(),
            subject: None,
        }
    }

    fn moment(steps: Vec<LabeledStep>) -> Moment {
        Moment {
            name: "win-back".into(),
            version: 2,
            goal: Goal {
                event: EventFilter {
                    event: "Order Completed".into(),
                    properties: vec![],
                },
                within_days: 30,
                exits: true,
            },
            trigger: Trigger::SegmentEntered("At Risk".into()),
            audience: Audience::default(),
            reentry: Reentry::Once,
            holdout: 0.0,
            priority: 0,
            steps,
        }
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn send_wait_branch_and_goal() {
        let m = moment(vec![
            step(None, send("first.html")),
            step(
                None,
                Step::Wait {
                    days: 3.0,
                    until: Some(EventFilter {
                        event: "Email Opened".into(),
                        properties: vec![],
                    }),
                },
            ),
            step(
                None,
                Step::Branch {
                    condition: Condition {
                        field: "clv".into(),
                        op: Op::Ge,
                        value: "100".into(),
                    },
                    then: "vip".into(),
                    otherwise: None,
                },
            ),
            step(None, send("regular.html")),
            step(None, Step::Exit),
            step(Some("vip"), send("vip.html")),
        ]);
        let mut e = Enrolment::new(&m, "c1", 1_000, false);
        let rich = |k: &str| (k == "clv").then(|| "250".to_string());
        let a = advance(&m, &mut e, 1_000, None, &rich);
        assert!(
            matches!(&a[0], Action::Send { key, template, .. } if key == "win-back:2:c1:1000:0" && template == "first.html")
        );
        assert_eq!(a[1], Action::WakeAt(1_000 + 3 * DAY));
        // Woken early: nothing happens; the wait stands.
        assert_eq!(
            advance(&m, &mut e, 1_000 + DAY, None, &rich),
            vec![Action::WakeAt(1_000 + 3 * DAY)]
        );
        // Due: the branch sends the VIP email, then the journey ends.
        let a = advance(&m, &mut e, 1_000 + 3 * DAY, None, &rich);
        assert!(matches!(&a[0], Action::Send { template, .. } if template == "vip.html"));
        assert_eq!(a[1], Action::Ended(Ended::Completed));
        // Another customer opens the email: the wait ends on the event; a
        // regular customer gets the regular email and exits.
        let mut e = Enrolment::new(&m, "c2", 1_000, false);
        let plain = |_: &str| Some("10".to_string());
        advance(&m, &mut e, 1_000, None, &plain);
        let no_props = |_: &str| None;
        let opened = Event {
            name: "Email Opened",
            at_ms: 1_000 + DAY,
            property: &no_props,
        };
        let a = advance(&m, &mut e, 1_000 + DAY, Some(&opened), &plain);
        assert!(matches!(&a[0], Action::Send { template, .. } if template == "regular.html"));
        assert_eq!(a[1], Action::Ended(Ended::ExitStep));
        // A third orders during the wait: the goal ends it.
        let mut e = Enrolment::new(&m, "c3", 1_000, false);
        advance(&m, &mut e, 1_000, None, &plain);
        let order = Event {
            name: "Order Completed",
            at_ms: 1_000 + DAY,
            property: &no_props,
        };
        assert_eq!(
            advance(&m, &mut e, 1_000 + DAY, Some(&order), &plain),
            vec![Action::Ended(Ended::Goal)]
        );
        assert!(advance(&m, &mut e, 1_000 + 5 * DAY, None, &plain).is_empty());
    }

    #[test]
    fn holdouts_walk_without_messages_and_splits_are_deterministic() {
        let mut m = moment(vec![
            step(
                None,
                Step::Split {
                    arms: vec![(0.5, "a".into()), (0.5, "b".into())],
                },
            ),
            step(Some("a"), send("a.html")),
            step(None, Step::Exit),
            step(Some("b"), send("b.html")),
        ]);
        m.holdout = 0.1;
        let (mut a, mut b, mut held) = (0, 0, 0);
        for i in 0..10_000 {
            let id = format!("c{i}");
            let mut e = Enrolment::new(&m, &id, 0, false);
            let actions = advance(&m, &mut e, 0, None, &|_: &str| None);
            let Action::Send {
                template, held_out, ..
            } = &actions[0]
            else {
                panic!("{actions:?}");
            };
            held += usize::from(*held_out);
            if template == "a.html" {
                a += 1
            } else {
                b += 1
            }
            // The same customer, again: the same arm.
            let mut again = Enrolment::new(&m, &id, 0, false);
            assert_eq!(
                advance(&m, &mut again, 0, None, &|_: &str| None)[0],
                actions[0]
            );
        }
        assert!((a as i64 - 5_000).abs() < 300 && a + b == 10_000, "{a} {b}");
        assert!((held as i64 - 1_000).abs() < 150, "{held}");
        // The global control group is always held out.
        assert!(Enrolment::new(&m, "c1", 0, true).held_out);
    }

    #[test]
    fn a_branch_cycle_ends_instead_of_spinning() {
        let m = moment(vec![
            step(
                Some("x"),
                Step::Branch {
                    condition: Condition {
                        field: "segment".into(),
                        op: Op::Eq,
                        value: "At Risk".into(),
                    },
                    then: "x".into(),
                    otherwise: None,
                },
            ),
            step(None, send("never.html")),
        ]);
        let mut e = Enrolment::new(&m, "c", 0, false);
        let at_risk = |k: &str| (k == "segment").then(|| "At Risk".to_string());
        assert_eq!(
            advance(&m, &mut e, 0, None, &at_risk),
            vec![Action::Ended(Ended::Loop)]
        );
    }
}
