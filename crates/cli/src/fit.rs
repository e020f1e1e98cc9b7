//! `lifecycle fit`: fits one probabilistic model to an orders file or a
//! per-customer summary file and prints its parameters.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use lifecycle_ingest::summary_file::{
    SummaryFile, SummaryRow, TimeUnit, looks_like_summary, read_summary,
};
use lifecycle_ingest::{ReadOptions, clock_for, format_day, read_orders};
use lifecycle_models::{
    BgBb, BgNbd, BinomialObservation, FitConfig, FitReport, GammaGamma, MbgNbd, Observation,
    ParetoNbd, ShiftedBetaGeometric, SpendObservation,
};
use serde_json::{Value, json};

use crate::{column_overrides, day_flag, input_err};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ModelKind {
    Bgnbd,
    Mbgnbd,
    ParetoNbd,
    Bgbb,
    GammaGamma,
    Sbg,
    /// Fit BG/NBD, MBG/NBD and Pareto/NBD and keep the best on the holdout (or BIC)
    Auto,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Bgnbd => "bgnbd",
            ModelKind::Mbgnbd => "mbgnbd",
            ModelKind::ParetoNbd => "pareto-nbd",
            ModelKind::Bgbb => "bgbb",
            ModelKind::GammaGamma => "gamma-gamma",
            ModelKind::Sbg => "sbg",
            ModelKind::Auto => "auto",
        }
    }
}

#[derive(Args, Debug)]
pub struct FitArgs {
    /// Orders file (any format `analyze` reads) or a summary file
    /// (frequency,recency,T[,monetary_value] / frequency,recency,periods,weights / survivors)
    pub input: PathBuf,
    /// Which model to fit
    #[arg(long, value_enum)]
    pub model: ModelKind,
    /// End of the calibration period (orders after it are ignored); default: the last order date
    #[arg(long, value_name = "DATE")]
    pub calibration_end: Option<String>,
    /// Time unit of the parameters: day, week, month, year (orders default to week; a summary file must state its own)
    #[arg(long, value_name = "UNIT")]
    pub time_unit: Option<String>,
    /// L2 penalty on the parameters (as lifetimes' penalizer_coef)
    #[arg(long, default_value_t = 0.0)]
    pub penalizer: f64,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// Column overrides for an orders file (see `analyze --help`)
    #[arg(long, value_name = "SPEC")]
    pub columns: Option<String>,
    /// Date format for an orders file
    #[arg(long, value_name = "FORMAT")]
    pub date_format: Option<String>,
    /// Time zone where a purchase day begins and ends
    #[arg(long, default_value = "UTC", value_name = "TZ")]
    pub timezone: String,
    /// Customer attributes file (customer_id,acquisition_cost,acquisition_channel,...) for --covariates
    #[arg(long, value_name = "FILE")]
    pub customers: Option<PathBuf>,
    /// Time-invariant covariates from the --customers file, e.g. acquisition_channel,region
    /// (BG/NBD: each shifts the purchase rate and the drop-out; text columns are dummy-coded
    /// against their most common value)
    #[arg(long, value_name = "COLUMNS")]
    pub covariates: Option<String>,
}

/// One data-sufficiency check: what was measured, the threshold, passed or not.
struct Check {
    name: &'static str,
    value: f64,
    threshold: f64,
}

impl Check {
    fn ok(&self) -> bool {
        self.value >= self.threshold
    }
}

/// Thresholds below which BTYD predictions are not trustworthy: enough
/// customers, enough repeat buyers, and a calibration period several times
/// longer than a typical time between purchases.
fn sufficiency(rows: &[SummaryRow]) -> Vec<Check> {
    let customers: f64 = rows.iter().map(|r| r.weight).sum();
    let repeaters: f64 = rows.iter().filter(|r| r.x > 0.0).map(|r| r.weight).sum();
    let mut gaps: Vec<f64> = rows
        .iter()
        .filter(|r| r.x > 0.0)
        .map(|r| r.t_x / r.x)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let median_gap = gaps.get(gaps.len() / 2).copied().unwrap_or(f64::INFINITY);
    let span = rows.iter().map(|r| r.t_big).fold(0.0, f64::max);
    vec![
        Check {
            name: "customers",
            value: customers,
            threshold: 100.0,
        },
        Check {
            name: "repeat buyers",
            value: repeaters,
            threshold: 30.0,
        },
        Check {
            name: "repeat-buyer share (%)",
            value: 100.0 * repeaters / customers.max(1.0),
            threshold: 5.0,
        },
        Check {
            name: "calibration span / median time between purchases",
            value: if median_gap > 0.0 {
                span / median_gap
            } else {
                f64::INFINITY
            },
            threshold: 3.0,
        },
    ]
}

/// The purchase models' observations of summary rows (with their weights).
fn observations(rows: &[SummaryRow]) -> Vec<Observation> {
    rows.iter()
        .map(|r| Observation {
            x: r.x,
            t_x: r.t_x,
            t_big: r.t_big,
            weight: r.weight,
        })
        .collect()
}

fn continuous(file: &SummaryFile, model: ModelKind) -> Result<(&[SummaryRow], TimeUnit)> {
    match file {
        SummaryFile::Continuous { rows, unit } => Ok((rows, *unit)),
        _ => Err(input_err(format!(
            "{} needs per-customer frequency, recency and T (an orders file or a summary with a T column)",
            model.name()
        ))),
    }
}

pub fn run(args: FitArgs) -> Result<()> {
    let unit_flag = match &args.time_unit {
        Some(u) => Some(TimeUnit::parse(u).ok_or_else(|| {
            input_err(format!(
                "--time-unit: \"{u}\" is not day, week, month or year"
            ))
        })?),
        None => None,
    };
    let config = FitConfig {
        penalizer: args.penalizer,
        ..FitConfig::default()
    };
    let mut calibration_end = None;
    // With --model auto on an orders file with a calibration end before the
    // data's end: the later purchases and the holdout's length.
    let mut holdout: Option<(Vec<f64>, f64, lifecycle_rfm::Day)> = None;
    let file = if looks_like_summary(&args.input) {
        read_summary(&args.input, unit_flag)?
    } else {
        let clock = clock_for(&args.timezone).map_err(input_err)?;
        let as_of = day_flag("--calibration-end", args.calibration_end.as_deref())?;
        let columns = column_overrides(args.columns.as_deref())?;
        let opts = ReadOptions {
            columns,
            date_format: args.date_format.clone(),
            clock,
            as_of,
            ..ReadOptions::default()
        };
        let input = read_orders(&args.input, &opts)?;
        let end = match as_of {
            Some(d) => d,
            None => input
                .builder
                .last_order_day()
                .ok_or_else(|| input_err("no orders found"))?,
        };
        calibration_end = Some(end);
        let unit = unit_flag.unwrap_or(TimeUnit::Week);
        let (summaries, _) = input.builder.finish(end);
        let buyers: Vec<_> = summaries.into_iter().filter(|s| s.n_orders > 0).collect();
        let d = unit.days();
        if args.model == ModelKind::Auto && as_of.is_some() {
            let all = read_orders(
                &args.input,
                &ReadOptions {
                    as_of: None,
                    ..opts.clone()
                },
            )?;
            if let Some(last) = all.builder.last_order_day().filter(|&l| l > end) {
                let (later, _) = all.builder.finish(last);
                holdout = Some((
                    crate::select::holdout_counts(&buyers, &later),
                    f64::from(last - end) / d,
                    last,
                ));
            }
        }
        let (rows, ids): (Vec<SummaryRow>, Vec<&str>) = buyers
            .iter()
            .filter_map(|s| {
                Some((
                    SummaryRow {
                        x: f64::from(s.frequency()),
                        t_x: f64::from(s.recency_days()?) / d,
                        t_big: f64::from(s.age_days(end)?) / d,
                        monetary: Some(s.repeat_mean_value()),
                        weight: 1.0,
                    },
                    &*s.customer_id,
                ))
            })
            .unzip();
        if let Some(spec) = &args.covariates {
            return covariate_fit(&args, spec, &rows, &ids, unit, end, &config);
        }
        SummaryFile::Continuous { rows, unit }
    };
    if args.covariates.is_some() {
        return Err(input_err(
            "--covariates needs an orders file (customer ids to look the covariates up by)",
        ));
    }
    if args.customers.is_some() {
        return Err(input_err(
            "--customers is read for --covariates (name the columns to use, e.g. --covariates acquisition_channel)",
        ));
    }
    if args.model == ModelKind::Auto {
        return auto(&args, &file, &config, calibration_end, holdout);
    }

    let mut checks = Vec::new();
    let mut time_unit = None;
    let (report, n_customers): (FitReport, f64) = match args.model {
        ModelKind::Bgnbd | ModelKind::Mbgnbd | ModelKind::ParetoNbd => {
            let (rows, unit) = continuous(&file, args.model)?;
            time_unit = Some(unit);
            checks = sufficiency(rows);
            let obs = observations(rows);
            let n = obs.iter().map(|o| o.weight).sum();
            let report = match args.model {
                ModelKind::Bgnbd => BgNbd::fit(&obs, &config)?.1,
                ModelKind::Mbgnbd => MbgNbd::fit(&obs, &config)?.1,
                _ => ParetoNbd::fit(&obs, &config)?.1,
            };
            (report, n)
        }
        ModelKind::GammaGamma => {
            let (rows, _) = continuous(&file, args.model)?;
            let obs: Vec<SpendObservation> = rows
                .iter()
                .filter(|r| r.x > 0.0 && r.monetary.is_some_and(|m| m > 0.0))
                .map(|r| SpendObservation {
                    x: r.x,
                    m: r.monetary.unwrap_or(0.0),
                    weight: r.weight,
                })
                .collect();
            if obs.is_empty() {
                return Err(input_err(
                    "gamma-gamma needs repeat buyers with a mean repeat-purchase value (a monetary_value/zbar column, or an orders file)",
                ));
            }
            let n = obs.iter().map(|o| o.weight).sum();
            (GammaGamma::fit(&obs, &config)?.1, n)
        }
        ModelKind::Bgbb => {
            let SummaryFile::Discrete { rows } = &file else {
                return Err(input_err(
                    "bgbb needs discrete-time data: a summary file with frequency,recency,periods,weights",
                ));
            };
            let obs: Vec<BinomialObservation> = rows
                .iter()
                .map(|r| BinomialObservation {
                    x: r[0],
                    t_x: r[1],
                    n: r[2],
                    weight: r[3],
                })
                .collect();
            let n = obs.iter().map(|o| o.weight).sum();
            (BgBb::fit(&obs, &config)?.1, n)
        }
        ModelKind::Auto => unreachable!("handled above"),
        ModelKind::Sbg => {
            let SummaryFile::Survivors { counts } = &file else {
                return Err(input_err(
                    "sbg needs a cohort file with a survivors column (customers active at the start of each period)",
                ));
            };
            let n = counts.first().copied().unwrap_or(0.0);
            (ShiftedBetaGeometric::fit(counts, &config)?.1, n)
        }
    };

    let mut summary = crate::select::report_json(args.model, &report);
    summary["n_customers"] = json!(n_customers);
    summary["calibration_end"] = json!(calibration_end.map(format_day));
    summary["time_unit"] = json!(time_unit.map(TimeUnit::name));
    summary["data_sufficiency"] = sufficiency_json(&checks);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "{} fitted to {} customers ({} distinct rows){}{}",
        args.model.name(),
        n_customers,
        report.n_rows,
        calibration_end
            .map(|d| format!(", calibration end {}", format_day(d)))
            .unwrap_or_default(),
        time_unit
            .map(|u| format!(", time in {}", u.name()))
            .unwrap_or_default()
    );
    println!("\n{:<8} {:>14} {:>14}", "param", "estimate", "std. error");
    for (i, name) in report.names.iter().enumerate() {
        let se = report.standard_errors[i].map_or("-".to_string(), |s| format!("{s:.4}"));
        println!("{:<8} {:>14.4} {:>14}", name, report.params[i], se);
    }
    println!(
        "\nlog-likelihood {:.2}   AIC {:.2}   BIC {:.2}   iterations {}",
        report.log_likelihood, report.aic, report.bic, report.iterations
    );
    print_sufficiency(&checks);
    Ok(())
}

fn sufficiency_json(checks: &[Check]) -> Value {
    Value::Array(
        checks
            .iter()
            .map(|c| json!({"check": c.name, "value": c.value, "threshold": c.threshold, "ok": c.ok()}))
            .collect(),
    )
}

fn print_sufficiency(checks: &[Check]) {
    if !checks.is_empty() {
        println!("\ndata sufficiency");
        for c in checks {
            println!(
                "  {:<52} {:>10.1}  needs >= {:<6} {}",
                c.name,
                c.value,
                c.threshold,
                if c.ok() {
                    "ok"
                } else {
                    "FAILED: predictions are not trustworthy"
                }
            );
        }
    }
}

/// `--model auto`: fits the purchase models, compares them on the holdout
/// (orders file with a calibration end before the data's end) or on BIC,
/// and prints the table and the choice.
fn auto(
    args: &FitArgs,
    file: &SummaryFile,
    config: &FitConfig,
    calibration_end: Option<lifecycle_rfm::Day>,
    holdout: Option<(Vec<f64>, f64, lifecycle_rfm::Day)>,
) -> Result<()> {
    let (rows, unit) = continuous(file, args.model)?;
    let checks = sufficiency(rows);
    let obs = observations(rows);
    let n_customers: f64 = obs.iter().map(|o| o.weight).sum();
    let kinds = crate::select::purchase_kinds(ModelKind::Auto)?;
    let (actual, horizon, holdout_end) = match &holdout {
        Some((a, h, last)) => (Some(a.as_slice()), *h, Some(*last)),
        None => (None, 0.0, None),
    };
    let candidates = crate::select::fit_candidates(&kinds, &obs, config, horizon, actual)?;
    let chosen = crate::select::best(&candidates);
    if args.json {
        let v = json!({
            "model": "auto",
            "chosen": candidates[chosen].kind.name(),
            "reason": crate::select::reason(&candidates),
            "candidates": candidates.iter().map(crate::select::candidate_json).collect::<Vec<_>>(),
            "n_customers": n_customers,
            "calibration_end": calibration_end.map(format_day),
            "holdout_end": holdout_end.map(format_day),
            "time_unit": unit.name(),
            "data_sufficiency": sufficiency_json(&checks),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "purchase models fitted to {} customers{}, time in {}{}\n",
        n_customers,
        calibration_end
            .map(|d| format!(", calibration end {}", format_day(d)))
            .unwrap_or_default(),
        unit.name(),
        holdout_end
            .map(|d| format!(
                ", holdout to {} ({horizon:.1} {})",
                format_day(d),
                unit.name()
            ))
            .unwrap_or_default()
    );
    crate::select::print_table(&candidates, chosen);
    let c = &candidates[chosen];
    println!("{:<8} {:>14} {:>14}", "param", "estimate", "std. error");
    for (i, name) in c.report.names.iter().enumerate() {
        let se = c.report.standard_errors[i].map_or("-".to_string(), |s| format!("{s:.4}"));
        println!("{:<8} {:>14.4} {:>14}", name, c.report.params[i], se);
    }
    print_sufficiency(&checks);
    Ok(())
}

/// The design matrix of `--covariates`: numeric columns as they are, text
/// columns as 0/1 indicators of every value but the most common (the
/// baseline); customers missing from the file, or with an empty cell, take
/// the value `(missing)` of a text column and are an error for a numeric one.
fn design_matrix(
    file: &lifecycle_ingest::attributes::AttributesFile,
    file_name: &std::path::Path,
    columns: &[&str],
    ids: &[&str],
) -> Result<(Vec<String>, Vec<f64>)> {
    let mut names = Vec::new();
    let mut matrix_columns: Vec<Vec<f64>> = Vec::new();
    for &column in columns {
        let value_of = |id: &str| -> Option<&str> {
            let c = file.customers.get(id)?;
            if column == "acquisition_channel" {
                return c.acquisition_channel.as_deref();
            }
            if column == "acquisition_cost" {
                return None;
            }
            let k = file.other_columns.iter().position(|h| h == column)?;
            c.other.get(k)?.as_deref()
        };
        let known = column == "acquisition_channel"
            || column == "acquisition_cost"
            || file.other_columns.iter().any(|h| h == column);
        if !known {
            return Err(input_err(format!(
                "--covariates: no column '{column}' in the customers file (it has acquisition_channel{}{})",
                if file.other_columns.is_empty() {
                    ""
                } else {
                    ", "
                },
                file.other_columns.join(", ")
            )));
        }
        if column == "acquisition_cost" {
            let mut values = Vec::with_capacity(ids.len());
            for id in ids {
                let v = file
                    .customers
                    .get(*id)
                    .and_then(|c| c.acquisition_cost)
                    .ok_or_else(|| {
                        input_err(format!(
                            "--covariates: customer {id} has no acquisition_cost (a numeric covariate needs a value for every customer)"
                        ))
                    })?;
                values.push(v);
            }
            names.push(column.to_string());
            matrix_columns.push(values);
            continue;
        }
        let present: Vec<Option<&str>> = ids.iter().map(|id| value_of(id)).collect();
        let numeric = present.iter().flatten().next().is_some()
            && present
                .iter()
                .flatten()
                .all(|c| c.parse::<f64>().is_ok_and(f64::is_finite));
        if numeric {
            let mut values = Vec::with_capacity(ids.len());
            for (id, cell) in ids.iter().zip(&present) {
                let v = cell.and_then(|c| c.parse::<f64>().ok()).ok_or_else(|| {
                    input_err(format!(
                        "{}: customer {id} has no value in the numeric column '{column}' (a numeric covariate needs one for every customer)",
                        file_name.display()
                    ))
                })?;
                values.push(v);
            }
            names.push(column.to_string());
            matrix_columns.push(values);
            continue;
        }
        let cells: Vec<&str> = present.iter().map(|c| c.unwrap_or("(missing)")).collect();
        let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for c in &cells {
            *counts.entry(c).or_default() += 1;
        }
        let baseline = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(v, _)| *v)
            .unwrap_or("");
        for value in counts.keys().filter(|v| **v != baseline) {
            names.push(format!("{column}={value}"));
            matrix_columns.push(
                cells
                    .iter()
                    .map(|c| f64::from(u8::from(c == value)))
                    .collect(),
            );
        }
        eprintln!(
            "{column}: baseline {baseline} ({} customers)",
            counts[baseline]
        );
    }
    let k = matrix_columns.len();
    let mut z = Vec::with_capacity(ids.len() * k);
    for i in 0..ids.len() {
        z.extend(matrix_columns.iter().map(|col| col[i]));
    }
    Ok((names, z))
}

/// `fit --model bgnbd --customers FILE --covariates COLUMNS`.
fn covariate_fit(
    args: &FitArgs,
    spec: &str,
    rows: &[SummaryRow],
    ids: &[&str],
    unit: TimeUnit,
    end: lifecycle_rfm::Day,
    config: &FitConfig,
) -> Result<()> {
    if args.model != ModelKind::Bgnbd {
        return Err(input_err(format!(
            "--covariates is available for bgnbd (BG/NBD with time-invariant covariates), not {}",
            args.model.name()
        )));
    }
    let path = args.customers.as_ref().ok_or_else(|| {
        input_err("--covariates needs --customers FILE (the customer attributes file)")
    })?;
    let file = lifecycle_ingest::attributes::read_attributes(path)?;
    let columns: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let (names, z) = design_matrix(&file, path, &columns, ids)?;
    let obs = observations(rows);
    let (_, report) = lifecycle_models::BgNbdCovariates::fit(&obs, &z, &names, true, config)?;
    let mut summary = crate::select::report_json(ModelKind::Bgnbd, &report);
    summary["n_customers"] = json!(obs.len());
    summary["calibration_end"] = json!(format_day(end));
    summary["time_unit"] = json!(unit.name());
    summary["covariates"] = json!(names);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "bgnbd with covariates fitted to {} customers, calibration end {}, time in {}\n",
        obs.len(),
        format_day(end),
        unit.name()
    );
    println!(
        "{:<32} {:>12} {:>12} {:>8}",
        "param", "estimate", "std. error", "z"
    );
    for (i, name) in report.names.iter().enumerate() {
        let v = report.params[i];
        let (se, zs) = match report.standard_errors[i] {
            Some(se) if i >= 4 => (format!("{se:.4}"), format!("{:.2}", v / se)),
            Some(se) => (format!("{se:.4}"), String::new()),
            None => ("-".into(), String::new()),
        };
        println!("{name:<32} {v:>12.4} {se:>12} {zs:>8}");
    }
    println!(
        "\nlog-likelihood {:.2}   AIC {:.2}   BIC {:.2}\ntrans.X > 0: customers with X buy more often (rate x e^coef); life.X > 0: they drop out less",
        report.log_likelihood, report.aic, report.bic
    );
    Ok(())
}
