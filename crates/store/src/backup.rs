//! Logical backups: every table's rows as JSON lines, read in one
//! consistent snapshot, restorable into an empty store of either backend
//! (SQLite → PostgreSQL and back).
//!
//! The format, one JSON value per line:
//! `{"lifecycle_backup":1,"schema_version":N,"backend":"sqlite"}`, then per
//! table `{"table":NAME,"columns":[...]}`, its rows as arrays (integers as
//! integers, reals as numbers with a fraction or exponent, non-finite reals
//! as `{"real":"NaN"}`, text as strings, null) and
//! `{"table_end":NAME,"rows":n}`; last `{"end":{"tables":t,"rows":r}}`. A
//! file cut short, or with a count that does not match, is refused and
//! nothing is restored (one transaction).

use std::io::{BufRead, Write};

use crate::db::{Db, Row, Val};
use crate::{Store, StoreError};

/// The version of the backup format.
const FORMAT: i64 = 1;

/// What a backup or restore moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupStats {
    pub tables: usize,
    pub rows: u64,
}

/// The table a restore is in: its insert statement, which columns are
/// integers, the rows so far and its identity columns.
struct Restoring {
    table: String,
    /// `INSERT INTO t (columns) VALUES ` (the rows' placeholders follow).
    head: String,
    integer: Vec<bool>,
    rows: u64,
    identity: Vec<String>,
    /// Rows read and not yet inserted, their values one after another,
    /// and the backup line of the first of them.
    pending: Vec<Val>,
    first_line: u64,
    /// `events` restored into a SQLite store's tree: the columns' names
    /// (the rows are logged as changes to the tree, applied after the
    /// commit).
    to_tree: Option<Vec<String>>,
}

/// Rows inserted by one statement (a round trip each on PostgreSQL; at
/// most ~30,000 parameters).
fn batch_rows(width: usize) -> usize {
    (30_000 / width.max(1)).clamp(1, 500)
}

impl Restoring {
    /// Inserts the pending rows in one statement.
    fn flush(&mut self, db: &mut crate::db::Db) -> Result<(), StoreError> {
        let width = self.integer.len();
        if self.pending.is_empty() || width == 0 {
            return Ok(());
        }
        let n = self.pending.len() / width;
        if let Some(names) = &self.to_tree {
            let at = |c: &str| names.iter().position(|n| n == c);
            let (Some(ci), Some(mi), Some(ki), Some(ei), Some(ai), Some(ri), Some(pi)) = (
                at("customer_id"),
                at("message_id"),
                at("kind"),
                at("event"),
                at("at_ms"),
                at("received_ms"),
                at("payload"),
            ) else {
                return Err(StoreError::Refused(format!(
                    "backup line {}: events: a column is missing",
                    self.first_line
                )));
            };
            let mut ops = crate::lsm::Ops::new();
            for row in self.pending.chunks(width) {
                let text = |i: usize| match &row[i] {
                    Val::Text(t) => Some(t.as_str()),
                    _ => None,
                };
                let int = |i: usize| match &row[i] {
                    Val::Int(v) => *v,
                    Val::Real(f) => *f as i64,
                    _ => 0,
                };
                crate::lsm::put_event(
                    &mut ops,
                    text(ci).unwrap_or_default(),
                    &crate::lsm::StoredEventRef {
                        message_id: text(mi).unwrap_or_default(),
                        kind: text(ki).unwrap_or_default(),
                        event: text(ei),
                        at_ms: int(ai),
                        received_ms: int(ri),
                        payload: text(pi).unwrap_or_default(),
                    },
                );
            }
            db.log_ops(&crate::lsm::encode_ops(&ops))
                .map_err(|e| StoreError::Refused(format!("{}: {e}", self.table)))?;
            self.pending.clear();
            return Ok(());
        }
        let mut sql = self.head.clone();
        for r in 0..n {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..width {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("?{}", r * width + c + 1));
            }
            sql.push(')');
        }
        db.exec(&sql, &self.pending).map_err(|e| {
            StoreError::Refused(format!(
                "backup lines {}–{}: {}: {e}",
                self.first_line,
                self.first_line + n as u64 - 1,
                self.table
            ))
        })?;
        self.pending.clear();
        Ok(())
    }
}

/// A table's columns: name and whether the column holds integers (so that
/// a real read from a loosely typed SQLite column is written back as one).
pub(crate) struct Columns {
    pub(crate) names: Vec<String>,
    integer: Vec<bool>,
    /// PostgreSQL identity columns (restored with OVERRIDING SYSTEM VALUE,
    /// their sequence moved past the largest value).
    identity: Vec<String>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn tables(db: &mut Db) -> Result<Vec<String>, crate::db::DbError> {
    let sql = if db.is_postgres() {
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
         ORDER BY table_name"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name"
    };
    Ok(db
        .query(sql, &[])?
        .iter()
        .map(|r| r.text(0))
        // The log of changes to a SQLite store's events is theirs (the
        // events are backed up from the tree).
        .filter(|t| t != "schema_migrations" && t != "event_ops")
        .collect())
}

pub(crate) fn columns(db: &mut Db, table: &str) -> Result<Columns, crate::db::DbError> {
    let rows = if db.is_postgres() {
        db.query(
            "SELECT column_name::text, data_type::text, is_identity::text
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name::text = ?1
             ORDER BY ordinal_position",
            &[Val::from(table)],
        )?
    } else {
        db.query(
            "SELECT name, type, 'NO' FROM pragma_table_info(?1) ORDER BY cid",
            &[Val::from(table)],
        )?
    };
    let mut c = Columns {
        names: Vec::new(),
        integer: Vec::new(),
        identity: Vec::new(),
    };
    for r in rows {
        let (name, ty) = (r.text(0), r.text(1).to_ascii_lowercase());
        c.integer.push(ty.contains("int"));
        if r.text(2) == "YES" {
            c.identity.push(name.clone());
        }
        c.names.push(name);
    }
    Ok(c)
}

fn to_json(v: &Val) -> serde_json::Value {
    match v {
        Val::Null => serde_json::Value::Null,
        Val::Int(i) => serde_json::Value::from(*i),
        Val::Real(f) if f.is_finite() => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Val::Real(f) => serde_json::json!({ "real": f.to_string() }),
        Val::Text(t) => serde_json::Value::from(t.as_str()),
    }
}

/// A JSON cell back to a value for a column (`integer`: an integral real
/// becomes an integer, as SQLite may have stored it).
fn from_json(v: &serde_json::Value, integer: bool) -> Option<Val> {
    Some(match v {
        serde_json::Value::Null => Val::Null,
        serde_json::Value::String(s) => Val::Text(s.clone()),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Val::Int(i),
            (None, Some(f)) if integer && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Val::Int(f as i64)
            }
            (None, Some(f)) => Val::Real(f),
            _ => return None,
        },
        serde_json::Value::Object(o) => Val::Real(o.get("real")?.as_str()?.parse().ok()?),
        _ => return None,
    })
}

impl Row {
    pub(crate) fn values(&self) -> &[Val] {
        &self.0
    }
}

impl Store {
    /// Writes every table's rows to `out`, read in one snapshot (a read
    /// transaction) so that the backup is consistent while the store is in
    /// use.
    pub fn backup(&mut self, out: &mut dyn Write) -> Result<BackupStats, StoreError> {
        let version = self.schema_version()?;
        let label = self.label.clone();
        let err = |source| StoreError::Db {
            store: label.clone(),
            source,
        };
        let io = |e: std::io::Error| StoreError::Refused(format!("writing the backup: {e}"));
        let pg = self.db.is_postgres();
        // Opened (and caught up) before the read transaction begins.
        let tree = self.tree()?;
        self.db
            .batch(if pg {
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
            } else {
                "BEGIN"
            })
            .map_err(err)?;
        // The tree as of the same commit: taken with this process's
        // writers held, once the snapshot of the database is fixed (its
        // first read).
        let tree = match tree {
            Some(t) => {
                let _held = t.writing();
                self.db
                    .query("SELECT COUNT(*) FROM schema_migrations", &[])
                    .map_err(err)?;
                Some(t.snapshot())
            }
            None => None,
        };
        let result = (|| -> Result<BackupStats, StoreError> {
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "lifecycle_backup": FORMAT,
                    "schema_version": version,
                    "backend": self.backend(),
                })
            )
            .map_err(io)?;
            let mut stats = BackupStats::default();
            for table in tables(&mut self.db).map_err(err)? {
                let cols = columns(&mut self.db, &table).map_err(err)?;
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "table": table, "columns": cols.names })
                )
                .map_err(io)?;
                let list: Vec<String> = cols.names.iter().map(|c| quote(c)).collect();
                let sql = format!("SELECT {} FROM {}", list.join(", "), quote(&table));
                let mut n = 0u64;
                let mut failed: Option<std::io::Error> = None;
                self.db
                    .query_each(&sql, &[], &mut |r: &Row| {
                        if failed.is_some() {
                            return;
                        }
                        let cells: Vec<serde_json::Value> =
                            r.values().iter().map(to_json).collect();
                        if let Err(e) = writeln!(out, "{}", serde_json::Value::Array(cells)) {
                            failed = Some(e);
                        }
                        n += 1;
                    })
                    .map_err(err)?;
                if table == "events"
                    && let Some(snapshot) = &tree
                {
                    for kv in snapshot.iter() {
                        let (k, v) = kv.map_err(|e| {
                            self.err(crate::lsm::LsmError::from_tree(fjall::Error::Storage(e)))
                        })?;
                        let e = crate::lsm::decode_event(&k, &v).map_err(|e| self.err(e))?;
                        let cells: Vec<serde_json::Value> = cols
                            .names
                            .iter()
                            .map(|c| match c.as_str() {
                                "customer_id" => e.customer_id.as_str().into(),
                                "message_id" => e.message_id.as_str().into(),
                                "kind" => e.kind.as_str().into(),
                                "event" => e.event.as_deref().into(),
                                "at_ms" => e.at_ms.into(),
                                "received_ms" => e.received_ms.into(),
                                "payload" => e.payload.as_str().into(),
                                _ => serde_json::Value::Null,
                            })
                            .collect();
                        writeln!(out, "{}", serde_json::Value::Array(cells)).map_err(io)?;
                        n += 1;
                    }
                }
                if let Some(e) = failed {
                    return Err(io(e));
                }
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "table_end": table, "rows": n })
                )
                .map_err(io)?;
                stats.tables += 1;
                stats.rows += n;
            }
            writeln!(
                out,
                "{}",
                serde_json::json!({ "end": { "tables": stats.tables, "rows": stats.rows } })
            )
            .map_err(io)?;
            out.flush().map_err(io)?;
            Ok(stats)
        })();
        let _ = self.db.batch("COMMIT");
        result
    }

    /// Restores a backup into this store, which must be empty (a new
    /// store). Everything is restored in one transaction: a bad or
    /// truncated file leaves the store as it was.
    pub fn restore(&mut self, input: &mut dyn BufRead) -> Result<BackupStats, StoreError> {
        let version = self.schema_version()?;
        let label = self.label.clone();
        let err = |source| StoreError::Db {
            store: label.clone(),
            source,
        };
        for table in tables(&mut self.db).map_err(err)? {
            let n = self
                .row(&format!("SELECT COUNT(*) FROM {}", quote(&table)), &[])?
                .map_or(0, |r| r.i64(0));
            if n > 0 {
                return Err(StoreError::Refused(format!(
                    "{}: restore needs an empty store, and table {table} has {n} rows",
                    self.label
                )));
            }
        }
        let tree = self.tree()?;
        let mut progress = tree.as_ref().map(|t| t.writing());
        if let Some(t) = &tree
            && !t
                .scan_last(&[crate::lsm::EVENTS], 1)
                .map_err(|e| self.err(e))?
                .is_empty()
        {
            return Err(StoreError::Refused(format!(
                "{}: restore needs an empty store, and it has events",
                self.label
            )));
        }
        self.db.begin().map_err(err)?;
        let result = self.restore_rows(input, version);
        match result {
            Ok(stats) => {
                self.db.commit().map_err(err)?;
                if let (Some(t), Some(p)) = (&tree, progress.as_deref_mut()) {
                    crate::live::catch_up(&mut self.db, t, p).map_err(|f| self.failure(f))?;
                }
                Ok(stats)
            }
            Err(e) => {
                self.db.rollback();
                Err(e)
            }
        }
    }

    fn restore_rows(
        &mut self,
        input: &mut dyn BufRead,
        version: i64,
    ) -> Result<BackupStats, StoreError> {
        let label = self.label.clone();
        let err = |source| StoreError::Db {
            store: label.clone(),
            source,
        };
        let bad = |line: u64, m: String| StoreError::Refused(format!("backup line {line}: {m}"));
        let pg = self.db.is_postgres();
        let mut stats = BackupStats::default();
        let mut text = String::new();
        let mut line = 0u64;
        let mut next = |input: &mut dyn BufRead| -> Result<Option<serde_json::Value>, StoreError> {
            text.clear();
            line += 1;
            let n = input
                .read_line(&mut text)
                .map_err(|e| StoreError::Refused(format!("reading the backup: {e}")))?;
            if n == 0 {
                return Ok(None);
            }
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| bad(line, format!("not JSON ({e})")))
        };
        let header = next(input)?.ok_or_else(|| bad(1, "empty file".into()))?;
        if header["lifecycle_backup"].as_i64() != Some(FORMAT) {
            return Err(bad(1, "not a lifecycle backup".into()));
        }
        let from = header["schema_version"].as_i64().unwrap_or(i64::MAX);
        if from > version {
            return Err(StoreError::Refused(format!(
                "the backup is of schema version {from}, newer than this store's {version}: use a newer lifecycle"
            )));
        }
        let known = tables(&mut self.db).map_err(err)?;
        let mut current: Option<Restoring> = None;
        let mut row_line = 1u64;
        loop {
            let v = next(input)?.ok_or_else(|| {
                StoreError::Refused(
                    "the backup ends before its last line: it is incomplete, nothing was restored"
                        .into(),
                )
            })?;
            row_line += 1;
            if let Some(cells) = v.as_array() {
                let Some(r) = current.as_mut() else {
                    return Err(bad(row_line, "a row outside any table".into()));
                };
                let (table, integer) = (&r.table, &r.integer);
                if cells.len() != integer.len() {
                    return Err(bad(
                        row_line,
                        format!(
                            "{table}: {} values for {} columns",
                            cells.len(),
                            integer.len()
                        ),
                    ));
                }
                let values = cells
                    .iter()
                    .zip(integer.iter())
                    .map(|(c, i)| from_json(c, *i))
                    .collect::<Option<Vec<Val>>>()
                    .ok_or_else(|| bad(row_line, format!("{table}: a value of no known type")))?;
                if r.pending.is_empty() {
                    r.first_line = row_line;
                }
                r.pending.extend(values);
                r.rows += 1;
                if r.pending.len() >= batch_rows(r.integer.len()) * r.integer.len() {
                    r.flush(&mut self.db)?;
                }
            } else if let Some(table) = v["table"].as_str() {
                if !known.iter().any(|t| t == table) {
                    return Err(bad(
                        row_line,
                        format!("table {table} does not exist in this store"),
                    ));
                }
                let target = columns(&mut self.db, table).map_err(err)?;
                let names: Vec<String> = v["columns"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut integer = Vec::with_capacity(names.len());
                for c in &names {
                    let k = target.names.iter().position(|t| t == c).ok_or_else(|| {
                        bad(row_line, format!("{table}: no column {c} in this store"))
                    })?;
                    integer.push(target.integer[k]);
                }
                let list: Vec<String> = names.iter().map(|c| quote(c)).collect();
                let overriding = if pg && !target.identity.is_empty() {
                    " OVERRIDING SYSTEM VALUE"
                } else {
                    ""
                };
                let head = format!(
                    "INSERT INTO {} ({}){overriding} VALUES ",
                    quote(table),
                    list.join(", ")
                );
                let to_tree = (table == "events" && self.lsm.is_some()).then(|| names.clone());
                current = Some(Restoring {
                    to_tree,
                    table: table.to_string(),
                    head,
                    integer,
                    rows: 0,
                    identity: target.identity,
                    pending: Vec::new(),
                    first_line: row_line,
                });
            } else if let Some(table) = v["table_end"].as_str() {
                let Some(mut r) = current.take() else {
                    return Err(bad(row_line, "a table's end without its start".into()));
                };
                r.flush(&mut self.db)?;
                let Restoring {
                    table: name,
                    rows: n,
                    identity,
                    ..
                } = r;
                if name != table || v["rows"].as_u64() != Some(n) {
                    return Err(bad(
                        row_line,
                        format!("{table}: the backup says {} rows, {n} were read", v["rows"]),
                    ));
                }
                for c in identity {
                    let sql = format!(
                        "SELECT setval(pg_get_serial_sequence('{}', '{}'), COALESCE(MAX({}), 0) + 1, false) FROM {}",
                        table.replace('\'', "''"),
                        c.replace('\'', "''"),
                        quote(&c),
                        quote(table)
                    );
                    self.db.query(&sql, &[]).map_err(err)?;
                }
                stats.tables += 1;
                stats.rows += n;
            } else if let Some(end) = v.get("end") {
                if current.is_some() {
                    return Err(bad(row_line, "the end inside a table".into()));
                }
                if end["tables"].as_u64() != Some(stats.tables as u64)
                    || end["rows"].as_u64() != Some(stats.rows)
                {
                    return Err(bad(
                        row_line,
                        format!(
                            "the backup says {} tables and {} rows, {} and {} were read",
                            end["tables"], end["rows"], stats.tables, stats.rows
                        ),
                    ));
                }
                return Ok(stats);
            } else {
                return Err(bad(row_line, "not a line of a backup".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreUrl, testing};

    /// Four rows in every table, with awkward values: SQL and JSON
    /// metacharacters, non-ASCII text, integers beyond 2^53, reals at the
    /// edges of the range, NULL where a column allows it.
    fn fill(store: &mut Store) {
        let pg = store.db.is_postgres();
        for table in tables(&mut store.db).unwrap() {
            let cols = columns(&mut store.db, &table).unwrap();
            // Each column's type and whether it may be NULL.
            let sql = if pg {
                "SELECT data_type::text, (is_nullable::text = 'YES')::int::bigint
                 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name::text = ?1
                 ORDER BY ordinal_position"
            } else {
                "SELECT type, \"notnull\" = 0 AND pk = 0 FROM pragma_table_info(?1) ORDER BY cid"
            };
            let (types, nullable): (Vec<String>, Vec<bool>) = store
                .db
                .query(sql, &[Val::from(table.as_str())])
                .unwrap()
                .iter()
                .map(|r| (r.text(0).to_ascii_lowercase(), r.i64(1) != 0))
                .unzip();
            for k in 0..4i64 {
                let values: Vec<Val> = (0..cols.names.len())
                    .map(|c| {
                        if k == 2 && nullable[c] {
                            return Val::Null;
                        }
                        let ty = &types[c];
                        if ty.contains("int") {
                            Val::Int([-5, 9_007_199_254_740_993, 42, 7][k as usize] + c as i64)
                        } else if ty.contains("real") || ty.contains("double") {
                            // Reals that only a correctly rounded parser reads back.
                            Val::Real(
                                [
                                    0.1,
                                    -1.5e300,
                                    0.013_253_487_802_020_283,
                                    115.710_000_000_000_01,
                                ][k as usize],
                            )
                        } else {
                            Val::Text(
                                [
                                    format!("O'Brien{c}; DROP TABLE customers; --"),
                                    format!("é漢字🙂\"\\\n\t{{}}{c}"),
                                    format!("{c}"),
                                    format!("plain {c}"),
                                ][k as usize]
                                    .clone(),
                            )
                        }
                    })
                    .collect();
                let list: Vec<String> = cols.names.iter().map(|c| quote(c)).collect();
                let marks: Vec<String> = (1..=values.len()).map(|k| format!("?{k}")).collect();
                let overriding = if pg && !cols.identity.is_empty() {
                    " OVERRIDING SYSTEM VALUE"
                } else {
                    ""
                };
                let sql = format!(
                    "INSERT INTO {} ({}){overriding} VALUES ({})",
                    quote(&table),
                    list.join(", "),
                    marks.join(", ")
                );
                store
                    .db
                    .exec(&sql, &values)
                    .unwrap_or_else(|e| panic!("{table}: {e}"));
            }
        }
    }

    /// Each table's rows (as JSON text), sorted; the header left out.
    fn contents(backup: &[u8]) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for line in String::from_utf8_lossy(backup).lines().skip(1) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(t) = v["table"].as_str() {
                out.push((t.to_string(), Vec::new()));
            } else if v.is_array()
                && let Some(last) = out.last_mut()
            {
                last.1.push(line.to_string());
            }
        }
        for t in &mut out {
            t.1.sort();
        }
        out
    }

    #[test]
    fn every_table_round_trips_between_backends() {
        let dir = tempfile::tempdir().unwrap();
        let pg = testing::postgres_database()
            .unwrap_or_else(|e| panic!("no PostgreSQL for the tests: {e}"));
        let mut a = Store::open(&StoreUrl::Sqlite(dir.path().join("a.db"))).unwrap();
        fill(&mut a);
        // Enough customers for several insert batches and a partial one.
        let many = 3 * batch_rows(2) + 234;
        for i in 0..many {
            a.exec(
                "INSERT INTO customers (customer_id, position) VALUES (?1, ?2)",
                crate::db::vals![format!("bulk-{i}"), 1_000 + i as i64],
            )
            .unwrap();
        }
        let mut first = Vec::new();
        let stats = a.backup(&mut first).unwrap();
        let table_count = tables(&mut a.db).unwrap().len();
        assert_eq!(stats.tables, table_count);
        assert_eq!(stats.rows, 4 * table_count as u64 + many as u64);
        // SQLite → PostgreSQL → SQLite: the same rows every time.
        let mut b = Store::open(&StoreUrl::Postgres(pg)).unwrap();
        assert_eq!(b.restore(&mut first.as_slice()).unwrap(), stats);
        let mut second = Vec::new();
        b.backup(&mut second).unwrap();
        let mut c = Store::open(&StoreUrl::Sqlite(dir.path().join("c.db"))).unwrap();
        c.restore(&mut second.as_slice()).unwrap();
        let mut third = Vec::new();
        c.backup(&mut third).unwrap();
        let want = contents(&first);
        assert_eq!(want.len(), table_count);
        assert_eq!(contents(&second), want);
        assert_eq!(contents(&third), want);
        // PostgreSQL's identity sequences are past the restored ids: a new
        // import gets a fresh id.
        let n = b
            .exec(
                "INSERT INTO imports (source, customers_new, orders_new, orders_updated, orders_unchanged)
                 VALUES ('after', 0, 0, 0, 0)",
                &[],
            )
            .unwrap();
        assert_eq!(n, 1);
        // A store with data is not restored into.
        let e = c.restore(&mut first.as_slice()).unwrap_err().to_string();
        assert!(e.contains("needs an empty store"), "{e}");
        // A file cut short restores nothing.
        let text = String::from_utf8(first.clone()).unwrap();
        let cut: String = text
            .lines()
            .take(text.lines().count() - 1)
            .map(|l| format!("{l}\n"))
            .collect();
        let mut d = Store::open(&StoreUrl::Sqlite(dir.path().join("d.db"))).unwrap();
        let e = d.restore(&mut cut.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("incomplete"), "{e}");
        let mut empty = Vec::new();
        assert_eq!(d.backup(&mut empty).unwrap().rows, 0);
        // A row count that does not match is refused.
        let lied = text.replacen("{\"rows\":4,", "{\"rows\":5,", 1);
        let e = d.restore(&mut lied.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("the backup says 5 rows, 4 were read"), "{e}");
    }
}
