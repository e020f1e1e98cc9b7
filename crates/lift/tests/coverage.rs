//! Coverage by simulation at a fixed seed: with a planted effect, the 95%
//! t intervals (absolute and relative) cover it in 93–97% of 1,000
//! simulated experiments, and GrowthBook's sequential intervals keep at
//! least 95% coverage when every experiment is looked at ten times (an
//! experiment counts as covered only if all ten looks cover).
#![allow(clippy::unwrap_used)]

use lifecycle_lift::{Arm, Scale, effect, sequential, t_test};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus as Rng64;
use rand_distr::{Distribution, Gamma, Normal};

const EXPERIMENTS: usize = 1_000;

/// Revenue-like units: skewed (gamma) with a planted multiplicative lift.
fn arm_sums(rng: &mut Rng64, n: usize, mean: f64) -> (u64, f64, f64) {
    let shape = 2.0;
    let g = Gamma::new(shape, mean / shape).unwrap();
    let (mut s, mut q) = (0.0, 0.0);
    for _ in 0..n {
        let y: f64 = g.sample(rng);
        s += y;
        q += y * y;
    }
    (n as u64, s, q)
}

#[test]
fn fixed_horizon_intervals_cover_the_planted_effect() {
    let mut rng = Rng64::seed_from_u64(20261129);
    let (mu_a, lift) = (10.0, 0.05);
    let mu_b = mu_a * (1.0 + lift);
    let (mut abs_cover, mut rel_cover) = (0, 0);
    for _ in 0..EXPERIMENTS {
        let (na, sa, qa) = arm_sums(&mut rng, 2_000, mu_a);
        let (nb, sb, qb) = arm_sums(&mut rng, 2_000, mu_b);
        let (a, b) = (Arm::mean(na, sa, qa), Arm::mean(nb, sb, qb));
        let abs = t_test(&effect(&a, &b, Scale::Absolute).unwrap(), 0.05).unwrap();
        let rel = t_test(&effect(&a, &b, Scale::Relative).unwrap(), 0.05).unwrap();
        abs_cover += usize::from(abs.ci.0 <= mu_b - mu_a && mu_b - mu_a <= abs.ci.1);
        rel_cover += usize::from(rel.ci.0 <= lift && lift <= rel.ci.1);
    }
    for (what, c) in [("absolute", abs_cover), ("relative", rel_cover)] {
        let share = c as f64 / EXPERIMENTS as f64;
        eprintln!("{what} coverage: {share}");
        assert!((0.93..=0.97).contains(&share), "{what}: {share}");
    }
}

#[test]
fn sequential_intervals_hold_over_ten_looks() {
    let mut rng = Rng64::seed_from_u64(7);
    let (mu_a, mu_b, sd) = (1.0, 1.1, 2.0);
    let (na, nb) = (
        Normal::new(mu_a, sd).unwrap(),
        Normal::new(mu_b, sd).unwrap(),
    );
    let per_look = 300;
    let mut covered_all = 0;
    for _ in 0..EXPERIMENTS {
        let mut sums = [(0u64, 0.0f64, 0.0f64); 2];
        let mut all = true;
        for _look in 0..10 {
            for (k, d) in [&na, &nb].iter().enumerate() {
                for _ in 0..per_look {
                    let y: f64 = d.sample(&mut rng);
                    sums[k].0 += 1;
                    sums[k].1 += y;
                    sums[k].2 += y * y;
                }
            }
            let a = Arm::mean(sums[0].0, sums[0].1, sums[0].2);
            let b = Arm::mean(sums[1].0, sums[1].1, sums[1].2);
            let e = effect(&a, &b, Scale::Absolute).unwrap();
            let s = sequential::test(&e, a.n + b.n, 0.05, sequential::DEFAULT_TUNING).unwrap();
            all &= s.ci.0 <= mu_b - mu_a && mu_b - mu_a <= s.ci.1;
        }
        covered_all += usize::from(all);
    }
    let share = covered_all as f64 / EXPERIMENTS as f64;
    eprintln!("sequential coverage over 10 looks: {share}");
    assert!(share >= 0.95, "sequential coverage over 10 looks: {share}");
}
