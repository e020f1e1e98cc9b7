//! PostgreSQL stopped (as a crash: `pg_ctl stop -m immediate`) and started
//! again under a running `serve`, while a client sends batches — re-sending
//! each until it is answered 200, as Segment's libraries do — and a
//! journey sends its emails. During the outage the server answers 503 and
//! stays up; afterwards every acknowledged event is stored once, the
//! journey's sends all go out (a send interrupted by the outage may go
//! twice, with the same Message-ID: the stated at-least-once guarantee),
//! and the journey's waits continue to their second step.
//!
//! The test starts its own PostgreSQL (`scripts/pg-throwaway.sh`), since
//! restarting the one the other tests share would disturb them.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::moments::*;
use common::smtp::SmtpSink;
use common::*;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A PostgreSQL server this test may stop and start.
struct OwnPostgres {
    base: String,
    bin: String,
    data: String,
    options: String,
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let script = repo().join("scripts/pg-throwaway.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(std::process::id().to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let base = stdout(&out).trim().to_string();
        let mut c = postgres::Client::connect(&base, postgres::NoTls).unwrap();
        let show = |c: &mut postgres::Client, what: &str| -> String {
            c.query_one(&format!("SHOW {what}"), &[]).unwrap().get(0)
        };
        let version: i64 = show(&mut c, "server_version_num").parse().unwrap();
        let (data, port) = (show(&mut c, "data_directory"), show(&mut c, "port"));
        let sockets = show(&mut c, "unix_socket_directories");
        OwnPostgres {
            base,
            bin: format!("/usr/lib/postgresql/{}/bin", version / 10_000),
            options: format!(
                "-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=300"
            ),
            data,
        }
    }

    /// `pg_ctl ARGS`, as the `postgres` user when running as root (the
    /// server refuses to run as root).
    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = format!("{}/pg_ctl", self.bin);
        let root = stdout(&Command::new("id").arg("-u").output().unwrap()).trim() == "0";
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &pg_ctl]);
            c
        } else {
            Command::new(&pg_ctl)
        };
        let out = cmd.args(["-D", &self.data]).args(args).output().unwrap();
        assert!(out.status.success(), "pg_ctl {args:?}: {}", stderr(&out));
    }

    fn stop(&self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }

    fn start_again(&self) {
        let log = format!("{}/server.log", self.data);
        self.pg_ctl(&["-l", &log, "-w", "-t", "60", "-o", &self.options, "start"]);
    }

    fn database(&self, name: &str) -> String {
        let mut c = postgres::Client::connect(&self.base, postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (server, _) = self.base.rsplit_once('/').unwrap();
        format!("{server}/{name}")
    }
}

/// Batch `b` of 50 messages: track events of 25 customers, every fifth an
/// order with its own id.
fn batch(b: usize) -> String {
    let messages: Vec<String> = (0..50)
        .map(|i| {
            let n = b * 50 + i;
            let event = if i % 5 == 0 {
                format!(
                    r#""event":"Order Completed","properties":{{"order_id":"o{n}","total":10}}"#
                )
            } else {
                r#""event":"Product Viewed""#.to_string()
            };
            format!(
                r#"{{"type":"track","userId":"load{}","messageId":"m{n}","timestamp":"2023-12-01T10:00:00Z",{event}}}"#,
                n % 25
            )
        })
        .collect();
    format!(r#"{{"batch":[{}]}}"#, messages.join(","))
}

#[test]
fn postgres_restarted_under_the_server() {
    let pg = OwnPostgres::start();
    let db = pg.database("lc_restart");
    let sink = SmtpSink::start();
    // A slow provider, so that the outage lands in the middle of the sends.
    sink.set_delay(Duration::from_millis(30));
    let f = fixture(Some(&db), &sink.url(), "");
    let args = serve_args(&f);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = start(&db, &args);
    let addr = server.addr.clone();
    // Keep the server's log (and never let its pipe fill).
    let log = server.keep_log();
    identify_targets(&addr, &f);
    let days = days_to_at_risk(&addr, &f.secret);

    // The client: each batch re-sent until it is answered 200.
    let acked = Arc::new(Mutex::new(0usize));
    let refusals = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (addr, key) = (addr.clone(), f.write.clone());
        let (acked, refusals, stop) = (acked.clone(), refusals.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut b = 0;
            while !stop.load(Ordering::Relaxed) {
                match try_request(
                    &addr,
                    "POST",
                    "/v1/batch",
                    &[basic(&key)],
                    batch(b).as_bytes(),
                ) {
                    Ok((200, _)) => {
                        b += 1;
                        *acked.lock().unwrap() = b;
                        continue;
                    }
                    Ok((status, _)) => {
                        *refusals
                            .lock()
                            .unwrap()
                            .entry(status.to_string())
                            .or_default() += 1
                    }
                    Err(e) => *refusals.lock().unwrap().entry(e.to_string()).or_default() += 1,
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // The journey starts; the outage comes once a quarter is sent.
    advance_days(&addr, &f.secret, days as f64);
    let c = counts(&addr, &f.secret, "Win back");
    let treated = 1_000 - c["holdout"].as_u64().unwrap() - c["global_control"].as_u64().unwrap();
    let treated = treated as usize;
    assert!(sink.wait_for(treated / 4, Duration::from_secs(60)));
    let acked_before = *acked.lock().unwrap();
    pg.stop();
    let down = Instant::now();
    let sent_at_stop = sink.count();
    // During the outage: the server is up, answers 503, sends nothing new.
    std::thread::sleep(Duration::from_secs(2));
    let (status, body) = request(
        &addr,
        "GET",
        "/api/v1/customers/load1",
        &[bearer(&f.secret)],
        b"",
    );
    assert_eq!(status, 503, "{body}");
    let (status, body) = request(
        &addr,
        "POST",
        "/v1/batch",
        &[basic(&f.write)],
        batch(999_999).as_bytes(),
    );
    assert_eq!(status, 503, "{body}");
    let (status, _) = request(&addr, "GET", "/healthz", &[], b"");
    assert_eq!(status, 200);
    let (status, _) = request(&addr, "GET", "/readyz", &[], b"");
    assert_eq!(status, 503);
    std::thread::sleep(Duration::from_secs(2));
    assert!(server.child.try_wait().unwrap().is_none(), "serve exited");
    let sent_during = sink.count() - sent_at_stop;
    assert!(sent_during <= 8, "{sent_during} sent with the store down");
    pg.start_again();
    let outage = down.elapsed();

    // Ingestion resumes by itself.
    let resumed = Instant::now();
    let stuck_at = *acked.lock().unwrap();
    while *acked.lock().unwrap() < stuck_at + 20 {
        assert!(
            resumed.elapsed() < Duration::from_secs(60),
            "ingestion did not resume: {:?}",
            refusals.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let resumed_in = resumed.elapsed();
    let (status, body) = request(&addr, "GET", "/readyz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ready"));
    // Sends interrupted by the outage are retried (1 minute) or their
    // leases run out (2 minutes, on the simulated clock).
    advance_days(&addr, &f.secret, 121.0 / 86_400.0);
    let ids = |sink: &SmtpSink| -> HashMap<String, usize> {
        let mut ids = HashMap::new();
        for m in sink.mails() {
            *ids.entry(m.header("Message-ID").unwrap()).or_default() += 1;
        }
        ids
    };
    let until = Instant::now() + Duration::from_secs(120);
    while ids(&sink).len() < treated && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    sink.settle(Duration::from_millis(1500));
    let first = ids(&sink);
    assert_eq!(
        first.len(),
        treated,
        "every treated customer, once at least"
    );
    let repeats: usize = first.values().map(|n| n - 1).sum();
    assert!(repeats <= 8, "{repeats} repeats");

    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let acked = *acked.lock().unwrap();
    let refusals = refusals.lock().unwrap().clone();

    // Every acknowledged event once; nothing from the refused batch.
    let (events, distinct) = stored_events(&db, "m");
    assert_eq!(events, distinct);
    assert_eq!(events, 50 * acked as i64, "{acked} batches acknowledged");
    assert_eq!(
        sql_count(
            &db,
            "SELECT COUNT(*) FROM orders WHERE customer_id LIKE 'load%'"
        ),
        10 * acked as i64
    );

    // The waits continue: the reminders go out, one per treated customer.
    let mails_before = sink.count();
    advance_days(&addr, &f.secret, 14.0);
    assert!(sink.wait_for(mails_before + treated, Duration::from_secs(120)));
    sink.settle(Duration::from_millis(1500));
    let c = counts(&addr, &f.secret, "Win back");
    assert_eq!(c["active"], 0, "{c}");
    assert_eq!(ids(&sink).len(), 2 * treated);
    assert!(server.child.try_wait().unwrap().is_none(), "serve exited");
    let log = log.lock().unwrap().clone();
    let errors = log.len();
    let mut kinds: Vec<String> = log.iter().map(|l| l.chars().take(300).collect()).collect();
    kinds.sort();
    kinds.dedup();
    eprintln!("log, by kind:\n{}", kinds.join("\n"));
    eprintln!(
        "outage {outage:.1?}: {acked_before} batches acknowledged before it, {acked} in all; \
         refused meanwhile {refusals:?}; ingestion resumed {resumed_in:.1?} after the start; \
         {treated} treated, {sent_at_stop} sent before the outage, {sent_during} during it, \
         {repeats} sent twice; {errors} log lines"
    );
}
