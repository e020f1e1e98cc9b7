//! Helpers shared by the end-to-end tests: run the real binary.
#![allow(dead_code, clippy::unwrap_used)]

pub mod http_fake;
pub mod moments;
pub mod smtp;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn data(name: &str) -> PathBuf {
    repo().join("data").join(name)
}

pub fn lifecycle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifecycle"))
        .args(args)
        .output()
        .expect("the lifecycle binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `analyze` with `--json` into a temporary folder; returns the summary.
pub fn analyze_json(file: &Path, extra: &[&str]) -> (serde_json::Value, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec![
        "analyze",
        file.to_str().unwrap(),
        "--json",
        "--out",
        out.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = lifecycle(&args);
    assert!(o.status.success(), "analyze failed: {}", stderr(&o));
    (
        serde_json::from_slice(&o.stdout).expect("--json prints JSON"),
        out,
    )
}

/// Reads a CSV into header + rows of strings.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// A running `lifecycle serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// Reads the server's log (stderr) into a list as it comes, so that
    /// a test can look at it and the pipe never fills.
    pub fn keep_log(&mut self) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(err) = self.child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lifecycle serve --db DB --listen 127.0.0.1:0 EXTRA...` and
/// waits for its first line (the address).
pub fn start(db: &str, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lifecycle"))
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("serve did not start: first line {line:?}, stderr:\n{err}")
        })
        .to_string();
    Server { child, addr }
}

/// `start` with a settings file, a simulated clock set to `clock` and no
/// scheduled refits (the shape of most journey tests).
pub fn start_at(db: &str, config: &Path, clock: &str) -> Server {
    start(
        db,
        &[
            "--config",
            config.to_str().unwrap(),
            "--simulated-clock",
            clock,
            "--refit-every",
            "off",
        ],
    )
}

/// One request; returns (status, body).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// One request; an error when the connection fails.
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    request_with_head(addr, method, path, headers, body).map(|(status, _, body)| (status, body))
}

/// A read that goes on after a signal interrupted it (EINTR), as
/// `read_to_end` does; a CI run saw one in the middle of a response.
fn read_retrying(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// One request; (status, the response's header lines, body). The body is
/// read by its Content-Length when there is one (chromedriver keeps
/// connections open), else to the end of the connection; reads time out
/// after a minute.
pub fn request_with_head(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let (head_end, length) = loop {
        let n = read_retrying(&mut s, &mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "no complete response: {:?}",
                String::from_utf8_lossy(&buf)
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_string();
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            });
            break (i + 4, length);
        }
    };
    while length.is_none_or(|n| buf.len() < head_end + n) {
        let n = read_retrying(&mut s, &mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    Ok((status, head, body))
}

/// A new API key of `kind` (write, secret or public) in the store `db`.
pub fn create_key(db: &str, kind: &str) -> String {
    let o = lifecycle(&["keys", "create", "--kind", kind, "--db", db]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

/// A key of `kind` in the new SQLite store `db`, made with its events in
/// the `events` table (`LIFECYCLE_EVENTS_TREE=0`; it keeps them there).
pub fn key_in_a_table_store(db: &str, kind: &str) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_lifecycle"))
        .args(["keys", "create", "--kind", kind, "--db", db])
        .env("LIFECYCLE_EVENTS_TREE", "0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

pub fn basic(key: &str) -> (&'static str, String) {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    ("Authorization", format!("Basic {token}"))
}

/// One integer from a query, on either backend (`sqlite://PATH` or
/// `postgres://...`).
pub fn sql_count(db: &str, sql: &str) -> i64 {
    match db.strip_prefix("sqlite://") {
        Some(path) => rusqlite::Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap(),
        None => {
            let mut c = postgres::Client::connect(db, postgres::NoTls).unwrap();
            c.query_one(sql, &[]).unwrap().get::<_, i64>(0)
        }
    }
}

/// Every event stored in `db`, read through the store (its table or its
/// tree, wherever it keeps them); with no server holding the store.
pub fn all_stored_events(db: &str) -> Vec<lifecycle_store::StoredEvent> {
    let url = lifecycle_store::StoreUrl::parse(db).unwrap();
    lifecycle_store::Store::open(&url)
        .unwrap()
        .all_events()
        .unwrap()
}

/// (events stored, distinct message ids among them) for the events whose
/// message id starts with `prefix`: equal when none is stored twice.
pub fn stored_events(db: &str, prefix: &str) -> (i64, i64) {
    let ids: Vec<String> = all_stored_events(db)
        .into_iter()
        .filter(|e| e.message_id.starts_with(prefix))
        .map(|e| e.message_id)
        .collect();
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    (ids.len() as i64, distinct.len() as i64)
}

/// Posts a Segment batch to `/v1/batch` with the write key; asserts 200.
pub fn send_batch(addr: &str, write_key: &str, batch: &serde_json::Value) {
    let (status, text) = request(
        addr,
        "POST",
        "/v1/batch",
        &[basic(write_key)],
        batch.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
}
