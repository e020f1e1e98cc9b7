//! Forecast intervals are calibrated: on datasets drawn from a known BG/NBD
//! process (`lifecycle-synth`, fixed seed), the model is fitted on a
//! calibration year and the 90% interval for the cohort's total purchases
//! in the following year (process randomness plus the fitted parameters'
//! uncertainty, delta method) must contain the simulated total in 87–93% of
//! the datasets. Leaving out the parameter uncertainty must cover visibly
//! less, so the test can tell the two apart.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use lifecycle_models::{BgNbd, FitConfig, Observation, forecast_total};
use lifecycle_synth::{Generator, SynthParams};

#[test]
fn ninety_percent_intervals_cover_ninety_percent_of_outcomes() {
    let truth = SynthParams {
        r: 0.5,
        alpha: 20.0,
        a: 0.8,
        b: 2.5,
        ..SynthParams::default()
    };
    let (calibration, holdout) = (365.0, 365.0);
    let datasets = 400;
    let customers = 1500;
    let (mut covered, mut covered_process_only) = (0, 0);
    let mut orders = Vec::new();
    for seed in 0..datasets {
        let mut g = Generator::new(&truth, 1000 + seed, 730, 180).unwrap();
        let mut obs = Vec::with_capacity(customers);
        let mut actual = 0.0;
        for _ in 0..customers {
            orders.clear();
            g.next_customer(&mut orders);
            let times: Vec<f64> = orders
                .iter()
                .map(|o| f64::from(o.day) + f64::from(o.second) / 86_400.0)
                .collect();
            let first = times[0];
            let before: Vec<f64> = times.iter().copied().filter(|&t| t < calibration).collect();
            actual += (times.len() - before.len()) as f64;
            let x = (before.len() - 1) as f64;
            let t_x = before[before.len() - 1] - first;
            obs.push(Observation::new(x, t_x, calibration - first));
        }
        let (model, report) = BgNbd::fit(&obs, &FitConfig::default()).unwrap();
        let f = forecast_total(&model, report.covariance.as_deref(), holdout, &obs).unwrap();
        let (lo, hi) = f.interval(0.9);
        covered += usize::from((lo..=hi).contains(&actual));
        let z = lifecycle_models::normal_quantile(0.95);
        covered_process_only += usize::from((actual - f.mean).abs() <= z * f.process_sd);
    }
    let rate = covered as f64 / datasets as f64;
    let process_only = covered_process_only as f64 / datasets as f64;
    eprintln!("coverage {rate:.3}, without parameter uncertainty {process_only:.3}");
    assert!((0.87..=0.93).contains(&rate), "coverage {rate}");
    assert!(process_only < rate - 0.05, "{process_only} vs {rate}");
}
