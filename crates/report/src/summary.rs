//! `summary.json`: the machine-readable facts of one analysis.

use lifecycle_ingest::{InputDescription, ReadStats, format_day};
use lifecycle_rfm::{Analysis, FinishStats, Phase, ScoreBand, Scoring, SegmentTable};
use serde::Serialize;

/// What the caller knows about the run besides the analysis.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub input: InputDescription,
    pub read: ReadStats,
    pub finish: FinishStats,
    pub events: Option<(InputDescription, ReadStats)>,
    /// True when `--as-of` was given, false when it is the last order date.
    pub as_of_given: bool,
    pub timezone: String,
    pub scoring: Scoring,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub lifecycle_version: String,
    pub as_of: String,
    pub as_of_source: String,
    pub timezone: String,
    pub input: InputSummary,
    pub rows: RowsSummary,
    pub events: Option<EventsSummary>,
    pub customers: usize,
    pub buyers: usize,
    pub visitors: usize,
    pub orders: u64,
    pub purchase_days: u64,
    pub revenue: f64,
    pub currency: Option<String>,
    pub pareto_top20_revenue_share: Option<f64>,
    pub scoring: ScoringSummary,
    pub segments: Vec<SegmentSummary>,
    pub phases: Vec<PhaseSummary>,
    pub notes: Vec<String>,
    /// The value model of `analyze --clv` (parameters, horizon, totals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clv: Option<serde_json::Value>,
    /// `analyze --tripwires`: norms, backtests and flag counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tripwires: Option<serde_json::Value>,
    /// `analyze --kpis`: retention, cohorts, repeat rate, concentration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kpis: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputSummary {
    pub path: String,
    pub format: String,
    pub compressed: bool,
    pub header: bool,
    pub columns: std::collections::BTreeMap<String, String>,
    pub date_format: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowsSummary {
    pub read: u64,
    pub used: u64,
    pub rejected: u64,
    pub first_rejected: Vec<String>,
    pub after_as_of: u64,
    pub without_customer: u64,
    pub excluded_by_status: u64,
    pub line_item_continuations: u64,
    pub non_order_events: u64,
    pub refunds_without_amount: u64,
    pub zero_amount: u64,
    pub negative_amount: u64,
    pub refund_rows_subtracted: u64,
    pub refund_amount_subtracted: f64,
    pub refund_only_customers_left_out: u64,
    pub refund_only_amount_left_out: f64,
    /// The amounts of the rows used, summed as read (an order total repeated
    /// on line-item rows counts each time here, once in `revenue`).
    pub row_amount_sum: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventsSummary {
    pub path: String,
    pub format: String,
    pub rows_read: u64,
    pub rows_used: u64,
    pub rows_rejected: u64,
    pub after_as_of: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Band {
    pub score: u8,
    pub customers: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoringSummary {
    pub method: String,
    pub rule: String,
    pub recency_days: Vec<Band>,
    pub orders: Vec<Band>,
    pub spend: Vec<Band>,
    pub cuts: Option<Cuts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cuts {
    pub recency_days: [f64; 4],
    pub orders: [f64; 4],
    pub spend: [f64; 4],
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentSummary {
    pub name: String,
    pub phase: String,
    pub customers: usize,
    pub customer_share: f64,
    pub revenue: f64,
    pub revenue_share: f64,
    pub orders: u64,
    pub mean_days_since_last_order: Option<f64>,
    pub mean_orders: Option<f64>,
    pub mean_spend: Option<f64>,
    pub description: String,
    pub goal: String,
    pub campaigns: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    pub name: String,
    pub customers: usize,
    pub revenue: f64,
    pub segments: Vec<String>,
}

fn bands(b: &[ScoreBand; 5]) -> Vec<Band> {
    b.iter()
        .rev()
        .map(|b| Band {
            score: b.score,
            customers: b.customers,
            min: b.min,
            max: b.max,
        })
        .collect()
}

fn share(part: f64, whole: f64) -> f64 {
    if whole == 0.0 { 0.0 } else { part / whole }
}

pub fn build_summary(a: &Analysis, table: &SegmentTable, run: &RunInfo) -> Summary {
    let total_customers = a.totals.customers as f64;
    let segments: Vec<SegmentSummary> = table
        .segments()
        .iter()
        .zip(&a.segments)
        .map(|(def, st)| SegmentSummary {
            name: def.name.clone(),
            phase: def.phase.name().into(),
            customers: st.customers,
            customer_share: share(st.customers as f64, total_customers),
            revenue: st.revenue,
            revenue_share: share(st.revenue, a.totals.revenue),
            orders: st.orders,
            mean_days_since_last_order: st.mean_days_since_last_order,
            mean_orders: st.mean_orders,
            mean_spend: st.mean_spend,
            description: def.description.clone(),
            goal: def.goal.clone(),
            campaigns: def.campaigns.clone(),
        })
        .collect();
    let phases = Phase::ALL
        .iter()
        .map(|p| {
            let members: Vec<&SegmentSummary> =
                segments.iter().filter(|s| s.phase == p.name()).collect();
            PhaseSummary {
                name: p.name().into(),
                customers: members.iter().map(|s| s.customers).sum(),
                revenue: members.iter().map(|s| s.revenue).sum(),
                segments: members.iter().map(|s| s.name.clone()).collect(),
            }
        })
        .collect();
    let mut notes = Vec::new();
    if run.events.is_none() {
        notes.push(
            "Engaged Visitors and Loyal Visitors are empty: they need visit and sign-up events (--events FILE)."
                .to_string(),
        );
    }
    let r = &run.read;
    if r.rows_rejected > 0 {
        notes.push(format!(
            "{} bad rows were skipped (--skip-bad-rows).",
            r.rows_rejected
        ));
    }
    if r.rows_without_customer > 0 {
        notes.push(format!(
            "{} rows without a customer id were left out.",
            r.rows_without_customer
        ));
    }
    if r.rows_excluded_by_status > 0 {
        notes.push(format!(
            "{} rows were left out because their status says the order did not happen (refunded, voided, cancelled, failed...).",
            r.rows_excluded_by_status
        ));
    }
    if r.rows_after_as_of + run.finish.rows_after_as_of > 0 {
        notes.push(format!(
            "{} rows dated after the analysis date were ignored.",
            r.rows_after_as_of + run.finish.rows_after_as_of
        ));
    }
    let cuts = match &run.scoring {
        Scoring::Quintiles => None,
        Scoring::Thresholds(t) => Some(Cuts {
            recency_days: t.recency_days.cuts(),
            orders: t.orders.cuts(),
            spend: t.spend.cuts(),
        }),
    };
    let (method, rule) = match cuts {
        None => (
            "quintiles",
            "score = 1 + floor(5 × customers with a strictly worse value / buyers); tied values share a score",
        ),
        Some(_) => ("thresholds", "fixed cut points from --rfm-thresholds"),
    };
    Summary {
        lifecycle_version: env!("CARGO_PKG_VERSION").into(),
        as_of: format_day(a.as_of),
        as_of_source: if run.as_of_given {
            "--as-of"
        } else {
            "last order date"
        }
        .into(),
        timezone: run.timezone.clone(),
        input: InputSummary {
            path: run.input.path.display().to_string(),
            format: run.input.format.clone(),
            compressed: run.input.compressed,
            header: run.input.has_header,
            columns: run.input.columns.iter().cloned().collect(),
            date_format: run.input.date_format.clone(),
        },
        rows: RowsSummary {
            read: r.rows_read,
            used: r.rows_used,
            rejected: r.rows_rejected,
            first_rejected: r
                .first_rejected
                .iter()
                .map(|e| format!("{}:{e}", run.input.path.display()))
                .collect(),
            after_as_of: r.rows_after_as_of + run.finish.rows_after_as_of,
            without_customer: r.rows_without_customer,
            excluded_by_status: r.rows_excluded_by_status,
            line_item_continuations: r.continuation_rows,
            non_order_events: r.events_skipped,
            refunds_without_amount: r.refunds_without_amount,
            zero_amount: r.zero_amount_rows,
            negative_amount: r.negative_amount_rows,
            refund_rows_subtracted: run.finish.refund_rows,
            refund_amount_subtracted: run.finish.refund_amount,
            refund_only_customers_left_out: run.finish.refund_only_customers,
            refund_only_amount_left_out: run.finish.refund_only_amount,
            row_amount_sum: r.amount_total,
        },
        events: run.events.as_ref().map(|(d, s)| EventsSummary {
            path: d.path.display().to_string(),
            format: d.format.clone(),
            rows_read: s.rows_read,
            rows_used: s.rows_used,
            rows_rejected: s.rows_rejected,
            after_as_of: s.rows_after_as_of,
        }),
        customers: a.totals.customers,
        buyers: a.totals.buyers,
        visitors: a.totals.visitors,
        orders: a.totals.orders,
        purchase_days: a.totals.purchase_days,
        revenue: a.totals.revenue,
        currency: r.currency.clone(),
        pareto_top20_revenue_share: a.pareto_top20_share,
        scoring: ScoringSummary {
            method: method.into(),
            rule: rule.into(),
            recency_days: bands(&a.boundaries.recency_days),
            orders: bands(&a.boundaries.orders),
            spend: bands(&a.boundaries.spend),
            cuts,
        },
        segments,
        phases,
        notes,
        clv: None,
        tripwires: None,
        kpis: None,
    }
}
