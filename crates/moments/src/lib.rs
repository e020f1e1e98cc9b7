//! Moments: a **goal** (a measurable outcome within an attribution
//! window), a **trigger** (when a customer experiences the moment), an
//! **audience** (who may enter) and the **journey** each entrant walks,
//! with a holdout share and the global control group.
//!
//! This crate owns the definition model ([`Moment`]), its validation
//! ([`Moment::validate`]: every problem a user can make in a definition
//! that parsing alone does not catch), the deterministic control-group
//! assignment ([`assignment`]) and the journey state machine ([`journey`]:
//! sends with deterministic keys, durable waits, branches, splits, goal
//! exits). It is pure: no IO, no async, no clock, no
//! serialisation (the TOML format is read by `lifecycle-ingest`); it must
//! never depend on the store, server, channels or CLI.

pub mod journey;

use std::collections::HashSet;

/// A problem in a moment's definition, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DefinitionError {
    /// A dotted path: `goal.within_days`, `step[2].send.channel`.
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        field: field.into(),
        message: message.into(),
    }
}

/// An event by name with property values it must have (compared as text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventFilter {
    pub event: String,
    pub properties: Vec<(String, String)>,
}

/// The measurable outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub event: EventFilter,
    /// Attribution window after entry.
    pub within_days: u32,
    /// Reaching the goal ends the journey (default true).
    pub exits: bool,
}

/// When a customer experiences the moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Event(EventFilter),
    SegmentEntered(String),
    SegmentExited(String),
    Tripwire {
        name: String,
        status: TripwireStatus,
    },
    ValueDecline,
    /// A date trait (birthday, renewal) with an offset in days.
    DateTrait {
        trait_name: String,
        offset_days: i32,
    },
    /// No such event for this many days.
    Absence {
        event: EventFilter,
        days: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripwireStatus {
    Warning,
    Tripped,
}

/// Who may enter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Audience {
    pub segments: Vec<String>,
    pub phases: Vec<String>,
    pub min_clv: Option<f64>,
    pub min_p_alive: Option<f64>,
    /// Channels the customer must have consented to.
    pub consent: Vec<Channel>,
    pub traits: Vec<(String, String)>,
    pub suppression_lists: Vec<String>,
}

/// When a customer may enter again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reentry {
    Once,
    EveryDays(u32),
    EveryTime,
}

/// The delivery channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Sms,
    Push,
    Webhook,
    OnSite,
    Audience,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Email,
        Channel::Sms,
        Channel::Push,
        Channel::Webhook,
        Channel::OnSite,
        Channel::Audience,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Webhook => "webhook",
            Channel::OnSite => "onsite",
            Channel::Audience => "audience",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// A condition of a branch: a profile field compared with a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// `segment`, `phase`, `clv`, `p_alive`, `orders`, or `trait.NAME`.
    pub field: String,
    pub op: Op,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "=" | "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            _ => return None,
        })
    }
}

/// One step of a journey.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Send {
        channel: Channel,
        template: String,
        subject: Option<String>,
    },
    /// Wait a duration, or until an event (with a timeout).
    Wait {
        days: f64,
        until: Option<EventFilter>,
    },
    /// Go to `then` when the condition holds, else to `otherwise` (the
    /// next step when `None`).
    Branch {
        condition: Condition,
        then: String,
        otherwise: Option<String>,
    },
    /// Random split: (weight, step label) arms.
    Split {
        arms: Vec<(f64, String)>,
    },
    UpdateTrait {
        name: String,
        value: String,
    },
    Exit,
}

/// A step with its optional label (a branch or split target).
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledStep {
    pub label: Option<String>,
    pub step: Step,
}

/// One moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    pub name: String,
    pub version: u32,
    pub goal: Goal,
    pub trigger: Trigger,
    pub audience: Audience,
    pub reentry: Reentry,
    /// Share of entrants held out (walk the journey, receive nothing).
    pub holdout: f64,
    /// Higher wins when moments compete for a customer.
    pub priority: i32,
    pub steps: Vec<LabeledStep>,
}

/// The segment names a definition may use (the segment table's).
pub struct Names<'a> {
    pub segments: &'a [String],
    pub phases: &'a [String],
}

impl Moment {
    /// Every problem of the definition that the format alone does not
    /// catch: unknown segments and phases, shares out of range, empty
    /// journeys, dangling or duplicate labels, split weights, a journey
    /// that sends nothing.
    pub fn validate(&self, names: &Names<'_>) -> Vec<DefinitionError> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(err("name", "is empty"));
        }
        if !(0.0..1.0).contains(&self.holdout) {
            out.push(err(
                "holdout",
                format!("{} must be at least 0 and below 1 (e.g. 0.1)", self.holdout),
            ));
        }
        if self.goal.within_days == 0 {
            out.push(err("goal.within_days", "must be at least 1"));
        }
        if self.goal.event.event.trim().is_empty() {
            out.push(err("goal.event", "is empty"));
        }
        let known_segment = |s: &String| names.segments.contains(s);
        let known_phase = |s: &String| names.phases.contains(s);
        let segment_list = || names.segments.join(", ");
        match &self.trigger {
            Trigger::SegmentEntered(s) | Trigger::SegmentExited(s) if !known_segment(s) => {
                out.push(err(
                    "trigger",
                    format!("no segment \"{s}\"; the segments are {}", segment_list()),
                ));
            }
            Trigger::Absence { days: 0, .. } => {
                out.push(err("trigger.absence.days", "must be at least 1"));
            }
            Trigger::Event(e) | Trigger::Absence { event: e, .. } if e.event.trim().is_empty() => {
                out.push(err("trigger.event", "is empty"));
            }
            Trigger::Tripwire { name, .. } if name.trim().is_empty() => {
                out.push(err("trigger.tripwire", "is empty"));
            }
            _ => {}
        }
        for s in self.audience.segments.iter().filter(|s| !known_segment(s)) {
            out.push(err(
                "audience.segments",
                format!("no segment \"{s}\"; the segments are {}", segment_list()),
            ));
        }
        for p in self.audience.phases.iter().filter(|p| !known_phase(p)) {
            out.push(err(
                "audience.phases",
                format!(
                    "no phase \"{p}\"; the phases are {}",
                    names.phases.join(", ")
                ),
            ));
        }
        if let Some(p) = self.audience.min_p_alive
            && !(0.0..=1.0).contains(&p)
        {
            out.push(err(
                "audience.min_p_alive",
                format!("{p} is not a probability"),
            ));
        }
        if let Reentry::EveryDays(0) = self.reentry {
            out.push(err("reentry", "every_days must be at least 1"));
        }
        if self.steps.is_empty() {
            out.push(err("step", "the journey has no step"));
        }
        let mut labels = HashSet::new();
        for (i, s) in self.steps.iter().enumerate() {
            if let Some(l) = &s.label
                && !labels.insert(l.as_str())
            {
                out.push(err(
                    format!("step[{}].label", i + 1),
                    format!("\"{l}\" is used twice"),
                ));
            }
        }
        let target = |i: usize, field: &str, label: &str, out: &mut Vec<DefinitionError>| {
            if !labels.contains(label) {
                out.push(err(
                    format!("step[{}].{field}", i + 1),
                    format!("no step labelled \"{label}\""),
                ));
            }
        };
        for (i, s) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("step[{}].{f}", i + 1);
            match &s.step {
                Step::Send { template, .. } if template.trim().is_empty() => {
                    out.push(err(at("send.template"), "is empty"));
                }
                Step::Wait { days, until } => {
                    if !(days.is_finite() && *days > 0.0) {
                        out.push(err(
                            at("wait.days"),
                            format!("{days} must be a positive number of days"),
                        ));
                    }
                    if until.as_ref().is_some_and(|u| u.event.trim().is_empty()) {
                        out.push(err(at("wait.until"), "is empty"));
                    }
                }
                Step::Branch {
                    then, otherwise, ..
                } => {
                    target(i, "branch.then", then, &mut out);
                    if let Some(o) = otherwise {
                        target(i, "branch.else", o, &mut out);
                    }
                }
                Step::Split { arms } => {
                    if arms.len() < 2 {
                        out.push(err(at("split.arms"), "needs at least two arms"));
                    }
                    let total: f64 = arms.iter().map(|a| a.0).sum();
                    if arms.iter().any(|a| a.0.is_nan() || a.0 <= 0.0) || (total - 1.0).abs() > 1e-9
                    {
                        out.push(err(
                            at("split.arms"),
                            format!(
                                "weights must be positive and add up to 1 (they add up to {total})"
                            ),
                        ));
                    }
                    for (_, l) in arms {
                        target(i, "split.arms", l, &mut out);
                    }
                }
                Step::UpdateTrait { name, .. } if name.trim().is_empty() => {
                    out.push(err(at("update.trait"), "is empty"));
                }
                _ => {}
            }
        }
        if !self
            .steps
            .iter()
            .any(|s| matches!(s.step, Step::Send { .. }))
            && !self.steps.is_empty()
        {
            out.push(err("step", "the journey sends nothing"));
        }
        out
    }
}

/// Deterministic assignment to control groups: a stable hash of the
/// customer id and a salt mapped to [0, 1). The same customer and salt
/// always land on the same side, on every instance and across versions.
pub mod assignment {
    /// FNV-1a (64 bits) of the salt, a separator and the id: fixed forever,
    /// unlike the standard library's hasher.
    fn fnv1a(salt: &str, id: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in salt.bytes().chain([0u8]).chain(id.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A final mix so that nearby ids spread over the unit interval.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }

    /// The customer's position in [0, 1) for this salt.
    pub fn position(salt: &str, id: &str) -> f64 {
        (fnv1a(salt, id) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Held out: the position falls below `share`.
    pub fn held_out(salt: &str, id: &str, share: f64) -> bool {
        position(salt, id) < share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (Vec<String>, Vec<String>) {
        (
            vec!["At Risk".into(), "Champions".into()],
            vec!["Reactivation".into(), "Veneration".into()],
        )
    }

    fn moment() -> Moment {
        Moment {
            name: "win-back".into(),
            version: 1,
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
            holdout: 0.1,
            priority: 0,
            steps: vec![
                LabeledStep {
                    label: None,
                    step: Step::Send {
                        channel: Channel::Email,
                        template: "winback.html".into(),
                        subject: Some("We miss you".into()),
                    },
                },
                LabeledStep {
                    label: Some("done".into()),
                    step: Step::Exit,
                },
            ],
        }
    }

    #[test]
    fn a_good_moment_validates_and_mistakes_are_named() {
        let (segments, phases) = names();
        let n = Names {
            segments: &segments,
            phases: &phases,
        };
        assert!(moment().validate(&n).is_empty());
        let mut m = moment();
        m.holdout = 1.5;
        m.trigger = Trigger::SegmentEntered("At Rsik".into());
        m.steps.push(LabeledStep {
            label: None,
            step: Step::Split {
                arms: vec![(0.5, "done".into()), (0.4, "nowhere".into())],
            },
        });
        let fields: Vec<String> = m.validate(&n).iter().map(|e| e.field.clone()).collect();
        assert!(fields.contains(&"holdout".to_string()), "{fields:?}");
        assert!(fields.contains(&"trigger".to_string()));
        assert_eq!(
            fields.iter().filter(|f| *f == "step[3].split.arms").count(),
            2
        );
        let e = m.validate(&n);
        assert!(
            e.iter()
                .any(|e| e.message.contains("no segment \"At Rsik\""))
        );
    }

    #[test]
    fn assignment_is_stable_and_close_to_the_share() {
        use assignment::*;
        assert_eq!(position("m1", "c42"), position("m1", "c42"));
        assert_ne!(position("m1", "c42"), position("m2", "c42"));
        let held = (0..100_000)
            .filter(|i| held_out("win-back:1", &format!("c{i}"), 0.1))
            .count();
        // Binomial(100000, 0.1): sd ≈ 95.
        assert!((held as i64 - 10_000).abs() < 500, "{held}");
        // Fixed forever: the value an independent computation (Python,
        // FNV-1a 64 + the same mix) gives for this salt and id.
        assert_eq!(position("global", "customer-1"), 0.840_260_120_840_149_4);
    }
}
