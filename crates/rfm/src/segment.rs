//! The lifecycle segments, their phases and the rule table that assigns them.
//!
//! A customer's [`Profile`] is their kind (visitor, visitor who left an email,
//! one-order customer, repeat customer) and, for buyers, their R, F and M
//! scores. That space is finite (2 + 2 × 125 points), so a [`SegmentTable`] is
//! checked exhaustively when it is built: every point must be matched by
//! exactly one segment. Assignment is then a table look-up.
//!
//! Invariant: every customer has exactly one segment. Responsibility:
//! [`SegmentTable::new`] (rejects gaps and overlaps) and
//! [`SegmentTable::assign`]. Validation: unit tests here and the property test
//! in `tests/segments_property.rs`.

use std::fmt;
use std::ops::RangeInclusive;

use crate::ScoreError;

/// The five lifecycle phases, in the order a customer moves through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Acquisition,
    Retention,
    IncreasedValue,
    Veneration,
    Reactivation,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Acquisition,
        Phase::Retention,
        Phase::IncreasedValue,
        Phase::Veneration,
        Phase::Reactivation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Acquisition => "Acquisition",
            Phase::Retention => "Retention",
            Phase::IncreasedValue => "Increased Value",
            Phase::Veneration => "Veneration",
            Phase::Reactivation => "Reactivation",
        }
    }

    /// Parses a phase name, ignoring case, spaces, `-` and `_`.
    pub fn parse(s: &str) -> Option<Phase> {
        let norm: String = s
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        Phase::ALL.into_iter().find(|p| {
            let n: String = p
                .name()
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            n == norm
        })
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kind of customer a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Has events but no order and no email.
    Visitor,
    /// Has events and left an email, but no order.
    VisitorWithEmail,
    /// Exactly one order.
    OneOrder,
    /// Two or more orders.
    Repeat,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Visitor,
        Kind::VisitorWithEmail,
        Kind::OneOrder,
        Kind::Repeat,
    ];

    pub fn is_buyer(self) -> bool {
        matches!(self, Kind::OneOrder | Kind::Repeat)
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Visitor => "visitor without email",
            Kind::VisitorWithEmail => "visitor with email",
            Kind::OneOrder => "one order",
            Kind::Repeat => "two or more orders",
        }
    }
}

/// What the segment rules look at. Scores are 1..=5 for buyers; visitors
/// have no scores (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Profile {
    pub kind: Kind,
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

impl Profile {
    pub fn visitor(left_email: bool) -> Self {
        let kind = if left_email {
            Kind::VisitorWithEmail
        } else {
            Kind::Visitor
        };
        Profile {
            kind,
            r: 0,
            f: 0,
            m: 0,
        }
    }

    pub fn buyer(n_orders: u32, r: u8, f: u8, m: u8) -> Self {
        let kind = if n_orders >= 2 {
            Kind::Repeat
        } else {
            Kind::OneOrder
        };
        Profile { kind, r, f, m }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.is_buyer() {
            write!(
                f,
                "{}, R={} F={} M={}",
                self.kind.describe(),
                self.r,
                self.f,
                self.m
            )
        } else {
            f.write_str(self.kind.describe())
        }
    }
}

/// One conjunction of conditions; a segment matches when any of its rules does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kinds: Vec<Kind>,
    pub r: RangeInclusive<u8>,
    pub f: RangeInclusive<u8>,
    pub m: RangeInclusive<u8>,
}

impl Rule {
    /// A rule for buyers of the given kinds and score ranges.
    pub fn buyers(
        kinds: &[Kind],
        r: RangeInclusive<u8>,
        f: RangeInclusive<u8>,
        m: RangeInclusive<u8>,
    ) -> Rule {
        Rule {
            kinds: kinds.to_vec(),
            r,
            f,
            m,
        }
    }

    /// A rule for visitors (scores do not apply).
    pub fn visitors(kind: Kind) -> Rule {
        Rule::buyers(&[kind], 1..=5, 1..=5, 1..=5)
    }

    pub fn matches(&self, p: &Profile) -> bool {
        self.kinds.contains(&p.kind)
            && (!p.kind.is_buyer()
                || (self.r.contains(&p.r) && self.f.contains(&p.f) && self.m.contains(&p.m)))
    }
}

/// A named segment with its phase, goal, suggested campaigns and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub phase: Phase,
    pub description: String,
    pub goal: String,
    pub campaigns: Vec<String>,
    pub rules: Vec<Rule>,
}

/// A validated partition of every profile into segments.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentTable {
    segments: Vec<Segment>,
    /// Segment index for each profile, see [`slot`].
    lookup: Vec<u16>,
}

const SLOTS: usize = 2 + 2 * 125;

fn slot(p: &Profile) -> Option<usize> {
    let score = |s: u8| (1..=5).contains(&s).then(|| usize::from(s - 1));
    match p.kind {
        Kind::Visitor => Some(0),
        Kind::VisitorWithEmail => Some(1),
        Kind::OneOrder | Kind::Repeat => {
            let base = if p.kind == Kind::OneOrder { 2 } else { 2 + 125 };
            Some(base + score(p.r)? * 25 + score(p.f)? * 5 + score(p.m)?)
        }
    }
}

fn all_profiles() -> impl Iterator<Item = Profile> {
    let visitors = [Profile::visitor(false), Profile::visitor(true)];
    let buyers = [Kind::OneOrder, Kind::Repeat].into_iter().flat_map(|kind| {
        (1..=5u8).flat_map(move |r| {
            (1..=5u8).flat_map(move |f| (1..=5u8).map(move |m| Profile { kind, r, f, m }))
        })
    });
    visitors.into_iter().chain(buyers)
}

impl SegmentTable {
    /// Checks that every possible profile matches exactly one segment and
    /// that names are unique; errors name the first gap or overlap.
    pub fn new(segments: Vec<Segment>) -> Result<Self, ScoreError> {
        if segments.is_empty() {
            return Err(ScoreError::NoSegments);
        }
        if segments.len() > usize::from(u16::MAX) {
            return Err(ScoreError::TooManySegments(segments.len()));
        }
        for (i, s) in segments.iter().enumerate() {
            if segments[..i].iter().any(|o| o.name == s.name) {
                return Err(ScoreError::DuplicateSegment(s.name.clone()));
            }
            for rule in &s.rules {
                for (label, range) in [("r", &rule.r), ("f", &rule.f), ("m", &rule.m)] {
                    if range.start() < &1 || range.end() > &5 || range.start() > range.end() {
                        return Err(ScoreError::BadRange {
                            segment: s.name.clone(),
                            score: label,
                            range: format!("{}-{}", range.start(), range.end()),
                        });
                    }
                }
            }
        }
        let mut lookup = vec![0u16; SLOTS];
        for p in all_profiles() {
            let matching: Vec<&Segment> = segments
                .iter()
                .filter(|s| s.rules.iter().any(|r| r.matches(&p)))
                .collect();
            match matching.as_slice() {
                [] => return Err(ScoreError::Gap(p.to_string())),
                [one] => {
                    let idx = segments
                        .iter()
                        .position(|s| std::ptr::eq(s, *one))
                        .expect("the segment comes from this list");
                    lookup[slot(&p).expect("profiles enumerated here are valid")] = idx as u16;
                }
                [a, b, ..] => {
                    return Err(ScoreError::Overlap {
                        profile: p.to_string(),
                        first: a.name.clone(),
                        second: b.name.clone(),
                    });
                }
            }
        }
        Ok(SegmentTable { segments, lookup })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The index (into [`Self::segments`]) of the one segment of `profile`.
    pub fn assign(&self, profile: &Profile) -> Result<usize, ScoreError> {
        let slot = slot(profile).ok_or_else(|| ScoreError::ScoreOutOfRange(profile.to_string()))?;
        Ok(usize::from(self.lookup[slot]))
    }

    /// For each R (5 down to 1) and F (1 to 5) cell, the segment of a repeat
    /// customer with a middle M score (3): the R×F map of the report.
    pub fn rf_grid(&self, kind: Kind, m: u8) -> [[usize; 5]; 5] {
        let mut grid = [[0usize; 5]; 5];
        for (row, r) in (1..=5u8).rev().enumerate() {
            for (col, f) in (1..=5u8).enumerate() {
                grid[row][col] = self
                    .assign(&Profile { kind, r, f, m })
                    .expect("scores 1..=5 are in range");
            }
        }
        grid
    }

    /// The built-in rule table; see the README for the same table in words.
    pub fn default_table() -> SegmentTable {
        SegmentTable::new(default_segments()).expect("the default table is a partition (tested)")
    }
}

fn seg(
    name: &str,
    phase: Phase,
    description: &str,
    goal: &str,
    campaigns: &[&str],
    rules: Vec<Rule>,
) -> Segment {
    Segment {
        name: name.into(),
        phase,
        description: description.into(),
        goal: goal.into(),
        campaigns: campaigns.iter().map(|c| (*c).into()).collect(),
        rules,
    }
}

/// The 11 default segments. Rules for buyers use the R, F, M scores; "one
/// order" customers are First-time while recent (R 4-5) and Falling Asleep
/// after that. There is no "Lost" segment.
pub fn default_segments() -> Vec<Segment> {
    use Kind::*;
    vec![
        seg(
            "Engaged Visitors",
            Phase::Acquisition,
            "Visited, nothing else",
            "Turn the visit into a sign-up",
            &[
                "Welcome pop-up offering a sign-up incentive",
                "Retargeting ads on viewed products",
            ],
            vec![Rule::visitors(Visitor)],
        ),
        seg(
            "Loyal Visitors",
            Phase::Acquisition,
            "Visited and left an email, never ordered",
            "Convert to a first purchase",
            &[
                "Welcome email series",
                "First-order discount",
                "Browse-abandonment emails",
            ],
            vec![Rule::visitors(VisitorWithEmail)],
        ),
        seg(
            "First-time Customers",
            Phase::Retention,
            "One order, recently",
            "Get the second order",
            &[
                "Onboarding and thank-you series",
                "Second-order incentive within the repeat window",
                "Product education",
            ],
            vec![Rule::buyers(&[OneOrder], 4..=5, 1..=5, 1..=5)],
        ),
        seg(
            "Recent Customers",
            Phase::Retention,
            "Ordered recently, not often, small spend",
            "Build a buying habit",
            &[
                "Replenishment reminders",
                "Cross-sell on the last purchase",
                "Loyalty programme invitation",
            ],
            vec![Rule::buyers(&[Repeat], 5..=5, 1..=3, 1..=2)],
        ),
        seg(
            "Promising",
            Phase::IncreasedValue,
            "Occasional buyers with small orders, still fairly recent",
            "Raise order value and frequency",
            &[
                "Bundles and volume offers",
                "Free-shipping threshold nudges",
                "Personal recommendations",
            ],
            vec![Rule::buyers(&[Repeat], 4..=4, 1..=3, 1..=2)],
        ),
        seg(
            "Potential Loyalists",
            Phase::IncreasedValue,
            "Recent, repeat buyers with larger orders",
            "Turn them into loyal customers",
            &[
                "Membership or loyalty tier upgrade",
                "Early access to new products",
                "Recommendations from their categories",
            ],
            vec![Rule::buyers(&[Repeat], 4..=5, 1..=3, 3..=5)],
        ),
        seg(
            "Loyal Customers",
            Phase::Veneration,
            "Buy often, still active",
            "Keep them engaged and raise their value",
            &[
                "Loyalty rewards",
                "Upsell higher-value products",
                "Ask for reviews",
            ],
            vec![
                Rule::buyers(&[Repeat], 4..=5, 4..=5, 1..=3),
                Rule::buyers(&[Repeat], 3..=3, 3..=5, 1..=5),
            ],
        ),
        seg(
            "Champions",
            Phase::Veneration,
            "Best customers: recent, frequent, high spend",
            "Reward and retain; make them advocates",
            &[
                "VIP treatment and exclusive offers",
                "Referral programme",
                "Early access and previews",
            ],
            vec![Rule::buyers(&[Repeat], 4..=5, 4..=5, 4..=5)],
        ),
        seg(
            "Cannot Lose",
            Phase::Reactivation,
            "Were frequent buyers, have not bought for a long time",
            "Win them back at almost any cost",
            &[
                "Personal outreach",
                "Strong win-back offer",
                "Survey on why they left",
            ],
            vec![Rule::buyers(&[Repeat], 1..=1, 4..=5, 1..=5)],
        ),
        seg(
            "At Risk",
            Phase::Reactivation,
            "Were good customers, stopped buying a while ago",
            "Reactivate before they are gone",
            &[
                "Win-back series with personalised offers",
                "What's new since your last visit",
                "Feedback request",
            ],
            vec![
                Rule::buyers(&[Repeat], 2..=2, 3..=5, 1..=5),
                Rule::buyers(&[Repeat], 1..=1, 3..=3, 1..=5),
            ],
        ),
        seg(
            "Falling Asleep",
            Phase::Reactivation,
            "Lower value, slipping away (including old one-order customers)",
            "Reawaken interest cheaply",
            &[
                "Low-cost reminder campaigns",
                "Best-seller and popular-product emails",
                "Limited-time discount",
            ],
            vec![
                Rule::buyers(&[Repeat], 1..=3, 1..=2, 1..=5),
                Rule::buyers(&[OneOrder], 1..=3, 1..=5, 1..=5),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(t: &SegmentTable, p: Profile) -> &str {
        &t.segments()[t.assign(&p).unwrap()].name
    }

    #[test]
    fn default_table_is_a_partition_of_eleven_segments() {
        let t = SegmentTable::default_table();
        assert_eq!(t.segments().len(), 11);
        let phases: Vec<Phase> = t.segments().iter().map(|s| s.phase).collect();
        for p in Phase::ALL {
            assert!(phases.contains(&p), "{p} has a segment");
        }
    }

    #[test]
    fn default_assignments() {
        let t = SegmentTable::default_table();
        let cases = [
            (Profile::visitor(false), "Engaged Visitors"),
            (Profile::visitor(true), "Loyal Visitors"),
            (Profile::buyer(1, 5, 1, 1), "First-time Customers"),
            (Profile::buyer(1, 4, 1, 5), "First-time Customers"),
            (Profile::buyer(1, 3, 1, 1), "Falling Asleep"),
            (Profile::buyer(1, 1, 1, 5), "Falling Asleep"),
            (Profile::buyer(3, 5, 5, 5), "Champions"),
            (Profile::buyer(3, 5, 5, 2), "Loyal Customers"),
            (Profile::buyer(3, 3, 3, 1), "Loyal Customers"),
            (Profile::buyer(2, 5, 3, 1), "Recent Customers"),
            (Profile::buyer(2, 4, 3, 2), "Promising"),
            (Profile::buyer(2, 4, 2, 4), "Potential Loyalists"),
            (Profile::buyer(5, 1, 5, 5), "Cannot Lose"),
            (Profile::buyer(5, 2, 4, 5), "At Risk"),
            (Profile::buyer(2, 1, 3, 5), "At Risk"),
            (Profile::buyer(2, 2, 2, 5), "Falling Asleep"),
        ];
        for (p, want) in cases {
            assert_eq!(name(&t, p), want, "{p}");
        }
    }

    #[test]
    fn gaps_and_overlaps_are_rejected_with_the_profile() {
        let mut segs = default_segments();
        segs.retain(|s| s.name != "Champions");
        let err = SegmentTable::new(segs).unwrap_err().to_string();
        assert!(err.contains("R=4 F=4 M=4"), "{err}");

        let mut segs = default_segments();
        segs[0]
            .rules
            .push(Rule::buyers(&[Kind::Repeat], 5..=5, 5..=5, 5..=5));
        let err = SegmentTable::new(segs).unwrap_err().to_string();
        assert!(
            err.contains("Engaged Visitors") && err.contains("Champions"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_scores_are_errors_not_panics() {
        let t = SegmentTable::default_table();
        assert!(t.assign(&Profile::buyer(2, 0, 3, 3)).is_err());
        assert!(t.assign(&Profile::buyer(2, 6, 3, 3)).is_err());
    }

    #[test]
    fn phase_names_round_trip() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.name()), Some(p));
        }
        assert_eq!(Phase::parse("increased_value"), Some(Phase::IncreasedValue));
        assert_eq!(Phase::parse("nope"), None);
    }
}
