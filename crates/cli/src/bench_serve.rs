//! `lifecycle bench-serve`: a load generator on loopback against a real
//! `lifecycle serve` (this binary, started on a fresh store): events/s
//! through `/v1/batch` with durable commits, then the latency of
//! `GET /api/v1/customers/{id}` at a fixed request rate (open loop: each
//! request is timed from when it was due, so a stalled server cannot hide
//! its queue).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct BenchServeArgs {
    /// Events to send through /v1/batch
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events per batch request
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Concurrent ingestion clients (keep-alive connections)
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Distinct customers the events are spread over
    #[arg(long, default_value_t = 20_000)]
    pub customers: usize,
    /// Customer-view requests per second in the read phase
    #[arg(long, default_value_t = 1000)]
    pub reads_per_second: u64,
    /// Length of the read phase in seconds
    #[arg(long, default_value_t = 10)]
    pub read_seconds: u64,
    /// The store to benchmark (default: a fresh SQLite file in --dir)
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Where the store goes
    #[arg(long, default_value = "lifecycle-bench-serve")]
    pub dir: PathBuf,
    /// Run serve with these moments (to measure what journeys cost ingestion)
    #[arg(long, value_name = "DIR")]
    pub moments: Option<PathBuf>,
    /// Soak instead: ingest at --rate and read customer views at --reads-per-second together
    /// for this many seconds, sampling the server's memory and both latencies every second
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub soak: u64,
    /// With --soak: events per second through /v1/batch (open loop)
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
    addr: String,
}

impl Conn {
    pub(crate) fn open(addr: &str) -> Result<Conn> {
        let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s),
            addr: addr.to_string(),
        })
    }

    pub(crate) fn call(
        &mut self,
        method: &str,
        path: &str,
        auth: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line)?;
        let status: u16 = status_line
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut out = vec![0; length];
        self.reader.read_exact(&mut out)?;
        Ok((status, out))
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn key(exe: &PathBuf, db: &str, kind: &str) -> Result<String> {
    let out = Command::new(exe)
        .args(["keys", "create", "--kind", kind, "--db", db])
        .output()?;
    if !out.status.success() {
        bail!("keys create: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn batch_body(start: usize, n: usize, customers: usize) -> String {
    let mut s = String::from("{\"batch\":[");
    for i in start..start + n {
        if i > start {
            s.push(',');
        }
        // A fixed scramble spreads consecutive events over customers.
        let c = (i.wrapping_mul(2_654_435_761)) % customers;
        if i % 10 == 0 {
            s.push_str(&format!(
                "{{\"type\":\"track\",\"userId\":\"b{c}\",\"messageId\":\"e{i}\",\"event\":\"Order Completed\",\"properties\":{{\"order_id\":\"o{i}\",\"total\":{}}}}}",
                10 + i % 90
            ));
        } else {
            s.push_str(&format!(
                "{{\"type\":\"track\",\"userId\":\"b{c}\",\"messageId\":\"e{i}\",\"event\":\"Product Viewed\",\"properties\":{{\"product_id\":\"p{}\"}}}}",
                i % 500
            ));
        }
    }
    s.push_str("]}");
    s
}

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

pub fn run(args: BenchServeArgs) -> Result<()> {
    use base64::Engine as _;
    let exe = std::env::current_exe().context("cannot find the lifecycle binary")?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    let db = match &args.db {
        Some(u) => u.clone(),
        None => {
            let path = args.dir.join("bench.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}", path.display())
        }
    };
    let write = key(&exe, &db, "write")?;
    let secret = key(&exe, &db, "secret")?;
    let mut serve = Command::new(&exe);
    serve.args([
        "serve",
        "--db",
        &db,
        "--listen",
        "127.0.0.1:0",
        "--refit-every",
        "off",
    ]);
    if let Some(m) = &args.moments {
        serve.arg("--moments").arg(m);
    }
    let mut child = serve
        .stdout(Stdio::piped())
        .spawn()
        .context("starting lifecycle serve")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let pid = child.id();
    let server = Server(child);
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .with_context(|| format!("serve did not start: {line:?}"))?
        .to_string();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{write}:"))
    );

    if args.soak > 0 {
        let bearer = format!("Bearer {secret}");
        let result = crate::soak::run(&args, &addr, pid, &basic, &bearer);
        drop(server);
        return result;
    }

    // Phase 1: ingestion.
    let batches = args.events.div_ceil(args.batch.max(1));
    let bodies: Vec<String> = (0..batches)
        .map(|b| batch_body(b * args.batch, args.batch, args.customers.max(1)))
        .collect();
    eprintln!(
        "ingesting {} events in batches of {} over {} connections ...",
        batches * args.batch,
        args.batch,
        args.clients
    );
    let started = Instant::now();
    let results: Vec<Result<Vec<f64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients.max(1))
            .map(|c| {
                let (addr, basic, bodies) = (&addr, &basic, &bodies);
                scope.spawn(move || -> Result<Vec<f64>> {
                    let mut conn = Conn::open(addr)?;
                    let mut latencies = Vec::new();
                    for body in bodies.iter().skip(c).step_by(args.clients.max(1)) {
                        let t = Instant::now();
                        let (status, text) =
                            conn.call("POST", "/v1/batch", basic, body.as_bytes())?;
                        if status != 200 {
                            bail!(
                                "ingestion answered {status}: {}",
                                String::from_utf8_lossy(&text)
                            );
                        }
                        latencies.push(t.elapsed().as_secs_f64());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut batch_latency = Vec::new();
    for r in results {
        batch_latency.extend(r?);
    }
    batch_latency.sort_by(f64::total_cmp);
    let sent = batches * args.batch;
    println!(
        "ingestion: {sent} events in {seconds:.2} s = {:.0} events/s (durable commits); batch latency p50 {:.1} ms, p99 {:.1} ms",
        sent as f64 / seconds,
        percentile(&batch_latency, 0.5) * 1e3,
        percentile(&batch_latency, 0.99) * 1e3
    );

    // Phase 2: reads at a fixed rate, open loop.
    let bearer = format!("Bearer {secret}");
    let threads = 4usize;
    let total = (args.reads_per_second * args.read_seconds) as usize;
    let interval = Duration::from_secs_f64(threads as f64 / args.reads_per_second.max(1) as f64);
    eprintln!(
        "reading customer views at {} requests/s for {} s ...",
        args.reads_per_second, args.read_seconds
    );
    let begin = Instant::now() + Duration::from_millis(100);
    let results: Vec<Result<Vec<f64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (addr, bearer) = (&addr, &bearer);
                scope.spawn(move || -> Result<Vec<f64>> {
                    let mut conn = Conn::open(addr)?;
                    let mut latencies = Vec::new();
                    let mut i = 0usize;
                    while i * threads + t < total {
                        let due = begin
                            + interval * i as u32
                            + interval.mul_f64(t as f64 / threads as f64);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        let c = ((i * threads + t).wrapping_mul(40_503)) % args.customers.max(1);
                        let (status, _) =
                            conn.call("GET", &format!("/api/v1/customers/b{c}"), bearer, b"")?;
                        if status != 200 && status != 404 {
                            bail!("customer view answered {status}");
                        }
                        latencies.push(due.elapsed().as_secs_f64());
                        i += 1;
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut reads = Vec::new();
    for r in results {
        reads.extend(r?);
    }
    reads.sort_by(f64::total_cmp);
    println!(
        "customer view at {} req/s: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.reads_per_second,
        reads.len(),
        percentile(&reads, 0.5) * 1e3,
        percentile(&reads, 0.99) * 1e3,
        reads.last().copied().unwrap_or(f64::NAN) * 1e3
    );
    drop(server);
    Ok(())
}
