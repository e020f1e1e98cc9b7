//! Golden tests: every formula of `../shared/specs/lift-statistics.md`
//! against values computed independently, to |got − want| ≤ 1e-9 +
//! 1e-6·|want|. The values (`tests/fixtures/reference.json`) come from
//! GrowthBook's stats engine on its main branch (commit in the file's
//! `meta`), scipy and statsmodels; `tests/fixtures/README.md` says how to
//! regenerate them. Where GrowthBook's engine refuses an input (no
//! variance in an arm, a zero baseline) it returns a default output with
//! an error message; Lifecycle returns `None` there.
#![allow(clippy::unwrap_used)]

use lifecycle_lift::bayes::{Prior, posterior};
use lifecycle_lift::readout::{Stat, effect_of};
use lifecycle_lift::{
    Arm, CupedKind, CupedSums, RatioSums, Scale, betabinom, fieller, multiple, power, sequential,
    srm, t_test, winsor,
};
use serde_json::Value;

fn reference() -> Value {
    let text = include_str!("fixtures/reference.json");
    serde_json::from_str(text).unwrap()
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        v => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

#[track_caller]
fn close(got: f64, want: f64, what: &str) {
    if want.is_infinite() {
        assert_eq!(got, want, "{what}");
        return;
    }
    assert!(
        (got - want).abs() <= 1e-9 + 1e-6 * want.abs(),
        "{what}: got {got}, want {want}"
    );
}

fn pair(v: &Value) -> (f64, f64) {
    (num(&v[0]), num(&v[1]))
}

fn stat(kind: &str, arm: &Value, cuped: CupedKind) -> Stat {
    let u = |k: &str| arm[k].as_u64().unwrap();
    let f = |k: &str| num(&arm[k]);
    match kind {
        "mean" => Stat::Plain(Arm::mean(u("n"), f("sum"), f("sum_squares"))),
        "proportion" => Stat::Plain(Arm::proportion(u("n"), f("sum"))),
        "ratio" => Stat::Ratio(RatioSums {
            n: u("n"),
            m_sum: f("m_sum"),
            m_sum_squares: f("m_sum_squares"),
            d_sum: f("d_sum"),
            d_sum_squares: f("d_sum_squares"),
            md_sum: f("md_sum"),
        }),
        "cuped" => Stat::Cuped(
            CupedSums {
                n: u("n"),
                y_sum: f("y_sum"),
                y_sum_squares: f("y_sum_squares"),
                x_sum: f("x_sum"),
                x_sum_squares: f("x_sum_squares"),
                xy_sum: f("xy_sum"),
            },
            cuped,
        ),
        other => panic!("unknown kind {other}"),
    }
}

/// F1–F9 with F6 (frequentist), F7 (Bayesian, flat and proper priors,
/// inverse) and F11 (sequential), on both scales, degenerate cases too.
#[test]
fn effects_tests_posteriors_and_sequences() {
    let r = reference();
    let cases = r["effect_cases"].as_array().unwrap();
    let mut checked = 0;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let kind = c["kind"].as_str().unwrap();
        let alpha = num(&c["alpha"]);
        let inputs = &c["inputs"];
        let cuped = if inputs["post_is_proportion"] == true && inputs["pre_is_proportion"] == true {
            CupedKind::Proportions
        } else {
            CupedKind::Means
        };
        let (a, b) = (
            stat(kind, &inputs["control"], cuped),
            stat(kind, &inputs["treatment"], cuped),
        );
        for (scale, key) in [(Scale::Relative, "relative"), (Scale::Absolute, "absolute")] {
            let res = &c["results"][key];
            let what = |s: &str| format!("{name} {key} {s}");
            let e = effect_of(&a, &b, scale);
            let freq = &res["frequentist"];
            if !freq["error_message"].is_null() {
                assert!(
                    e.is_none(),
                    "{}: GrowthBook refuses ({}), we answered {e:?}",
                    what("effect"),
                    freq["error_message"]
                );
                checked += 1;
                continue;
            }
            let e = e.unwrap_or_else(|| panic!("{}: no effect", what("effect")));
            let t = t_test(&e, alpha).unwrap();
            close(t.estimate, num(&freq["estimate"]), &what("estimate"));
            close(t.se, num(&freq["se"]), &what("se"));
            let ci = pair(&freq["ci"]);
            close(t.ci.0, ci.0, &what("ci lower"));
            close(t.ci.1, ci.1, &what("ci upper"));
            close(t.p_value, num(&freq["p_value_precise"]), &what("p"));
            if !freq["dof"].is_null() {
                close(t.dof, num(&freq["dof"]), &what("dof"));
            }
            for (block, prior, inverse) in [
                ("bayesian_flat", None, false),
                ("bayesian_flat_inverse", None, true),
                ("bayesian_proper", Some(Prior::GROWTHBOOK), false),
                ("bayesian_proper_inverse", Some(Prior::GROWTHBOOK), true),
            ] {
                let want = &res[block];
                if !want["error_message"].is_null() {
                    continue;
                }
                let what = |s: &str| format!("{name} {key} {block} {s}");
                let p = posterior(&e, scale, prior, inverse, alpha).unwrap();
                close(
                    p.chance_to_win,
                    num(&want["chance_to_win"]),
                    &what("chance to win"),
                );
                close(p.mean, num(&want["expected"]), &what("mean"));
                close(p.sd, num(&want["posterior_sd"]), &what("sd"));
                let ci = pair(&want["ci"]);
                close(p.ci.0, ci.0, &what("ci lower"));
                close(p.ci.1, ci.1, &what("ci upper"));
                let risk = pair(&want["risk"]);
                close(p.risk.0, risk.0, &what("risk control"));
                close(p.risk.1, risk.1, &what("risk treatment"));
            }
            let seq = &res["sequential"];
            if seq["error_message"].is_null() {
                let n_total = (a.n() + b.n()) as f64;
                let s = sequential::test(&e, n_total, alpha, sequential::DEFAULT_TUNING).unwrap();
                close(
                    sequential::rho(alpha, sequential::DEFAULT_TUNING),
                    num(&seq["rho"]),
                    &what("rho"),
                );
                let ci = pair(&seq["ci"]);
                close(s.ci.0, ci.0, &what("sequential ci lower"));
                close(s.ci.1, ci.1, &what("sequential ci upper"));
                close(s.p_value, num(&seq["p_value"]), &what("sequential p"));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * cases.len());
}

/// F10.
#[test]
fn sample_ratio_mismatch() {
    for c in reference()["srm_cases"].as_array().unwrap() {
        let observed: Vec<u64> = c["observed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let weights: Vec<f64> = c["weights"].as_array().unwrap().iter().map(num).collect();
        let p = srm::p_value(&observed, &weights);
        close(p, num(&c["p_value"]), c["name"].as_str().unwrap());
        assert_eq!(p < srm::FLAG_BELOW, c["flag_p_lt_0_001"] == true);
    }
}

/// F15: Holm, Benjamini–Hochberg, Bonferroni and GrowthBook's adjusted
/// intervals (±inf where the adjusted p-value is 1).
#[test]
fn multiple_testing() {
    for c in reference()["multiple_testing_cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let p: Vec<f64> = c["p_values"].as_array().unwrap().iter().map(num).collect();
        let alpha = num(&c["alpha"]);
        for (adj, key) in [
            (multiple::holm(&p), "holm"),
            (multiple::benjamini_hochberg(&p), "benjamini_hochberg"),
            (multiple::bonferroni(&p), "bonferroni"),
        ] {
            for (i, want) in c[key].as_array().unwrap().iter().enumerate() {
                close(adj[i], num(want), &format!("{name} {key}[{i}]"));
            }
        }
        let lifts: Vec<f64> = c["lifts"].as_array().unwrap().iter().map(num).collect();
        for (adj, key) in [
            (multiple::holm(&p), "adjusted_ci_holm"),
            (multiple::benjamini_hochberg(&p), "adjusted_ci_bh"),
        ] {
            for (i, want) in c[key].as_array().unwrap().iter().enumerate() {
                let want = pair(want);
                match multiple::adjusted_ci(lifts[i], adj[i], alpha) {
                    Some(ci) => {
                        close(ci.0, want.0, &format!("{name} {key}[{i}] lower"));
                        close(ci.1, want.1, &format!("{name} {key}[{i}] upper"));
                    }
                    None => assert!(
                        want.0.is_infinite() || (want.0 == 0.0 && want.1 == 0.0),
                        "{name} {key}[{i}]: want {want:?}"
                    ),
                }
            }
        }
    }
}

/// F16 power and MDE (plain and sequential), F16b sample size.
#[test]
fn power_mde_and_sample_size() {
    let r = reference();
    for c in r["power_cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let n = num(&c["n_total"]) / num(&c["variations"]);
        let tuning = c["sequential_tuning"].as_f64();
        let (mu, v, e, alpha) = (
            num(&c["mean"]),
            num(&c["unit_variance"]),
            num(&c["relative_effect"]),
            num(&c["alpha"]),
        );
        close(
            power::power(mu, v, n, e, alpha, tuning).unwrap(),
            num(&c["power"]),
            &format!("{name} power"),
        );
        match (
            power::mde(mu, v, n, alpha, num(&c["target_power"]), tuning),
            &c["mde"],
        ) {
            (Some(m), want) if !want.is_null() => close(m, num(want), &format!("{name} mde")),
            (None, want) => assert!(want.is_null(), "{name}: mde {want} expected"),
            (Some(m), _) => panic!("{name}: mde {m}, expected none"),
        }
    }
    for c in r["sample_size_cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let n = power::sample_size(
            num(&c["var_a"]),
            num(&c["var_b"]),
            num(&c["delta_abs"]),
            num(&c["alpha"]),
            num(&c["power"]),
        )
        .unwrap();
        close(n, num(&c["n_per_arm"]), name);
        // statsmodels' exact equation agrees to a few parts per million.
        let sm = num(&c["n_per_arm_statsmodels"]);
        assert!(
            (n - sm).abs() / sm < 1e-5,
            "{name}: {n} vs statsmodels {sm}"
        );
    }
}

/// F18, F20, F17.
#[test]
fn fieller_winsorisation_and_beta_binomial() {
    let r = reference();
    for c in r["fieller_cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let arm = |v: &Value| Arm {
            n: num(&v["n"]),
            mean: num(&v["mean"]),
            var: num(&v["variance"]),
        };
        let got = fieller(&arm(&c["control"]), &arm(&c["treatment"]), num(&c["alpha"]));
        match (&c["ci"], got) {
            (Value::Null, None) => {}
            (want, Some(ci)) if !want.is_null() => {
                let want = pair(want);
                close(ci.0, want.0, &format!("{name} lower"));
                close(ci.1, want.1, &format!("{name} upper"));
            }
            (want, got) => panic!("{name}: want {want}, got {got:?}"),
        }
    }
    for c in r["winsorization_cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let v = |k: &str| -> Vec<f64> { c[k].as_array().unwrap().iter().map(num).collect() };
        let (control, treatment) = (v("control"), v("treatment"));
        let cap = winsor::cap(&[&control, &treatment], num(&c["quantile"])).unwrap();
        close(cap, num(&c["cap"]), name);
        let mut t = treatment.clone();
        winsor::apply(&mut t, cap);
        for (got, want) in t.iter().zip(v("treatment_capped")) {
            close(*got, want, &format!("{name} capped"));
        }
    }
    for c in r["beta_binomial_cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let u = |a: &str, k: &str| c[a][k].as_u64().unwrap();
        let (xa, na, xb, nb) = (
            u("control", "conversions"),
            u("control", "n"),
            u("treatment", "conversions"),
            u("treatment", "n"),
        );
        close(
            betabinom::chance_to_beat(xa, na, xb, nb).unwrap(),
            num(&c["p_treatment_beats_control"]),
            &format!("{name} P(B > A)"),
        );
        close(
            betabinom::expected_loss(xa, na, xb, nb).unwrap(),
            num(&c["expected_loss_pA_minus_pB"]),
            &format!("{name} loss"),
        );
    }
}
