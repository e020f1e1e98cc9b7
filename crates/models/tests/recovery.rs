//! Fitting recovers the parameters that generated the data: customers drawn
//! from the BG/NBD purchase process and Gamma-Gamma spend (`lifecycle-synth`,
//! a fixed seed), fitted back; every estimate within 3 standard errors of
//! the truth. This checks the likelihoods, the optimiser and the standard
//! errors together, on data whose truth is known.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use lifecycle_models::{BgNbd, FitConfig, GammaGamma, Observation, SpendObservation};
use lifecycle_synth::{Generator, SynthParams};

#[test]
fn bgnbd_and_gamma_gamma_recover_the_generating_parameters() {
    let truth = SynthParams {
        r: 0.5,
        alpha: 20.0,
        a: 0.8,
        b: 2.5,
        p: 6.0,
        q: 4.0,
        gamma: 15.0,
    };
    let period = 730u32;
    let mut g = Generator::new(&truth, 2024, period, 365).unwrap();
    let mut orders = Vec::new();
    let mut purchases = Vec::new();
    let mut spend = Vec::new();
    for _ in 0..20_000 {
        orders.clear();
        g.next_customer(&mut orders);
        // Continuous time in days: the exact purchase times.
        let times: Vec<f64> = orders
            .iter()
            .map(|o| f64::from(o.day) + f64::from(o.second) / 86_400.0)
            .collect();
        let first = times[0];
        let x = (times.len() - 1) as f64;
        let t_x = times[times.len() - 1] - first;
        purchases.push(Observation::new(x, t_x, f64::from(period) - first));
        if x > 0.0 {
            let m = orders[1..].iter().map(|o| o.amount).sum::<f64>() / x;
            if m > 0.0 {
                spend.push(SpendObservation::new(x, m));
            }
        }
    }
    let (bg, report) = BgNbd::fit(&purchases, &FitConfig::default()).unwrap();
    let want = [truth.r, truth.alpha, truth.a, truth.b];
    for ((name, got), (se, want)) in ["r", "alpha", "a", "b"]
        .iter()
        .zip(bg.params())
        .zip(report.standard_errors.iter().zip(want))
    {
        let se = se.unwrap();
        assert!(
            (got - want).abs() <= 3.0 * se,
            "{name}: {got} vs true {want} (SE {se})"
        );
    }
    let (gg, report) = GammaGamma::fit(&spend, &FitConfig::default()).unwrap();
    let want = [truth.p, truth.q, truth.gamma];
    for ((name, got), (se, want)) in ["p", "q", "gamma"]
        .iter()
        .zip(gg.params())
        .zip(report.standard_errors.iter().zip(want))
    {
        let se = se.unwrap();
        assert!(
            (got - want).abs() <= 3.0 * se,
            "{name}: {got} vs true {want} (SE {se})"
        );
    }
}

/// The fit must not depend on the time unit: the same generated customers
/// in days, weeks and months converge to the same model (α scaled). From a
/// unit start (α = 1) this dataset once sent the optimiser to r = α = e^40 in
/// days; the start is now scaled to the data.
#[test]
fn fits_converge_in_any_time_unit() {
    let truth = SynthParams {
        r: 0.5,
        alpha: 20.0,
        a: 0.8,
        b: 2.5,
        ..SynthParams::default()
    };
    let mut g = Generator::new(&truth, 1001, 730, 180).unwrap();
    let mut orders = Vec::new();
    let mut days = Vec::new();
    for _ in 0..1500 {
        orders.clear();
        g.next_customer(&mut orders);
        let times: Vec<f64> = orders
            .iter()
            .map(|o| f64::from(o.day) + f64::from(o.second) / 86_400.0)
            .filter(|&t| t < 365.0)
            .collect();
        let x = (times.len() - 1) as f64;
        days.push((x, times[times.len() - 1] - times[0], 365.0 - times[0]));
    }
    let mut fitted = Vec::new();
    for unit in [1.0, 7.0, 365.25 / 12.0] {
        let obs: Vec<Observation> = days
            .iter()
            .map(|&(x, t_x, t)| Observation::new(x, t_x / unit, t / unit))
            .collect();
        let (m, _) = BgNbd::fit(&obs, &FitConfig::default())
            .unwrap_or_else(|e| panic!("unit {unit} days: {e}"));
        let [r, alpha, a, b] = m.params();
        fitted.push([r, alpha * unit, a, b]);
    }
    for f in &fitted[1..] {
        for (got, want) in f.iter().zip(&fitted[0]) {
            assert!((got / want - 1.0).abs() < 1e-5, "{f:?} vs {:?}", fitted[0]);
        }
    }
}
