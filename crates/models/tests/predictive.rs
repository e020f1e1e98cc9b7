//! The predictive distribution of future purchases given a history
//! (`PurchaseModel::future`) against independent computations: its mean
//! against each model's closed-form conditional expectation (FHL 2005 eq.
//! 10; Batislam et al. 2007; Fader & Hardie note 008 eq. 41), its P(X = n)
//! for a customer with no history against FHL eq. (8), and its variance and
//! P(alive at the window's end) against a simulation of the posterior
//! (fixed seed).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
#![allow(clippy::excessive_precision)] // references quoted as computed

use lifecycle_models::{BgNbd, MbgNbd, ParetoNbd, PurchaseModel};
use rand::rngs::Xoshiro256PlusPlus as Rng64;
use rand::{RngExt, SeedableRng};
use rand_distr::{Beta, Distribution, Exp, Gamma, Poisson};

const HISTORIES: [(f64, f64, f64); 6] = [
    (0.0, 0.0, 38.86),
    (2.0, 30.43, 38.86),
    (1.0, 2.0, 38.86),
    (7.0, 35.0, 38.86),
    (30.0, 70.0, 78.0),
    (0.0, 0.0, 0.0),
];

fn cdnow_bg() -> BgNbd {
    BgNbd::new(0.243, 4.414, 0.793, 2.426).unwrap()
}
fn cdnow_mbg() -> MbgNbd {
    MbgNbd::new(0.525, 6.183, 0.891, 1.614).unwrap()
}
fn cdnow_pareto() -> ParetoNbd {
    ParetoNbd::new(0.553, 10.578, 0.606, 11.669).unwrap()
}

fn check_mean_and_mass<M: PurchaseModel>(m: &M, tolerance: f64) {
    for t in [1.0, 39.0, 200.0] {
        for (x, t_x, tt) in HISTORIES {
            let f = m.future(t, x, t_x, tt).unwrap();
            let closed = m.expected(t, x, t_x, tt).unwrap();
            assert!(
                (f.mean() - closed).abs() <= tolerance * closed.max(1e-3),
                "t={t} ({x},{t_x},{tt}): mean {} vs closed form {closed}",
                f.mean()
            );
            // The probabilities sum to one and their mean is the mean.
            let n_max = f.at_least.len() + 1;
            let total: f64 = (0..=n_max).map(|n| f.probability(n)).sum();
            assert!((total - 1.0).abs() < 1e-9, "mass {total}");
            let mean: f64 = (0..=n_max).map(|n| n as f64 * f.probability(n)).sum();
            assert!((mean - closed).abs() <= tolerance * closed.max(1e-3));
            let q = f.quantile(0.95);
            let cdf: f64 = (0..=q).map(|n| f.probability(n)).sum();
            assert!(cdf >= 0.95 - 1e-12);
            if q > 0 {
                assert!(cdf - f.probability(q) < 0.95);
            }
            assert!(f.variance() >= 0.0);
            assert!((0.0..=1.0).contains(&f.p_alive_at_end()));
        }
    }
}

#[test]
fn means_match_the_closed_forms() {
    check_mean_and_mass(&cdnow_bg(), 1e-9);
    check_mean_and_mass(&cdnow_mbg(), 1e-9);
    // Pareto/NBD: P(X ≥ k) comes from quadrature over the lifetime.
    check_mean_and_mass(&cdnow_pareto(), 1e-7);
}

/// With no history (T = 0) the conditional distribution is that of a new
/// customer, FHL eq. (8) (which matches lifetimes to 1e-12, see
/// cdnow_golden.rs).
#[test]
fn no_history_is_the_new_customer_distribution() {
    let m = cdnow_bg();
    for t in [5.0, 39.0, 78.0] {
        let f = m.future(t, 0.0, 0.0, 0.0).unwrap();
        for n in 0..8u32 {
            let want = m.probability_of_purchases(t, n);
            let got = f.probability(n as usize);
            assert!((got - want).abs() < 1e-12, "t={t} n={n}: {got} vs {want}");
        }
    }
}

/// Draws each customer's state from the posterior given the history and
/// plays the future forward: (alive at T, purchases in (T, T+t], alive at
/// T+t).
fn simulate(
    rng: &mut Rng64,
    p_alive: f64,
    lambda: &Gamma<f64>,
    lifetime: &dyn Fn(&mut Rng64) -> Dropout,
    t: f64,
) -> (f64, bool) {
    if rng.random::<f64>() >= p_alive {
        return (0.0, false);
    }
    let rate = lambda.sample(rng);
    match lifetime(rng) {
        Dropout::PerPurchase(p) => {
            let (mut n, mut clock) = (0.0, 0.0);
            loop {
                clock += Exp::new(rate).unwrap().sample(rng);
                if clock > t {
                    return (n, true);
                }
                n += 1.0;
                if rng.random::<f64>() < p {
                    return (n, false);
                }
            }
        }
        Dropout::AtTime(tau) => {
            let window = tau.min(t);
            let n = Poisson::new(rate * window).map_or(0.0, |d| d.sample(rng));
            (n, tau > t)
        }
    }
}

enum Dropout {
    PerPurchase(f64),
    AtTime(f64),
}

fn compare_with_simulation<M: PurchaseModel>(
    m: &M,
    history: (f64, f64, f64),
    shape_rate: (f64, f64),
    lifetime: &dyn Fn(&mut Rng64) -> Dropout,
) {
    let t = 39.0;
    let (x, t_x, tt) = history;
    let f = m.future(t, x, t_x, tt).unwrap();
    let mut rng = Rng64::seed_from_u64(11);
    let lambda = Gamma::new(shape_rate.0, 1.0 / shape_rate.1).unwrap();
    let n = 200_000;
    let (mut sum, mut sum2, mut alive, mut zeros) = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..n {
        let (k, a) = simulate(&mut rng, f.p_alive, &lambda, lifetime, t);
        sum += k;
        sum2 += k * k;
        alive += f64::from(u8::from(a));
        zeros += f64::from(u8::from(k == 0.0));
    }
    let nf = f64::from(n);
    let mean = sum / nf;
    let var = sum2 / nf - mean * mean;
    let se_mean = (var / nf).sqrt();
    assert!(
        (mean - f.mean()).abs() < 4.0 * se_mean,
        "{history:?}: mean {} vs simulated {mean}",
        f.mean()
    );
    // The sample variance's spread for these heavy tails: allow 4% + noise.
    assert!(
        (var - f.variance()).abs() < 0.04 * f.variance() + 1e-3,
        "{history:?}: variance {} vs simulated {var}",
        f.variance()
    );
    let p_end = alive / nf;
    assert!(
        (p_end - f.p_alive_at_end()).abs() < 4.0 * (p_end * (1.0 - p_end) / nf).sqrt() + 1e-4,
        "{history:?}: P(alive at end) {} vs simulated {p_end}",
        f.p_alive_at_end()
    );
    let p0 = zeros / nf;
    assert!((p0 - f.probability(0)).abs() < 4.0 * (p0 * (1.0 - p0) / nf).sqrt() + 1e-4);
}

#[test]
fn variance_and_survival_match_a_simulation_of_the_posterior() {
    let [r, alpha, a, b] = cdnow_bg().params();
    for (x, t_x, tt) in [(2.0, 30.43, 38.86), (7.0, 35.0, 38.86)] {
        let dropout = Beta::new(a, b + x).unwrap();
        compare_with_simulation(
            &cdnow_bg(),
            (x, t_x, tt),
            (r + x, alpha + tt),
            &move |rng| Dropout::PerPurchase(dropout.sample(rng)),
        );
    }
    let [r, alpha, a, b] = cdnow_mbg().params();
    let (x, t_x, tt) = (3.0, 20.0, 38.86);
    let dropout = Beta::new(a, b + x + 1.0).unwrap();
    compare_with_simulation(
        &cdnow_mbg(),
        (x, t_x, tt),
        (r + x, alpha + tt),
        &move |rng| Dropout::PerPurchase(dropout.sample(rng)),
    );
    let [r, alpha, s, beta] = cdnow_pareto().params();
    for (x, t_x, tt) in [(2.0, 30.43, 38.86), (7.0, 35.0, 38.86)] {
        let mu = Gamma::new(s, 1.0 / (beta + tt)).unwrap();
        compare_with_simulation(
            &cdnow_pareto(),
            (x, t_x, tt),
            (r + x, alpha + tt),
            &move |rng| {
                let rate: f64 = mu.sample(rng);
                Dropout::AtTime(Exp::new(rate.max(1e-300)).unwrap().sample(rng))
            },
        );
    }
}

/// Reference values computed with mpmath at 50 digits by 2-D quadrature over
/// the posterior of (λ, p) for the BG/NBD and by a 1-D integral for the
/// Pareto/NBD (the latter equal to Fader & Hardie's note 028, eq. 16), for
/// the customer of FHL's example, (x, t_x, T) = (2, 30.43, 38.86), t = 39
/// weeks; parameters as published to four decimals.
#[test]
fn conditional_pmf_matches_high_precision_references() {
    let bg = BgNbd::new(0.2426, 4.4136, 0.7930, 2.4259).unwrap();
    let f = bg.future(39.0, 2.0, 30.43, 38.86).unwrap();
    let want = [
        0.445407414090152557,
        0.23932841952668585,
        0.144174485449063255,
        0.0808385362381573354,
    ];
    for (n, w) in want.iter().enumerate() {
        assert!((f.probability(n) - w).abs() < 1e-12, "BG/NBD P({n})");
    }
    assert!((f.mean() - 1.2258571368591690101).abs() < 1e-12);
    let pareto = ParetoNbd::new(0.5534, 10.5802, 0.6061, 11.6690).unwrap();
    let f = pareto.future(39.0, 2.0, 30.43, 38.86).unwrap();
    let want = [
        0.408056440244359015,
        0.219274902415149379,
        0.151756383199820053,
        0.0956598777149522357,
    ];
    for (n, w) in want.iter().enumerate() {
        assert!(
            (f.probability(n) - w).abs() < 1e-9,
            "Pareto/NBD P({n}) = {} vs {w}",
            f.probability(n)
        );
    }
    assert!((f.mean() - 1.4552044726886819483).abs() < 1e-12);
}

/// P(no purchase in the next t) and the median time to the next purchase
/// (same references; the BG/NBD median also has the closed form
/// (α+T)[(1 − 1/(2 P(alive)))^{−1/(r+x)} − 1]).
#[test]
fn time_to_next_purchase() {
    let bg = BgNbd::new(0.2426, 4.4136, 0.7930, 2.4259).unwrap();
    assert!((bg.no_purchase(10.0, 2.0, 30.43, 38.86) - 0.72924494906747968).abs() < 1e-12);
    assert!((bg.no_purchase(39.0, 2.0, 30.43, 38.86) - 0.445407414090152557).abs() < 1e-12);
    let median = bg.next_purchase_quantile(0.5, 2.0, 30.43, 38.86).unwrap();
    assert!((median - 29.4836521421912231).abs() < 1e-8, "{median}");
    let q25 = bg.next_purchase_quantile(0.25, 2.0, 30.43, 38.86).unwrap();
    assert!((q25 - 8.9527060665084558).abs() < 1e-8, "{q25}");
    // x = 0: (α+T)(2^{1/r} − 1).
    let m0 = bg.next_purchase_quantile(0.5, 0.0, 0.0, 38.86).unwrap();
    assert!((m0 / 710.207117841400334 - 1.0).abs() < 1e-10, "{m0}");
    // P(alive) = 0.727, so P(ever buying again) = 0.727 < 0.8: no 80% time.
    assert!(bg.next_purchase_quantile(0.8, 2.0, 30.43, 38.86).is_none());

    let pareto = ParetoNbd::new(0.5534, 10.5802, 0.6061, 11.6690).unwrap();
    assert!((pareto.no_purchase(10.0, 2.0, 30.43, 38.86) - 0.68976187584855354).abs() < 1e-12);
    let median = pareto
        .next_purchase_quantile(0.5, 2.0, 30.43, 38.86)
        .unwrap();
    assert!((median - 23.7554288436360378).abs() < 1e-8, "{median}");
    // The MBG/NBD's closed-form median is where P(no purchase) = 1/2, and
    // it agrees with its own predictive distribution.
    let median = cdnow_mbg()
        .next_purchase_quantile(0.5, 3.0, 35.0, 38.86)
        .unwrap();
    assert!((cdnow_mbg().no_purchase(median, 3.0, 35.0, 38.86) - 0.5).abs() < 1e-12);
    let mbg = cdnow_mbg();
    let f = mbg.future(20.0, 3.0, 20.0, 38.86).unwrap();
    assert!((mbg.no_purchase(20.0, 3.0, 20.0, 38.86) - f.probability(0)).abs() < 1e-12);
}

/// DERT with a 15% annual rate (δ = ln 1.15 / 52 per week): references from
/// mpmath at 50 digits, checked there against δ∫e^{−δt}E[X(T,T+t)]dt and a
/// 2-D posterior quadrature. The Pareto/NBD's closed form (Fader, Hardie &
/// Lee 2005, JMR, eq. 2) and the BG/NBD's quadrature.
#[test]
fn discounted_expected_residual_transactions() {
    let delta = 1.15f64.ln() / 52.0;
    let pareto = ParetoNbd::new(0.5534, 10.5802, 0.6061, 11.6690).unwrap();
    let bg = BgNbd::new(0.2426, 4.4136, 0.7930, 2.4259).unwrap();
    for ((x, t_x, tt), want_pareto, want_bg) in [
        ((0.0, 0.0, 38.86), 0.478514921664663742, 1.01722598575743874),
        (
            (2.0, 30.43, 38.86),
            6.50141374556824577,
            5.16902220539449296,
        ),
        (
            (10.0, 35.0, 38.86),
            28.6694571311971692,
            23.0311735970509956,
        ),
        ((1.0, 5.0, 20.0), 3.25583681006720585, 2.88206300807845501),
    ] {
        let p = pareto.dert(delta, x, t_x, tt).unwrap();
        assert!(
            (p / want_pareto - 1.0).abs() < 1e-12,
            "Pareto/NBD {p} vs {want_pareto}"
        );
        let q = lifecycle_models::dert_by_quadrature(&pareto, delta, x, t_x, tt).unwrap();
        assert!(
            (q / want_pareto - 1.0).abs() < 1e-10,
            "quadrature {q} vs {want_pareto}"
        );
        let b = bg.dert(delta, x, t_x, tt).unwrap();
        assert!((b / want_bg - 1.0).abs() < 1e-10, "BG/NBD {b} vs {want_bg}");
    }
}

/// P(X(t) = n) for a new customer, t = 39 weeks: Pareto/NBD (Fader &
/// Hardie note 012) and MBG/NBD (Batislam et al. 2007, as lifetimes'
/// `probability_of_n_purchases_up_to_time`), references from mpmath
/// quadrature of the individual-level models at 50 digits.
#[test]
fn new_customer_purchase_probabilities() {
    let pareto = ParetoNbd::new(0.5534, 10.5802, 0.6061, 11.6690).unwrap();
    let f = pareto.new_customer(39.0).unwrap();
    for (n, want) in [
        0.5934776297280159,
        0.165603529414718665,
        0.0825179780082333371,
        0.0490614934634307841,
    ]
    .iter()
    .enumerate()
    {
        assert!(
            (f.probability(n) - want).abs() < 1e-9,
            "Pareto P({n}) = {}",
            f.probability(n)
        );
    }
    assert!((f.mean() - 1.21353019111829634).abs() < 1e-12);
    let f = cdnow_mbg().new_customer(39.0).unwrap();
    for (n, want) in [
        0.58247318949328897,
        0.182783077287540511,
        0.0868948256734905192,
        0.0485704429515692088,
    ]
    .iter()
    .enumerate()
    {
        assert!(
            (f.probability(n) - want).abs() < 1e-12,
            "MBG P({n}) = {}",
            f.probability(n)
        );
    }
    assert!((f.mean() - 1.18295366559717264).abs() < 1e-12);
}
