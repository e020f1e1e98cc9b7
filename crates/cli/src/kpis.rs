//! `analyze --kpis`: writes cohorts.csv and retention.csv and returns the
//! summary.json section.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use lifecycle_kpis::{Kpis, month_label};
use serde_json::{Value, json};

/// Writes the KPI files into `out` and returns the summary section.
pub fn write(k: &Kpis, out: &Path) -> Result<Value> {
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let mut cohorts = String::from("cohort,size,months_since,active,retention,revenue\n");
    for c in &k.cohorts {
        for (offset, (active, revenue)) in c.active.iter().zip(&c.revenue).enumerate() {
            let _ = writeln!(
                cohorts,
                "{},{},{offset},{active},{:.6},{revenue:.2}",
                month_label(c.month),
                c.size,
                if c.size > 0 {
                    *active as f64 / c.size as f64
                } else {
                    0.0
                }
            );
        }
    }
    let path = out.join("cohorts.csv");
    std::fs::write(&path, cohorts).with_context(|| format!("{}", path.display()))?;
    let mut retention = String::from("month,previous_active,retained,rate\n");
    for p in &k.period_retention {
        let _ = writeln!(
            retention,
            "{},{},{},{}",
            month_label(p.month),
            p.previous_active,
            p.retained,
            p.rate().map_or_else(String::new, |r| format!("{r:.6}"))
        );
    }
    let path = out.join("retention.csv");
    std::fs::write(&path, retention).with_context(|| format!("{}", path.display()))?;
    let rates: Vec<f64> = k.period_retention.iter().filter_map(|p| p.rate()).collect();
    Ok(json!({
        "customers": k.customers,
        "repeat_rate": k.repeat_rate,
        "churn_rate_last_month": k.period_retention.last().and_then(|p| p.rate()).map(|r| 1.0 - r),
        "retention_rate_last_month": k.period_retention.last().and_then(|p| p.rate()),
        "retention_rate_mean": (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64),
        "pareto_top20_share": k.pareto_top20_share,
        "pareto_top_n": k.pareto_top_n,
        "gini": k.gini,
        "days_between_orders": {
            "count": k.gaps.count, "mean": k.gaps.mean, "p25": k.gaps.p25, "p50": k.gaps.p50,
            "p75": k.gaps.p75, "p90": k.gaps.p90,
        },
        "cohorts": k.cohorts.iter().map(|c| json!({
            "cohort": month_label(c.month), "size": c.size,
            "retention": c.active.iter().map(|a| if c.size > 0 { *a as f64 / c.size as f64 } else { 0.0 }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "files": ["cohorts.csv", "retention.csv"],
    }))
}
