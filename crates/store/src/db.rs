//! The two backends behind one small interface: statements written once
//! with `?N` placeholders in the SQL both SQLite and PostgreSQL accept,
//! values as [`Val`], rows as [`Row`]. PostgreSQL statements get `$N`
//! placeholders and are prepared once per connection.

use std::collections::HashMap;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// A value bound to or read from a statement. Integers are 64-bit and
/// reals double on both backends (PostgreSQL columns are BIGINT and
/// DOUBLE PRECISION; flags are 0/1 integers).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}
impl From<i32> for Val {
    fn from(v: i32) -> Val {
        Val::Int(i64::from(v))
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::Int(i64::from(v))
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Val {
        Val::Real(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_string())
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::Text(v.clone())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map_or(Val::Null, Into::into)
    }
}

/// Builds a `&[Val]` from values of mixed types.
macro_rules! vals {
    ($($v:expr),* $(,)?) => {
        &[$($crate::db::Val::from($v)),*][..]
    };
}
pub(crate) use vals;

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Val::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Val::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Val::Real(f) => f.to_sql(ty, out),
            Val::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub Vec<Val>);

impl Row {
    fn at(&self, i: usize) -> &Val {
        self.0.get(i).unwrap_or(&Val::Null)
    }
    pub fn opt_i64(&self, i: usize) -> Option<i64> {
        match self.at(i) {
            Val::Int(v) => Some(*v),
            Val::Real(f) => Some(*f as i64),
            _ => None,
        }
    }
    pub fn i64(&self, i: usize) -> i64 {
        self.opt_i64(i).unwrap_or(0)
    }
    pub fn opt_i32(&self, i: usize) -> Option<i32> {
        self.opt_i64(i).and_then(|v| i32::try_from(v).ok())
    }
    pub fn i32(&self, i: usize) -> i32 {
        self.opt_i32(i).unwrap_or(0)
    }
    pub fn bool(&self, i: usize) -> bool {
        self.i64(i) != 0
    }
    pub fn opt_f64(&self, i: usize) -> Option<f64> {
        match self.at(i) {
            Val::Real(f) => Some(*f),
            Val::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
    pub fn f64(&self, i: usize) -> f64 {
        self.opt_f64(i).unwrap_or(0.0)
    }
    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.at(i) {
            Val::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }
}

/// A failed statement.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
    /// The events' LSM tree beside a SQLite file.
    #[error(transparent)]
    Lsm(#[from] crate::lsm::LsmError),
}

/// A PostgreSQL error with its cause: the driver's own text is only its
/// kind ("db error", "error connecting to server").
fn pg_message(e: &postgres::Error) -> String {
    let mut out = e.to_string();
    if let Some(db) = e.as_db_error() {
        out.push_str(&format!(": {}: {}", db.severity(), db.message()));
    } else if let Some(cause) = std::error::Error::source(e) {
        let cause = cause.to_string();
        if !out.ends_with(&cause) {
            out.push_str(&format!(": {cause}"));
        }
    }
    out
}

impl DbError {
    /// A deadlock or serialization failure: the transaction may be retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            DbError::Postgres(e) => e.code().is_some_and(|c| {
                *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                    || *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
            }),
            DbError::Sqlite(_) | DbError::Lsm(_) => false,
        }
    }

    /// The database's disk (or quota) is full: nothing was written, and
    /// the same write may succeed once space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            DbError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            DbError::Postgres(e) => e
                .code()
                .is_some_and(|c| *c == postgres::error::SqlState::DISK_FULL),
            DbError::Lsm(e) => e.is_disk_full(),
        }
    }
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// A PostgreSQL connection with its prepared statements; reconnected
/// (outside a transaction) when the server has closed it, e.g. after a
/// restart.
pub(crate) struct Pg {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
    url: String,
    in_transaction: bool,
}

/// A connection to either backend.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Pg>),
}

/// Whether a statement only reads (`SELECT`/`WITH … SELECT` without a
/// data-changing word).
fn is_read(sql: &str) -> bool {
    let upper = sql.trim_start().to_ascii_uppercase();
    (upper.starts_with("SELECT") || upper.starts_with("WITH"))
        && !["INSERT ", "UPDATE ", "DELETE ", "FOR UPDATE"]
            .iter()
            .any(|w| upper.contains(w))
}

/// `?N` placeholders as PostgreSQL's `$N`.
fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '?' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Val, postgres::Error> {
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Val::Null, Val::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(Val::Null, |v| Val::Int(i64::from(v))),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map_or(Val::Null, |v| Val::Int(i64::from(v))),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Val::Null, |v| Val::Int(i64::from(v))),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)?
            .map_or(Val::Null, Val::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map_or(Val::Null, |v| Val::Real(f64::from(v))),
        _ => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Val::Null, Val::Text),
    })
}

impl Pg {
    fn reconnect_if_closed(&mut self) -> Result<(), postgres::Error> {
        if !self.in_transaction && self.client.is_closed() {
            self.client = postgres::Client::connect(&self.url, postgres::NoTls)?;
            self.statements.clear();
        }
        Ok(())
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        // A statement prepared on a connection that has since closed is
        // useless: reconnect first (a cheap check).
        self.reconnect_if_closed()?;
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        if self.statements.len() >= STATEMENT_CACHE {
            // Bounded: dropped statements are closed on the server.
            self.statements.clear();
        }
        let s = self.client.prepare(&dollars(sql))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

fn pg_params(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Db {
    pub fn open_sqlite(path: &std::path::Path) -> Result<Db, DbError> {
        let c = rusqlite::Connection::open(path)?;
        // Room for every statement of the ingestion path, including the
        // profile updates naming only the columns that changed (the
        // default 16 would re-prepare some of them on every event).
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Db::Sqlite(c))
    }

    pub fn open_postgres(url: &str) -> Result<Db, DbError> {
        let client = postgres::Client::connect(url, postgres::NoTls)?;
        Ok(Db::Postgres(Box::new(Pg {
            client,
            statements: HashMap::new(),
            url: url.to_string(),
            in_transaction: false,
        })))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Runs a statement; returns the rows it changed.
    pub fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, DbError> {
        match self {
            Db::Sqlite(c) => {
                let mut s = c.prepare_cached(sql)?;
                Ok(s.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Db::Postgres(pg) => {
                let s = pg.statement(sql)?;
                Ok(pg.client.execute(&s, &pg_params(params))?)
            }
        }
    }

    /// Runs a query and returns every row.
    pub fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, DbError> {
        let mut out = Vec::new();
        self.query_each(sql, params, &mut |r: &Row| out.push(r.clone()))?;
        Ok(out)
    }

    /// Runs a query and calls `f` with each row as it arrives (streamed:
    /// memory does not grow with the result).
    pub fn query_each(
        &mut self,
        sql: &str,
        params: &[Val],
        f: &mut dyn FnMut(&Row),
    ) -> Result<(), DbError> {
        match self {
            Db::Sqlite(c) => {
                let mut s = c.prepare_cached(sql)?;
                let n = s.column_count();
                let mut rows = s.query(rusqlite::params_from_iter(params.iter()))?;
                let mut row = Row(Vec::with_capacity(n));
                while let Some(r) = rows.next()? {
                    row.0.clear();
                    for i in 0..n {
                        use rusqlite::types::ValueRef;
                        row.0.push(match r.get_ref(i)? {
                            ValueRef::Null => Val::Null,
                            ValueRef::Integer(v) => Val::Int(v),
                            ValueRef::Real(f) => Val::Real(f),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                Val::Text(String::from_utf8_lossy(t).into_owned())
                            }
                        });
                    }
                    f(&row);
                }
                Ok(())
            }
            Db::Postgres(pg) => {
                let mut delivered = false;
                let mut run = |pg: &mut Pg, delivered: &mut bool| -> Result<(), postgres::Error> {
                    let s = pg.statement(sql)?;
                    let mut rows = pg.client.query_raw(&s, params.iter())?;
                    let mut row = Row(Vec::new());
                    while let Some(r) = fallible_iterator::FallibleIterator::next(&mut rows)? {
                        row.0.clear();
                        for i in 0..r.len() {
                            row.0.push(pg_value(&r, i)?);
                        }
                        *delivered = true;
                        f(&row);
                    }
                    Ok(())
                };
                match run(pg, &mut delivered) {
                    // The server closed the connection (a restart) before
                    // any row came: a plain read is safe to run again on a
                    // new connection, so the caller does not see the
                    // restart (not an `UPDATE … RETURNING`: it may have run).
                    Err(e) if e.is_closed() && !pg.in_transaction && !delivered && is_read(sql) => {
                        drop(e);
                        run(pg, &mut delivered)?;
                        Ok(())
                    }
                    other => Ok(other?),
                }
            }
        }
    }

    /// The first row, if any.
    pub fn query_one(&mut self, sql: &str, params: &[Val]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Logs a batch of changes to the events' tree (SQLite's `event_ops`);
    /// returns its sequence number.
    pub fn log_ops(&mut self, ops: &[u8]) -> Result<i64, DbError> {
        match self {
            Db::Sqlite(c) => {
                c.prepare_cached("INSERT INTO event_ops (ops) VALUES (?1)")?
                    .execute([ops])?;
                Ok(c.last_insert_rowid())
            }
            Db::Postgres(pg) => {
                let s = pg.statement("INSERT INTO event_ops (ops) VALUES ($1) RETURNING seq")?;
                Ok(pg.client.query_one(&s, &[&ops])?.get(0))
            }
        }
    }

    /// Up to `limit` logged batches after `after`, in order.
    pub fn logged_ops(&mut self, after: i64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>, DbError> {
        match self {
            Db::Sqlite(c) => {
                let mut s = c.prepare_cached(
                    "SELECT seq, ops FROM event_ops WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let rows = s.query_map([after, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Db::Postgres(pg) => {
                let s = pg.statement(
                    "SELECT seq, ops FROM event_ops WHERE seq > $1 ORDER BY seq LIMIT $2",
                )?;
                Ok(pg
                    .client
                    .query(&s, &[&after, &limit])?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect())
            }
        }
    }

    /// Statements without parameters (migrations, transaction control).
    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(pg) => {
                pg.reconnect_if_closed()?;
                Ok(pg.client.batch_execute(sql)?)
            }
        }
    }

    /// Starts a write transaction (SQLite takes the write lock at once, so
    /// that two writers never deadlock upgrading a read lock).
    pub fn begin(&mut self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE"),
            Db::Postgres(_) => {
                self.batch("BEGIN")?;
                self.set_in_transaction(true);
                Ok(())
            }
        }
    }

    fn set_in_transaction(&mut self, on: bool) {
        if let Db::Postgres(pg) = self {
            pg.in_transaction = on;
        }
    }

    pub fn commit(&mut self) -> Result<(), DbError> {
        let done = self.batch("COMMIT");
        self.set_in_transaction(false);
        done
    }

    pub fn rollback(&mut self) {
        let _ = self.batch("ROLLBACK");
        self.set_in_transaction(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_reads_are_retried() {
        assert!(is_read("SELECT a FROM t WHERE b = ?1"));
        assert!(is_read("  with x AS (SELECT 1) SELECT * FROM x"));
        assert!(!is_read("UPDATE outbox SET lease_ms = ?2 RETURNING key"));
        assert!(!is_read(
            "SELECT 1 FROM customers WHERE customer_id = ?1 FOR UPDATE"
        ));
        assert!(!is_read(
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"
        ));
    }

    #[test]
    fn placeholders_outside_quotes_become_dollars() {
        assert_eq!(
            dollars("SELECT ?1, '?2' FROM t WHERE a = ?10 AND b LIKE 'user:%'"),
            "SELECT $1, '?2' FROM t WHERE a = $10 AND b LIKE 'user:%'"
        );
    }

    #[test]
    fn sqlite_round_trip_of_values() {
        let mut db = Db::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.batch("CREATE TABLE t (a INTEGER, b REAL, c TEXT)")
            .unwrap();
        db.exec("INSERT INTO t VALUES (?1, ?2, ?3)", vals![7i64, 1.5, "x"])
            .unwrap();
        db.exec(
            "INSERT INTO t VALUES (?1, ?2, ?3)",
            vals![None::<i64>, None::<f64>, None::<String>],
        )
        .unwrap();
        let rows = db.query("SELECT a, b, c FROM t ORDER BY a", &[]).unwrap();
        assert_eq!(rows[0], Row(vec![Val::Null, Val::Null, Val::Null]));
        assert_eq!(
            (rows[1].i64(0), rows[1].f64(1), rows[1].text(2)),
            (7, 1.5, "x".into())
        );
    }
}
