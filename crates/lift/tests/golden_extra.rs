//! Golden tests for the formulas without a GrowthBook reference: F3b
//! (statsmodels `proportions_ztest`), F5/F6 cross-checked with scipy's
//! Welch test, F12 (Eppo), F13 (Statsig), F14 (Johari et al.), F15
//! Bonferroni intervals at α/m and Eppo's preferential Bonferroni, F19.
//! Values: `tests/fixtures/extra.json` (generator `gen_extra.py`, see the
//! fixtures' README), to |got − want| ≤ 1e-9 + 1e-6·|want|.
#![allow(clippy::unwrap_used)]

use lifecycle_lift::{
    Arm, Effect, Scale, TestResult, effect, incremental_total, multiple, pooled_z, scaled_impact,
    sequential, t_test,
};
use serde_json::Value;

fn extra() -> Value {
    serde_json::from_str(include_str!("fixtures/extra.json")).unwrap()
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
    assert!(
        (got - want).abs() <= 1e-9 + 1e-6 * want.abs(),
        "{what}: got {got}, want {want}"
    );
}

fn pair(v: &Value) -> (f64, f64) {
    (num(&v[0]), num(&v[1]))
}

fn cases<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().unwrap()
}

#[test]
fn pooled_z_and_welch() {
    let x = extra();
    for c in cases(&x, "pooled_z") {
        let name = c["name"].as_str().unwrap();
        let u = |k: &str| c[k].as_u64().unwrap();
        let (z, p) = pooled_z(num(&c["conv_a"]), u("n_a"), num(&c["conv_b"]), u("n_b")).unwrap();
        close(z, num(&c["z"]), &format!("{name} z"));
        close(p, num(&c["p_value"]), &format!("{name} p"));
    }
    for c in cases(&x, "welch") {
        let name = c["name"].as_str().unwrap();
        let arm = |v: &Value| Arm {
            n: num(&v["n"]),
            mean: num(&v["mean"]),
            var: num(&v["variance"]),
        };
        let e = effect(&arm(&c["control"]), &arm(&c["treatment"]), Scale::Absolute).unwrap();
        let t = t_test(&e, num(&c["alpha"])).unwrap();
        close(t.estimate, num(&c["delta"]), &format!("{name} delta"));
        close(t.se, num(&c["se"]), &format!("{name} se"));
        close(t.dof, num(&c["dof"]), &format!("{name} dof"));
        close(t.p_value, num(&c["p_value"]), &format!("{name} p"));
        let ci = pair(&c["ci"]);
        close(t.ci.0, ci.0, &format!("{name} lower"));
        close(t.ci.1, ci.1, &format!("{name} upper"));
    }
}

#[test]
fn eppo_statsig_and_johari_sequences() {
    let x = extra();
    for c in cases(&x, "eppo_sequential") {
        let name = c["name"].as_str().unwrap();
        let n = num(&c["n_a"]) + num(&c["n_b"]);
        let ci = sequential::eppo(
            num(&c["delta"]),
            num(&c["se"]),
            n,
            num(&c["c"]),
            num(&c["n_tune"]),
        )
        .unwrap();
        let want = pair(&c["ci"]);
        close(ci.0, want.0, &format!("{name} lower"));
        close(ci.1, want.1, &format!("{name} upper"));
    }
    for c in cases(&x, "statsig_msprt") {
        let name = c["name"].as_str().unwrap();
        let (ci, p) = sequential::statsig(
            num(&c["delta"]),
            num(&c["var_a"]),
            num(&c["n_a"]),
            num(&c["var_b"]),
            num(&c["n_b"]),
            num(&c["alpha"]),
        )
        .unwrap();
        let want = pair(&c["ci"]);
        close(ci.0, want.0, &format!("{name} lower"));
        close(ci.1, want.1, &format!("{name} upper"));
        close(p, num(&c["p_value_precise"]), &format!("{name} p"));
    }
    for c in cases(&x, "johari_msprt") {
        let name = c["name"].as_str().unwrap();
        let (tau2, alpha) = (num(&c["tau2"]), num(&c["alpha"]));
        let looks = c["looks"].as_array().unwrap();
        let mut per_look = Vec::new();
        for (i, l) in looks.iter().enumerate() {
            let (lambda, p, ci) =
                sequential::johari(num(&l["delta"]), num(&l["V"]), tau2, alpha).unwrap();
            close(lambda, num(&l["lambda"]), &format!("{name}[{i}] lambda"));
            close(p, num(&l["p_look"]), &format!("{name}[{i}] p"));
            let want = pair(&l["ci"]);
            close(ci.0, want.0, &format!("{name}[{i}] lower"));
            close(ci.1, want.1, &format!("{name}[{i}] upper"));
            per_look.push(p);
        }
        for (i, (got, l)) in sequential::always_valid(&per_look)
            .iter()
            .zip(looks)
            .enumerate()
        {
            close(
                *got,
                num(&l["p_always_valid"]),
                &format!("{name}[{i}] always valid"),
            );
        }
    }
}

#[test]
fn bonferroni_eppo_preferential_and_totals() {
    let x = extra();
    for c in cases(&x, "bonferroni_ci") {
        let name = c["name"].as_str().unwrap();
        let a = Arm {
            n: num(&c["n_a"]),
            mean: 0.0,
            var: num(&c["var_a"]),
        };
        let b = Arm {
            n: num(&c["n_b"]),
            mean: num(&c["delta"]),
            var: num(&c["var_b"]),
        };
        // The arms' means enter only through Δ: an absolute effect.
        let e = Effect {
            estimate: num(&c["delta"]),
            var: a.var / a.n + b.var / b.n,
            dof: {
                let (va, vb) = (a.var / a.n, b.var / b.n);
                (va + vb).powi(2) / (vb * vb / (b.n - 1.0) + va * va / (a.n - 1.0))
            },
            control_mean: 0.0,
            treatment_mean: 0.0,
        };
        let m = c["m"].as_u64().unwrap() as f64;
        let t = t_test(&e, num(&c["alpha"]) / m).unwrap();
        close(t.dof, num(&c["dof"]), &format!("{name} dof"));
        let want = pair(&c["ci"]);
        close(t.ci.0, want.0, &format!("{name} lower"));
        close(t.ci.1, want.1, &format!("{name} upper"));
        let plain = t_test(&e, num(&c["alpha"])).unwrap();
        close(
            plain.p_value,
            num(&c["p_value_precise"]),
            &format!("{name} p"),
        );
        // m tests with this p-value: each adjusted to min(1, p·m).
        let adj = multiple::bonferroni(&vec![plain.p_value; m as usize]);
        close(
            adj[0],
            num(&c["p_bonferroni"]),
            &format!("{name} bonferroni"),
        );
    }
    for c in cases(&x, "eppo_preferential") {
        let name = c["name"].as_str().unwrap();
        let (ap, ao) = multiple::eppo_preferential(
            num(&c["alpha"]),
            num(&c["gamma"]),
            c["k"].as_u64().unwrap() as u32,
            c["m"].as_u64().unwrap() as u32,
        )
        .unwrap();
        close(ap, num(&c["alpha_primary"]), &format!("{name} primary"));
        close(ao, num(&c["alpha_other"]), &format!("{name} other"));
        let e = Effect {
            estimate: num(&c["delta"]),
            var: num(&c["se"]).powi(2),
            dof: num(&c["dof"]),
            control_mean: 0.0,
            treatment_mean: 0.0,
        };
        for (level, key) in [(ap, "ci_primary"), (ao, "ci_other")] {
            let t = t_test(&e, level).unwrap();
            let want = pair(&c[key]);
            close(t.ci.0, want.0, &format!("{name} {key} lower"));
            close(t.ci.1, want.1, &format!("{name} {key} upper"));
        }
    }
    for c in x["scaled_impact"]["per_day_main"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (n, traffic, days) = (
            num(&c["n_all_arms"]),
            num(&c["traffic_percentage"]),
            num(&c["days"]),
        );
        close(
            scaled_impact(num(&c["delta_abs"]), n, traffic, days).unwrap(),
            num(&c["scaled_impact"]),
            name,
        );
        let ci = pair(&c["ci"]);
        let want = pair(&c["scaled_ci"]);
        close(
            scaled_impact(ci.0, n, traffic, days).unwrap(),
            want.0,
            &format!("{name} lower"),
        );
        close(
            scaled_impact(ci.1, n, traffic, days).unwrap(),
            want.1,
            &format!("{name} upper"),
        );
    }
    for c in x["scaled_impact"]["treated_total"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let ci = pair(&c["ci"]);
        let t = TestResult {
            estimate: num(&c["delta_abs"]),
            se: 0.0,
            ci,
            p_value: 1.0,
            dof: 1.0,
        };
        let (total, (lo, hi)) = incremental_total(&t, num(&c["n_treated"]));
        let want = pair(&c["total_ci"]);
        close(total, num(&c["total"]), name);
        close(lo, want.0, &format!("{name} lower"));
        close(hi, want.1, &format!("{name} upper"));
    }
}
