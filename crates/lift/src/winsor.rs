//! F20, winsorisation: the cap is the `q` quantile (linear interpolation,
//! as numpy's default) of the non-zero values pooled over the arms.

/// The cap; `None` when there is no non-zero value or `q` is not in [0, 1].
pub fn cap(values: &[&[f64]], q: f64) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut v: Vec<f64> = values
        .iter()
        .flat_map(|s| s.iter().copied())
        .filter(|x| *x != 0.0 && x.is_finite())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let h = (v.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    Some(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
}

/// Every value capped.
pub fn apply(values: &mut [f64], cap: f64) {
    for x in values.iter_mut() {
        *x = x.min(cap);
    }
}
