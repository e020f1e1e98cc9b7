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
        "lorenz": k.lorenz.iter().map(|(x, y)| [*x, *y]).collect::<Vec<_>>(),
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

/// stickiness.csv and its summary: per attribute column and value, the
/// share of new customers who ordered again within the window (Wilson
/// interval), their first-year value, and whether the rate differs from
/// the other customers' (two-proportion z, Benjamini–Hochberg over every
/// group of every column).
pub fn write_stickiness(
    columns: &[(String, Vec<lifecycle_kpis::Stickiness>)],
    days: i32,
    out: &Path,
) -> Result<Value> {
    let all = columns.first().and_then(|c| c.1.first());
    let (n_all, k_all) = all.map_or((0, 0), |a| (a.new_customers, a.repeated));
    let mut rows: Vec<(String, &lifecycle_kpis::Stickiness, Option<f64>)> = Vec::new();
    for (column, groups) in columns {
        for g in groups.iter().skip(1) {
            // The group against everyone else.
            let (n_rest, k_rest) = (n_all - g.new_customers, k_all - g.repeated);
            let p =
                lifecycle_lift::pooled_z(k_rest as f64, n_rest, g.repeated as f64, g.new_customers)
                    .map(|(_, p)| p);
            rows.push((column.clone(), g, p));
        }
    }
    let ps: Vec<f64> = rows.iter().map(|r| r.2.unwrap_or(1.0)).collect();
    let adjusted = lifecycle_lift::multiple::benjamini_hochberg(&ps);
    let mut csv = format!(
        "attribute,value,new_customers,repeated_within_{days}_days,rate,ci_low,ci_high,vs_others_p_adjusted,first_year_customers,first_year_value\n"
    );
    let mut groups = Vec::new();
    for ((column, g, _), p) in rows.iter().zip(&adjusted) {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.6},{:.6},{:.6},{:.6},{},{}",
            crate::csv_text(column),
            crate::csv_text(&g.group),
            g.new_customers,
            g.repeated,
            g.rate,
            g.ci.0,
            g.ci.1,
            p,
            g.value_customers,
            g.value_mean.map_or_else(String::new, |v| format!("{v:.2}"))
        );
        groups.push(json!({
            "attribute": column, "value": g.group, "new_customers": g.new_customers,
            "rate": g.rate, "ci": [g.ci.0, g.ci.1], "p_adjusted": p,
            "differs": *p < 0.05, "first_year_value": g.value_mean,
        }));
    }
    let path = out.join("stickiness.csv");
    std::fs::write(&path, csv).with_context(|| format!("{}", path.display()))?;
    Ok(json!({
        "window_days": days,
        "overall": all.map(|a| json!({"new_customers": a.new_customers, "rate": a.rate, "ci": [a.ci.0, a.ci.1], "first_year_value": a.value_mean})),
        "groups": groups,
        "file": "stickiness.csv",
    }))
}

/// anomalies.csv and the headline findings: attribute values over- or
/// under-represented in a segment (at least 30 customers with the value;
/// Benjamini–Hochberg over everything tested).
pub fn write_anomalies(
    analysis: &lifecycle_rfm::Analysis,
    table: &lifecycle_rfm::SegmentTable,
    attributes: &lifecycle_ingest::attributes::AttributesFile,
    out: &Path,
) -> Result<Value> {
    use std::collections::BTreeMap;
    let segments = table.segments();
    let k = segments.len();
    let mut totals = vec![0u64; k];
    let columns = attributes.columns();
    let mut counts: Vec<BTreeMap<String, Vec<u64>>> = vec![BTreeMap::new(); columns.len()];
    for c in analysis.customers() {
        let seg = c.segment.min(k.saturating_sub(1));
        totals[seg] += 1;
        let Some(a) = attributes.get(&c.summary.customer_id) else {
            continue;
        };
        for (i, map) in counts.iter_mut().enumerate() {
            if let Some(v) = a.column(i) {
                map.entry(v.to_string()).or_insert_with(|| vec![0; k])[seg] += 1;
            }
        }
    }
    let input: Vec<lifecycle_kpis::AttributeCounts> = columns
        .iter()
        .zip(counts)
        .map(|(c, m)| lifecycle_kpis::AttributeCounts {
            attribute: c.clone(),
            values: m.into_iter().collect(),
        })
        .collect();
    let findings = lifecycle_kpis::anomalies(&input, &totals, 30);
    let mut csv = String::from(
        "attribute,value,segment,customers,in_segment,rate,rate_others,lift,ci_low,ci_high,p_value,p_adjusted\n",
    );
    for f in &findings {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.6},{:.6},{:.4},{},{},{:.6e},{:.6e}",
            crate::csv_text(&f.attribute),
            crate::csv_text(&f.value),
            crate::csv_text(&segments[f.segment].name),
            f.customers,
            f.in_segment,
            f.rate,
            f.rate_others,
            f.lift,
            f.ci.map_or_else(String::new, |c| format!("{:.4}", c.0)),
            f.ci.map_or_else(String::new, |c| format!("{:.4}", c.1)),
            f.p_value,
            f.p_adjusted
        );
    }
    let path = out.join("anomalies.csv");
    std::fs::write(&path, csv).with_context(|| format!("{}", path.display()))?;
    let headlines: Vec<Value> = findings
        .iter()
        .filter(|f| f.p_adjusted < 0.05 && f.in_segment >= 10 && f.lift.is_finite())
        .take(10)
        .map(|f| {
            let who = if f.attribute == "acquisition_channel" {
                format!("Customers acquired through {}", f.value)
            } else {
                format!("Customers with {} {}", f.attribute, f.value)
            };
            let text = if f.lift >= 1.0 {
                format!(
                    "{who} are {:.1}× as likely to be {} as the others.",
                    f.lift, segments[f.segment].name
                )
            } else {
                format!(
                    "{who} are {:.1}× less likely to be {} than the others.",
                    1.0 / f.lift,
                    segments[f.segment].name
                )
            };
            json!({
                "text": text, "attribute": f.attribute, "value": f.value,
                "segment": segments[f.segment].name, "lift": f.lift,
                "ci": f.ci.map(|c| [c.0, c.1]), "p_adjusted": f.p_adjusted,
            })
        })
        .collect();
    Ok(json!({"tested": findings.len(), "headlines": headlines, "file": "anomalies.csv"}))
}

/// ltv_cac.csv and its summary: predicted CLV (`--clv`, on margin)
/// against acquisition cost, per acquisition channel.
pub fn write_ltv_cac(
    analysis: &lifecycle_rfm::Analysis,
    clv: &[f64],
    attributes: &lifecycle_ingest::attributes::AttributesFile,
    out: &Path,
) -> Result<Value> {
    let rows = analysis.customers().zip(clv).map(|(c, v)| {
        let a = attributes.get(&c.summary.customer_id);
        (
            a.and_then(|a| a.acquisition_channel.as_deref()),
            *v,
            a.and_then(|a| a.acquisition_cost),
        )
    });
    let groups = lifecycle_kpis::ltv_cac(rows);
    let mut csv = String::from("acquisition_channel,customers,mean_clv,mean_cac,ltv_cac\n");
    for g in &groups {
        let _ = writeln!(
            csv,
            "{},{},{:.4},{:.4},{}",
            crate::csv_text(&g.group),
            g.customers,
            g.mean_clv,
            g.mean_cac,
            g.ratio.map_or_else(String::new, |r| format!("{r:.4}"))
        );
    }
    let path = out.join("ltv_cac.csv");
    std::fs::write(&path, csv).with_context(|| format!("{}", path.display()))?;
    Ok(json!({
        "groups": groups.iter().map(|g| json!({
            "acquisition_channel": g.group, "customers": g.customers,
            "mean_clv": g.mean_clv, "mean_cac": g.mean_cac, "ltv_cac": g.ratio,
        })).collect::<Vec<_>>(),
        "file": "ltv_cac.csv",
    }))
}
