//! Property tests of the BG/NBD and Gamma-Gamma invariants: probabilities in
//! [0, 1], P(alive) = 1 without repeat purchases, expectations increasing in
//! t, finite likelihoods for extreme histories, and predictions that do not
//! depend on the time unit once α is rescaled.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use lifecycle_models::{BgNbd, GammaGamma};
use proptest::prelude::*;

fn params() -> impl Strategy<Value = BgNbd> {
    (0.05f64..5.0, 0.5f64..50.0, 0.05f64..5.0, 0.05f64..10.0)
        .prop_filter("a != 1", |&(_, _, a, _)| (a - 1.0).abs() > 1e-3)
        .prop_map(|(r, alpha, a, b)| BgNbd::new(r, alpha, a, b).unwrap())
}

fn history() -> impl Strategy<Value = (f64, f64, f64)> {
    (0u32..60, 0.0f64..1.0, 1.0f64..200.0).prop_map(|(x, frac, t_big)| {
        let x = f64::from(x);
        let t_x = if x == 0.0 { 0.0 } else { frac * t_big };
        (x, t_x, t_big)
    })
}

proptest! {
    #[test]
    fn p_alive_is_a_probability(m in params(), (x, t_x, t_big) in history()) {
        let p = m.p_alive(x, t_x, t_big);
        prop_assert!((0.0..=1.0).contains(&p), "{p}");
        if x == 0.0 {
            prop_assert_eq!(p, 1.0);
        }
    }

    #[test]
    fn expected_purchases_grow_with_t(m in params(), (x, t_x, t_big) in history(), t in 1.0f64..100.0) {
        let e1 = m.conditional_expected_purchases(t, x, t_x, t_big).unwrap();
        let e2 = m.conditional_expected_purchases(t * 1.5, x, t_x, t_big).unwrap();
        prop_assert!(e1.is_finite() && e1 >= 0.0, "{e1}");
        prop_assert!(e2 >= e1 * (1.0 - 1e-9), "{e1} then {e2}");
        let u1 = m.expected_purchases(t).unwrap();
        let u2 = m.expected_purchases(t * 1.5).unwrap();
        prop_assert!(u1 >= 0.0 && u2 >= u1 * (1.0 - 1e-9), "{u1} then {u2}");
    }

    #[test]
    fn predictions_do_not_depend_on_the_time_unit(m in params(), (x, t_x, t_big) in history(), t in 1.0f64..100.0) {
        // Weeks to days: times × 7, alpha × 7.
        let days = m.rescaled(1.0 / 7.0).unwrap();
        let w = m.conditional_expected_purchases(t, x, t_x, t_big).unwrap();
        let d = days.conditional_expected_purchases(7.0 * t, x, 7.0 * t_x, 7.0 * t_big).unwrap();
        prop_assert!((w - d).abs() <= 1e-9 * w.abs().max(1.0), "{w} vs {d}");
        let pw = m.p_alive(x, t_x, t_big);
        let pd = days.p_alive(x, 7.0 * t_x, 7.0 * t_big);
        prop_assert!((pw - pd).abs() <= 1e-12, "{pw} vs {pd}");
    }
}

#[test]
fn likelihood_is_finite_for_extreme_histories() {
    let m = BgNbd::new(0.243, 4.414, 0.793, 2.426).unwrap();
    for (x, t_x, t_big) in [
        (500.0, 4999.0, 5000.0),
        (500.0, 10.0, 5000.0),
        (0.0, 0.0, 5000.0),
        (1.0, 1e-9, 1e6),
    ] {
        let ll = m.log_likelihood(x, t_x, t_big);
        assert!(ll.is_finite(), "LL({x}, {t_x}, {t_big}) = {ll}");
        let e = m
            .conditional_expected_purchases(52.0, x, t_x, t_big)
            .unwrap();
        assert!(e.is_finite() && e >= 0.0, "E = {e}");
    }
    let gg = GammaGamma::new(6.25, 3.74, 15.44).unwrap();
    assert!(gg.conditional_expected_value(500.0, 1e6).is_finite());
}
