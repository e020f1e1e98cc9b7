//! The insight files and their summary.json sections: each `write_*`
//! writes its CSV into the output folder and returns its JSON.

use std::fmt::Write as _;
use std::path::Path;

use crate::{InsightsError, csv_text, write_file};

type Result<T> = std::result::Result<T, InsightsError>;
use lifecycle_kpis::{Kpis, month_label};
use serde_json::{Value, json};

/// Writes the KPI files into `out` and returns the summary section.
pub fn write(k: &Kpis, period: lifecycle_kpis::Period, out: &Path) -> Result<Value> {
    std::fs::create_dir_all(out).map_err(|e| InsightsError::io(out, e))?;
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
    write_file(&path, cohorts)?;
    let mut by_period = serde_json::Map::new();
    for p in lifecycle_kpis::Period::ALL {
        let name = p.name();
        let mut csv = format!("{name},previous_active,retained,rate\n");
        for r in k.retention(p) {
            let _ = writeln!(
                csv,
                "{},{},{},{}",
                p.label(r.month),
                r.previous_active,
                r.retained,
                r.rate().map_or_else(String::new, |x| format!("{x:.6}"))
            );
        }
        let file = if p == lifecycle_kpis::Period::Month {
            "retention.csv".to_string()
        } else {
            format!("retention_{name}.csv")
        };
        let path = out.join(&file);
        write_file(&path, csv)?;
        let rates: Vec<f64> = k.retention(p).iter().filter_map(|r| r.rate()).collect();
        by_period.insert(
            name.into(),
            json!({
                "last": k.retention(p).last().and_then(|r| r.rate()),
                "last_period": k.retention(p).last().map(|r| p.label(r.month)),
                "mean": (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64),
                "file": file,
            }),
        );
    }
    let chosen = by_period.get(period.name()).cloned().unwrap_or(Value::Null);
    let rates: Vec<f64> = k.period_retention.iter().filter_map(|p| p.rate()).collect();
    Ok(json!({
        "customers": k.customers,
        "repeat_rate": k.repeat_rate,
        "retention_period": period.name(),
        "retention_rate_last_period": chosen["last"],
        "churn_rate_last_period": chosen["last"].as_f64().map(|r| 1.0 - r),
        "retention_by_period": by_period,
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
            "histogram": k.gap_histogram.iter().map(|(a, b, n)| json!([a, b, n])).collect::<Vec<_>>(),
        },
        "cohorts": k.cohorts.iter().map(|c| json!({
            "cohort": month_label(c.month), "size": c.size,
            "retention": c.active.iter().map(|a| if c.size > 0 { *a as f64 / c.size as f64 } else { 0.0 }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "files": ["cohorts.csv", "retention.csv", "retention_quarter.csv", "retention_year.csv"],
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
            // Groups too small for the normal approximation are shown, not tested.
            let p = (g.new_customers >= MIN_TESTED && n_rest >= MIN_TESTED)
                .then(|| {
                    lifecycle_lift::pooled_z(
                        k_rest as f64,
                        n_rest,
                        g.repeated as f64,
                        g.new_customers,
                    )
                    .map(|(_, p)| p)
                })
                .flatten();
            rows.push((column.clone(), g, p));
        }
    }
    // Benjamini–Hochberg over the groups tested only.
    let ps: Vec<f64> = rows.iter().filter_map(|r| r.2).collect();
    let mut bh = lifecycle_lift::multiple::benjamini_hochberg(&ps).into_iter();
    let adjusted: Vec<Option<f64>> = rows.iter().map(|r| r.2.and_then(|_| bh.next())).collect();
    let mut csv = format!(
        "attribute,value,new_customers,repeated_within_{days}_days,rate,ci_low,ci_high,vs_others_p_adjusted,first_year_customers,first_year_value\n"
    );
    let mut groups = Vec::new();
    for ((column, g, _), p) in rows.iter().zip(&adjusted) {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.6},{:.6},{:.6},{},{},{}",
            csv_text(column),
            csv_text(&g.group),
            g.new_customers,
            g.repeated,
            g.rate,
            g.ci.0,
            g.ci.1,
            p.map_or_else(String::new, |p| format!("{p:.6}")),
            g.value_customers,
            g.value_mean.map_or_else(String::new, |v| format!("{v:.2}"))
        );
        groups.push(json!({
            "attribute": column, "value": g.group, "new_customers": g.new_customers,
            "rate": g.rate, "ci": [g.ci.0, g.ci.1], "p_adjusted": p,
            "differs": p.is_some_and(|p| p < 0.05), "first_year_value": g.value_mean,
        }));
    }
    let path = out.join("stickiness.csv");
    write_file(&path, csv)?;
    Ok(json!({
        "window_days": days,
        "overall": all.map(|a| json!({"new_customers": a.new_customers, "rate": a.rate, "ci": [a.ci.0, a.ci.1], "first_year_value": a.value_mean})),
        "groups": groups,
        "file": "stickiness.csv",
    }))
}

/// anomalies.csv and the headline findings: values of every dimension
/// over- or under-represented in a segment or among one-time buyers (at
/// least 30 customers with the value; Benjamini–Hochberg over everything
/// tested).
pub fn write_anomalies(
    analysis: &lifecycle_rfm::Analysis,
    table: &lifecycle_rfm::SegmentTable,
    dims: &Dimensions<'_>,
    out: &Path,
) -> Result<Value> {
    use std::collections::BTreeMap;
    let mut outcomes: Vec<String> = table.segments().iter().map(|s| s.name.clone()).collect();
    let k = outcomes.len();
    outcomes.push(ONE_TIME.to_string());
    let mut totals = vec![0u64; k + 1];
    let columns = dims.names();
    let mut counts: Vec<BTreeMap<String, (u64, Vec<u64>)>> = vec![BTreeMap::new(); columns.len()];
    let mut total = 0u64;
    for c in analysis.customers() {
        let seg = c.segment.min(k.saturating_sub(1));
        let one_time = c.summary.n_purchase_days == 1;
        total += 1;
        totals[seg] += 1;
        if one_time {
            totals[k] += 1;
        }
        for (map, v) in counts.iter_mut().zip(dims.values(&c.summary.customer_id)) {
            if let Some(v) = v {
                if !map.contains_key(v) {
                    map.insert(v.to_string(), (0, vec![0; k + 1]));
                }
                let Some(cell) = map.get_mut(v) else { continue };
                cell.0 += 1;
                cell.1[seg] += 1;
                if one_time {
                    cell.1[k] += 1;
                }
            }
        }
    }
    let input: Vec<lifecycle_kpis::AttributeCounts> = columns
        .iter()
        .zip(counts)
        .map(|(c, m)| lifecycle_kpis::AttributeCounts {
            attribute: c.clone(),
            values: m.into_iter().map(|(v, (n, per))| (v, n, per)).collect(),
        })
        .collect();
    let findings = lifecycle_kpis::anomalies(&input, &totals, total, MIN_TESTED);
    let mut csv = String::from(
        "attribute,value,segment,customers,in_segment,rate,rate_others,lift,ci_low,ci_high,p_value,p_adjusted\n",
    );
    for f in &findings {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.6},{:.6},{:.4},{},{},{:.6e},{:.6e}",
            csv_text(&f.attribute),
            csv_text(&f.value),
            csv_text(&outcomes[f.segment]),
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
    write_file(&path, csv)?;
    let headlines: Vec<Value> = findings
        .iter()
        .filter(|f| f.p_adjusted < 0.05 && f.in_segment >= 10 && f.lift.is_finite())
        .take(10)
        .map(|f| {
            let who = who(&f.attribute, &f.value);
            let what = if f.segment == k {
                "stay one-time buyers".to_string()
            } else {
                format!("be {}", outcomes[f.segment])
            };
            let text = if f.lift >= 1.0 {
                format!(
                    "{who} are {:.1}× as likely to {what} as the others.",
                    f.lift
                )
            } else {
                format!(
                    "{who} are {:.1}× less likely to {what} than the others.",
                    1.0 / f.lift
                )
            };
            json!({
                "text": text, "attribute": f.attribute, "value": f.value,
                "segment": outcomes[f.segment], "lift": f.lift,
                "ci": f.ci.map(|c| [c.0, c.1]), "p_adjusted": f.p_adjusted,
            })
        })
        .collect();
    Ok(json!({"tested": findings.len(), "headlines": headlines, "file": "anomalies.csv"}))
}

/// Acquisition costs per customer: the attributes' own cost, else the
/// channel's spend in the acquisition month shared over the customers it
/// acquired that month.
pub struct Costs<'a> {
    attributes: &'a lifecycle_ingest::attributes::AttributesFile,
    spend: lifecycle_kpis::lines::HashMap<(&'a str, lifecycle_kpis::Month), f64>,
    acquired: lifecycle_kpis::lines::HashMap<(&'a str, lifecycle_kpis::Month), u64>,
}

/// A customer's acquisition channel, or `(unknown)`.
pub fn channel_of<'a>(
    attributes: &'a lifecycle_ingest::attributes::AttributesFile,
    id: &str,
) -> &'a str {
    attributes
        .get(id)
        .and_then(|a| a.column(0))
        .unwrap_or("(unknown)")
}

impl<'a> Costs<'a> {
    pub fn new(
        analysis: &lifecycle_rfm::Analysis,
        attributes: &'a lifecycle_ingest::attributes::AttributesFile,
        spend: Option<&'a lifecycle_ingest::spend::Spend>,
    ) -> Costs<'a> {
        let mut acquired = lifecycle_kpis::lines::HashMap::default();
        let spend: lifecycle_kpis::lines::HashMap<_, _> = spend
            .map(|s| s.iter().map(|((c, m), v)| ((c.as_str(), *m), *v)).collect())
            .unwrap_or_default();
        if !spend.is_empty() {
            for c in analysis.customers() {
                if let Some(first) = c.summary.first_order {
                    let key = (
                        channel_of(attributes, &c.summary.customer_id),
                        lifecycle_kpis::month_of(first),
                    );
                    *acquired.entry(key).or_insert(0) += 1;
                }
            }
        }
        Costs {
            attributes,
            spend,
            acquired,
        }
    }

    /// The customer's acquisition cost, if known.
    pub fn cac(&self, id: &str, first_order: Option<lifecycle_rfm::Day>) -> Option<f64> {
        if let Some(c) = self.attributes.get(id).and_then(|a| a.acquisition_cost) {
            return Some(c);
        }
        let key = (
            channel_of(self.attributes, id),
            lifecycle_kpis::month_of(first_order?),
        );
        let spend = self.spend.get(&key)?;
        let n = *self.acquired.get(&key)?;
        (n > 0).then(|| spend / n as f64)
    }

    /// Spend of months and channels that acquired nobody (not shared out).
    pub fn unattributed_spend(&self) -> f64 {
        self.spend
            .iter()
            .filter(|(k, _)| !self.acquired.contains_key(*k))
            .fold(0.0, |acc, (_, v)| acc + v)
    }
}

/// ltv_cac.csv (by acquisition channel) and ltv_cac_cohorts.csv (by
/// acquisition month): predicted CLV on margin (`clv` from `--clv`, times
/// each customer's margin factor) against acquisition cost.
pub fn write_ltv_cac(
    analysis: &lifecycle_rfm::Analysis,
    clv: &[f64],
    costs: &Costs<'_>,
    margin_factor: &dyn Fn(&str) -> f64,
    out: &Path,
) -> Result<Value> {
    let rows: Vec<(&str, Option<lifecycle_kpis::Month>, f64, Option<f64>)> = analysis
        .customers()
        .zip(clv)
        .map(|(c, v)| {
            let id = &c.summary.customer_id;
            (
                channel_of(costs.attributes, id),
                c.summary.first_order.map(lifecycle_kpis::month_of),
                v * margin_factor(id),
                costs.cac(id, c.summary.first_order),
            )
        })
        .collect();
    let labels: std::collections::BTreeMap<lifecycle_kpis::Month, String> = rows
        .iter()
        .filter_map(|r| r.1)
        .map(|m| (m, month_label(m)))
        .collect();
    let by_channel = lifecycle_kpis::ltv_cac(
        rows.iter()
            .map(|r| (Some(r.0).filter(|c| *c != "(unknown)"), r.2, r.3)),
    );
    let by_cohort = lifecycle_kpis::ltv_cac(rows.iter().map(|r| {
        (
            r.1.and_then(|m| labels.get(&m)).map(String::as_str),
            r.2,
            r.3,
        )
    }));
    let write = |name: &str, label: &str, groups: &[lifecycle_kpis::LtvCac]| -> Result<()> {
        let mut csv = format!("{label},customers,mean_clv,mean_cac,ltv_cac\n");
        for g in groups {
            let _ = writeln!(
                csv,
                "{},{},{:.4},{:.4},{}",
                csv_text(&g.group),
                g.customers,
                g.mean_clv,
                g.mean_cac,
                g.ratio.map_or_else(String::new, |r| format!("{r:.4}"))
            );
        }
        let path = out.join(name);
        write_file(&path, csv)
    };
    write("ltv_cac.csv", "acquisition_channel", &by_channel)?;
    let mut cohorts = by_cohort;
    // "all" first, then the months in order.
    cohorts
        .get_mut(1..)
        .unwrap_or_default()
        .sort_by(|a, b| a.group.cmp(&b.group));
    write("ltv_cac_cohorts.csv", "cohort", &cohorts)?;
    let json_of = |key: &str, g: &lifecycle_kpis::LtvCac| {
        json!({
            key: g.group, "customers": g.customers,
            "mean_clv": g.mean_clv, "mean_cac": g.mean_cac, "ltv_cac": g.ratio,
        })
    };
    Ok(json!({
        "groups": by_channel.iter().map(|g| json_of("acquisition_channel", g)).collect::<Vec<_>>(),
        "cohorts": cohorts.iter().map(|g| json_of("cohort", g)).collect::<Vec<_>>(),
        "files": ["ltv_cac.csv", "ltv_cac_cohorts.csv"],
    }))
}

/// payback.csv: per acquisition channel, the months until the margin
/// earned per customer reaches the mean acquisition cost.
pub fn write_payback(
    analysis: &lifecycle_rfm::Analysis,
    payback: lifecycle_kpis::PaybackBuilder,
    costs: &Costs<'_>,
    out: &Path,
) -> Result<Value> {
    let mut sums: std::collections::HashMap<&str, (f64, u64)> = std::collections::HashMap::new();
    for c in analysis.customers() {
        if let Some(cac) = costs.cac(&c.summary.customer_id, c.summary.first_order) {
            let e = sums
                .entry(channel_of(costs.attributes, &c.summary.customer_id))
                .or_insert((0.0, 0));
            e.0 += cac;
            e.1 += 1;
        }
    }
    let groups = payback.finish(|g| sums.get(g).map(|(s, n)| s / *n as f64));
    let at = |p: &lifecycle_kpis::Payback, m: usize| p.cumulative.get(m).copied();
    let mut csv = String::from(
        "acquisition_channel,customers,mean_cac,payback_months,margin_month_0,margin_3_months,margin_6_months,margin_12_months,months_observed\n",
    );
    let f = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.2}"));
    for p in &groups {
        let _ = writeln!(
            csv,
            "{},{},{:.2},{},{},{},{},{},{}",
            csv_text(&p.group),
            p.customers,
            p.mean_cac,
            p.months.map_or_else(String::new, |m| m.to_string()),
            f(at(p, 0)),
            f(at(p, 3)),
            f(at(p, 6)),
            f(at(p, 12)),
            p.cumulative.len()
        );
    }
    let path = out.join("payback.csv");
    write_file(&path, csv)?;
    Ok(json!({
        "groups": groups.iter().map(|p| json!({
            "acquisition_channel": p.group, "customers": p.customers, "mean_cac": p.mean_cac,
            "payback_months": p.months, "cumulative_margin": p.cumulative,
        })).collect::<Vec<_>>(),
        "unattributed_spend": costs.unattributed_spend(),
        "file": "payback.csv",
    }))
}

/// Customers a group needs before its difference is tested.
pub const MIN_TESTED: u64 = 30;

/// The outcome beside the segments in anomalies: a single purchase day.
pub const ONE_TIME: &str = "One-time buyers";

/// Who a finding is about, in words.
fn who(attribute: &str, value: &str) -> String {
    match attribute {
        "acquisition_channel" => format!("Customers acquired through {value}"),
        "city" | "country" | "region" | "state" => format!("Customers in {value}"),
        "age_band" => format!("Customers aged {value}"),
        "first_product" => format!("Customers whose first order was {value}"),
        "first_category" => format!("Customers who started with {value}"),
        "first_brand" => format!("Buyers of brand {value} (first order)"),
        "first_discount_code" if value == "(none)" => "Customers who started without a code".into(),
        "first_discount_code" => format!("Customers who started with code {value}"),
        _ => format!("Customers with {attribute} {value}"),
    }
}

/// Columns that identify or contact a customer, or are dates: never
/// grouped by.
const CONTACT: &[&str] = &[
    "signupdate",
    "signedupat",
    "createdat",
    "registeredat",
    "registrationdate",
    "firstseen",
    "lastseen",
    "updatedat",
    "email",
    "emailaddress",
    "phone",
    "phonenumber",
    "mobile",
    "name",
    "firstname",
    "lastname",
    "fullname",
    "address",
    "address1",
    "address2",
    "street",
    "zip",
    "zipcode",
    "postcode",
    "postalcode",
];
/// Columns holding an age, or a birth date an age is derived from.
const AGE: &[&str] = &["age", "customerage"];
const BIRTH: &[&str] = &["birthdate", "dateofbirth", "dob", "birthday"];
/// A column with more distinct values than this is not grouped by.
pub const MAX_GROUPS: usize = 2000;

/// The age band of an age in years.
pub fn age_band(age: f64) -> &'static str {
    match age {
        a if a < 18.0 => "under 18",
        a if a < 25.0 => "18-24",
        a if a < 35.0 => "25-34",
        a if a < 45.0 => "35-44",
        a if a < 55.0 => "45-54",
        a if a < 65.0 => "55-64",
        _ => "65+",
    }
}

/// Order lines grouped per customer, with their names.
pub struct LineFacts {
    pub table: lifecycle_kpis::lines::LineTable,
    pub customers: Vec<Option<lifecycle_kpis::lines::CustomerLines>>,
    /// The lines had a cost or margin rate.
    pub has_cost: bool,
}

impl LineFacts {
    pub fn get(&self, id: &str) -> Option<&lifecycle_kpis::lines::CustomerLines> {
        let i = self
            .table
            .customers
            .get(&lifecycle_ingest::attributes::normalized_id(id))?;
        self.customers.get(i as usize)?.as_ref()
    }
}

/// What the KPIs group customers by: the attributes' columns (contact
/// columns left out, an age or birth date as an age band), and from the
/// order lines the first order's product, category, brand and discount code.
pub struct Dimensions<'a> {
    attributes: Option<&'a lifecycle_ingest::attributes::AttributesFile>,
    /// (attribute column index for `Attributes::column`, name).
    columns: Vec<(usize, String)>,
    /// The age column, and whether it is a birth date.
    age: Option<(usize, bool)>,
    lines: Option<&'a LineFacts>,
    as_of: lifecycle_rfm::Day,
    /// Columns left out, with why.
    pub skipped: Vec<String>,
}

impl<'a> Dimensions<'a> {
    pub fn new(
        attributes: Option<&'a lifecycle_ingest::attributes::AttributesFile>,
        lines: Option<&'a LineFacts>,
        as_of: lifecycle_rfm::Day,
    ) -> Dimensions<'a> {
        let mut d = Dimensions {
            attributes,
            columns: Vec::new(),
            age: None,
            lines,
            as_of,
            skipped: Vec::new(),
        };
        if let Some(a) = attributes {
            for (i, name) in a.columns().into_iter().enumerate() {
                let n = lifecycle_ingest::normalize(&name);
                if CONTACT.contains(&n.as_str()) {
                    continue;
                }
                if AGE.contains(&n.as_str()) || BIRTH.contains(&n.as_str()) {
                    d.age = d.age.or(Some((i, BIRTH.contains(&n.as_str()))));
                    continue;
                }
                let distinct: std::collections::HashSet<&str> =
                    a.customers.values().filter_map(|c| c.column(i)).collect();
                if distinct.len() > MAX_GROUPS {
                    d.skipped.push(format!(
                        "{name}: {} distinct values (more than {MAX_GROUPS}), not grouped by",
                        distinct.len()
                    ));
                    continue;
                }
                d.columns.push((i, name));
            }
        }
        d
    }

    /// The dimensions' names.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.columns.iter().map(|c| c.1.clone()).collect();
        if self.age.is_some() {
            out.push("age_band".into());
        }
        if let Some(l) = self.lines {
            out.push("first_product".into());
            if !l.table.categories.is_empty() {
                out.push("first_category".into());
            }
            if !l.table.brands.is_empty() {
                out.push("first_brand".into());
            }
            if !l.table.discounts.is_empty() {
                out.push("first_discount_code".into());
            }
        }
        out
    }

    /// A customer's value of each dimension (parallel to [`Self::names`]).
    pub fn values(&self, id: &str) -> Vec<Option<&'a str>> {
        let attr = self.attributes.and_then(|a| a.get(id));
        let mut out: Vec<Option<&'a str>> = self
            .columns
            .iter()
            .map(|(i, _)| attr.and_then(|a| a.column(*i)))
            .collect();
        if let Some((i, birth)) = self.age {
            let v = attr.and_then(|a| a.column(i));
            let age = v.and_then(|v| {
                if birth {
                    let born = lifecycle_ingest::parse_day(v).ok()?;
                    Some(f64::from(self.as_of - born) / 365.2425)
                } else {
                    lifecycle_ingest::parse_amount(v).ok()
                }
            });
            out.push(age.filter(|a| (0.0..130.0).contains(a)).map(age_band));
        }
        if let Some(l) = self.lines {
            let c = l.get(id);
            let t = &l.table;
            out.push(c.map(|c| t.products.name(c.first_product)));
            if !t.categories.is_empty() {
                out.push(
                    c.and_then(|c| c.first_category)
                        .map(|x| t.categories.name(x)),
                );
            }
            if !t.brands.is_empty() {
                out.push(c.and_then(|c| c.first_brand).map(|x| t.brands.name(x)));
            }
            if !t.discounts.is_empty() {
                out.push(c.map(|c| c.first_discount.map_or("(none)", |x| t.discounts.name(x))));
            }
        }
        out
    }
}

/// Customers a rule needs before it is tested.
pub const MIN_RULE_CUSTOMERS: u64 = 10;
/// Rules written to affinities.csv at most (the strongest first).
pub const MAX_RULES_WRITTEN: usize = 10_000;

/// From the order lines: margin concentration, affinities.csv (rules
/// "bought A, later bought B") and next_best.csv (each customer's next best
/// product), and their summary.
pub fn write_lines(l: &LineFacts, out: &Path) -> Result<Value> {
    use lifecycle_kpis::lines::{affinities, next_best};
    let t = &l.table;
    let buyers: Vec<&lifecycle_kpis::lines::CustomerLines> = l.customers.iter().flatten().collect();
    let revenue: f64 = buyers.iter().map(|c| c.revenue).sum();
    let margins: Vec<f64> = buyers.iter().filter_map(|c| c.margin).collect();
    let margin_total: f64 = margins.iter().sum();
    let margin = l.has_cost.then(|| lifecycle_kpis::concentration(margins));
    let rules = affinities(&l.customers, MIN_RULE_CUSTOMERS);
    let strong = rules.iter().filter(|r| r.p_adjusted < 0.05).count();
    let mut csv = String::from(
        "bought,later_bought,customers,bought_customers,later_bought_customers,support,confidence,lift,expected,lift_adjusted,p_value,p_adjusted\n",
    );
    for r in rules.iter().take(MAX_RULES_WRITTEN) {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.6},{:.6},{:.4},{:.3},{:.4},{:.6e},{:.6e}",
            csv_text(t.products.name(r.antecedent)),
            csv_text(t.products.name(r.consequent)),
            r.customers,
            r.antecedent_customers,
            r.consequent_customers,
            r.support,
            r.confidence,
            r.lift,
            r.expected,
            r.lift_adjusted,
            r.p_value,
            r.p_adjusted
        );
    }
    let path = out.join("affinities.csv");
    write_file(&path, csv)?;
    let next = next_best(&l.customers, &rules, 0.05);
    let mut csv = String::from("customer_id,product,because_bought,confidence\n");
    let mut with_next = 0u64;
    for (i, n) in next.iter().enumerate() {
        if let Some(n) = n {
            with_next += 1;
            let _ = writeln!(
                csv,
                "{},{},{},{:.4}",
                csv_text(t.customers.name(i as u32)),
                csv_text(t.products.name(n.product)),
                csv_text(t.products.name(n.because)),
                n.confidence
            );
        }
    }
    let path = out.join("next_best.csv");
    write_file(&path, csv)?;
    let top: Vec<Value> = rules
        .iter()
        .filter(|r| r.p_adjusted < 0.05)
        .take(10)
        .map(|r| {
            let (a, b) = (t.products.name(r.antecedent), t.products.name(r.consequent));
            json!({
                "text": format!(
                    "{:.0}% of the customers who bought {a} later bought {b} ({:.1}× what their buying alone predicts).",
                    100.0 * r.confidence, r.lift_adjusted
                ),
                "bought": a, "later_bought": b, "customers": r.customers,
                "support": r.support, "confidence": r.confidence, "lift": r.lift,
                "lift_adjusted": r.lift_adjusted, "p_adjusted": r.p_adjusted,
            })
        })
        .collect();
    Ok(json!({
        "lines": t.lines.len(),
        "customers": buyers.len(),
        "products": t.products.len(),
        "categories": t.categories.len(),
        "brands": t.brands.len(),
        "revenue": revenue,
        "margin": l.has_cost.then_some(margin_total),
        "margin_rate": (l.has_cost && revenue != 0.0).then(|| margin_total / revenue),
        "margin_pareto_top20_share": margin.as_ref().and_then(|m| m.top20_share),
        "margin_gini": margin.as_ref().and_then(|m| m.gini),
        "affinities": {
            "tested": rules.len(), "strong": strong, "top": top,
            "min_customers": MIN_RULE_CUSTOMERS, "file": "affinities.csv",
        },
        "next_best": {"customers": with_next, "file": "next_best.csv"},
    }))
}

/// experience.csv (NPS, CES, reviews, returns, support resolution by
/// segment, by phase and overall) and comments.csv (free-text answers with
/// the customer's segment).
pub fn write_experience(
    analysis: &lifecycle_rfm::Analysis,
    table: &lifecycle_rfm::SegmentTable,
    input: &lifecycle_ingest::experience::ExperienceInput,
    lines: Option<&LineFacts>,
    out: &Path,
) -> Result<Value> {
    use lifecycle_kpis::experience::{Experience, Signal};
    use std::collections::HashMap;
    let mut by_customer: HashMap<&str, Vec<Signal>> = HashMap::new();
    for (id, s) in &input.signals {
        by_customer.entry(id.as_str()).or_default().push(*s);
    }
    let segments = table.segments();
    let mut per_segment = vec![Experience::default(); segments.len()];
    let mut matched = 0usize;
    let mut segment_of: HashMap<String, usize> = HashMap::new();
    for c in analysis.customers() {
        let seg = c.segment.min(segments.len().saturating_sub(1));
        let e = &mut per_segment[seg];
        e.customers += 1;
        let id = lifecycle_ingest::attributes::normalized_id(&c.summary.customer_id);
        match lines.and_then(|l| l.get(&id)) {
            Some(l) => {
                e.bought += f64::from(l.lines);
                e.returned += f64::from(l.returned);
            }
            None if lines.is_none() => e.bought += f64::from(c.summary.n_orders),
            None => {}
        }
        if let Some(signals) = by_customer.get(id.as_ref()) {
            matched += signals.len();
            for s in signals {
                e.add(*s);
            }
        }
        if !input.comments.is_empty() {
            segment_of.insert(id.into_owned(), seg);
        }
    }
    let mut phases: Vec<(lifecycle_rfm::Phase, Experience)> = lifecycle_rfm::Phase::ALL
        .iter()
        .map(|p| (*p, Experience::default()))
        .collect();
    let mut all = Experience::default();
    for (s, e) in segments.iter().zip(&per_segment) {
        if let Some(p) = phases.iter_mut().find(|p| p.0 == s.phase) {
            p.1.merge(e);
        }
        all.merge(e);
    }
    let opt =
        |v: Option<f64>, digits: usize| v.map_or_else(String::new, |v| format!("{v:.digits$}"));
    let mut csv = String::from(
        "level,group,customers,nps_answers,nps,nps_ci_low,nps_ci_high,ces_answers,ces,reviews,review_score,return_rate,tickets_opened,resolution_rate\n",
    );
    let mut rows = Vec::new();
    let groups = std::iter::once(("all", "all".to_string(), &all))
        .chain(
            phases
                .iter()
                .map(|(p, e)| ("phase", p.name().to_string(), e)),
        )
        .chain(
            segments
                .iter()
                .zip(&per_segment)
                .map(|(s, e)| ("segment", s.name.clone(), e)),
        );
    for (level, name, e) in groups {
        let nps = e.nps();
        let _ = writeln!(
            csv,
            "{level},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_text(&name),
            e.customers,
            e.nps_answers,
            opt(nps.map(|n| n.score), 1),
            opt(nps.map(|n| n.ci.0), 1),
            opt(nps.map(|n| n.ci.1), 1),
            e.ces_answers,
            opt(e.ces(), 3),
            e.reviews,
            opt(e.review(), 3),
            opt(e.return_rate(), 4),
            e.tickets_opened,
            opt(e.resolution_rate(), 4)
        );
        rows.push(json!({
            "level": level, "group": name, "customers": e.customers,
            "nps_answers": e.nps_answers, "nps": nps.map(|n| n.score),
            "nps_ci": nps.map(|n| [n.ci.0, n.ci.1]), "ces": e.ces(), "review_score": e.review(),
            "return_rate": e.return_rate(), "resolution_rate": e.resolution_rate(),
        }));
    }
    let path = out.join("experience.csv");
    write_file(&path, csv)?;
    let mut files = vec!["experience.csv"];
    if !input.comments.is_empty() {
        let mut csv = String::from("customer_id,segment,question,comment\n");
        for (id, q, text) in &input.comments {
            let seg = segment_of
                .get(id)
                .map_or("(not a customer)", |&s| segments[s].name.as_str());
            let _ = writeln!(
                csv,
                "{},{},{},{}",
                csv_text(id),
                csv_text(seg),
                csv_text(q),
                csv_text(text)
            );
        }
        let path = out.join("comments.csv");
        write_file(&path, csv)?;
        files.push("comments.csv");
    }
    Ok(json!({
        "groups": rows,
        "signals": input.signals.len(),
        "signals_of_unknown_customers": input.signals.len() - matched,
        "returns_per": if lines.is_some() { "item bought (order lines)" } else { "order" },
        "files": files,
    }))
}

/// The ideal customer profile of the best segments (icp.csv and the
/// summary) and the lookalikes: the customers outside them who look most
/// like them (lookalikes.csv, and hashed ad-audience files for Meta and
/// Google when the attributes have emails or phones).
#[allow(clippy::too_many_arguments)]
pub fn write_icp(
    analysis: &lifecycle_rfm::Analysis,
    table: &lifecycle_rfm::SegmentTable,
    dims: &Dimensions<'_>,
    attributes: Option<&lifecycle_ingest::attributes::AttributesFile>,
    lines: Option<&LineFacts>,
    best: &[usize],
    lookalikes: usize,
    out: &Path,
) -> Result<Value> {
    use lifecycle_kpis::icp::{Lookalike, ProfileCounts, traits};
    use std::collections::BTreeMap;
    let segments = table.segments();
    let names = dims.names();
    let mut counts: Vec<BTreeMap<String, (u64, u64)>> = vec![BTreeMap::new(); names.len()];
    let mut values_of: Vec<Vec<Option<&str>>> = Vec::new();
    let (mut n_best, mut n_rest) = (0u64, 0u64);
    // Mean days between purchase days (t_x / x) of repeat buyers.
    let mut cadence: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let is_best = |seg: usize| best.contains(&seg);
    let mut best_line_customers: Vec<bool> =
        lines.map_or_else(Vec::new, |l| vec![false; l.table.customers.len()]);
    for c in analysis.customers() {
        let b = is_best(c.segment);
        if b {
            n_best += 1;
        } else {
            n_rest += 1;
        }
        let values = dims.values(&c.summary.customer_id);
        for (map, v) in counts.iter_mut().zip(&values) {
            if let Some(v) = *v {
                if !map.contains_key(v) {
                    map.insert(v.to_string(), (0, 0));
                }
                let Some(e) = map.get_mut(v) else { continue };
                if b {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
        }
        values_of.push(values);
        if let (Some(t), x) = (c.summary.recency_days(), c.summary.frequency())
            && x > 0
        {
            cadence[usize::from(!b)].push(f64::from(t) / f64::from(x));
        }
        if let Some(l) = lines
            && let Some(i) = l
                .table
                .customers
                .get(&lifecycle_ingest::attributes::normalize_id(
                    &c.summary.customer_id,
                ))
            && let Some(slot) = best_line_customers.get_mut(i as usize)
        {
            *slot = b;
        }
    }
    let profile: Vec<ProfileCounts> = names
        .iter()
        .zip(counts)
        .map(|(d, m)| ProfileCounts {
            dimension: d.clone(),
            values: m.into_iter().map(|(v, (b, r))| (v, b, r)).collect(),
        })
        .collect();
    let found = traits(&profile, MIN_TESTED);
    let mut csv = String::from(
        "section,dimension,value,best_share,rest_share,index,best_customers,p_adjusted\n",
    );
    let section = |d: &str| {
        if d.starts_with("first_") || d == "acquisition_channel" {
            "how they started"
        } else {
            "who they are"
        }
    };
    for t in &found {
        let _ = writeln!(
            csv,
            "{},{},{},{:.6},{:.6},{:.4},{},{:.6e}",
            section(&t.dimension),
            csv_text(&t.dimension),
            csv_text(&t.value),
            t.best_share,
            t.rest_share,
            t.index,
            t.best_customers,
            t.p_adjusted
        );
    }
    // What and when they buy: shares of order lines, best against rest.
    let mut buys = Vec::new();
    let mut when = Vec::new();
    if let Some(l) = lines {
        let t = &l.table;
        let mut shares =
            |kind: &str,
             names: &lifecycle_kpis::lines::Names,
             of: &dyn Fn(&lifecycle_kpis::lines::Line) -> Option<u32>| {
                let mut c: Vec<[u64; 2]> = vec![[0, 0]; names.len()];
                let mut total = [0u64; 2];
                for line in t.lines.iter().filter(|x| !x.is_return()) {
                    if let Some(v) = of(line) {
                        let side = usize::from(
                            !best_line_customers
                                .get(line.customer as usize)
                                .copied()
                                .unwrap_or(false),
                        );
                        c[v as usize][side] += 1;
                        total[side] += 1;
                    }
                }
                for (i, [b, r]) in c.iter().enumerate() {
                    if total[0] == 0 || total[1] == 0 || b + r < MIN_TESTED {
                        continue;
                    }
                    let (bs, rs) = (*b as f64 / total[0] as f64, *r as f64 / total[1] as f64);
                    buys.push((
                        kind.to_string(),
                        names.name(i as u32).to_string(),
                        bs,
                        rs,
                        if rs > 0.0 { bs / rs } else { f64::INFINITY },
                    ));
                }
            };
        shares("category", &t.categories, &|x| x.category);
        shares("brand", &t.brands, &|x| x.brand);
        buys.sort_by(|a, b| a.0.cmp(&b.0).then(b.4.total_cmp(&a.4)));
        for (kind, v, bs, rs, idx) in &buys {
            let _ = writeln!(
                csv,
                "what they buy,{kind},{},{bs:.6},{rs:.6},{idx:.4},,",
                csv_text(v)
            );
        }
        let mut days = [[0u64; 7]; 2];
        let mut hours = [[0u64; 24]; 2];
        for (i, c) in l.customers.iter().enumerate() {
            let Some(c) = c else { continue };
            let side = usize::from(!best_line_customers.get(i).copied().unwrap_or(false));
            for (acc, n) in days[side].iter_mut().zip(c.weekdays) {
                *acc += u64::from(n);
            }
            for (acc, n) in hours[side].iter_mut().zip(c.hours) {
                *acc += u64::from(n);
            }
        }
        let weekday_names = [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ];
        let share = |a: &[u64], i: usize| {
            let s: u64 = a.iter().sum();
            (s > 0).then(|| a[i] as f64 / s as f64)
        };
        for (d, name) in weekday_names.iter().enumerate() {
            if let (Some(b), Some(r)) = (share(&days[0], d), share(&days[1], d)) {
                let _ = writeln!(
                    csv,
                    "when they buy,weekday,{name},{b:.6},{r:.6},{:.4},,",
                    b / r.max(1e-12)
                );
                when.push(json!({"weekday": name, "best_share": b, "rest_share": r}));
            }
        }
        if hours[0].iter().sum::<u64>() > 0 {
            for h in 0..24 {
                if let (Some(b), Some(r)) = (share(&hours[0], h), share(&hours[1], h)) {
                    let _ = writeln!(
                        csv,
                        "when they buy,hour,{h:02},{b:.6},{r:.6},{:.4},,",
                        b / r.max(1e-12)
                    );
                }
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| lifecycle_kpis::quantile(v, 0.5))
    };
    let (cad_best, cad_rest) = (median(&mut cadence[0]), median(&mut cadence[1]));
    let path = out.join("icp.csv");
    write_file(&path, csv)?;

    // Lookalikes: the rest ranked by the naive-Bayes score of their values.
    let model = Lookalike::new(&profile);
    let contact = |name: &str| {
        attributes.and_then(|a| {
            a.other_columns
                .iter()
                .position(|c| lifecycle_ingest::normalize(c) == name)
                .map(|i| (a, i + 1))
        })
    };
    let (email, phone) = (contact("email"), contact("phone"));
    let mut ranked: Vec<(f64, usize, Vec<Option<f64>>)> = analysis
        .customers()
        .zip(&values_of)
        .enumerate()
        .filter(|(_, (c, _))| !is_best(c.segment))
        .map(|(i, (_, v))| {
            let (s, parts) = model.score(v);
            (s, i, parts)
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.truncate(lookalikes);
    let customers: Vec<_> = analysis.customers().collect();
    let mut csv = String::from("customer_id,segment,score,because,email,phone\n");
    let mut members = Vec::new();
    for (score, i, parts) in &ranked {
        let c = &customers[*i];
        let id = &c.summary.customer_id;
        let mut reasons: Vec<(f64, String)> = parts
            .iter()
            .zip(&names)
            .zip(&values_of[*i])
            .filter_map(|((p, n), v)| {
                Some((p.filter(|p| *p > 0.0)?, format!("{n}={}", v.as_deref()?)))
            })
            .collect();
        reasons.sort_by(|a, b| b.0.total_cmp(&a.0));
        let because: Vec<String> = reasons.into_iter().take(3).map(|r| r.1).collect();
        let get = |c: Option<(&lifecycle_ingest::attributes::AttributesFile, usize)>| {
            c.and_then(|(a, col)| a.get(id).and_then(|x| x.column(col)).map(str::to_string))
                .unwrap_or_default()
        };
        let (e, p) = (get(email), get(phone));
        let _ = writeln!(
            csv,
            "{},{},{score:.4},{},{},{}",
            csv_text(id),
            csv_text(&segments[c.segment.min(segments.len() - 1)].name),
            csv_text(&because.join("; ")),
            csv_text(&e),
            csv_text(&p)
        );
        let mut m = serde_json::Map::new();
        m.insert("email".into(), json!(e));
        m.insert("phone".into(), json!(p));
        members.push(m);
    }
    let path = out.join("lookalikes.csv");
    write_file(&path, csv)?;
    let mut files = vec!["icp.csv".to_string(), "lookalikes.csv".to_string()];
    if email.is_some() || phone.is_some() {
        use lifecycle_deliver::audiences::{Platform, audience_csv};
        for p in [Platform::Meta, Platform::Google] {
            let name = format!("lookalikes_{}.csv", p.name());
            let path = out.join(&name);
            write_file(&path, audience_csv(p, &members))?;
            files.push(name);
        }
    }
    let top: Vec<Value> = found
        .iter()
        .filter(|t| t.p_adjusted < 0.05 && t.index > 1.0)
        .take(12)
        .map(|t| {
            json!({
                "section": section(&t.dimension), "dimension": t.dimension, "value": t.value,
                "best_share": t.best_share, "rest_share": t.rest_share, "index": t.index,
                "p_adjusted": t.p_adjusted,
            })
        })
        .collect();
    Ok(json!({
        "best_segments": best.iter().map(|&i| segments[i].name.clone()).collect::<Vec<_>>(),
        "best_customers": n_best,
        "other_customers": n_rest,
        "traits": top,
        "buys": buys.iter().filter(|b| b.4 >= 1.2).take(10).map(|(k, v, bs, rs, idx)| json!({"kind": k, "value": v, "best_share": bs, "rest_share": rs, "index": idx})).collect::<Vec<_>>(),
        "weekdays": when,
        "days_between_orders_median": {"best": cad_best, "rest": cad_rest},
        "lookalikes": ranked.len(),
        "files": files,
    }))
}
