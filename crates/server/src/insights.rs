//! `GET /api/v1/kpis/insights`: the insights of `analyze --kpis` over the
//! stored orders, with the attributes, order lines, spend and survey files
//! named in `[kpis]` (re-read on every request, so they can be replaced)
//! or, for those not named, their event forms (identify traits, `Order
//! Completed` products, survey/review/return/ticket events, see
//! `lifecycle_insights::events`), and the live CLV of each customer for
//! LTV:CAC. The files are written
//! into the configured folder and served by `GET /api/v1/kpis/files/{name}`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use lifecycle_rfm::Day;
use serde_json::{Value, json};

use crate::engine::Engine;

/// `[kpis]` of lifecycle.toml.
#[derive(Debug, Clone, Default)]
pub struct InsightsSettings {
    pub paths: lifecycle_insights::Paths,
    pub options: lifecycle_insights::Options,
    /// Where the insight files are written.
    pub out: PathBuf,
}

/// The settings, and one run at a time.
pub struct Insights {
    pub settings: InsightsSettings,
    pub running: Mutex<()>,
}

/// The file names the insights may write (and the files endpoint serves).
pub const FILES: &[&str] = &[
    "cohorts.csv",
    "retention.csv",
    "stickiness.csv",
    "anomalies.csv",
    "affinities.csv",
    "next_best.csv",
    "icp.csv",
    "lookalikes.csv",
    "lookalikes_meta.csv",
    "lookalikes_google.csv",
    "experience.csv",
    "comments.csv",
    "ltv_cac.csv",
    "ltv_cac_cohorts.csv",
    "payback.csv",
];

/// Why the insights could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum InsightsRunError {
    #[error(transparent)]
    Store(#[from] lifecycle_store::StoreError),
    #[error(transparent)]
    Insights(#[from] lifecycle_insights::InsightsError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs the insights as of `today` (blocking: store reads and file work).
pub fn run(engine: &Engine, insights: &Insights, today: Day) -> Result<Value, InsightsRunError> {
    let _one_at_a_time = insights.running.lock();
    let s = &insights.settings;
    let builder = engine.read(|st| st.load())?;
    let profiles = engine.read(|st| {
        st.profiles(&lifecycle_store::ProfileFilter {
            limit: i64::MAX as usize,
            ..Default::default()
        })
    })?;
    let clock = lifecycle_ingest::Clock::new(engine.clock.tz().clone());
    let mut inputs = lifecycle_insights::Inputs::read(&s.paths, &clock, 2)?;
    // What no file gives comes from the stored messages (the event forms).
    let mut sources = serde_json::Map::new();
    use lifecycle_insights::events;
    if inputs.attributes.is_none() {
        let traits = engine.read(|st| st.all_traits())?;
        if !traits.is_empty() {
            inputs.attributes = Some(events::attributes_from_traits(&traits));
            sources.insert("attributes".into(), json!("identify traits"));
        }
    } else {
        sources.insert("attributes".into(), json!("file"));
    }
    if inputs.lines.is_none() {
        let orders = engine.read(|st| st.events_named(&["Order Completed"]))?;
        inputs.lines = events::lines_from_events(&orders, &clock);
        if inputs.lines.is_some() {
            sources.insert("lines".into(), json!("Order Completed products"));
        }
    } else {
        sources.insert("lines".into(), json!("file"));
    }
    if inputs.experience.is_none() {
        let answers = engine.read(|st| st.events_named(events::EXPERIENCE_EVENTS))?;
        if !answers.is_empty() {
            let (e, rejected) = events::experience_from_events(&answers);
            if rejected > 0 {
                inputs.warnings.push(format!(
                    "{rejected} survey, review or ticket events had values off their scale and were left out"
                ));
            }
            inputs.experience = Some(e);
            sources.insert(
                "experience".into(),
                json!("survey, review, return and ticket events"),
            );
        }
    } else {
        sources.insert("experience".into(), json!("file"));
    }
    let mut pass = lifecycle_insights::Pass::new(&inputs, today, s.options.clone())?;
    builder.for_each_customer_orders(today, |id, entries| pass.add(id, entries));
    let (summaries, _) = builder.finish(today);
    let analysis = lifecycle_rfm::analyze(
        summaries,
        today,
        &lifecycle_rfm::AnalysisConfig {
            scoring: engine.scoring.clone(),
            segments: engine.table.clone(),
        },
    );
    let clv_of: HashMap<&str, f64> = profiles
        .iter()
        .filter_map(|p| Some((p.customer_id.as_str(), p.clv?)))
        .collect();
    let clv: Option<Vec<f64>> = (!clv_of.is_empty()).then(|| {
        analysis
            .customers()
            .map(|c| clv_of.get(&*c.summary.customer_id).copied().unwrap_or(0.0))
            .collect()
    });
    std::fs::create_dir_all(&s.out).map_err(|source| InsightsRunError::Io {
        path: s.out.clone(),
        source,
    })?;
    let section = pass.write(&analysis, &engine.table, clv.as_deref(), &s.out)?;
    Ok(json!({
        "customers": analysis.summaries.len(),
        "sources": sources,
        "warnings": inputs.warnings,
        "insights": section,
    }))
}
