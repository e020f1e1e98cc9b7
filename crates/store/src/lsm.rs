//! A SQLite store's behavioural events in an LSM tree (`fjall`) beside the
//! database file (`<file>.events/`).
//!
//! Why: storing an event in a B-tree keyed by customer dirties a page per
//! event per commit (a commit's events are for as many customers), and the
//! page is written twice (log and checkpoint); an LSM tree writes a batch
//! once, sequentially, and sorts in the background (`bench/events_store.sh`:
//! 0.5 KB written and 11 µs of CPU per event against 14 KB and 26 µs).
//!
//! Durability stays SQLite's: a transaction that changes events writes its
//! changes (`Op`s) into the SQLite table `event_ops` in the same transaction,
//! and after the commit applies them to the tree with the transaction's
//! sequence number (`applied`, in the tree's `meta` partition, in the same
//! atomic tree batch). Opening the tree replays every logged batch past
//! `applied`, so a crash between the commit and the tree loses nothing;
//! logged batches are deleted once the tree is synced past them. One
//! process at a time holds a store's tree (a lock file); the writers of a
//! process apply their batches in commit order under [`EventLsm::writing`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::live::StoredEvent;

/// A change to the tree: the key's new value, or its removal. Keys start
/// with their partition's tag: [`EVENTS`] or [`IDS`].
pub(crate) type Ops = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A key and its value.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

/// Events by customer, then time, then message id (a customer's latest
/// events are the end of their range).
pub(crate) const EVENTS: u8 = b'e';
/// A customer's message ids, each with its event's time: de-duplication,
/// and the way from a message id to its event.
pub(crate) const IDS: u8 = b'i';

/// Why the tree failed.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("{path}: {source}")]
    Tree {
        path: String,
        #[source]
        source: fjall::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: the store's events are held by another process (a running `lifecycle serve`?); stop it or go through its API (a backup: `lifecycle backup --server URL`)"
    )]
    Held { path: String },
    #[error("{path}: a stored event is damaged ({what})")]
    Damaged { path: String, what: &'static str },
}

impl LsmError {
    /// A tree error of no known file (read through a snapshot).
    pub(crate) fn from_tree(source: fjall::Error) -> LsmError {
        LsmError::Tree {
            path: "the events' tree".into(),
            source,
        }
    }

    /// The tree's disk is full.
    pub fn is_disk_full(&self) -> bool {
        let full = |e: &std::io::Error| {
            e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
        };
        match self {
            LsmError::Io { source, .. } => full(source),
            LsmError::Tree { source, .. } => match source {
                fjall::Error::Io(e) => full(e),
                fjall::Error::Storage(fjall::LsmError::Io(e)) => full(e),
                _ => false,
            },
            _ => false,
        }
    }
}

/// The open tree of one store, shared by the process's connections.
pub(crate) struct EventLsm {
    path: PathBuf,
    keyspace: fjall::Keyspace,
    events: fjall::PartitionHandle,
    ids: fjall::PartitionHandle,
    meta: fjall::PartitionHandle,
    /// Held by a writer from the start of a transaction that may change
    /// events until its batch is applied: batches reach the tree in commit
    /// order, and a transaction reads every committed batch.
    writing: Mutex<Progress>,
    _lock: std::fs::File,
}

/// Where the tree stands against the log of batches.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The last batch applied.
    pub(crate) applied: i64,
    /// The last batch on disk (synced).
    pub(crate) synced: i64,
    /// When the tree was last synced.
    pub(crate) synced_at: Option<std::time::Instant>,
    /// The log rows up to here are deleted.
    pub(crate) trimmed: i64,
    /// The tree may lack committed batches (at open, or after a failed
    /// apply): replay the log first.
    pub(crate) behind: bool,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<EventLsm>>> {
    static OPEN: std::sync::OnceLock<Mutex<HashMap<PathBuf, Weak<EventLsm>>>> =
        std::sync::OnceLock::new();
    OPEN.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const APPLIED: &[u8] = b"applied";

impl EventLsm {
    /// The tree's directory beside the SQLite file `db`.
    fn dir(db: &Path) -> PathBuf {
        let mut dir = db.as_os_str().to_owned();
        dir.push(".events");
        PathBuf::from(dir)
    }

    /// Whether the SQLite file `db` keeps its events in a tree (its
    /// directory exists, opened or not yet).
    pub(crate) fn exists(db: &Path) -> bool {
        EventLsm::dir(db).is_dir()
    }

    /// Marks the SQLite file `db` as keeping its events in a tree (the
    /// tree itself is made when first opened).
    pub(crate) fn mark(db: &Path) -> Result<(), LsmError> {
        let dir = EventLsm::dir(db);
        std::fs::create_dir_all(&dir).map_err(|source| LsmError::Io {
            path: dir.display().to_string(),
            source,
        })
    }

    /// The tree beside the SQLite file `db`, opened once per process.
    pub(crate) fn open(db: &Path) -> Result<Arc<EventLsm>, LsmError> {
        let path = EventLsm::dir(db);
        let key = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
        let mut open = lock(registry());
        if let Some(t) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(t);
        }
        let shown = path.display().to_string();
        let io = |source| LsmError::Io {
            path: shown.clone(),
            source,
        };
        let tree = |source| LsmError::Tree {
            path: shown.clone(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(io)?;
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join("lifecycle.lock"))
            .map_err(io)?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LsmError::Held { path: shown });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // Memory: at most 32 MiB of memtables (fjall's 64 would grow the
        // server by ~50 MiB) and no block cache: fjall 2's cache keeps up to
        // 500,000 entries of evicted blocks (its ghost list, sized for a
        // million blocks whatever the capacity), which grew the server by
        // ~0.1 MiB/s for minutes; blocks are read from the operating
        // system's cache instead (view p99 over 300 s back to back: 5.2 ms
        // without the cache, 7.5 ms with it).
        let keyspace = fjall::Config::new(path.join("tree"))
            .cache_size(0)
            .max_write_buffer_size(32 << 20)
            .open()
            .map_err(tree)?;
        // Partition options with 8 MiB memtables and leveled compaction
        // into tables of `table_size` (L1 holds four of them).
        let options = |table_size: u32| {
            fjall::PartitionCreateOptions::default()
                .max_memtable_size(8 << 20)
                .compaction_strategy(fjall::compaction::Strategy::Leveled(
                    fjall::compaction::Leveled {
                        target_size: table_size,
                        ..Default::default()
                    },
                ))
        };
        // No bloom filter for the events: they are only read by customer
        // ranges, which a filter of whole keys cannot answer, and a filter
        // grows with every event (`bloom_filter_bits` is hidden in fjall's
        // documentation; `None` is its "no filter"). 16 KiB blocks (fjall's
        // advice for range reads): a quarter of the block index in memory.
        // Tables of 16 MiB instead of 64: fjall 2 keeps the whole block
        // index of the first two levels in memory, and L1 holds four
        // tables, so the events' L1 fills at 64 MiB (under two minutes of
        // the soak) instead of 256 (most of its ten minutes, the indexes
        // growing all along: the first two levels' indexes, events' and
        // ids' together, 2 -> 5 MiB in heap profiles); deeper levels keep
        // only each index's top level.
        let events = keyspace
            .open_partition(
                "events",
                options(16 << 20)
                    .bloom_filter_bits(None)
                    .block_size(16 << 10),
            )
            .map_err(tree)?;
        // The message ids keep a filter (nearly every look-up is for a new
        // id, which it answers without reading a block). fjall 2 sizes the
        // filters of the first two levels for very few false positives
        // (~16-24 bits per id) and keeps every filter in memory, so the ids
        // move on from them early (8 MiB tables: L1 holds 32 MiB) into
        // levels with 4 bits per id (a new id reads a block in ~15% of those
        // levels): memory grows by ~0.5 byte per event stored instead of
        // ~2.5 (300 s soaks in one session, growth after the warm-up: +13.0%
        // at 6 bits, +8.9% at 4, +9.3% at 3).
        let ids = keyspace
            .open_partition("ids", options(8 << 20).bloom_filter_bits(Some(4)))
            .map_err(tree)?;
        background_threads_yield();
        let meta = keyspace
            .open_partition("meta", fjall::PartitionCreateOptions::default())
            .map_err(tree)?;
        let applied = match meta.get(APPLIED).map_err(tree)? {
            Some(v) => {
                i64::from_be_bytes(v.as_ref().try_into().map_err(|_| LsmError::Damaged {
                    path: shown.clone(),
                    what: "the applied batch number",
                })?)
            }
            None => 0,
        };
        let t = Arc::new(EventLsm {
            path,
            keyspace,
            events,
            ids,
            meta,
            writing: Mutex::new(Progress {
                applied,
                synced: applied,
                synced_at: None,
                trimmed: 0,
                behind: true,
            }),
            _lock: lock_file,
        });
        open.insert(key, Arc::downgrade(&t));
        Ok(t)
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn tree_err(&self, source: fjall::Error) -> LsmError {
        LsmError::Tree {
            path: self.shown(),
            source,
        }
    }

    /// Waits for the other writers of this process: see [`Progress`].
    pub(crate) fn writing(&self) -> MutexGuard<'_, Progress> {
        lock(&self.writing)
    }

    /// The partition a tagged key is in, and the key in it.
    fn route<'k>(&self, key: &'k [u8]) -> (&fjall::PartitionHandle, &'k [u8]) {
        match key.split_first() {
            Some((&IDS, rest)) => (&self.ids, rest),
            Some((_, rest)) => (&self.events, rest),
            None => (&self.events, key),
        }
    }

    /// The stored value of a tagged key.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LsmError> {
        let (p, k) = self.route(key);
        Ok(p.get(k).map_err(|e| self.tree_err(e))?.map(|v| v.to_vec()))
    }

    /// Every key and value starting with the tagged `prefix`, in key order
    /// (keys tagged), or the last `last` of them, in reverse order.
    pub(crate) fn scan(&self, prefix: &[u8]) -> Result<Vec<Pair>, LsmError> {
        self.scan_from(prefix, false, usize::MAX)
    }

    pub(crate) fn scan_last(&self, prefix: &[u8], last: usize) -> Result<Vec<Pair>, LsmError> {
        self.scan_from(prefix, true, last)
    }

    fn scan_from(&self, prefix: &[u8], reverse: bool, limit: usize) -> Result<Vec<Pair>, LsmError> {
        let (p, k) = self.route(prefix);
        let tag = prefix.first().copied().unwrap_or(EVENTS);
        let mut out = Vec::new();
        let mut push = |kv: fjall::Result<fjall::KvPair>| -> Result<bool, LsmError> {
            let (k, v) = kv.map_err(|e| self.tree_err(e))?;
            let mut tagged = Vec::with_capacity(k.len() + 1);
            tagged.push(tag);
            tagged.extend_from_slice(&k);
            out.push((tagged, v.to_vec()));
            Ok(out.len() < limit)
        };
        if reverse {
            for kv in p.prefix(k).rev() {
                if !push(kv)? {
                    break;
                }
            }
        } else {
            for kv in p.prefix(k) {
                if !push(kv)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Calls `each` with every stored event (any order but key order is
    /// what it is: by customer, then message id).
    pub(crate) fn each(
        &self,
        each: &mut dyn FnMut(StoredEvent) -> Result<(), LsmError>,
    ) -> Result<(), LsmError> {
        for kv in self.events.iter() {
            let (k, v) = kv.map_err(|e| self.tree_err(e))?;
            each(self.decode_untagged(&k, &v)?)?;
        }
        Ok(())
    }

    /// The keys of every stored event whose value `pick` chooses.
    pub(crate) fn keys_where(
        &self,
        pick: &mut dyn FnMut(&StoredEvent) -> bool,
    ) -> Result<Vec<Vec<u8>>, LsmError> {
        let mut out = Vec::new();
        for kv in self.events.iter() {
            let (k, v) = kv.map_err(|e| self.tree_err(e))?;
            let e = self.decode_untagged(&k, &v)?;
            if pick(&e) {
                out.push(event_key(&e.customer_id, e.at_ms, &e.message_id));
                out.push(id_key(&e.customer_id, &e.message_id));
            }
        }
        Ok(out)
    }

    /// Applies batch `seq` (a transaction's changes, committed) in one
    /// atomic tree batch; the caller holds [`EventLsm::writing`].
    pub(crate) fn apply(
        &self,
        progress: &mut Progress,
        seq: i64,
        ops: &Ops,
    ) -> Result<(), LsmError> {
        let mut batch = self.keyspace.batch();
        for (k, v) in ops {
            let (p, k) = self.route(k);
            match v {
                Some(v) => batch.insert(p, k, v.as_slice()),
                None => batch.remove(p, k),
            }
        }
        batch.insert(&self.meta, APPLIED, seq.to_be_bytes());
        batch.commit().map_err(|e| self.tree_err(e))?;
        // In the operating system's hands: a killed process loses nothing;
        // the log of batches covers a machine stop until the next sync.
        self.keyspace
            .persist(fjall::PersistMode::Buffer)
            .map_err(|e| self.tree_err(e))?;
        progress.applied = seq;
        Ok(())
    }

    /// Syncs the tree to disk: every batch applied so far is then safe
    /// without its log row.
    pub(crate) fn sync(&self, progress: &mut Progress) -> Result<(), LsmError> {
        self.keyspace
            .persist(fjall::PersistMode::SyncAll)
            .map_err(|e| self.tree_err(e))?;
        progress.synced = progress.applied;
        progress.synced_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// The events as they are now, unchanged by later writes.
    pub(crate) fn snapshot(&self) -> fjall::Snapshot {
        self.events.snapshot()
    }

    /// An event from its tagged key and value.
    pub(crate) fn decode(&self, key: &[u8], value: &[u8]) -> Result<StoredEvent, LsmError> {
        self.decode_untagged(key.get(1..).unwrap_or_default(), value)
    }

    fn decode_untagged(&self, key: &[u8], value: &[u8]) -> Result<StoredEvent, LsmError> {
        decode_in(self.shown(), key, value)
    }

    /// A customer's stored events, by time.
    pub(crate) fn customer_events(&self, customer: &str) -> Result<Vec<StoredEvent>, LsmError> {
        self.scan(&customer_prefix(EVENTS, customer))?
            .iter()
            .map(|(k, v)| self.decode(k, v))
            .collect()
    }

    /// A customer's latest `n` stored events, newest first.
    pub(crate) fn latest_events(
        &self,
        customer: &str,
        n: usize,
    ) -> Result<Vec<StoredEvent>, LsmError> {
        self.scan_last(&customer_prefix(EVENTS, customer), n)?
            .iter()
            .map(|(k, v)| self.decode(k, v))
            .collect()
    }

    /// How many events are stored (every key read, no value decoded).
    pub(crate) fn count(&self) -> Result<u64, LsmError> {
        Ok(self.events.len().map_err(|e| self.tree_err(e))? as u64)
    }
}

/// The nice value of the tree's flush and compaction threads: the lowest
/// priority (Linux nice 19).
const BACKGROUND_NICE: i32 = 19;

/// Lowers the CPU priority of the tree's flush and compaction threads
/// (Linux), as RocksDB can for its low-priority pool: flushes and
/// compactions are background work and use the time requests leave,
/// instead of taking it from a customer view on a machine with few cores
/// (the writer waits for flushes only once 32 MiB of memtables are
/// sealed, which slows ingestion, never a read). Threads are found by the
/// names fjall gives them (a flush's own worker threads inherit the
/// flusher's priority); nothing happens where that is not possible.
fn background_threads_yield() {
    #[cfg(target_os = "linux")]
    {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        for task in tasks.flatten() {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !matches!(name.trim_end(), "compactor" | "flusher") {
                continue;
            }
            let pid = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse().ok())
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                let _ = rustix::process::setpriority_process(Some(pid), BACKGROUND_NICE);
            }
        }
    }
}

/// An event from its untagged [`EVENTS`] key and value (a snapshot's).
pub(crate) fn decode_event(key: &[u8], value: &[u8]) -> Result<StoredEvent, LsmError> {
    decode_in("the events' tree".into(), key, value)
}

/// An event from its untagged key and value; `path` names the tree in an
/// error.
fn decode_in(path: String, key: &[u8], value: &[u8]) -> Result<StoredEvent, LsmError> {
    let damaged = |what| LsmError::Damaged {
        path: path.clone(),
        what,
    };
    let (customer, message) = split_event_key(key).ok_or_else(|| damaged("its key"))?;
    decode_value(customer, message, value).ok_or_else(|| damaged("its value"))
}

/// The key of a customer's event in [`EVENTS`]: the customer id's length
/// (4 bytes, big endian), the id, the time (8 bytes, ordered as signed
/// numbers), then the message id.
pub(crate) fn event_key(customer: &str, at_ms: i64, message_id: &str) -> Vec<u8> {
    let mut k = customer_prefix(EVENTS, customer);
    k.extend_from_slice(&((at_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(message_id.as_bytes());
    k
}

/// The key of a customer's message id in [`IDS`] (its value: the event's
/// time).
pub(crate) fn id_key(customer: &str, message_id: &str) -> Vec<u8> {
    let mut k = customer_prefix(IDS, customer);
    k.extend_from_slice(message_id.as_bytes());
    k
}

/// The start of every key of a customer's in partition `tag`.
pub(crate) fn customer_prefix(tag: u8, customer: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + customer.len() + 48);
    k.push(tag);
    k.extend_from_slice(&(customer.len() as u32).to_be_bytes());
    k.extend_from_slice(customer.as_bytes());
    k
}

/// Customer and message id of an untagged [`EVENTS`] key.
fn split_event_key(key: &[u8]) -> Option<(String, String)> {
    let n = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    let customer = std::str::from_utf8(key.get(4..4 + n)?).ok()?;
    let message = std::str::from_utf8(key.get(4 + n + 8..)?).ok()?;
    Some((customer.to_string(), message.to_string()))
}

/// The time an [`IDS`] value holds.
#[cfg(test)]
pub(crate) fn id_time(v: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(v.try_into().ok()?))
}

/// The changes storing event `e` of `customer` makes.
pub(crate) fn put_event(ops: &mut Ops, customer: &str, e: &StoredEventRef<'_>) {
    ops.insert(
        event_key(customer, e.at_ms, e.message_id),
        Some(value(e.kind, e.event, e.at_ms, e.received_ms, e.payload)),
    );
    ops.insert(
        id_key(customer, e.message_id),
        Some(e.at_ms.to_be_bytes().to_vec()),
    );
}

/// The changes deleting an event.
pub(crate) fn delete_event(ops: &mut Ops, customer: &str, at_ms: i64, message_id: &str) {
    ops.insert(event_key(customer, at_ms, message_id), None);
    ops.insert(id_key(customer, message_id), None);
}

/// An event's fields, borrowed.
pub(crate) struct StoredEventRef<'a> {
    pub message_id: &'a str,
    pub kind: &'a str,
    pub event: Option<&'a str>,
    pub at_ms: i64,
    pub received_ms: i64,
    pub payload: &'a str,
}

impl<'a> From<&'a StoredEvent> for StoredEventRef<'a> {
    fn from(e: &'a StoredEvent) -> StoredEventRef<'a> {
        StoredEventRef {
            message_id: &e.message_id,
            kind: &e.kind,
            event: e.event.as_deref(),
            at_ms: e.at_ms,
            received_ms: e.received_ms,
            payload: &e.payload,
        }
    }
}

/// An event's value: at and received (ms, 8 bytes each), the kind and the
/// event name (length-prefixed; the name's length `u32::MAX` for none),
/// then the payload.
pub(crate) fn value(
    kind: &str,
    event: Option<&str>,
    at_ms: i64,
    received_ms: i64,
    payload: &str,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(28 + kind.len() + payload.len() + event.map_or(0, str::len));
    v.extend_from_slice(&at_ms.to_be_bytes());
    v.extend_from_slice(&received_ms.to_be_bytes());
    v.extend_from_slice(&(kind.len() as u32).to_be_bytes());
    v.extend_from_slice(kind.as_bytes());
    match event {
        Some(e) => {
            v.extend_from_slice(&(e.len() as u32).to_be_bytes());
            v.extend_from_slice(e.as_bytes());
        }
        None => v.extend_from_slice(&u32::MAX.to_be_bytes()),
    }
    v.extend_from_slice(payload.as_bytes());
    v
}

/// The event a key's value holds (customer and message id from the key).
pub(crate) fn decode_value(customer: String, message: String, v: &[u8]) -> Option<StoredEvent> {
    let i64_at = |at: usize| Some(i64::from_be_bytes(v.get(at..at + 8)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?));
    let at_ms = i64_at(0)?;
    let received_ms = i64_at(8)?;
    let kn = u32_at(16)? as usize;
    let kind = std::str::from_utf8(v.get(20..20 + kn)?).ok()?.to_string();
    let mut at = 20 + kn;
    let en = u32_at(at)?;
    at += 4;
    let event = if en == u32::MAX {
        None
    } else {
        let en = en as usize;
        let e = std::str::from_utf8(v.get(at..at + en)?).ok()?.to_string();
        at += en;
        Some(e)
    };
    let payload = std::str::from_utf8(v.get(at..)?).ok()?.to_string();
    Some(StoredEvent {
        customer_id: customer,
        message_id: message,
        kind,
        event,
        at_ms,
        received_ms,
        payload,
    })
}

/// A batch's changes as the bytes logged in `event_ops`: per change the
/// key's length (4 bytes), the key, then the value's length (`u32::MAX` for
/// a removal) and the value.
pub(crate) fn encode_ops(ops: &Ops) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in ops {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        }
    }
    out
}

/// The changes [`encode_ops`] wrote, or `None` when the bytes are damaged.
pub(crate) fn decode_ops(mut b: &[u8]) -> Option<Ops> {
    let mut ops = Ops::new();
    let take = |b: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head.to_vec())
    };
    while !b.is_empty() {
        let kn = u32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
        let k = take(&mut b, kn)?;
        let vn = u32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?);
        let v = if vn == u32::MAX {
            None
        } else {
            Some(take(&mut b, vn as usize)?)
        };
        ops.insert(k, v);
    }
    Some(ops)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ev<'a>(message_id: &'a str, at_ms: i64, event: Option<&'a str>) -> StoredEventRef<'a> {
        StoredEventRef {
            message_id,
            kind: "track",
            event,
            at_ms,
            received_ms: 7,
            payload: "{\"a\":1}",
        }
    }

    #[test]
    fn keys_values_and_ops_round_trip() {
        let k = event_key("anon:x\u{0}y", -5, "m-1");
        assert!(k.starts_with(&customer_prefix(EVENTS, "anon:x\u{0}y")));
        assert!(!k.starts_with(&customer_prefix(EVENTS, "anon:x")));
        // Times sort as numbers, negative ones first.
        assert!(event_key("c", -5, "z") < event_key("c", 3, "a"));
        assert!(event_key("c", 3, "a") < event_key("c", 300, "a"));
        let (c, m) = split_event_key(&k[1..]).unwrap();
        assert_eq!((c.as_str(), m.as_str()), ("anon:x\u{0}y", "m-1"));
        for event in [None, Some("Order Completed"), Some("")] {
            let v = value("track", event, -5, 7, "{\"a\":1}");
            let e = decode_value(c.clone(), m.clone(), &v).unwrap();
            assert_eq!(e.event.as_deref(), event);
            assert_eq!((e.at_ms, e.received_ms), (-5, 7));
            assert_eq!(
                (e.kind.as_str(), e.payload.as_str()),
                ("track", "{\"a\":1}")
            );
        }
        assert!(decode_value(c, m, b"short").is_none());
        let mut ops = Ops::new();
        put_event(&mut ops, "c", &ev("m1", 1, Some("A")));
        delete_event(&mut ops, "d", 2, "m2");
        ops.insert(b"empty".to_vec(), Some(Vec::new()));
        let b = encode_ops(&ops);
        assert_eq!(decode_ops(&b).unwrap(), ops);
        assert!(decode_ops(&b[..b.len() - 1]).is_none());
    }

    #[test]
    fn one_process_one_tree_and_batches_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        std::fs::write(&db, b"").unwrap();
        let t = EventLsm::open(&db).unwrap();
        // The same store opened again in the process shares the tree.
        let again = EventLsm::open(&db).unwrap();
        assert!(Arc::ptr_eq(&t, &again));
        let mut ops = Ops::new();
        put_event(&mut ops, "c", &ev("m1", 30, Some("A")));
        put_event(&mut ops, "c", &ev("m2", 10, None));
        put_event(&mut ops, "c", &ev("m3", 20, None));
        put_event(&mut ops, "d", &ev("m1", 5, Some("B")));
        {
            let mut p = t.writing();
            t.apply(&mut p, 1, &ops).unwrap();
            let mut gone = Ops::new();
            delete_event(&mut gone, "c", 20, "m3");
            t.apply(&mut p, 2, &gone).unwrap();
            t.sync(&mut p).unwrap();
            assert_eq!((p.applied, p.synced), (2, 2));
        }
        let c = t.scan(&customer_prefix(EVENTS, "c")).unwrap();
        let ids: Vec<String> = c
            .iter()
            .map(|(k, v)| t.decode(k, v).unwrap().message_id)
            .collect();
        assert_eq!(ids, ["m2", "m1"], "by time");
        let last = t.scan_last(&customer_prefix(EVENTS, "c"), 1).unwrap();
        assert_eq!(t.decode(&last[0].0, &last[0].1).unwrap().message_id, "m1");
        assert_eq!(
            id_time(&t.get(&id_key("d", "m1")).unwrap().unwrap()),
            Some(5)
        );
        assert!(t.get(&id_key("c", "m3")).unwrap().is_none());
        drop((t, again));
        // Reopened (the last handle gone): the batch number is kept.
        let t = EventLsm::open(&db).unwrap();
        assert_eq!(t.writing().applied, 2);
        let mut n = 0;
        t.each(&mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 3);
        let old = t.keys_where(&mut |e| e.at_ms < 10).unwrap();
        assert_eq!(old, [event_key("d", 5, "m1"), id_key("d", "m1")]);
    }

    #[test]
    fn a_tree_held_elsewhere_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        std::fs::create_dir_all(dir.path().join("s.db.events")).unwrap();
        let other = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.path().join("s.db.events/lifecycle.lock"))
            .unwrap();
        other.lock().unwrap();
        let e = EventLsm::open(&db).err().unwrap();
        assert!(matches!(e, LsmError::Held { .. }), "{e}");
        assert!(e.to_string().contains("held by another process"), "{e}");
    }
}
