//! `lifecycle summarize`: the per-customer summaries (frequency, recency,
//! T, monetary value of the repeat days, orders, net spend) that `fit` and
//! `predict` read, from an orders file on this machine, or as the SQL that
//! computes the same summaries where the orders already live (PostgreSQL,
//! DuckDB, Spark SQL, BigQuery, Snowflake).
//!
//! The definitions are the Rust aggregation's (`lifecycle_rfm`): the rows
//! of one order on one day are one order (its amounts summed; an order
//! with no order id is keyed by its timestamp); an order with at least one
//! non-negative row counts, one of only negative rows is a refund (net
//! spend, never a purchase); a purchase day is a day with an order;
//! frequency = purchase days − 1, recency = last − first purchase day,
//! T = as-of − first purchase day, in days; monetary value = mean value of
//! the purchase days after the first. The SQL form assumes each row's
//! amount adds up (a file that repeats an order's total on every line is
//! only understood by the Rust readers).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use lifecycle_ingest::{ReadOptions, clock_for, format_day, read_orders};

use crate::{column_overrides, csv_text, day_flag, input_err};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dialect {
    Postgres,
    Duckdb,
    Spark,
    Bigquery,
    Snowflake,
}

/// Where the aggregation runs besides this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Postgres,
    /// Spark SQL in local mode or on the cluster `spark-sql` is set up for
    Spark,
}

#[derive(Args, Debug)]
pub struct SummarizeArgs {
    /// Orders file (any format `analyze` reads); not with --emit-sql
    pub input: Option<PathBuf>,
    /// Write the summaries here: CSV, or Parquet for a .parquet name (`fit`, `predict` and `analyze` read either)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The analysis day: later orders are ignored, T runs to it. Default for a file: its last order date; required with --emit-sql
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Print the SQL that computes the summaries in this warehouse instead
    #[arg(long, value_enum, value_name = "DIALECT")]
    pub emit_sql: Option<Dialect>,
    /// Run the SQL where the orders are instead of reading a file: postgres (with --db URL and --table)
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: Option<Engine>,
    /// With --engine postgres: the database (postgres://user@host:port/db)
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// With --engine spark: the orders files, a path or glob Spark reads ('lake/orders/*.parquet'; .csv with a header)
    #[arg(long = "input", alias = "spark-input", value_name = "PATH")]
    pub spark_input: Option<String>,
    /// With --engine spark: the spark-sql launcher (default: $SPARK_HOME/bin/spark-sql, else spark-sql on the PATH)
    #[arg(long, value_name = "PATH")]
    pub spark_sql: Option<PathBuf>,
    /// With --engine spark: the Spark master
    #[arg(long, value_name = "URL", default_value = "local[*]")]
    pub spark_master: String,
    /// With --emit-sql: the orders table
    #[arg(long, default_value = "orders")]
    pub table: String,
    /// With --emit-sql: the customer id column
    #[arg(long, default_value = "customer_id")]
    pub customer_column: String,
    /// With --emit-sql: the order date or timestamp column (UTC)
    #[arg(long, default_value = "order_date")]
    pub date_column: String,
    /// With --emit-sql: the amount column
    #[arg(long, default_value = "amount")]
    pub amount_column: String,
    /// With --emit-sql: the order id column ("none": each timestamp is an order)
    #[arg(long, default_value = "order_id")]
    pub order_column: String,
    /// Column overrides for an orders file (see `analyze --help`)
    #[arg(long, value_name = "SPEC")]
    pub columns: Option<String>,
    /// Time zone where a purchase day begins and ends (files)
    #[arg(long, default_value = "UTC", value_name = "TZ")]
    pub timezone: String,
}

/// The header of a summaries file (after its `# time unit: days` line).
pub const HEADER: &str = "customer_id,frequency,recency,T,monetary_value,orders,total_spend";

pub fn run(args: SummarizeArgs) -> Result<()> {
    let dialect = match (args.emit_sql, args.engine) {
        (Some(_), Some(_)) => {
            return Err(input_err(
                "--emit-sql prints the query, --engine runs it: choose one",
            ));
        }
        (Some(d), None) => Some(d),
        (None, Some(Engine::Postgres)) => Some(Dialect::Postgres),
        (None, Some(Engine::Spark)) => Some(Dialect::Spark),
        (None, None) => None,
    };
    if let Some(dialect) = dialect {
        if args.input.is_some() {
            return Err(input_err(
                "--emit-sql and --engine read the orders where they are: give no orders file",
            ));
        }
        let as_of = day_flag("--as-of", args.as_of.as_deref())?.ok_or_else(|| {
            input_err("--emit-sql and --engine need --as-of (the warehouse's data has no last day we know of)")
        })?;
        let columns = Columns {
            table: &args.table,
            customer: &args.customer_column,
            date: &args.date_column,
            amount: &args.amount_column,
            order: (!args.order_column.eq_ignore_ascii_case("none")).then_some(&*args.order_column),
        };
        let query = sql(dialect, &columns, &format_day(as_of))?;
        if args.engine.is_none() {
            print!("{query}");
            return Ok(());
        }
        let out = args
            .out
            .as_ref()
            .ok_or_else(|| input_err("--out FILE: where to write the summaries"))?;
        let (lines, engine) = match args.engine {
            Some(Engine::Spark) => (run_spark(&args, &query)?, "Spark"),
            _ => {
                let url = args
                    .db
                    .as_deref()
                    .ok_or_else(|| input_err("--engine postgres needs --db postgres://..."))?;
                let cell = |v: &serde_json::Value| match v {
                    serde_json::Value::String(s) => csv_text(s),
                    other => other.to_string(),
                };
                let rows = lifecycle_store::query_postgres(url, &query)?;
                let lines = rows
                    .iter()
                    .map(|r| r.iter().map(cell).collect::<Vec<_>>().join(","))
                    .collect();
                (lines, "PostgreSQL")
            }
        };
        let mut text = format!(
            "# time unit: days\n# as of: {}\n{HEADER}\n",
            format_day(as_of)
        );
        for l in &lines {
            let _ = writeln!(text, "{l}");
        }
        write_summaries(out, &text)?;
        eprintln!(
            "{} customers with orders as of {} (computed in {engine}) → {}",
            lines.len(),
            format_day(as_of),
            out.display()
        );
        return Ok(());
    }
    let input = args
        .input
        .as_ref()
        .ok_or_else(|| input_err("give an orders file, or --emit-sql DIALECT"))?;
    let out = args
        .out
        .as_ref()
        .ok_or_else(|| input_err("--out FILE: where to write the summaries"))?;
    let opts = ReadOptions {
        columns: column_overrides(args.columns.as_deref())?,
        clock: clock_for(&args.timezone).map_err(input_err)?,
        as_of: day_flag("--as-of", args.as_of.as_deref())?,
        ..ReadOptions::default()
    };
    let read = read_orders(input, &opts)?;
    let as_of = match opts.as_of {
        Some(d) => d,
        None => read
            .builder
            .last_order_day()
            .ok_or_else(|| input_err("no orders found"))?,
    };
    let (summaries, _) = read.builder.finish(as_of);
    let mut text = format!(
        "# time unit: days\n# as of: {}\n{HEADER}\n",
        format_day(as_of)
    );
    let mut buyers = 0usize;
    for s in summaries.iter().filter(|s| s.n_orders > 0) {
        let (Some(first), Some(last)) = (s.first_order, s.last_order) else {
            continue;
        };
        buyers += 1;
        let _ = writeln!(
            text,
            "{},{},{},{},{},{},{}",
            csv_text(&s.customer_id),
            s.frequency(),
            last - first,
            as_of - first,
            s.repeat_mean_value(),
            s.n_orders,
            s.total_spend
        );
    }
    write_summaries(out, &text)?;
    eprintln!(
        "{buyers} customers with orders as of {} → {}",
        format_day(as_of),
        out.display()
    );
    Ok(())
}

/// Runs the Spark SQL dialect through `spark-sql` on the files of
/// `--spark-input` (Parquet, or CSV with a header), into CSV parts in a
/// temporary folder; returns their lines (one per customer).
fn run_spark(args: &SummarizeArgs, query: &str) -> Result<Vec<String>> {
    let input = args
        .spark_input
        .as_deref()
        .ok_or_else(|| input_err("--engine spark needs --input 'PATH/*.parquet'"))?;
    if input.contains(['\'', '\n', '\\']) {
        return Err(input_err(format!(
            "--input {input}: quotes and backslashes are not allowed"
        )));
    }
    let launcher = match &args.spark_sql {
        Some(p) => p.clone(),
        None => match std::env::var_os("SPARK_HOME") {
            Some(home) => PathBuf::from(home).join("bin/spark-sql"),
            None => PathBuf::from("spark-sql"),
        },
    };
    let dir = tempfile::tempdir()?;
    let out_dir = dir.path().join("summaries");
    let source = if input.to_ascii_lowercase().contains(".csv") {
        format!("csv OPTIONS (path '{input}', header 'true')")
    } else {
        format!("parquet OPTIONS (path '{input}')")
    };
    let body = query.trim_end().trim_end_matches(';');
    let script = format!(
        "CREATE TEMPORARY VIEW orders USING {source};\nINSERT OVERWRITE DIRECTORY '{}' USING csv OPTIONS (header 'false')\n{body};\n",
        out_dir.display()
    );
    let file = dir.path().join("summarize.sql");
    std::fs::write(&file, script)?;
    let mut command = std::process::Command::new(&launcher);
    // Spark leaves a metastore and a log in its working folder: the
    // temporary one, not the user's.
    command.current_dir(dir.path());
    // Spark's launchers find their installation through SPARK_HOME: the
    // folder above the launcher's bin/ when it is not set.
    if std::env::var_os("SPARK_HOME").is_none()
        && let Some(home) = launcher
            .parent()
            .filter(|b| b.ends_with("bin"))
            .and_then(|b| b.parent())
    {
        command.env("SPARK_HOME", home);
    }
    let o = command
        .args(["--master", &args.spark_master])
        .args(["--conf", "spark.sql.session.timeZone=UTC"])
        .args(["--conf", "spark.ui.enabled=false"])
        .arg("-f")
        .arg(&file)
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (install Spark, set SPARK_HOME or pass --spark-sql)",
                launcher.display()
            )
        })?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let tail: Vec<&str> = err
            .lines()
            .rev()
            .filter(|l| !l.trim().is_empty())
            .take(15)
            .collect();
        return Err(anyhow::anyhow!(
            "spark-sql failed ({}):\n{}",
            o.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&out_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-"))
        })
        .collect();
    parts.sort();
    let mut lines = Vec::new();
    for p in parts {
        lines.extend(
            std::fs::read_to_string(&p)?
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    Ok(lines)
}

/// Where the orders are in the warehouse.
pub struct Columns<'a> {
    pub table: &'a str,
    pub customer: &'a str,
    pub date: &'a str,
    pub amount: &'a str,
    pub order: Option<&'a str>,
}

/// A name quoted for the dialect (so that any column name works); table
/// names may be qualified (`schema.table`), each part quoted.
fn quote(dialect: Dialect, name: &str) -> Result<String> {
    if name.is_empty() || name.contains(['"', '`', ';', '\n', '\0']) {
        return Err(input_err(format!(
            "\"{name}\" is not a usable table or column name"
        )));
    }
    let q = |part: &str| match dialect {
        Dialect::Spark | Dialect::Bigquery => format!("`{part}`"),
        _ => format!("\"{part}\""),
    };
    Ok(name.split('.').map(q).collect::<Vec<_>>().join("."))
}

/// The aggregation query: one row per customer with an order by `as_of`
/// (`YYYY-MM-DD`), columns as [`HEADER`].
pub fn sql(dialect: Dialect, c: &Columns<'_>, as_of: &str) -> Result<String> {
    let (customer, date, amount) = (
        quote(dialect, c.customer)?,
        quote(dialect, c.date)?,
        quote(dialect, c.amount)?,
    );
    let table = quote(dialect, c.table)?;
    let text = match dialect {
        Dialect::Spark | Dialect::Bigquery => "STRING",
        _ => "VARCHAR",
    };
    // Timestamps (or date strings) to the purchase day, in UTC.
    let day = match dialect {
        Dialect::Bigquery => format!("DATE(TIMESTAMP({date}))"),
        Dialect::Snowflake => format!("TO_DATE({date})"),
        _ => format!("CAST(CAST({date} AS TIMESTAMP) AS DATE)"),
    };
    let key = match c.order {
        Some(o) => format!("CAST({} AS {text})", quote(dialect, o)?),
        None => format!("CAST({date} AS {text})"),
    };
    let days = |later: &str, earlier: &str| match dialect {
        Dialect::Postgres | Dialect::Duckdb => format!("({later} - {earlier})"),
        Dialect::Spark => format!("datediff({later}, {earlier})"),
        Dialect::Bigquery => format!("DATE_DIFF({later}, {earlier}, DAY)"),
        Dialect::Snowflake => format!("DATEDIFF(day, {earlier}, {later})"),
    };
    let double = match dialect {
        Dialect::Bigquery => "FLOAT64",
        Dialect::Spark => "DOUBLE",
        _ => "DOUBLE PRECISION",
    };
    let as_of_date = format!("DATE '{as_of}'");
    Ok(format!(
        "-- Lifecycle per-customer summaries ({dialect:?}), as of {as_of}; generated by `lifecycle summarize --emit-sql`.
-- An order is the rows of one order id on one day; it counts when one of its rows is >= 0
-- (else it is a refund: net spend only). Days are UTC. Columns: {HEADER}.
WITH entries AS (
  SELECT {customer} AS customer_id, {day} AS day, {key} AS order_key,
         SUM(CAST({amount} AS {double})) AS amount,
         MAX(CASE WHEN CAST({amount} AS {double}) >= 0 THEN 1 ELSE 0 END) AS is_order
  FROM {table}
  WHERE {customer} IS NOT NULL AND {amount} IS NOT NULL AND {day} <= {as_of_date}
  GROUP BY {customer}, {day}, {key}
),
customers AS (
  SELECT e.customer_id,
         MIN(CASE WHEN e.is_order = 1 THEN e.day END) AS first_day,
         MAX(CASE WHEN e.is_order = 1 THEN e.day END) AS last_day,
         SUM(e.is_order) AS orders,
         COUNT(DISTINCT CASE WHEN e.is_order = 1 THEN e.day END) AS purchase_days,
         SUM(e.amount) AS total_spend
  FROM entries e
  GROUP BY e.customer_id
),
repeat_value AS (
  SELECT e.customer_id, SUM(e.amount) AS value
  FROM entries e JOIN customers c ON c.customer_id = e.customer_id
  WHERE e.is_order = 1 AND e.day > c.first_day
  GROUP BY e.customer_id
)
SELECT CAST(c.customer_id AS {text}) AS customer_id,
       CAST(c.purchase_days - 1 AS BIGINT) AS frequency,
       CAST({recency} AS BIGINT) AS recency,
       CAST({t} AS BIGINT) AS T,
       CAST(CASE WHEN c.purchase_days > 1 THEN COALESCE(r.value, 0) / (c.purchase_days - 1) ELSE 0 END AS {double}) AS monetary_value,
       CAST(c.orders AS BIGINT) AS orders,
       CAST(c.total_spend AS {double}) AS total_spend
FROM customers c LEFT JOIN repeat_value r ON r.customer_id = c.customer_id
WHERE c.orders > 0
ORDER BY c.customer_id;
",
        recency = days("c.last_day", "c.first_day"),
        t = days(&as_of_date, "c.first_day"),
    ))
}

/// Whether `path` is a summaries file this command wrote (its header,
/// after the comment lines).
pub fn is_summaries(path: &std::path::Path) -> bool {
    use std::io::BufRead;
    if lifecycle_ingest::is_parquet(path).unwrap_or(false) {
        return parquet_columns(path).is_some_and(|c| c.join(",") == HEADER);
    }
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .is_some_and(|l| l.trim() == HEADER)
}

/// A Parquet file's top-level column names.
fn parquet_columns(path: &std::path::Path) -> Option<Vec<String>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).ok()?).ok()?;
    Some(
        reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
    )
}

/// Writes a summaries file: the CSV text as it is, or (for a `.parquet`
/// name) as Parquet with typed columns and the `# time unit` and `# as of`
/// lines as `lifecycle.time_unit` and `lifecycle.as_of` key-value metadata.
fn write_summaries(out: &std::path::Path, text: &str) -> Result<()> {
    let name = out.display().to_string();
    if !out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        return std::fs::write(out, text).map_err(|e| anyhow::anyhow!("{name}: {e}"));
    }
    use parquet::basic::{ConvertedType, Repetition, Type as Physical};
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;
    let meta: Vec<KeyValue> = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.trim_start_matches('#').split_once(':'))
        .map(|(k, v)| {
            KeyValue::new(
                format!("lifecycle.{}", k.trim().replace(' ', "_")),
                v.trim().to_string(),
            )
        })
        .collect();
    let body: String = text
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut ids: Vec<ByteArray> = Vec::new();
    let mut ints: [Vec<i64>; 4] = Default::default();
    let mut floats: [Vec<f64>; 2] = Default::default();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    for (k, record) in reader.records().enumerate() {
        let r = record.map_err(|e| anyhow::anyhow!("{name}: row {}: {e}", k + 1))?;
        let cell = |i: usize| r.get(i).unwrap_or("").trim();
        ids.push(cell(0).into());
        for (j, col) in [(1, 0), (2, 1), (3, 2), (5, 3)] {
            let v: f64 = cell(j).parse().map_err(|_| {
                anyhow::anyhow!("{name}: row {}: \"{}\" is not a count", k + 1, cell(j))
            })?;
            ints[col].push(v as i64);
        }
        for (j, col) in [(4, 0), (6, 1)] {
            let v: f64 = cell(j).parse().map_err(|_| {
                anyhow::anyhow!("{name}: row {}: \"{}\" is not a number", k + 1, cell(j))
            })?;
            floats[col].push(v);
        }
    }
    let column = |n: &str, t: Physical, c: ConvertedType| {
        Type::primitive_type_builder(n, t)
            .with_repetition(Repetition::REQUIRED)
            .with_converted_type(c)
            .build()
            .map(std::sync::Arc::new)
    };
    let mut fields = vec![column(
        "customer_id",
        Physical::BYTE_ARRAY,
        ConvertedType::UTF8,
    )?];
    for n in ["frequency", "recency", "T"] {
        fields.push(column(n, Physical::INT64, ConvertedType::NONE)?);
    }
    fields.push(column(
        "monetary_value",
        Physical::DOUBLE,
        ConvertedType::NONE,
    )?);
    fields.push(column("orders", Physical::INT64, ConvertedType::NONE)?);
    fields.push(column(
        "total_spend",
        Physical::DOUBLE,
        ConvertedType::NONE,
    )?);
    let schema = Type::group_type_builder("summaries")
        .with_fields(fields)
        .build()?;
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_key_value_metadata(Some(meta))
        .build();
    let file = std::fs::File::create(out).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let mut w = SerializedFileWriter::new(file, std::sync::Arc::new(schema), props.into())?;
    let mut rg = w.next_row_group()?;
    let mut i = 0;
    while let Some(mut col) = rg.next_column()? {
        match i {
            0 => col.typed::<ByteArrayType>().write_batch(&ids, None, None)?,
            1..=3 => col
                .typed::<Int64Type>()
                .write_batch(&ints[i - 1], None, None)?,
            4 => col
                .typed::<DoubleType>()
                .write_batch(&floats[0], None, None)?,
            5 => col.typed::<Int64Type>().write_batch(&ints[3], None, None)?,
            _ => col
                .typed::<DoubleType>()
                .write_batch(&floats[1], None, None)?,
        };
        col.close()?;
        i += 1;
    }
    rg.close()?;
    w.close()?;
    Ok(())
}

/// Reads a summaries file back into customer summaries (customers with
/// orders) and its as-of day: first purchase = as-of − T, last = first +
/// recency, purchase days = frequency + 1, the repeat days' value =
/// monetary value × frequency.
pub fn read_summaries(
    path: &std::path::Path,
) -> Result<(Vec<lifecycle_rfm::CustomerSummary>, lifecycle_rfm::Day)> {
    let name = path.display().to_string();
    let text = lifecycle_ingest::summary_file::summary_text(path)?;
    let as_of = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.trim_start_matches('#').trim().strip_prefix("as of:"))
        .ok_or_else(|| input_err(format!("{name}: no '# as of: YYYY-MM-DD' line")))
        .and_then(|d| {
            lifecycle_ingest::parse_day(d.trim())
                .map_err(|m| input_err(format!("{name}: as of: {m}")))
        })?;
    let body: String = text
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let mut out = Vec::new();
    for (k, record) in reader.records().enumerate() {
        let line = k + 2 + text.lines().take_while(|l| l.starts_with('#')).count();
        let r = record.map_err(|e| input_err(format!("{name}:{line}: {e}")))?;
        let field = |i: usize, column: &str| -> Result<f64> {
            r.get(i)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    input_err(format!(
                        "{name}:{line}: column {column}: \"{}\" is not a number",
                        r.get(i).unwrap_or("")
                    ))
                })
        };
        let (x, t_x, t) = (field(1, "frequency")?, field(2, "recency")?, field(3, "T")?);
        let (monetary, orders, spend) = (
            field(4, "monetary_value")?,
            field(5, "orders")?,
            field(6, "total_spend")?,
        );
        if x < 0.0 || t_x < 0.0 || t < t_x || orders < 1.0 {
            return Err(input_err(format!(
                "{name}:{line}: frequency, recency and T must satisfy 0 <= recency <= T, with at least one order"
            )));
        }
        let first = as_of - t as lifecycle_rfm::Day;
        let repeat = monetary * x;
        out.push(lifecycle_rfm::CustomerSummary {
            customer_id: r.get(0).unwrap_or("").into(),
            first_order: Some(first),
            last_order: Some(first + t_x as lifecycle_rfm::Day),
            n_orders: orders as u32,
            n_purchase_days: x as u32 + 1,
            total_spend: spend,
            first_day_value: spend - repeat,
            repeat_days_value: repeat,
            visited: false,
            left_email: false,
            first_seen: None,
        });
    }
    Ok((out, as_of))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Columns<'static> {
        Columns {
            table: "shop.orders",
            customer: "customer_id",
            date: "order_date",
            amount: "amount",
            order: Some("order_id"),
        }
    }

    #[test]
    fn names_are_quoted_and_dialects_differ() {
        let pg = sql(Dialect::Postgres, &columns(), "2024-01-01").unwrap();
        assert!(pg.contains("FROM \"shop\".\"orders\""));
        assert!(pg.contains("CAST((c.last_day - c.first_day) AS BIGINT) AS recency"));
        let spark = sql(Dialect::Spark, &columns(), "2024-01-01").unwrap();
        assert!(spark.contains("FROM `shop`.`orders`"));
        assert!(spark.contains("CAST(datediff(DATE '2024-01-01', c.first_day) AS BIGINT) AS T"));
        let bq = sql(Dialect::Bigquery, &columns(), "2024-01-01").unwrap();
        assert!(bq.contains("DATE_DIFF(c.last_day, c.first_day, DAY)"));
        let sf = sql(Dialect::Snowflake, &columns(), "2024-01-01").unwrap();
        assert!(sf.contains("DATEDIFF(day, c.first_day, c.last_day)"));
        let no_ids = Columns {
            order: None,
            ..columns()
        };
        assert!(
            sql(Dialect::Duckdb, &no_ids, "2024-01-01")
                .unwrap()
                .contains("CAST(\"order_date\" AS VARCHAR) AS order_key")
        );
        let bad = Columns {
            customer: "id\"; DROP TABLE orders; --",
            ..columns()
        };
        assert!(sql(Dialect::Postgres, &bad, "2024-01-01").is_err());
    }
}
