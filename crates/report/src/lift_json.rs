//! Lift results as JSON, one shape for `lifecycle lift --json` and the
//! server's live results: numbers with infinities as "inf"/"-inf" and
//! undefined values as null (never NaN).

use lifecycle_lift::TestResult;
use serde_json::{Value, json};

/// A number as JSON: finite as is, ±infinity as "inf"/"-inf", NaN as null.
pub fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        Value::Null
    } else if v > 0.0 {
        json!("inf")
    } else {
        json!("-inf")
    }
}

/// `{estimate, se, ci, p_value}`, or null when there is no result.
pub fn test_json(t: Option<&TestResult>) -> Value {
    t.map_or(Value::Null, |t| {
        json!({
            "estimate": num(t.estimate), "se": num(t.se),
            "ci": [num(t.ci.0), num(t.ci.1)], "p_value": num(t.p_value),
        })
    })
}
