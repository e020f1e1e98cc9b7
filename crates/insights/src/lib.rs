//! Customer insights for `lifecycle analyze --kpis` and `serve`'s
//! `/api/v1/kpis/insights`: it owns reading the optional inputs beside the
//! orders (customer attributes, order lines, marketing spend, survey
//! answers), the one pass over every customer's orders that the KPIs need
//! ([`Pass`]), and writing the results (cohorts.csv, retention.csv,
//! stickiness.csv, anomalies.csv, affinities.csv, next_best.csv, icp.csv,
//! lookalikes.csv, ltv_cac.csv, payback.csv, experience.csv...) with the
//! summary.json section that describes them.
//!
//! The definitions and statistics live in the pure `lifecycle-kpis` and
//! `lifecycle-lift` crates; this edge crate reads files and writes them. It
//! depends on the pure crates, `lifecycle-ingest` (readers) and
//! `lifecycle-deliver` (ad-audience hashing), and must never depend on the
//! store, the server or the CLI.

use std::path::{Path, PathBuf};

use lifecycle_ingest::Clock;
use lifecycle_ingest::attributes::AttributesFile;
use lifecycle_ingest::experience::ExperienceInput;
use lifecycle_ingest::spend::Spend;
use lifecycle_rfm::{Day, OrderEntry};
use serde_json::Value;

pub mod events;
mod write;
pub use write::*;

/// What can go wrong computing the insights.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InsightsError {
    #[error(transparent)]
    Ingest(#[from] lifecycle_ingest::IngestError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A wrong option or combination of inputs.
    #[error("{0}")]
    Input(String),
}

impl InsightsError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        InsightsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes a file, naming it in the error.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), InsightsError> {
    std::fs::write(path, contents).map_err(|e| InsightsError::io(path, e))
}

/// A CSV field: quoted when needed, and neutralised when a spreadsheet
/// would read it as a formula (a leading `=`, `+`, `-`, `@`, tab or CR).
pub fn csv_text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The optional input files.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    pub attributes: Option<PathBuf>,
    pub lines: Option<PathBuf>,
    pub spend: Option<PathBuf>,
    pub experience: Option<PathBuf>,
}

/// The optional inputs, read.
#[derive(Default)]
pub struct Inputs {
    pub attributes: Option<AttributesFile>,
    pub lines: Option<LineFacts>,
    pub spend: Option<Spend>,
    pub experience: Option<ExperienceInput>,
    /// Bad rows skipped, in words (file:line: column: problem).
    pub warnings: Vec<String>,
}

impl Inputs {
    /// Reads every file named; a spend file needs the attributes (their
    /// acquisition channels).
    pub fn read(paths: &Paths, clock: &Clock, threads: usize) -> Result<Inputs, InsightsError> {
        if paths.spend.is_some() && paths.attributes.is_none() {
            return Err(InsightsError::Input(
                "the spend file goes with the attributes file (--spend needs --attributes)".into(),
            ));
        }
        let mut out = Inputs {
            attributes: paths
                .attributes
                .as_deref()
                .map(lifecycle_ingest::attributes::read_attributes)
                .transpose()?,
            spend: paths
                .spend
                .as_deref()
                .map(lifecycle_ingest::spend::read_spend)
                .transpose()?,
            experience: paths
                .experience
                .as_deref()
                .map(lifecycle_ingest::experience::read_experience)
                .transpose()?,
            ..Inputs::default()
        };
        if let Some(p) = &paths.lines {
            let mut input = lifecycle_ingest::lines::read_order_lines(p, clock, threads)?;
            if input.skipped > 0 {
                out.warnings.push(format!(
                    "{}: skipped {} of {} rows",
                    p.display(),
                    input.skipped,
                    input.rows
                ));
                for e in &input.errors {
                    out.warnings.push(format!("  {}:{e}", p.display()));
                }
            }
            if input.table.lines.is_empty() {
                return Err(InsightsError::Input(format!(
                    "{}: no usable order lines",
                    p.display()
                )));
            }
            let customers = lifecycle_kpis::lines::by_customer(&mut input.table);
            out.lines = Some(LineFacts {
                table: input.table,
                customers,
                has_cost: input.has_cost,
            });
        }
        Ok(out)
    }
}

/// How the insights are computed.
#[derive(Debug, Clone)]
pub struct Options {
    /// A second order within this many days makes a new customer sticky.
    pub sticky_days: i32,
    /// The segments whose profile is the ideal customer profile (default:
    /// the Veneration phase's).
    pub best: Option<Vec<String>>,
    /// How many lookalikes to list.
    pub lookalikes: usize,
    /// Margin on revenue when the order lines carry no cost.
    pub margin: f64,
    /// The retention period of the headline figures (every period's file is
    /// written).
    pub retention_period: lifecycle_kpis::Period,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sticky_days: 90,
            best: None,
            lookalikes: 1000,
            margin: 1.0,
            retention_period: lifecycle_kpis::Period::Month,
        }
    }
}

/// The pass over every customer's orders, then the files.
pub struct Pass<'a> {
    inputs: &'a Inputs,
    options: Options,
    dims: Dimensions<'a>,
    kpis: lifecycle_kpis::KpiBuilder,
    sticky: Vec<lifecycle_kpis::StickinessBuilder>,
    payback: Option<lifecycle_kpis::PaybackBuilder>,
    /// The lines' overall margin rate, when they have costs.
    overall_margin: Option<f64>,
}

impl<'a> Pass<'a> {
    pub fn new(
        inputs: &'a Inputs,
        as_of: Day,
        options: Options,
    ) -> Result<Pass<'a>, InsightsError> {
        if options.sticky_days < 1 {
            return Err(InsightsError::Input(
                "the stickiness window (--sticky-days) must be at least 1 day".into(),
            ));
        }
        let dims = Dimensions::new(inputs.attributes.as_ref(), inputs.lines.as_ref(), as_of);
        let sticky = dims
            .names()
            .iter()
            .map(|_| lifecycle_kpis::StickinessBuilder::new(as_of, options.sticky_days, 365))
            .collect();
        let overall_margin = inputs.lines.as_ref().filter(|l| l.has_cost).and_then(|l| {
            let (m, r) = l.customers.iter().flatten().fold((0.0, 0.0), |(m, r), c| {
                (m + c.margin.unwrap_or(0.0), r + c.revenue)
            });
            (r > 0.0).then(|| m / r)
        });
        Ok(Pass {
            inputs,
            options,
            dims,
            kpis: lifecycle_kpis::KpiBuilder::new(),
            sticky,
            payback: inputs
                .attributes
                .as_ref()
                .map(|_| lifecycle_kpis::PaybackBuilder::new(as_of)),
            overall_margin,
        })
    }

    /// Margin per unit of revenue: the customer's own from the lines'
    /// costs, else the lines' overall rate, else the option.
    pub fn margin_rate(&self, id: &str) -> f64 {
        let own = self
            .inputs
            .lines
            .as_ref()
            .and_then(|l| l.get(id))
            .and_then(|c| Some(c.margin? / c.revenue).filter(|_| c.revenue > 0.0));
        own.or(self.overall_margin).unwrap_or(self.options.margin)
    }

    /// One customer's consolidated orders.
    pub fn add(&mut self, id: &str, entries: &[OrderEntry]) {
        self.kpis.add(entries);
        if let Some(a) = &self.inputs.attributes {
            let rate = self.margin_rate(id);
            if let Some(p) = self.payback.as_mut() {
                p.add(channel_of(a, id), entries, rate);
            }
        }
        if !self.sticky.is_empty() {
            for (s, value) in self.sticky.iter_mut().zip(self.dims.values(id)) {
                s.add(value, entries);
            }
        }
    }

    /// Writes every file into `out` and returns the summary section; `clv`
    /// (parallel to the analysis' customers, on `options.margin`) adds
    /// LTV:CAC.
    pub fn write(
        mut self,
        analysis: &lifecycle_rfm::Analysis,
        table: &lifecycle_rfm::SegmentTable,
        clv: Option<&[f64]>,
        out: &Path,
    ) -> Result<Value, InsightsError> {
        let segments = table.segments();
        let best: Vec<usize> = match &self.options.best {
            Some(list) => list
                .iter()
                .map(|n| {
                    let n = n.trim();
                    segments
                        .iter()
                        .position(|s| s.name.eq_ignore_ascii_case(n))
                        .ok_or_else(|| {
                            InsightsError::Input(format!("best segments: no segment named \"{n}\""))
                        })
                })
                .collect::<Result<_, _>>()?,
            None => (0..segments.len())
                .filter(|&i| segments[i].phase == lifecycle_rfm::Phase::Veneration)
                .collect(),
        };
        let kpis = std::mem::take(&mut self.kpis).finish();
        let mut section = write(&kpis, self.options.retention_period, out)?;
        let columns = self.dims.names();
        let inputs = self.inputs;
        if !columns.is_empty() {
            let sticky: Vec<(String, Vec<lifecycle_kpis::Stickiness>)> = columns
                .into_iter()
                .zip(
                    std::mem::take(&mut self.sticky)
                        .into_iter()
                        .map(lifecycle_kpis::StickinessBuilder::finish),
                )
                .collect();
            section["stickiness"] = write_stickiness(&sticky, self.options.sticky_days, out)?;
            section["anomalies"] = write_anomalies(analysis, table, &self.dims, out)?;
            section["icp"] = write_icp(
                analysis,
                table,
                &self.dims,
                inputs.attributes.as_ref(),
                inputs.lines.as_ref(),
                &best,
                self.options.lookalikes,
                out,
            )?;
        }
        if !self.dims.skipped.is_empty() {
            section["columns_not_grouped"] = serde_json::json!(self.dims.skipped);
        }
        if let Some(l) = &inputs.lines {
            section["lines"] = write_lines(l, out)?;
        }
        if let Some(e) = &inputs.experience {
            section["experience"] =
                write_experience(analysis, table, e, inputs.lines.as_ref(), out)?;
        }
        if let Some(a) = &inputs.attributes {
            let costs = Costs::new(analysis, a, inputs.spend.as_ref());
            if let Some(clv) = clv {
                // CLV on margin: the lines' margins replace the option.
                let (overall, margin) = (self.overall_margin, self.options.margin);
                let factor = |id: &str| {
                    if overall.is_some() && margin > 0.0 {
                        self.margin_rate(id) / margin
                    } else {
                        1.0
                    }
                };
                section["ltv_cac"] = write_ltv_cac(analysis, clv, &costs, &factor, out)?;
                section["ltv_cac"]["margin_basis"] = serde_json::json!(match overall {
                    Some(_) => "margin (from the order lines' costs)".to_string(),
                    None if margin < 1.0 => format!("margin (--margin {margin})"),
                    None =>
                        "revenue (no cost given: pass --margin or costs in the order lines)".into(),
                });
            }
            if let Some(p) = self.payback.take() {
                section["payback"] = write_payback(analysis, p, &costs, out)?;
            }
        }
        Ok(section)
    }
}
