//! The Kaplan-Meier estimate of a time-to-event curve from right-censored
//! durations (Kaplan & Meier 1958), with Greenwood's variance.
//!
//! A customer whose next order has not happened yet is *censored* at the
//! time observed so far: they count as at risk until then and never as a
//! failure. At a time where events and censorings tie, the events come
//! first (the censored customers were still at risk at that time), the
//! usual convention.

/// One step of the curve: at `time`, `events` of the `at_risk` happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub time: f64,
    pub at_risk: f64,
    pub events: f64,
    /// S(time): the share still without the event just after `time`.
    pub survival: f64,
    /// Greenwood's sum Σ d / (n (n − d)) up to `time`.
    pub greenwood: f64,
}

/// A fitted Kaplan-Meier curve.
#[derive(Debug, Clone, PartialEq)]
pub struct KaplanMeier {
    steps: Vec<Step>,
    /// Subjects (sum of weights).
    n: f64,
    observed: f64,
}

impl KaplanMeier {
    /// Fits the curve to `(duration, observed)` pairs (`observed = false`:
    /// censored at `duration`). Non-finite or negative durations are left
    /// out.
    pub fn fit(data: &[(f64, bool)]) -> KaplanMeier {
        let mut d: Vec<(f64, bool)> = data
            .iter()
            .copied()
            .filter(|(t, _)| t.is_finite() && *t >= 0.0)
            .collect();
        // By time; events before censorings at the same time.
        d.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        let n = d.len() as f64;
        let observed = d.iter().filter(|x| x.1).count() as f64;
        let mut steps = Vec::new();
        let mut at_risk = n;
        let mut survival = 1.0;
        let mut greenwood = 0.0;
        let mut i = 0;
        while i < d.len() {
            let t = d[i].0;
            let mut events = 0.0;
            let mut leaving = 0.0;
            while i < d.len() && d[i].0 == t {
                if d[i].1 {
                    events += 1.0;
                }
                leaving += 1.0;
                i += 1;
            }
            if events > 0.0 {
                survival *= 1.0 - events / at_risk;
                if at_risk > events {
                    greenwood += events / (at_risk * (at_risk - events));
                }
                steps.push(Step {
                    time: t,
                    at_risk,
                    events,
                    survival,
                    greenwood,
                });
            }
            at_risk -= leaving;
        }
        KaplanMeier { steps, n, observed }
    }

    /// Subjects in the fit.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0.0
    }

    /// Subjects whose event was observed.
    pub fn observed(&self) -> usize {
        self.observed as usize
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// S(t): the estimated share still without the event after `t`.
    pub fn survival(&self, t: f64) -> f64 {
        match self.steps.iter().rposition(|s| s.time <= t) {
            Some(i) => self.steps[i].survival,
            None => 1.0,
        }
    }

    /// F(t) = 1 − S(t): the estimated share with the event by `t`.
    pub fn cdf(&self, t: f64) -> f64 {
        1.0 - self.survival(t)
    }

    /// A pointwise confidence interval for F(t) at `level` (e.g. 0.95),
    /// from Greenwood's variance on the log(−log S) scale (which keeps the
    /// interval inside [0, 1]). `None` before the first event or once S = 0.
    pub fn cdf_interval(&self, t: f64, level: f64) -> Option<(f64, f64)> {
        let i = self.steps.iter().rposition(|s| s.time <= t)?;
        let s = self.steps[i].survival;
        if s <= 0.0 || s >= 1.0 {
            return None;
        }
        let z = lifecycle_models::normal_quantile(0.5 + level / 2.0);
        let se = self.steps[i].greenwood.sqrt() / s.ln().abs();
        let lo_s = s.powf((z * se).exp());
        let hi_s = s.powf((-z * se).exp());
        Some((1.0 - hi_s, 1.0 - lo_s))
    }

    /// The smallest time by which at least `p` have had the event
    /// (F(t) ≥ p), or `None` when the curve never gets there (too many
    /// still censored).
    pub fn quantile(&self, p: f64) -> Option<f64> {
        self.steps
            .iter()
            .find(|s| 1.0 - s.survival >= p - 1e-12)
            .map(|s| s.time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 6-MP arm of Freireich et al. (1963), the textbook example
    /// (Kaplan & Meier's method as tabulated in Klein & Moeschberger,
    /// "Survival Analysis", 2nd ed., table 4.1A): remission weeks, `false`
    /// censored.
    fn six_mp() -> Vec<(f64, bool)> {
        [
            (6.0, true),
            (6.0, true),
            (6.0, true),
            (6.0, false),
            (7.0, true),
            (9.0, false),
            (10.0, true),
            (10.0, false),
            (11.0, false),
            (13.0, true),
            (16.0, true),
            (17.0, false),
            (19.0, false),
            (20.0, false),
            (22.0, true),
            (23.0, true),
            (25.0, false),
            (32.0, false),
            (32.0, false),
            (34.0, false),
            (35.0, false),
        ]
        .to_vec()
    }

    #[test]
    fn the_textbook_six_mp_curve() {
        let km = KaplanMeier::fit(&six_mp());
        // Klein & Moeschberger table 4.1A: S(t) at the event times.
        let want = [
            (6.0, 0.857),
            (7.0, 0.807),
            (10.0, 0.753),
            (13.0, 0.690),
            (16.0, 0.627),
            (22.0, 0.538),
            (23.0, 0.448),
        ];
        assert_eq!(km.steps().len(), want.len());
        for (s, (t, sv)) in km.steps().iter().zip(want) {
            assert_eq!(s.time, t);
            assert!((s.survival - sv).abs() < 5e-4, "S({t}) = {}", s.survival);
        }
        // Greenwood's standard error at t = 6 and 23 (same table: 0.076, 0.135).
        let se = |i: usize| {
            let s = km.steps()[i];
            s.survival * s.greenwood.sqrt()
        };
        assert!((se(0) - 0.0764).abs() < 5e-4, "{}", se(0));
        assert!((se(6) - 0.1346).abs() < 5e-4, "{}", se(6));
        assert_eq!(km.len(), 21);
        assert_eq!(km.observed(), 9);
        assert_eq!(km.survival(5.9), 1.0);
        assert_eq!(km.survival(8.0), km.survival(7.0));
        // Median: the first time S ≤ 0.5 is 23 weeks.
        assert_eq!(km.quantile(0.5), Some(23.0));
        // The curve never reaches 80%: too many censored.
        assert_eq!(km.quantile(0.8), None);
        let (lo, hi) = km.cdf_interval(10.0, 0.95).unwrap();
        assert!(lo < km.cdf(10.0) && km.cdf(10.0) < hi && lo > 0.0 && hi < 1.0);
    }

    #[test]
    fn without_censoring_it_is_the_empirical_distribution() {
        let data: Vec<(f64, bool)> = [3.0, 1.0, 2.0, 2.0, 5.0]
            .iter()
            .map(|&t| (t, true))
            .collect();
        let km = KaplanMeier::fit(&data);
        assert!((km.cdf(1.0) - 0.2).abs() < 1e-12);
        assert!((km.cdf(2.0) - 0.6).abs() < 1e-12);
        assert!((km.cdf(4.9) - 0.8).abs() < 1e-12);
        assert_eq!(km.cdf(5.0), 1.0);
        assert_eq!(km.quantile(0.8), Some(3.0));
        assert!(KaplanMeier::fit(&[]).is_empty());
        assert_eq!(KaplanMeier::fit(&[(f64::NAN, true)]).len(), 0);
    }

    #[test]
    fn censored_customers_are_not_failures() {
        // Ten customers: five reorder on day 10; five were seen only 5 days.
        // A naive share (5/10 by day 10) is wrong; KM says all who were
        // followed long enough reordered.
        let mut data = vec![(10.0, true); 5];
        data.extend(vec![(5.0, false); 5]);
        let km = KaplanMeier::fit(&data);
        assert_eq!(km.cdf(10.0), 1.0);
        assert_eq!(km.quantile(0.8), Some(10.0));
    }
}
