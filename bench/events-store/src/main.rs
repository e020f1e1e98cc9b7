//! The soak's write pattern without the server: 20,000 customers, events
//! arriving round-robin over them (~170 B Segment-like payloads, a random
//! message id each), group commits of 1,000 events, every commit durable.
//! Stored (a) as the store keeps them, a SQLite `WITHOUT ROWID` table keyed
//! by (customer, message id) in WAL mode with `synchronous = FULL`, and
//! (b) in fjall (an LSM tree) keyed by customer and message id, a re-sent
//! message id looked up before writing, the journal synced after each batch.
//! Prints events/s, bytes the process wrote to storage per event and CPU
//! time per event (all threads, compaction included) every million events.
//!
//!     events-store-bench sqlite|fjall DIR EVENTS

use std::time::Instant;

const CUSTOMERS: u64 = 20_000;
const PER_COMMIT: u64 = 1_000;

fn proc_field(path: &str, name: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of this process (all threads).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn message_id(n: u64) -> String {
    format!("{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn payload(n: u64) -> String {
    let r = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        r#"{{"properties":{{"product_id":"p{}","price":{}.{:02},"category":"c{}"}},"context":{{"ip":"10.{}.{}.{}","page":"/p/{:x}"}}}}"#,
        r % 50_000,
        (r >> 20) % 500,
        (r >> 30) % 100,
        (r >> 40) % 40,
        (r >> 8) % 256,
        (r >> 16) % 256,
        (r >> 24) % 256,
        r >> 33
    )
}

struct Meter {
    what: String,
    started: Instant,
    written: u64,
    cpu: f64,
}

impl Meter {
    fn new(what: &str) -> Meter {
        Meter {
            what: what.to_string(),
            started: Instant::now(),
            written: proc_field("/proc/self/io", "write_bytes:"),
            cpu: cpu_seconds(),
        }
    }

    fn report(&self, events: u64) {
        let secs = self.started.elapsed().as_secs_f64();
        let written =
            proc_field("/proc/self/io", "write_bytes:").saturating_sub(self.written) as f64;
        let n = events.max(1) as f64;
        println!(
            "{} {events} events: {:.0} events/s, {:.1} KB written per event ({:.0} MB/s), {:.1} µs CPU per event",
            self.what,
            n / secs,
            written / n / 1e3,
            written / secs / 1e6,
            (cpu_seconds() - self.cpu) / n * 1e6
        );
    }
}

fn sqlite(dir: &str, total: u64) -> Result<(), Box<dyn std::error::Error>> {
    let db = rusqlite::Connection::open(format!("{dir}/events.db"))?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -65536;
         PRAGMA wal_autocheckpoint = 10000;
         CREATE TABLE IF NOT EXISTS events (customer_id TEXT NOT NULL, message_id TEXT NOT NULL,
           at_ms INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (customer_id, message_id))
         WITHOUT ROWID;",
    )?;
    let meter = Meter::new("sqlite");
    let mut n = 0;
    while n < total {
        let tx = db.unchecked_transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?;
            for _ in 0..PER_COMMIT {
                let customer = format!("b{}", (n * 7919) % CUSTOMERS);
                insert.execute(rusqlite::params![
                    customer,
                    message_id(n),
                    n as i64,
                    payload(n)
                ])?;
                n += 1;
            }
        }
        tx.commit()?;
        if n % 1_000_000 == 0 {
            meter.report(n);
        }
    }
    if n % 1_000_000 != 0 {
        meter.report(n);
    }
    Ok(())
}

fn fjall(dir: &str, total: u64) -> Result<(), Box<dyn std::error::Error>> {
    let keyspace = fjall::Config::new(format!("{dir}/fjall")).open()?;
    let events = keyspace.open_partition("events", fjall::PartitionCreateOptions::default())?;
    let meter = Meter::new("fjall");
    let mut n = 0;
    while n < total {
        let mut batch = keyspace.batch();
        for _ in 0..PER_COMMIT {
            let mut key = format!("b{}", (n * 7919) % CUSTOMERS).into_bytes();
            key.push(0);
            key.extend_from_slice(message_id(n).as_bytes());
            if !events.contains_key(&key)? {
                batch.insert(&events, key, payload(n).as_bytes());
            }
            n += 1;
        }
        batch.commit()?;
        keyspace.persist(fjall::PersistMode::SyncAll)?;
        if n % 1_000_000 == 0 {
            meter.report(n);
        }
    }
    if n % 1_000_000 != 0 {
        meter.report(n);
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(which), Some(dir)) = (args.get(1), args.get(2)) else {
        return Err("usage: events-store-bench sqlite|fjall DIR [EVENTS]".into());
    };
    let total: u64 = args.get(3).map_or(Ok(12_000_000), |s| s.parse())?;
    std::fs::create_dir_all(dir)?;
    match which.as_str() {
        "sqlite" => sqlite(dir, total),
        "fjall" => fjall(dir, total),
        other => Err(format!("{other}: sqlite or fjall").into()),
    }
}
