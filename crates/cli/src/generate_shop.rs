//! `lifecycle generate-shop`: a synthetic shop with planted truths
//! (`lifecycle_synth::shop`) written as the files the insights read:
//! lines.csv (order lines, also an orders file), attributes.csv,
//! spend.csv (marketing spend by channel and month), experience.csv
//! (NPS answers and reviews), catalogue.csv and truths.json.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lifecycle_ingest::{format_day, parse_day};
use lifecycle_synth::shop::{PLANTED, Shop, catalogue};

use crate::input_err;

#[derive(Args, Debug)]
pub struct GenerateShopArgs {
    /// Output folder
    #[arg(long)]
    pub out: PathBuf,
    /// Number of customers
    #[arg(long, default_value_t = 20_000)]
    pub customers: u64,
    /// Random seed: the same seed gives the same files
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First day of the period
    #[arg(long, default_value = "2024-01-01")]
    pub start: String,
    /// Length of the period in days
    #[arg(long, default_value_t = 730)]
    pub days: u32,
    /// Customers are acquired within the first N days
    #[arg(long, default_value_t = 365)]
    pub acquisition_days: u32,
}

fn create(path: &std::path::Path) -> Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(
        1 << 20,
        File::create(path).with_context(|| format!("{}", path.display()))?,
    ))
}

pub fn run(args: GenerateShopArgs) -> Result<()> {
    let start = parse_day(&args.start).map_err(|m| input_err(format!("--start: {m}")))?;
    if args.days == 0 || args.acquisition_days == 0 || args.acquisition_days > args.days {
        return Err(input_err(
            "--days and --acquisition-days must be positive, acquisition within the period",
        ));
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let products = catalogue();
    let mut lines = create(&args.out.join("lines.csv"))?;
    writeln!(
        lines,
        "customer_id,order_id,date,product_id,category,brand,quantity,unit_price,unit_cost,discount_code,amount"
    )?;
    let mut attributes = create(&args.out.join("attributes.csv"))?;
    writeln!(
        attributes,
        "customer_id,email,acquisition_channel,acquisition_cost,city,country,gender,birth_date"
    )?;
    let mut experience = create(&args.out.join("experience.csv"))?;
    writeln!(experience, "customer_id,kind,value,date")?;
    // (channel, month label) → spend.
    let mut spend: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut shop = Shop::new(args.seed, args.days, args.acquisition_days);
    let mut written = 0u64;
    for _ in 0..args.customers {
        let (c, ls, answers) = shop.next_customer();
        for l in &ls {
            let p = &products[l.product];
            let secs = l.second;
            writeln!(
                lines,
                "{},O{},{}T{:02}:{:02}:{:02},{},{},{},{},{:.2},{:.2},{},{:.2}",
                c.id,
                l.order,
                format_day(start + l.day as i32),
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                p.id,
                p.category,
                p.brand,
                if l.returned {
                    -i64::from(l.quantity)
                } else {
                    i64::from(l.quantity)
                },
                p.price,
                p.cost,
                l.discount_code.unwrap_or(""),
                l.amount
            )?;
            written += 1;
        }
        writeln!(
            attributes,
            "{},{},{},{:.2},{},{},{},{}",
            c.id,
            c.email,
            c.channel,
            c.acquisition_cost,
            c.city,
            c.country,
            c.gender,
            format_day(start + c.birth_day)
        )?;
        if let Some(first) = ls.first() {
            let month = format_day(start + first.day as i32)[..7].to_string();
            *spend.entry((c.channel.to_string(), month)).or_insert(0.0) += c.acquisition_cost;
        }
        for a in &answers {
            writeln!(
                experience,
                "{},{},{},{}",
                c.id,
                a.kind,
                a.value,
                format_day(start + a.day as i32)
            )?;
        }
    }
    lines.flush()?;
    attributes.flush()?;
    experience.flush()?;
    let mut s = create(&args.out.join("spend.csv"))?;
    writeln!(s, "channel,month,spend")?;
    for ((channel, month), v) in &spend {
        writeln!(s, "{channel},{month},{v:.2}")?;
    }
    s.flush()?;
    let mut cat = create(&args.out.join("catalogue.csv"))?;
    writeln!(cat, "id,name,url,price,category,brand")?;
    for p in &products {
        writeln!(
            cat,
            "{},{} {} {},https://shop.example/p/{},{:.2},{},{}",
            p.id, p.brand, p.category, p.id, p.id, p.price, p.category, p.brand
        )?;
    }
    cat.flush()?;
    let truths = serde_json::json!({
        "seed": args.seed,
        "customers": args.customers,
        "lines": written,
        "planted": PLANTED.iter().map(|(d, v, what)| serde_json::json!({"dimension": d, "value": v, "planted": what})).collect::<Vec<_>>(),
        "null_dimensions": ["gender", "age_band", "country", "first_category", "first_discount_code"],
    });
    std::fs::write(
        args.out.join("truths.json"),
        serde_json::to_string_pretty(&truths)?,
    )?;
    eprintln!(
        "Wrote {} customers and {written} order lines to {} (lines.csv, attributes.csv, spend.csv, experience.csv, catalogue.csv, truths.json)",
        args.customers,
        args.out.display()
    );
    Ok(())
}
