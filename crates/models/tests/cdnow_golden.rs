//! Golden tests against published values.
//!
//! Sources:
//! - Fader, Hardie & Lee (2005), "Counting your customers the easy way: an
//!   alternative to the Pareto/NBD model", Marketing Science 24(2): BG/NBD on
//!   the CDNOW sample (2,357 customers, 39-week calibration, weeks):
//!   r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = −9582.4; and the
//!   expected purchases in the next 39 weeks of a customer with x = 2,
//!   t_x = 30.43, T = 38.86: 1.226.
//! - Fader, Hardie & Lee (2005), "RFM and CLV", JMR 42(4): Gamma-Gamma on the
//!   946 repeat buyers of the same sample: p = 6.25, q = 3.74, γ = 15.44.
//! - The data: `data/cdnow_customers_summary.csv` and
//!   `..._with_transactions.csv`, as shipped with `lifetimes` 0.11.3.
//! - More digits: `lifetimes` 0.11.3 (numpy 1.23.5, pandas 1.5.3, scipy
//!   1.10.1) on the same files, run for this test: BG/NBD r = 0.2425929282798217,
//!   α = 4.413532265271817, a = 0.7928859664406721, b = 2.4257523826257996;
//!   with those parameters E[Y(39) | 2, 30.43, 38.86] = 1.2259104241744019,
//!   P(alive | 2, 30.43, 38.86) = 0.72660914, E[X(39)] = 1.1950162284461943;
//!   Gamma-Gamma p = 6.248802496072247, q = 3.744588460923599,
//!   γ = 15.447748064939473 (the paper prints 15.44: truncated, not rounded),
//!   and E[Z | x = 2, m = 22.35] = 24.658616189237748; P(X(39) = n) for n = 0, 1,
//!   2, 5, 10 from `probability_of_n_purchases_up_to_time`.
//! - `lifetimes` 0.11.3 cannot compute E[X(t)|...] for r = 0.11, α = 2.24,
//!   a = 0.31, b = 0.5, x = 0, t_x = 0, T = 1, t = 30 (its 2F1 term is negative
//!   and it takes a logarithm); the right value is 0.5645886 (the issue's
//!   reference), which SciPy's hyp2f1 reproduces.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
#![allow(clippy::disallowed_methods)] // tests read the reference data; the crate itself does no IO

use lifecycle_models::{BgNbd, FitConfig, GammaGamma, Observation, SpendObservation};

fn data_file(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data")
            .join(name),
    )
    .unwrap()
}

fn rows(name: &str) -> Vec<Vec<f64>> {
    data_file(name)
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|v| v.trim().parse().unwrap()).collect())
        .collect()
}

fn close(got: f64, want: f64, decimals: i32, what: &str) {
    let tol = 0.5 * 10f64.powi(-decimals);
    assert!(
        (got - want).abs() <= tol,
        "{what}: {got} vs published {want}"
    );
}

#[test]
fn bgnbd_on_cdnow_matches_the_paper() {
    let obs: Vec<Observation> = rows("cdnow_customers_summary.csv")
        .iter()
        .map(|r| Observation::new(r[1], r[2], r[3]))
        .collect();
    assert_eq!(obs.len(), 2357);
    let (model, report) = BgNbd::fit(&obs, &FitConfig::default()).unwrap();
    let [r, alpha, a, b] = model.params();
    close(r, 0.243, 3, "r");
    close(alpha, 4.414, 3, "alpha");
    close(a, 0.793, 3, "a");
    close(b, 2.426, 3, "b");
    close(report.log_likelihood, -9582.4, 1, "LL");
    assert!(report.converged);
    assert_eq!(report.n_observations, 2357.0);
    assert!(
        report.n_rows < 2357,
        "identical rows are collapsed: {}",
        report.n_rows
    );
    assert!(
        report
            .standard_errors
            .iter()
            .all(|s| s.is_some_and(|s| s > 0.0 && s < 1.0)),
        "{:?}",
        report.standard_errors
    );
    let e = model
        .conditional_expected_purchases(39.0, 2.0, 30.43, 38.86)
        .unwrap();
    close(e, 1.226, 3, "E[Y(39) | x=2, t_x=30.43, T=38.86]");
    // More digits against lifetimes (different optimisers stop at slightly
    // different points of the same flat optimum).
    let reference = [
        0.2425929282798217,
        4.413532265271817,
        0.7928859664406721,
        2.4257523826257996,
    ];
    for (got, want) in model.params().iter().zip(reference) {
        assert!(
            (got - want).abs() <= 1e-5 * want,
            "{got} vs lifetimes {want}"
        );
    }
    // Predictions with lifetimes' own parameters agree to rounding.
    let lt = BgNbd::new(reference[0], reference[1], reference[2], reference[3]).unwrap();
    let e = lt
        .conditional_expected_purchases(39.0, 2.0, 30.43, 38.86)
        .unwrap();
    assert!((e - 1.2259104241744019).abs() < 1e-12, "{e}");
    assert!((lt.p_alive(2.0, 30.43, 38.86) - 0.72660914).abs() < 1e-8);
    let e = lt.expected_purchases(39.0).unwrap();
    assert!((e - 1.1950162284461943).abs() < 1e-12, "{e}");
    // P(X(39) = n), lifetimes' probability_of_n_purchases_up_to_time.
    for (n, want) in [
        (0, 0.5743072834054231),
        (1, 0.19919306128210296),
        (2, 0.08532240876046454),
        (5, 0.017938392273575098),
        (10, 0.00358450738062761),
    ] {
        let p = lt.probability_of_purchases(39.0, n);
        assert!(
            (p - want).abs() < 1e-12,
            "P(X(39) = {n}) = {p}, lifetimes {want}"
        );
    }
    let total: f64 = (0..2000)
        .map(|n| lt.probability_of_purchases(39.0, n))
        .sum();
    assert!((total - 1.0).abs() < 1e-6, "probabilities sum to {total}");
    // Deterministic: the same input gives the same output.
    let (again, _) = BgNbd::fit(&obs, &FitConfig::default()).unwrap();
    assert_eq!(again, model);
}

#[test]
fn gamma_gamma_on_cdnow_repeaters_matches_the_paper() {
    let obs: Vec<SpendObservation> = rows("cdnow_customers_summary_with_transactions.csv")
        .iter()
        .filter(|r| r[1] > 0.0)
        .map(|r| SpendObservation::new(r[1], r[4]))
        .collect();
    assert_eq!(obs.len(), 946);
    let (model, report) = GammaGamma::fit(&obs, &FitConfig::default()).unwrap();
    let [p, q, gamma] = model.params();
    close(p, 6.25, 2, "p");
    close(q, 3.74, 2, "q");
    // The paper truncates: 15.4477 is printed as 15.44.
    assert!((15.44..15.45).contains(&gamma), "gamma {gamma}");
    assert!(report.converged);
    let reference = [6.248802496072247, 3.744588460923599, 15.447748064939473];
    for (got, want) in model.params().iter().zip(reference) {
        assert!(
            (got - want).abs() <= 1e-6 * want,
            "{got} vs lifetimes {want}"
        );
    }
    let lt = GammaGamma::new(reference[0], reference[1], reference[2]).unwrap();
    assert!((lt.conditional_expected_value(2.0, 22.35) - 24.658616189237748).abs() < 1e-10);
}

#[test]
fn negative_hypergeometric_term_that_lifetimes_cannot_handle() {
    let m = BgNbd::new(0.11, 2.24, 0.31, 0.5).unwrap();
    let e = m
        .conditional_expected_purchases(30.0, 0.0, 0.0, 1.0)
        .unwrap();
    assert!((e - 0.5645886).abs() < 5e-8, "{e}");
}
