//! `lifecycle moments simulate DIR --from ORDERS_OR_STORE --since DATE`:
//! a dry run of draft moments on history. The history before `--since`
//! is loaded into a scratch store and the models are fitted on it; then
//! every day from `--since` is replayed on the real engine with a
//! simulated clock: the due-time index moves customers between segments,
//! the day's orders arrive as `Order Completed` events, journeys enrol,
//! wait and branch, and every send passes the policy (consent refusals,
//! frequency caps, quiet hours) without going out. The report says who
//! would have entered, which messages would have gone out on which days,
//! and the goal rate the audience had (history knew no message, so this
//! is the baseline a moment must beat).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lifecycle_ingest::{ReadOptions, format_day, read_orders};
use lifecycle_rfm::{Day, SummaryBuilder};
use lifecycle_server::engine::{Clock, Engine, MomentsJob, Settings};
use lifecycle_server::journeys::{Deliverer, JourneyOptions};
use lifecycle_store::{EventOrder, NewEvent, Store, StoreUrl};
use serde_json::json;

use crate::input_err;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// The folder of draft moments (*.toml) and their templates
    pub dir: PathBuf,
    /// The history: an orders file (as `analyze` reads) or a store
    /// (sqlite://PATH, postgres://...)
    #[arg(long, value_name = "ORDERS_OR_STORE")]
    pub from: String,
    /// Replay from this date (the history before it fits the models)
    #[arg(long, value_name = "DATE")]
    pub since: String,
    /// Replay up to this date [default: the last order]
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Settings file for the send policy ([moments] quiet_hours, caps,
    /// global_control)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write entrants.csv and messages.csv here
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

const DAY_MS: i64 = 86_400_000;

fn history(from: &str) -> Result<SummaryBuilder> {
    if from.starts_with("sqlite://") || from.starts_with("postgres://") {
        let url = StoreUrl::parse(from).map_err(|e| input_err(e.to_string()))?;
        return Ok(Store::open(&url)?.load()?);
    }
    let path = PathBuf::from(from);
    Ok(read_orders(&path, &ReadOptions::default())?.builder)
}

pub fn run(args: SimulateArgs) -> Result<()> {
    let since =
        lifecycle_ingest::parse_day(&args.since).map_err(|e| input_err(format!("--since: {e}")))?;
    let all = history(&args.from)?;
    let until = match &args.until {
        Some(u) => {
            lifecycle_ingest::parse_day(u).map_err(|e| input_err(format!("--until: {e}")))?
        }
        None => all
            .last_order_day()
            .ok_or_else(|| input_err(format!("{}: no orders", args.from)))?,
    };
    if until < since {
        return Err(input_err(format!(
            "--since {} is after the last day replayed ({})",
            args.since,
            format_day(until)
        )));
    }
    // History before --since into the scratch store; later orders replayed.
    let mut before = SummaryBuilder::new();
    let mut later: BTreeMap<Day, Vec<(String, lifecycle_rfm::OrderEntry)>> = BTreeMap::new();
    let mut position = 0u64;
    all.for_each_customer_orders(until, |id, entries| {
        for e in entries {
            if e.day < since {
                before.add_entry(id, position, *e);
            } else {
                later.entry(e.day).or_default().push((id.to_string(), *e));
            }
        }
        position += 1;
    });
    let scratch = tempfile::tempdir().context("a scratch folder")?;
    let url = StoreUrl::Sqlite(scratch.path().join("simulate.db"));
    Store::open(&url)?.import(&before, since - 1, "history")?;

    let (global_control, quiet_hours, caps) = match &args.config {
        Some(p) => {
            let (file, _) = crate::serve::read_config(Some(p))?;
            crate::serve::moments_policy(&file.moments, p)?
        }
        None => (0.05, None, Vec::new()),
    };
    let options = JourneyOptions {
        dir: Some(args.dir.clone()),
        global_control,
        quiet_hours,
        caps,
        watch_every: None,
        assume_consent: true,
        ..JourneyOptions::default()
    };
    // The drafts are loaded after the first model run: customers already
    // in a segment on the first day did not enter it then.
    let settings = Settings {
        journeys: JourneyOptions {
            dir: None,
            ..options.clone()
        },
        ..Settings::default()
    };
    let clock = Clock::simulated(i64::from(since) * DAY_MS, jiff::tz::TimeZone::UTC);
    let engine = Engine::start(&url, clock, settings, 1).map_err(|e| input_err(e.to_string()))?;
    let deliverer = Deliverer::new(
        &options,
        "simulation",
        String::new(),
        jiff::tz::TimeZone::UTC,
    )
    .map_err(|e| input_err(e.to_string()))?;
    let mut outbox_store = Store::open(&url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let days = (until - since + 1) as u64;
    let bar = indicatif::ProgressBar::new(days);
    bar.set_style(
        indicatif::ProgressStyle::with_template("replaying {bar:40} {pos}/{len} days ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result: Result<()> = runtime.block_on(async {
        engine.refit().await.map_err(|e| input_err(e.to_string()))?;
        engine
            .moments(MomentsJob::SyncFrom(args.dir.clone()))
            .await
            .map_err(|e| input_err(e.to_string()))?;
        let deliver = |now: i64, store: &mut Store| -> Result<()> {
            loop {
                let items = store.claim_outbox(now, 60_000, 5_000)?;
                if items.is_empty() {
                    return Ok(());
                }
                for item in &items {
                    let outcome = deliverer.simulate(store, item, now);
                    store.finish_outbox(&item.key, &outcome, now)?;
                }
            }
        };
        for day in since..=until {
            let start = i64::from(day) * DAY_MS;
            // Midnight: the due-time index and waits; then noon: the day's
            // orders; then the end of the day.
            let now = engine.clock.now_ms();
            engine.clock.advance(start - now);
            engine
                .run_due()
                .await
                .map_err(|e| input_err(e.to_string()))?;
            deliver(start, &mut outbox_store)?;
            engine.clock.advance(DAY_MS / 2);
            if let Some(orders) = later.get(&day) {
                let events: Vec<NewEvent> = orders
                    .iter()
                    .map(|(id, e)| NewEvent {
                        user_id: Some(id.clone()),
                        message_id: format!("replay:{}:{}", e.key, e.is_order),
                        kind: "track".into(),
                        event: Some(
                            if e.is_order {
                                "Order Completed"
                            } else {
                                "Order Refunded"
                            }
                            .into(),
                        ),
                        at_ms: start + DAY_MS / 2,
                        received_ms: start + DAY_MS / 2,
                        payload: json!({"properties": {"revenue": e.amount}}).to_string(),
                        order: Some(EventOrder {
                            order_key: e.key,
                            day,
                            amount: e.amount.abs(),
                            refund: !e.is_order,
                        }),
                        ..NewEvent::default()
                    })
                    .collect();
                for chunk in events.chunks(5_000) {
                    engine
                        .ingest(chunk.to_vec())
                        .await
                        .map_err(|e| input_err(e.to_string()))?;
                }
            }
            deliver(start + DAY_MS / 2, &mut outbox_store)?;
            engine.clock.advance(DAY_MS / 2 - 1);
            engine
                .run_due()
                .await
                .map_err(|e| input_err(e.to_string()))?;
            deliver(start + DAY_MS - 1, &mut outbox_store)?;
            bar.inc(1);
        }
        Ok(())
    });
    bar.finish_and_clear();
    result?;
    let enrolments = engine.read(|s| s.all_enrolments())?;
    let messages = engine.read(|s| s.outbox_days())?;
    engine.stop();
    report(&args, since, until, &enrolments, &messages)
}

type EnrolmentRows = [lifecycle_store::EnrolmentSummary];
type MessageRows = [lifecycle_store::OutboxDay];

fn report(
    args: &SimulateArgs,
    since: Day,
    until: Day,
    enrolments: &EnrolmentRows,
    messages: &MessageRows,
) -> Result<()> {
    // Per moment: entrants by group, goals by group, messages by status.
    #[derive(Default)]
    struct M {
        entered: [u64; 3],
        goals: [u64; 3],
        statuses: BTreeMap<(String, String), i64>,
        first_day: Option<i64>,
        last_day: Option<i64>,
    }
    let mut by: BTreeMap<String, M> = BTreeMap::new();
    let group_index = |g: &str| match g {
        "treatment" => 0,
        "holdout" => 1,
        _ => 2,
    };
    for (_, moment, _, group, goal) in enrolments {
        let m = by.entry(moment.clone()).or_default();
        let g = group_index(group);
        m.entered[g] += 1;
        m.goals[g] += u64::from(goal.is_some());
    }
    for (moment, channel, status, day, n) in messages {
        let m = by.entry(moment.clone()).or_default();
        *m.statuses
            .entry((channel.clone(), status.clone()))
            .or_default() += n;
        if status == "sent" {
            m.first_day = Some(m.first_day.map_or(*day, |d| d.min(*day)));
            m.last_day = Some(m.last_day.map_or(*day, |d| d.max(*day)));
        }
    }
    let rate = |goals: u64, n: u64| (n > 0).then(|| goals as f64 / n as f64);
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
        let mut e = String::from("customer_id,moment,entered,group,goal_reached\n");
        for (c, m, at, g, goal) in enrolments {
            let date = |ms: i64| format_day(ms.div_euclid(DAY_MS) as Day);
            e.push_str(&format!(
                "{},{},{},{},{}\n",
                csv_text(c),
                csv_text(m),
                date(*at),
                g,
                goal.map(date).unwrap_or_default()
            ));
        }
        std::fs::write(out.join("entrants.csv"), e)?;
        let mut t = String::from("day,moment,channel,status,messages\n");
        for (m, ch, st, day, n) in messages {
            t.push_str(&format!(
                "{},{},{ch},{st},{n}\n",
                format_day(*day as Day),
                csv_text(m)
            ));
        }
        std::fs::write(out.join("messages.csv"), t)?;
    }
    if args.json {
        let moments: Vec<serde_json::Value> = by
            .iter()
            .map(|(name, m)| {
                json!({
                    "moment": name,
                    "entered": {"treatment": m.entered[0], "holdout": m.entered[1], "global_control": m.entered[2]},
                    "goals": {"treatment": m.goals[0], "holdout": m.goals[1], "global_control": m.goals[2]},
                    "goal_rate": rate(m.goals.iter().sum(), m.entered.iter().sum()),
                    "messages": m.statuses.iter().map(|((ch, st), n)| json!({"channel": ch, "status": st, "count": n})).collect::<Vec<_>>(),
                    "first_send": m.first_day.map(|d| format_day(d as Day)),
                    "last_send": m.last_day.map(|d| format_day(d as Day)),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "since": format_day(since), "until": format_day(until), "moments": moments,
            }))?
        );
        return Ok(());
    }
    println!(
        "Replayed {} to {} ({} days) through {} moment(s)",
        format_day(since),
        format_day(until),
        until - since + 1,
        by.len()
    );
    for (name, m) in &by {
        let total: u64 = m.entered.iter().sum();
        println!();
        println!("{name}");
        println!(
            "  entered          {total} ({} treated, {} holdout, {} global control)",
            m.entered[0], m.entered[1], m.entered[2]
        );
        match rate(m.goals.iter().sum(), total) {
            Some(r) => println!(
                "  goal rate        {:.1}% historically ({} of {total}): the baseline to beat",
                100.0 * r,
                m.goals.iter().sum::<u64>()
            ),
            None => println!("  goal rate        -"),
        }
        for ((channel, status), n) in &m.statuses {
            println!("  {channel:<6} {status:<10} {n}");
        }
        if let (Some(a), Some(b)) = (m.first_day, m.last_day) {
            println!(
                "  sends from {} to {}",
                format_day(a as Day),
                format_day(b as Day)
            );
        }
    }
    Ok(())
}

fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
