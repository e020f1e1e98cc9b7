//! `lifecycle import`: loads an orders file (any format `analyze` reads)
//! into the store, idempotently: orders are keyed by customer, day and
//! order, so importing the same file again adds nothing.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use lifecycle_ingest::{ReadOptions, clock_for, format_day, read_orders};
use lifecycle_store::Store;

use crate::{column_overrides, day_flag, input_err};

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Orders file (CSV/TSV, NDJSON, Parquet, gzip; as `analyze`)
    pub orders: PathBuf,
    // A new SQLite store is created when missing.
    #[command(flatten)]
    pub db: crate::DbArg,
    /// Ignore orders after this date
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Time zone where a purchase day begins and ends
    #[arg(long, default_value = "UTC", value_name = "TZ")]
    pub timezone: String,
    /// Column overrides (see `analyze --help`)
    #[arg(long, value_name = "SPEC")]
    pub columns: Option<String>,
    /// Date format (strftime), when the dates are ambiguous
    #[arg(long, value_name = "FORMAT")]
    pub date_format: Option<String>,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let url = args.db.url()?;
    let as_of = day_flag("--as-of", args.as_of.as_deref())?;
    let opts = ReadOptions {
        columns: column_overrides(args.columns.as_deref())?,
        date_format: args.date_format.clone(),
        clock: clock_for(&args.timezone).map_err(input_err)?,
        as_of,
        ..ReadOptions::default()
    };
    // Read (and validate) the whole file before touching the store: a bad
    // row stops the import with nothing written.
    let input = read_orders(&args.orders, &opts)?;
    let end = match as_of.or(input.builder.last_order_day()) {
        Some(d) => d,
        None => {
            return Err(input_err(format!(
                "{}: no orders found",
                args.orders.display()
            )));
        }
    };
    let mut store = Store::open(&url)?;
    let stats = store.import(&input.builder, end, &args.orders.display().to_string())?;
    let counts = store.counts()?;
    println!(
        "imported {} up to {}: {} new customers, {} new orders or refunds, {} updated, {} unchanged",
        args.orders.display(),
        format_day(end),
        stats.customers_new,
        stats.orders_new,
        stats.orders_updated,
        stats.orders_unchanged
    );
    println!(
        "store {}: {} customers, {} orders, {} refunds, net amount {:.2}",
        args.db.db, counts.customers, counts.orders, counts.refunds, counts.amount
    );
    Ok(())
}
