//! Disk full: the store's file system (a small tmpfs) fills up.
//!
//! - `serve` under ingestion: once the disk is full, batches are refused
//!   with 503 (which Segment's libraries retry), the server stays up and
//!   keeps answering reads; when space comes back, ingestion resumes by
//!   itself; every acknowledged event is stored once and the database
//!   passes SQLite's integrity check.
//! - `lifecycle import` into a full store fails naming the store and the
//!   cause, and leaves what was stored unchanged; `analyze --out` on a full
//!   disk fails naming the file.
//!
//! Mounting needs root (CI runs as root); elsewhere the test says it is
//! skipped, unless `CI` is set, where it fails.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `dir`, owned by user `uid` if given.
    fn mount(dir: &Path, size: &str, uid: Option<u32>) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let mut options = format!("size={size}");
        if let Some(uid) = uid {
            options += &format!(",uid={uid},mode=0700");
        }
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if o.status.success() {
            return Some(Tmpfs(dir.to_path_buf()));
        }
        let why = stderr(&o);
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs in CI: {why}"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root): {why}");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` until fewer than `leave` bytes are
/// free; returns the filler's path (delete it to free the space).
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    while free(dir) > leave {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
    path
}

fn free(dir: &Path) -> u64 {
    let o = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    stdout(&o).lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Batch `b`: 50 page views of 25 customers with a bulky property.
fn batch(b: usize) -> String {
    let pad = "x".repeat(1_000);
    let messages: Vec<String> = (0..50)
        .map(|i| {
            let n = b * 50 + i;
            format!(
                r#"{{"type":"track","userId":"c{}","messageId":"m{n}","event":"Product Viewed","timestamp":"2024-03-01T10:00:00Z","properties":{{"note":"{n}{pad}"}}}}"#,
                n % 25
            )
        })
        .collect();
    format!(r#"{{"batch":[{}]}}"#, messages.join(","))
}

/// `serve` on `db` (whose data lives on the file system at `mnt`) while
/// the disk fills up and frees again; returns (batches acknowledged
/// before the first refusal, batches acknowledged in all, events stored).
fn serve_while_the_disk_fills(db: &str, mnt: &Path) -> (usize, usize, i64) {
    let (write, secret) = (create_key(db, "write"), create_key(db, "secret"));
    let mut server = start(db, &["--refit-every", "off"]);
    let addr = server.addr.clone();
    let log = server.keep_log();
    let send = |b: usize| {
        request(
            &addr,
            "POST",
            "/v1/batch",
            &[basic(&write)],
            batch(b).as_bytes(),
        )
    };
    for b in 0..5 {
        assert_eq!(send(b).0, 200);
    }

    // Fill the disk, then ingest until a batch is refused.
    let filler = fill(mnt, 1 << 20);
    let mut acked = 5;
    let refused = loop {
        let (status, body) = send(acked);
        if status != 200 {
            break (status, body);
        }
        acked += 1;
        assert!(acked < 500, "the disk never filled");
    };
    assert_eq!(refused.0, 503, "{}", refused.1);
    assert!(refused.1.contains("disk is full"), "{}", refused.1);
    // Re-sent, it is refused while the disk stays full (unless a
    // checkpoint made room in the log meanwhile: then it goes in).
    for _ in 0..3 {
        let (status, body) = send(acked);
        if status == 200 {
            acked += 1;
            break;
        }
        assert_eq!(status, 503, "{body}");
    }
    let (status, body) = request(&addr, "GET", "/api/v1/customers/c1", &[basic(&secret)], b"");
    assert_eq!(status, 200, "reads on a full disk: {body}");
    assert!(server.child.try_wait().unwrap().is_none(), "serve exited");
    let full_at = acked;

    // Space comes back: the refused batch and later ones go in.
    std::fs::remove_file(&filler).unwrap();
    let back = Instant::now();
    loop {
        let (status, body) = send(acked);
        if status == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "{status}: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    acked += 1;
    for _ in 0..20 {
        let (status, body) = send(acked);
        assert_eq!(status, 200, "{body}");
        acked += 1;
    }
    drop(server);
    let (events, distinct) = stored_events(db, "m");
    assert_eq!(
        (events, distinct),
        (50 * acked as i64, 50 * acked as i64),
        "full at {full_at}"
    );
    let log = log.lock().unwrap().clone();
    eprintln!(
        "{db}: disk full after {full_at} batches of 50; {acked} acknowledged in all, {events} events stored once; log:\n{}",
        log.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    (full_at, acked, events)
}

#[test]
fn disk_full_under_serve_import_and_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let Some(_tmpfs) = Tmpfs::mount(&mnt, "24m", None) else {
        return;
    };
    let file = mnt.join("s.db");
    let db = format!("sqlite://{}", file.display());
    serve_while_the_disk_fills(&db, &mnt);
    let check: String = rusqlite::Connection::open(&file)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");

    // An import into a full store: refused, named, nothing changed.
    let orders = dir.path().join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        "20000",
        "--seed",
        "3",
        "--out",
        orders.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all_events = all_stored_events(&db).len();
    let filler = fill(&mnt, 256 << 10);
    let o = lifecycle(&["import", orders.to_str().unwrap(), "--db", &db]);
    assert!(!o.status.success());
    let import_err = stderr(&o);
    assert!(
        import_err.contains(file.to_str().unwrap()) && import_err.contains("disk is full"),
        "{import_err}"
    );
    assert_eq!(sql_count(&db, "SELECT COUNT(*) FROM orders"), 0);
    assert_eq!(all_stored_events(&db).len(), all_events);
    // analyze --out on a full disk: the file is named.
    let out = mnt.join("out");
    let o = lifecycle(&[
        "analyze",
        orders.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let analyze_err = stderr(&o);
    assert!(
        analyze_err.contains(out.to_str().unwrap()) && analyze_err.contains("No space left"),
        "{analyze_err}"
    );
    std::fs::remove_file(&filler).unwrap();
    let o = lifecycle(&["import", orders.to_str().unwrap(), "--db", &db]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(sql_count(&db, "SELECT COUNT(*) FROM orders") > 0);
    eprintln!("import: {import_err}analyze: {analyze_err}");
}

/// PostgreSQL: the database's tablespace on a small tmpfs (its write-ahead
/// log stays on the server's own disk, as a production server's would on
/// a separate volume), so that extending a table fails with SQLSTATE 53100
/// ("could not extend file: No space left on device").
#[test]
fn disk_full_under_serve_on_postgres() {
    if std::env::var_os("LIFECYCLE_TEST_POSTGRES").is_some() {
        eprintln!(
            "skipped: the tablespace must be on this machine's tmpfs, not LIFECYCLE_TEST_POSTGRES's server"
        );
        return;
    }
    let db = lifecycle_store::testing::postgres_database().unwrap();
    // The throw-away server runs as `postgres` when the tests run as root.
    let uid = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .unwrap();
    let Ok(uid) = stdout(&uid).trim().parse::<u32>() else {
        assert!(std::env::var_os("CI").is_none(), "no postgres user in CI");
        eprintln!("skipped: no postgres user");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The server (another user) must reach the mount point.
    let mut perms = std::fs::metadata(dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(dir.path(), perms).unwrap();
    let mnt = dir.path().join("mnt");
    let Some(_tmpfs) = Tmpfs::mount(&mnt, "24m", Some(uid)) else {
        return;
    };
    let (server, name) = db.rsplit_once('/').unwrap();
    let mut admin =
        postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls).unwrap();
    let space = format!("{name}_small");
    // One statement per call: neither runs inside a transaction block.
    admin
        .batch_execute(&format!(
            "CREATE TABLESPACE {space} LOCATION '{}'",
            mnt.display()
        ))
        .unwrap();
    admin
        .batch_execute(&format!("ALTER DATABASE {name} SET TABLESPACE {space}"))
        .unwrap();
    let (full_at, acked, events) = serve_while_the_disk_fills(&db, &mnt);
    assert!(full_at > 5 && acked > full_at && events > 0);
    for sql in [
        format!("DROP DATABASE {name}"),
        format!("DROP TABLESPACE {space}"),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
}
