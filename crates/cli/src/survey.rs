//! `lifecycle survey sample ORDERS --per-segment 200`: a stratified random
//! sample per RFM segment for interviews or survey sends, with the
//! customers' contact details from the attributes file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lifecycle_ingest::{ReadOptions, read_orders};
use lifecycle_rfm::{AnalysisConfig, analyze};

use crate::{day_flag, input_err};

#[derive(Subcommand, Debug)]
pub enum SurveyCommand {
    /// Draw a random sample of customers per segment (stratified)
    Sample(SampleArgs),
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Orders file (any format `analyze` reads)
    pub orders: PathBuf,
    /// Customers drawn per segment (all of a smaller segment)
    #[arg(long, default_value_t = 200)]
    pub per_segment: usize,
    /// The attributes file: its columns (email, phone, ...) are copied
    /// into the sample
    #[arg(long, value_name = "FILE")]
    pub attributes: Option<PathBuf>,
    /// The same seed draws the same sample
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Analysis date [default: the last order]
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Where the sample goes
    #[arg(long, default_value = "survey-sample.csv")]
    pub out: PathBuf,
}

pub fn run(command: SurveyCommand) -> Result<()> {
    match command {
        SurveyCommand::Sample(args) => sample(args),
    }
}

fn sample(args: SampleArgs) -> Result<()> {
    if args.per_segment == 0 {
        return Err(input_err("--per-segment must be at least 1"));
    }
    let as_of = day_flag("--as-of", args.as_of.as_deref())?;
    let input = read_orders(
        &args.orders,
        &ReadOptions {
            as_of,
            ..ReadOptions::default()
        },
    )?;
    let as_of = match as_of.or(input.builder.last_order_day()) {
        Some(d) => d,
        None => {
            return Err(input_err(format!(
                "{}: no orders found",
                args.orders.display()
            )));
        }
    };
    let attributes = match &args.attributes {
        Some(p) => Some(lifecycle_ingest::attributes::read_attributes(p)?),
        None => None,
    };
    let (summaries, _) = input.builder.finish(as_of);
    let config = AnalysisConfig::default();
    let analysis = analyze(summaries, as_of, &config);
    let segments = config.segments.segments();
    // Per segment, customers ordered by a fixed hash of the seed and id: a
    // uniform random order that the same seed reproduces.
    let salt = format!("survey:{}", args.seed);
    let mut by_segment: BTreeMap<usize, Vec<(f64, String)>> = BTreeMap::new();
    for c in analysis.customers() {
        let id = c.summary.customer_id.to_string();
        let position = lifecycle_moments::assignment::position(&salt, &id);
        by_segment
            .entry(c.segment)
            .or_default()
            .push((position, id));
    }
    let extra: Vec<String> = attributes.as_ref().map_or_else(
        Vec::new,
        lifecycle_ingest::attributes::AttributesFile::columns,
    );
    let mut csv = String::from("segment,phase,customer_id");
    for c in &extra {
        csv.push(',');
        csv.push_str(&crate::csv_text(c));
    }
    csv.push('\n');
    let mut drawn = 0;
    for (segment, mut customers) in by_segment {
        customers.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let seg = &segments[segment.min(segments.len() - 1)];
        for (_, id) in customers.into_iter().take(args.per_segment) {
            let _ = write!(
                csv,
                "{},{},{}",
                crate::csv_text(&seg.name),
                seg.phase.name(),
                crate::csv_text(&id)
            );
            if let Some(a) = &attributes {
                let at = a.get(&id);
                for i in 0..extra.len() {
                    csv.push(',');
                    csv.push_str(&crate::csv_text(
                        at.and_then(|at| at.column(i)).unwrap_or(""),
                    ));
                }
            }
            csv.push('\n');
            drawn += 1;
        }
    }
    std::fs::write(&args.out, csv).with_context(|| format!("{}", args.out.display()))?;
    println!(
        "drew {drawn} customers (up to {} per segment) into {}",
        args.per_segment,
        args.out.display()
    );
    Ok(())
}
