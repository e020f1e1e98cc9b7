//! `lifecycle bench-journeys`: journeys at scale on a real store. N
//! customers enter a moment whose journey waits a day, sends, waits a
//! day and sends again; the timings are those of the three parts of the
//! pipeline:
//!
//! 1. enrolment (the trigger event stored, the customer enrolled, the
//!    wait put on the due-time index, in group commits of 10,000 events);
//! 2. the timer pass when all N waits come due at once (steps per second:
//!    each walks on and puts a send in the outbox);
//! 3. delivery of a sample of the outbox through the send policy with a
//!    no-op channel (the store's part of a send; a real provider adds its
//!    own latency, spread over the delivery workers).
//!
//! The delay from due time to send follows: when N waits come due at the
//! same instant, the last one walks on after N / (steps per second).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lifecycle_server::journeys::{Deliverer, JourneyOptions};
use lifecycle_store::{CustomerFacts, Journeys, NewEvent, ProfileRow, Store, StoreUrl};

use crate::input_err;

#[derive(Args, Debug)]
pub struct BenchJourneysArgs {
    /// Customers enrolled
    #[arg(long, default_value_t = 1_000_000)]
    pub customers: u64,
    /// Sends delivered (through the policy, no-op channel) for the rate
    #[arg(long, default_value_t = 20_000)]
    pub deliveries: usize,
    /// The store [default: a fresh SQLite file in --dir]
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Where the SQLite store goes
    #[arg(long, default_value = "lifecycle-bench")]
    pub dir: PathBuf,
}

const MOMENT: &str = r#"name = "Bench"
holdout = 0.1
reentry = "once"

[goal]
event = "Order Completed"
within_days = 30

[trigger]
event = "Bench Start"

[[step]]
wait = { days = 1 }

[[step]]
send = { channel = "email", template = "t.html" }

[[step]]
wait = { days = 1 }

[[step]]
send = { channel = "email", template = "t.html" }
"#;

const DAY_MS: i64 = 86_400_000;

fn scorer(f: &CustomerFacts<'_>) -> ProfileRow {
    ProfileRow {
        n_orders: f
            .summary
            .map_or(f.entries.len() as i64, |s| i64::from(s.n_orders)),
        segment: "Engaged Visitors".into(),
        phase: "Acquisition".into(),
        ..ProfileRow::default()
    }
}

pub fn run(args: BenchJourneysArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    let db = match &args.db {
        Some(d) => d.clone(),
        None => {
            let path = args.dir.join(format!("journeys-{}.db", args.customers));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}", path.display())
        }
    };
    let url = StoreUrl::parse(&db).map_err(|e| input_err(e.to_string()))?;
    let mut store = Store::open(&url)?;
    let table = lifecycle_rfm::SegmentTable::default_table();
    let moment = lifecycle_ingest::config::parse_moment(MOMENT, &table)
        .map_err(|e| input_err(e.join("; ")))?;
    store.set_journeys(Journeys::new(vec![moment], vec![], 0.05));
    let t0: i64 = 1_735_689_600_000; // 2025-01-01
    let s: lifecycle_store::Scorer<'_> = &scorer;

    // 1. Enrolment.
    let start = Instant::now();
    let chunk = 10_000u64;
    let mut done = 0u64;
    while done < args.customers {
        let n = chunk.min(args.customers - done);
        let events: Vec<NewEvent> = (done..done + n)
            .map(|i| NewEvent {
                user_id: Some(format!("b{i:08}")),
                message_id: format!("start-{i}"),
                kind: "track".into(),
                event: Some("Bench Start".into()),
                at_ms: t0,
                received_ms: t0,
                payload: "{}".into(),
                ..NewEvent::default()
            })
            .collect();
        store.ingest(&[events], s, t0)?;
        done += n;
    }
    let enrol_s = start.elapsed().as_secs_f64();
    let enrolled = store.moment_counts("Bench")?.enrolled;
    println!(
        "enrolment      {enrolled} customers in {enrol_s:.1} s: {:.0} enrolments/s (event stored, customer created, wait indexed)",
        enrolled as f64 / enrol_s
    );

    // 2. Every wait comes due at once.
    let due = t0 + DAY_MS;
    assert_due(&mut store, due)?;
    let start = Instant::now();
    let mut woken = 0u64;
    let mut queued = 0u64;
    loop {
        let w = store.wake_journeys(due, 10_000, s)?;
        if w.woken == 0 {
            break;
        }
        woken += w.woken;
        queued += w.queued;
    }
    let wake_s = start.elapsed().as_secs_f64();
    let rate = woken as f64 / wake_s;
    println!(
        "timer pass     {woken} steps in {wake_s:.1} s: {rate:.0} steps/s ({queued} sends queued, the rest held out)"
    );
    println!(
        "due -> queued  {:.1} s for the last of {woken} waits due at the same instant; {:.2} s for the median",
        woken as f64 / rate,
        woken as f64 / rate / 2.0
    );

    // 3. Delivery of a sample through the policy (no-op channel).
    let options = JourneyOptions::default();
    let deliverer = Deliverer::new(&options, "bench", String::new(), jiff::tz::TimeZone::UTC)
        .map_err(|e| input_err(e.to_string()))?;
    let start = Instant::now();
    let mut delivered = 0usize;
    while delivered < args.deliveries {
        let items = store.claim_outbox(due, 60_000, (args.deliveries - delivered).min(1_000))?;
        if items.is_empty() {
            break;
        }
        for item in &items {
            let outcome = deliverer.simulate(&mut store, item, due);
            store.finish_outbox(&item.key, &outcome, due)?;
        }
        delivered += items.len();
    }
    let deliver_s = start.elapsed().as_secs_f64();
    println!(
        "delivery       {delivered} sends in {deliver_s:.1} s: {:.0} sends/s per connection (lease, policy, outcome committed; the provider's time comes on top)",
        delivered as f64 / deliver_s
    );
    println!("store          {db}");
    Ok(())
}

fn assert_due(store: &mut Store, due: i64) -> Result<()> {
    match store.next_wake()? {
        Some(t) if t <= due => Ok(()),
        other => Err(input_err(format!(
            "bench: the waits are not due at {due} (next wake {other:?})"
        ))),
    }
}
