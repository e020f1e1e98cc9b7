//! `lifecycle bench-serve --soak SECONDS`: ingestion at a fixed event rate
//! and customer-view reads at a fixed request rate, together, against a
//! real `serve`, open loop (every request timed from when it was due), with
//! the server's resident memory, both latencies, the writer's time in
//! transactions (`/metrics`) and the bytes the server wrote to storage
//! sampled every second. Prints a table (a row per 30 s), the machine's
//! CPU time over the run (how much of the cores the run had, and how much
//! it waited for the disk) and the verdicts: memory flat after the
//! warm-up, the view's p99 under 5 ms, the rate kept.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::bench_serve::{BenchServeArgs, Conn, batch_body, percentile};

/// The customer view's p99 target (the engine's benchmark target).
const VIEW_P99_MS: f64 = 5.0;
/// Growth of resident memory from the end of the warm-up to the end that
/// still counts as flat.
const FLAT: f64 = 0.10;

/// One completed request: the second it completed in and its latency.
type Sample = (u64, f64);

/// The server's resident memory in KiB (Linux).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The bytes the server has caused to be written to storage (Linux
/// `/proc/PID/io`, `write_bytes`).
fn written_bytes(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The machine's CPU time so far from `/proc/stat`'s first line: user
/// (with nice), system (with interrupts), idle, waiting for I/O, stolen by
/// the hypervisor, in clock ticks.
fn cpu_ticks(stat: &str) -> Option<[u64; 5]> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some([at(0) + at(1), at(2) + at(5) + at(6), at(3), at(4), at(7)])
}

fn machine_ticks() -> Option<[u64; 5]> {
    cpu_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The writer's seconds running statements and committing, from the
/// server's `/metrics` text.
fn writer_seconds(metrics: &str) -> Option<(f64, f64)> {
    let value = |name: &str| {
        metrics.lines().find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse::<f64>().ok())?
        })
    };
    Some((
        value("lifecycle_writer_work_seconds_total")?,
        value("lifecycle_writer_commit_seconds_total")?,
    ))
}

/// Runs `each(conn, k)` for k = 0, 1, … at `per_second` (spread over
/// `threads` connections) until `end`; returns (second, latency) samples.
fn open_loop(
    addr: &str,
    threads: usize,
    per_second: f64,
    begin: Instant,
    end: Instant,
    stop: &AtomicBool,
    each: &(dyn Fn(&mut Conn, u64) -> Result<()> + Sync),
) -> Result<Vec<Sample>> {
    let interval = Duration::from_secs_f64(threads as f64 / per_second.max(1e-3));
    let results: Vec<Result<Vec<Sample>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<Vec<Sample>> {
                    let mut conn = Conn::open(addr)?;
                    let mut out = Vec::new();
                    let offset = interval.mul_f64(t as f64 / threads as f64);
                    for i in 0u64.. {
                        let due = begin + interval * (i as u32) + offset;
                        // The soak ends on time: a server that falls behind
                        // shows as a lower rate, not as a longer run.
                        if due >= end || Instant::now() >= end || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        if let Err(e) = each(&mut conn, i * threads as u64 + t as u64) {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        let second = due.duration_since(begin).as_secs();
                        out.push((second, due.elapsed().as_secs_f64()));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

/// The first and last of per-second readings inside [from, to) and the
/// seconds between them (none if fewer than two seconds apart).
fn ends<T>(readings: &[(u64, T)], from: u64, to: u64) -> Option<(&T, &T, f64)> {
    let first = readings.iter().find(|(s, _)| *s >= from)?;
    let last = readings.iter().rev().find(|(s, _)| *s < to)?;
    let span = last.0.checked_sub(first.0).filter(|&d| d > 0)?;
    Some((&first.1, &last.1, span as f64))
}

fn window(samples: &[Sample], from: u64, to: u64) -> Vec<f64> {
    let mut v: Vec<f64> = samples
        .iter()
        .filter(|(s, _)| (from..to).contains(s))
        .map(|(_, l)| *l)
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

pub fn run(args: &BenchServeArgs, addr: &str, pid: u32, basic: &str, bearer: &str) -> Result<()> {
    let seconds = args.soak;
    let batch = args.batch.max(1);
    let customers = args.customers.max(1);
    eprintln!(
        "soak: {} events/s in batches of {batch} over {} connections and {} customer views/s, for {seconds} s ...",
        args.rate, args.clients, args.reads_per_second
    );
    let begin = Instant::now() + Duration::from_millis(200);
    let end = begin + Duration::from_secs(seconds);
    let stop = AtomicBool::new(false);
    let memory: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
    // (second, the writer's work and commit seconds so far)
    let writer: Mutex<Vec<(u64, (f64, f64))>> = Mutex::new(Vec::new());
    // (second, bytes the server had written to storage)
    let written: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
    let ticks_before = machine_ticks();
    let ingest = |conn: &mut Conn, k: u64| -> Result<()> {
        let body = batch_body(k as usize * batch, batch, customers);
        let (status, text) = conn.call("POST", "/v1/batch", basic, body.as_bytes())?;
        if status != 200 {
            bail!(
                "ingestion answered {status}: {}",
                String::from_utf8_lossy(&text)
            );
        }
        Ok(())
    };
    let read = |conn: &mut Conn, k: u64| -> Result<()> {
        let c = (k as usize).wrapping_mul(40_503) % customers;
        let (status, _) = conn.call("GET", &format!("/api/v1/customers/b{c}"), bearer, b"")?;
        if status != 200 && status != 404 {
            bail!("customer view answered {status}");
        }
        Ok(())
    };
    let (batches, views) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut next = begin;
            let mut conn = Conn::open(addr).ok();
            while next < end && !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                let second = next.duration_since(begin).as_secs();
                if let (Some(kib), Ok(mut m)) = (rss_kib(pid), memory.lock()) {
                    m.push((second, kib));
                }
                let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok();
                if let (Some(bytes), Ok(mut w)) =
                    (io.as_deref().and_then(written_bytes), written.lock())
                {
                    w.push((second, bytes));
                }
                let spent = conn
                    .as_mut()
                    .and_then(|c| c.call("GET", "/metrics", bearer, b"").ok())
                    .and_then(|(_, text)| writer_seconds(&String::from_utf8_lossy(&text)));
                if let (Some((work, commit)), Ok(mut w)) = (spent, writer.lock()) {
                    w.push((second, (work, commit)));
                }
                next += Duration::from_secs(1);
            }
        });
        let batches = scope.spawn(|| {
            open_loop(
                addr,
                args.clients.max(1),
                args.rate as f64 / batch as f64,
                begin,
                end,
                &stop,
                &ingest,
            )
        });
        let views = open_loop(
            addr,
            4,
            args.reads_per_second as f64,
            begin,
            end,
            &stop,
            &read,
        );
        let batches = batches
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let _ = sampler.join();
        (batches, views)
    });
    let ticks_after = machine_ticks();
    let (batches, views) = (batches?, views?);
    let memory = memory.into_inner().unwrap_or_default();
    let rss_at = |from: u64, to: u64| -> Option<f64> {
        let v: Vec<u64> = memory
            .iter()
            .filter(|(s, _)| (from..to).contains(s))
            .map(|(_, k)| *k)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<u64>() as f64 / v.len() as f64 / 1024.0)
    };
    let writer = writer.into_inner().unwrap_or_default();
    // The writer's share of the window spent in transactions, and the
    // commits' share of that.
    let writer_at = |from: u64, to: u64| -> Option<(f64, f64)> {
        let (first, last, span) = ends(&writer, from, to)?;
        let (work, commit) = (last.0 - first.0, last.1 - first.1);
        let busy = work + commit;
        Some((busy / span * 100.0, commit / busy.max(1e-9) * 100.0))
    };
    let written = written.into_inner().unwrap_or_default();
    // MB/s the server wrote to storage in the window.
    let written_at = |from: u64, to: u64| -> Option<f64> {
        let (first, last, span) = ends(&written, from, to)?;
        Some(last.saturating_sub(*first) as f64 / span / 1e6)
    };
    println!(
        "| from s | events/s answered | batch p99 ms (from due) | view p50 ms | view p99 ms | server RSS MiB | writer busy % | of it committing % | written MB/s | KB per event |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let step = 30.min(seconds.max(1));
    let mut from = 0;
    while from < seconds {
        let to = (from + step).min(seconds);
        let b = window(&batches, from, to);
        let v = window(&views, from, to);
        // Throughput by when batches were answered; latencies by when they
        // were due.
        let answered = batches
            .iter()
            .filter(|(due, latency)| (from..to).contains(&(due + *latency as u64)))
            .count();
        let (busy, committing) = writer_at(from, to).map_or(("?".into(), "?".into()), |(b, c)| {
            (format!("{b:.0}"), format!("{c:.0}"))
        });
        let rate = (answered * batch) as f64 / (to - from) as f64;
        let (mb, per_event) = written_at(from, to).map_or(("?".into(), "?".into()), |mb| {
            (
                format!("{mb:.0}"),
                if rate > 0.0 {
                    format!("{:.1}", mb * 1e3 / rate)
                } else {
                    "?".into()
                },
            )
        });
        println!(
            "| {from} | {rate:.0} | {} | {:.2} | {:.2} | {} | {busy} | {committing} | {mb} | {per_event} |",
            // Batches due this late that no answer reached before the end.
            if b.is_empty() {
                "none answered".to_string()
            } else {
                format!("{:.1}", percentile(&b, 0.99) * 1e3)
            },
            percentile(&v, 0.5) * 1e3,
            percentile(&v, 0.99) * 1e3,
            rss_at(from, to).map_or("?".into(), |m| format!("{m:.0}")),
        );
        from = to;
    }
    let all_views = window(&views, 0, seconds);
    let all_batches = window(&batches, 0, seconds);
    let achieved = (all_batches.len() * batch) as f64 / seconds as f64;
    let p99 = percentile(&all_views, 0.99) * 1e3;
    // Memory: the warm-up is the first fifth (at most two minutes); flat
    // means the last 30 s are within 10% of the 30 s after the warm-up.
    let warm = (seconds / 5).clamp(1, 120);
    let after_warm = rss_at(warm, warm + 30);
    let last = rss_at(seconds.saturating_sub(30), seconds);
    println!();
    println!(
        "ingestion: {achieved:.0} events/s of {} asked ({} batches, p50 {:.1} ms, p99 {:.1} ms)",
        args.rate,
        all_batches.len(),
        percentile(&all_batches, 0.5) * 1e3,
        percentile(&all_batches, 0.99) * 1e3
    );
    if let (Some(a), Some(b)) = (ticks_before, ticks_after) {
        let d: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(x, y)| y.saturating_sub(*x) as f64)
            .collect();
        let total = d.iter().sum::<f64>().max(1.0);
        let pct = |i: usize| d[i] / total * 100.0;
        println!(
            "machine ({} cores, server and load generator): user {:.0}%, system {:.0}%, idle {:.0}%, waiting for the disk {:.0}%, stolen by the hypervisor {:.0}%",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            pct(0),
            pct(1),
            pct(2),
            pct(3),
            pct(4)
        );
    }
    println!(
        "customer view: {} requests, p50 {:.2} ms, p99 {p99:.2} ms (target < {VIEW_P99_MS} ms): {}",
        all_views.len(),
        percentile(&all_views, 0.5) * 1e3,
        if p99 < VIEW_P99_MS { "PASS" } else { "FAIL" }
    );
    match (after_warm, last) {
        (Some(a), Some(b)) => println!(
            "server memory: {a:.0} MiB after the warm-up ({warm} s), {b:.0} MiB at the end ({:+.1}%, flat within {:.0}%): {}",
            (b / a - 1.0) * 100.0,
            FLAT * 100.0,
            if b <= a * (1.0 + FLAT) {
                "PASS"
            } else {
                "FAIL"
            }
        ),
        _ => println!("server memory: not sampled (no /proc)"),
    }
    println!(
        "rate kept: {}",
        if achieved >= args.rate as f64 * 0.98 {
            "PASS"
        } else {
            "FAIL (the server fell behind the asked rate)"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_seconds_are_read_from_the_metrics() {
        let text = "# HELP lifecycle_writer_work_seconds_total x\n\
                    # TYPE lifecycle_writer_work_seconds_total counter\n\
                    lifecycle_writer_work_seconds_total 12.500000\n\
                    lifecycle_writer_commit_seconds_total 30.250000\n\
                    lifecycle_commits_total 7\n";
        assert_eq!(writer_seconds(text), Some((12.5, 30.25)));
        assert_eq!(writer_seconds("lifecycle_commits_total 7\n"), None);
    }

    #[test]
    fn a_window_is_measured_between_its_first_and_last_readings() {
        let readings = [(0, 10u64), (1, 20), (5, 60), (9, 100)];
        assert_eq!(ends(&readings, 1, 6), Some((&20, &60, 4.0)));
        assert_eq!(ends(&readings, 5, 9), None);
        assert_eq!(ends(&readings, 10, 20), None);
    }

    #[test]
    fn the_written_bytes_and_the_machine_ticks_are_read_from_proc() {
        let io = "rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 81920\ncancelled_write_bytes: 0\n";
        assert_eq!(written_bytes(io), Some(81_920));
        assert_eq!(written_bytes("rchar: 1\n"), None);
        let stat = "cpu  100 5 30 900 40 2 3 7 0 0\ncpu0 50 2 15 450 20 1 1 3 0 0\n";
        assert_eq!(cpu_ticks(stat), Some([105, 35, 900, 40, 7]));
        assert_eq!(cpu_ticks("intr 1 2\n"), None);
    }
}
