//! `lifecycle generate`: streams synthetic orders to CSV, Parquet or
//! NDJSON (Segment messages), and on request the customers' events and
//! attributes beside them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use lifecycle_ingest::{format_day, parse_day};
use lifecycle_synth::Effect;
use lifecycle_synth::extras::{Extras, SynthAttributes, SynthEvent, SynthLine};
use lifecycle_synth::{Generator, SynthOrder, SynthParams};
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::InputError;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum OutFormat {
    Csv,
    Parquet,
    /// Segment `Order Completed` track messages, one per line
    Ndjson,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Number of customers
    #[arg(long, required_unless_present = "rows")]
    pub customers: Option<u64>,
    /// Stop once at least this many orders are written (after a whole customer)
    #[arg(long)]
    pub rows: Option<u64>,
    /// Output file (.csv, .csv.gz, .parquet, or .ndjson/.jsonl: Segment `Order Completed` messages)
    #[arg(long)]
    pub out: PathBuf,
    /// Also write behavioural events (customer_id,timestamp,event,email): each buyer's sign-up before the first order and page views, and visitors who never buy (the input of `analyze --events`)
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// With --events: visitors who never buy, per buyer
    #[arg(long, default_value_t = 0.5, value_name = "SHARE")]
    pub visitors_per_customer: f64,
    /// Also write customer attributes (customer_id,acquisition_channel,acquisition_cost,city,age): the input of `analyze --kpis --attributes`
    #[arg(long, value_name = "FILE")]
    pub attributes: Option<PathBuf>,
    /// Also write the orders' lines (order_id,customer_id,order_date,product_id,category,brand,quantity,unit_price,unit_cost): one to three products of a 60-product catalogue per order, adding up to the order's amount (the input of `analyze --kpis --lines`)
    #[arg(long, value_name = "FILE")]
    pub lines: Option<PathBuf>,
    /// Random seed: the same seed gives the same file
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output format (default: from the file name)
    #[arg(long, value_enum)]
    pub format: Option<OutFormat>,
    /// First day of the period
    #[arg(long, default_value = "2024-01-01")]
    pub start: String,
    /// Length of the period in days
    #[arg(long, default_value_t = 730)]
    pub days: u32,
    /// Customers are acquired within the first N days
    #[arg(long, default_value_t = 365)]
    pub acquisition_days: u32,
    /// BG/NBD r (shape of the purchase rate)
    #[arg(long, default_value_t = SynthParams::default().r)]
    pub r: f64,
    /// BG/NBD alpha (rate of the purchase rate, per day)
    #[arg(long, default_value_t = SynthParams::default().alpha)]
    pub alpha: f64,
    /// BG/NBD a (drop-out Beta)
    #[arg(long, default_value_t = SynthParams::default().a)]
    pub a: f64,
    /// BG/NBD b (drop-out Beta)
    #[arg(long, default_value_t = SynthParams::default().b)]
    pub b: f64,
    /// Gamma-Gamma p (shape of an order's value)
    #[arg(long, default_value_t = SynthParams::default().p)]
    pub p: f64,
    /// Gamma-Gamma q (shape of the customer's spend rate)
    #[arg(long, default_value_t = SynthParams::default().q)]
    pub q: f64,
    /// Gamma-Gamma gamma (rate of the customer's spend rate)
    #[arg(long, default_value_t = SynthParams::default().gamma)]
    pub gamma: f64,
    /// Plant an effect of an attribute on the purchase process (repeatable; needs --attributes):
    /// ATTRIBUTE=VALUE:EFFECT*FACTOR with ATTRIBUTE city or channel and EFFECT frequency (the
    /// purchase rate), dropout (the drop-out probability) or spend (every order's value), e.g.
    /// 'city=Lyon:frequency*2' or 'channel=display:dropout*1.5'
    #[arg(long, value_name = "SPEC")]
    pub plant: Vec<String>,
}

/// One planted effect: customers whose attribute has the value get the
/// factor on one process.
#[derive(Debug, Clone, PartialEq)]
pub struct Plant {
    pub attribute: PlantAttribute,
    pub value: String,
    pub effect: PlantEffect,
    pub factor: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantAttribute {
    City,
    Channel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantEffect {
    Frequency,
    Dropout,
    Spend,
}

impl std::str::FromStr for Plant {
    type Err = String;

    fn from_str(spec: &str) -> Result<Plant, String> {
        let shape = || {
            format!(
                "--plant {spec}: expected ATTRIBUTE=VALUE:EFFECT*FACTOR, e.g. city=Lyon:frequency*2"
            )
        };
        let (who, what) = spec.split_once(':').ok_or_else(shape)?;
        let (attribute, value) = who.split_once('=').ok_or_else(shape)?;
        let (effect, factor) = what.split_once('*').ok_or_else(shape)?;
        let attribute = match attribute.trim().to_ascii_lowercase().as_str() {
            "city" => PlantAttribute::City,
            "channel" | "acquisition_channel" => PlantAttribute::Channel,
            other => {
                return Err(format!(
                    "--plant {spec}: attribute \"{other}\" is not city or channel"
                ));
            }
        };
        let known: Vec<&str> = match attribute {
            PlantAttribute::City => lifecycle_synth::extras::CITIES.to_vec(),
            PlantAttribute::Channel => lifecycle_synth::extras::CHANNELS
                .iter()
                .map(|(c, _)| *c)
                .collect(),
        };
        let value = known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(value.trim()))
            .ok_or_else(|| {
                format!(
                    "--plant {spec}: \"{}\" is not one of {}",
                    value.trim(),
                    known.join(", ")
                )
            })?
            .to_string();
        let effect = match effect.trim().to_ascii_lowercase().as_str() {
            "frequency" => PlantEffect::Frequency,
            "dropout" => PlantEffect::Dropout,
            "spend" => PlantEffect::Spend,
            other => {
                return Err(format!(
                    "--plant {spec}: effect \"{other}\" is not frequency, dropout or spend"
                ));
            }
        };
        let factor: f64 = factor
            .trim()
            .parse()
            .ok()
            .filter(|f: &f64| f.is_finite() && *f > 0.0)
            .ok_or_else(|| format!("--plant {spec}: the factor must be a positive number"))?;
        Ok(Plant {
            attribute,
            value,
            effect,
            factor,
        })
    }
}

/// The combined effect of the plants on a customer with these attributes.
fn effect_of(plants: &[Plant], a: &SynthAttributes) -> Effect {
    let mut e = Effect::default();
    for p in plants {
        let has = match p.attribute {
            PlantAttribute::City => a.city == p.value,
            PlantAttribute::Channel => a.channel == p.value,
        };
        if has {
            match p.effect {
                PlantEffect::Frequency => e.rate *= p.factor,
                PlantEffect::Dropout => e.dropout *= p.factor,
                PlantEffect::Spend => e.spend *= p.factor,
            }
        }
    }
    e
}

trait Sink {
    fn write(&mut self, orders: &[SynthOrder]) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<()>;
}

/// `YYYY-MM-DD{sep}HH:MM:SS` of second `s` of day `day` after `start`.
fn stamp(start: i32, day: u32, s: u32, sep: char) -> String {
    format!(
        "{}{sep}{:02}:{:02}:{:02}",
        format_day(start + day as i32),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// A text sink: one line per order, as `line` writes it.
struct LineSink<W: Write> {
    out: W,
    start: i32,
    line: String,
    format: fn(&mut String, i32, &SynthOrder),
}

impl<W: Write> Sink for LineSink<W> {
    fn write(&mut self, orders: &[SynthOrder]) -> Result<()> {
        for o in orders {
            self.line.clear();
            (self.format)(&mut self.line, self.start, o);
            self.out.write_all(self.line.as_bytes())?;
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

fn csv_line(line: &mut String, start: i32, o: &SynthOrder) {
    use std::fmt::Write as _;
    let _ = writeln!(
        line,
        "C{:08},O{:010},{},{:.2}",
        o.customer,
        o.order,
        stamp(start, o.day, o.second, ' '),
        o.amount
    );
}

/// A Segment `Order Completed` track message.
fn ndjson_line(line: &mut String, start: i32, o: &SynthOrder) {
    use std::fmt::Write as _;
    let _ = writeln!(
        line,
        "{{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"C{:08}\",\"messageId\":\"O{:010}\",\"timestamp\":\"{}Z\",\"properties\":{{\"order_id\":\"O{:010}\",\"revenue\":{:.2}}}}}",
        o.customer,
        o.order,
        stamp(start, o.day, o.second, 'T'),
        o.order,
        o.amount
    );
}

/// The side files (events, attributes), written as the customers are drawn.
struct Side {
    extras: Extras,
    events: Option<BufWriter<File>>,
    attributes: Option<BufWriter<File>>,
    lines: Option<BufWriter<File>>,
    order_lines: Vec<SynthLine>,
    visitors: f64,
    start: i32,
    buffer: Vec<SynthEvent>,
    line: String,
    written: (u64, u64, u64),
}

impl Side {
    /// The side data of the customer whose orders are `orders` and whose
    /// attributes (drawn before the orders) are `attributes`.
    fn customer(
        &mut self,
        orders: &[SynthOrder],
        attributes: Option<&SynthAttributes>,
    ) -> Result<()> {
        use std::fmt::Write as _;
        let Some(first) = orders.first() else {
            return Ok(());
        };
        if self.events.is_some() {
            self.buffer.clear();
            self.extras.buyer_events(
                first.customer,
                f64::from(first.day) + f64::from(first.second) / 86_400.0,
                &mut self.buffer,
            );
            if self.extras.add_visitor(self.visitors) {
                self.extras.visitor_events(&mut self.buffer);
            }
            self.line.clear();
            for e in &self.buffer {
                let id = format!("{}{:08}", if e.visitor { "V" } else { "C" }, e.id);
                let email = if e.email {
                    format!("{}@example.com", id.to_ascii_lowercase())
                } else {
                    String::new()
                };
                let _ = writeln!(
                    self.line,
                    "{id},{},{},{email}",
                    stamp(self.start, e.day, e.second, ' '),
                    e.event
                );
            }
            self.written.0 += self.buffer.len() as u64;
            if let Some(out) = self.events.as_mut() {
                out.write_all(self.line.as_bytes())?;
            }
        }
        if self.lines.is_some() {
            self.line.clear();
            for o in orders {
                self.extras.order_lines(o.amount, &mut self.order_lines);
                for l in &self.order_lines {
                    let Some(p) = self.extras.catalogue().get(l.product) else {
                        continue;
                    };
                    let _ = writeln!(
                        self.line,
                        "O{:010},C{:08},{},{},{},{},{},{:.2},{:.2}",
                        o.order,
                        o.customer,
                        stamp(self.start, o.day, o.second, ' '),
                        p.id,
                        p.category,
                        p.brand,
                        l.quantity,
                        l.unit_price,
                        l.unit_cost
                    );
                }
                self.written.2 += self.order_lines.len() as u64;
            }
            if let Some(out) = self.lines.as_mut() {
                out.write_all(self.line.as_bytes())?;
            }
        }
        if let (Some(a), true) = (attributes, self.attributes.is_some()) {
            self.line.clear();
            let _ = writeln!(
                self.line,
                "C{:08},{},{:.2},{},{}",
                a.customer, a.channel, a.cost, a.city, a.age
            );
            self.written.1 += 1;
            if let Some(out) = self.attributes.as_mut() {
                out.write_all(self.line.as_bytes())?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        for mut out in [self.events, self.attributes, self.lines]
            .into_iter()
            .flatten()
        {
            out.flush()?;
        }
        Ok(())
    }
}

fn side_file(path: &std::path::Path, header: &str) -> Result<BufWriter<File>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    let mut out = BufWriter::with_capacity(
        1 << 20,
        File::create(path).with_context(|| format!("{}", path.display()))?,
    );
    out.write_all(header.as_bytes())?;
    Ok(out)
}

struct ParquetSink {
    writer: SerializedFileWriter<BufWriter<File>>,
    start: i32,
}

fn parquet_schema() -> Result<Arc<Type>> {
    let text = |name: &str| {
        Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
            .with_logical_type(Some(LogicalType::String))
            .with_repetition(Repetition::REQUIRED)
            .build()
    };
    let fields = vec![
        Arc::new(text("customer_id")?),
        Arc::new(text("order_id")?),
        Arc::new(
            Type::primitive_type_builder("order_date", PhysicalType::INT64)
                .with_logical_type(Some(LogicalType::timestamp(false, TimeUnit::MICROS)))
                .with_repetition(Repetition::REQUIRED)
                .build()?,
        ),
        Arc::new(
            Type::primitive_type_builder("amount", PhysicalType::DOUBLE)
                .with_repetition(Repetition::REQUIRED)
                .build()?,
        ),
    ];
    Ok(Arc::new(
        Type::group_type_builder("orders")
            .with_fields(fields)
            .build()?,
    ))
}

impl Sink for ParquetSink {
    fn write(&mut self, orders: &[SynthOrder]) -> Result<()> {
        let customers: Vec<ByteArray> = orders
            .iter()
            .map(|o| format!("C{:08}", o.customer).as_str().into())
            .collect();
        let ids: Vec<ByteArray> = orders
            .iter()
            .map(|o| format!("O{:010}", o.order).as_str().into())
            .collect();
        let micros: Vec<i64> = orders
            .iter()
            .map(|o| {
                ((i64::from(self.start) + i64::from(o.day)) * 86_400 + i64::from(o.second))
                    * 1_000_000
            })
            .collect();
        let amounts: Vec<f64> = orders.iter().map(|o| o.amount).collect();
        let mut rg = self.writer.next_row_group()?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column()? {
            match i {
                0 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&customers, None, None)?,
                1 => col.typed::<ByteArrayType>().write_batch(&ids, None, None)?,
                2 => col.typed::<Int64Type>().write_batch(&micros, None, None)?,
                _ => col
                    .typed::<DoubleType>()
                    .write_batch(&amounts, None, None)?,
            };
            col.close()?;
            i += 1;
        }
        rg.close()?;
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        self.writer.close()?;
        Ok(())
    }
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let params = SynthParams {
        r: args.r,
        alpha: args.alpha,
        a: args.a,
        b: args.b,
        p: args.p,
        q: args.q,
        gamma: args.gamma,
    };
    let start = parse_day(&args.start).map_err(|m| InputError(format!("--start: {m}")))?;
    let mut generator = Generator::new(&params, args.seed, args.days, args.acquisition_days)
        .map_err(|e| InputError(format!("generate: {e}")))?;
    let name = args.out.to_string_lossy().to_ascii_lowercase();
    let format = args.format.unwrap_or(if name.ends_with(".parquet") {
        OutFormat::Parquet
    } else if name.ends_with(".ndjson") || name.ends_with(".jsonl") || name.ends_with(".json") {
        OutFormat::Ndjson
    } else {
        OutFormat::Csv
    });
    if !(0.0..=1.0).contains(&args.visitors_per_customer) {
        return Err(InputError("--visitors-per-customer: expected 0 to 1".into()).into());
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    let file = File::create(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let mut sink: Box<dyn Sink> = match format {
        OutFormat::Csv => {
            let header = "customer_id,order_id,order_date,amount\n";
            let out: Box<dyn Write> = if name.ends_with(".gz") {
                Box::new(flate2::write::GzEncoder::new(
                    BufWriter::with_capacity(1 << 20, file),
                    flate2::Compression::fast(),
                ))
            } else {
                Box::new(BufWriter::with_capacity(1 << 20, file))
            };
            let mut sink = LineSink {
                out,
                start,
                line: String::with_capacity(64),
                format: csv_line,
            };
            sink.out.write_all(header.as_bytes())?;
            Box::new(sink)
        }
        OutFormat::Ndjson => Box::new(LineSink {
            out: BufWriter::with_capacity(1 << 20, file),
            start,
            line: String::with_capacity(256),
            format: ndjson_line,
        }),
        OutFormat::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            let writer = SerializedFileWriter::new(
                BufWriter::new(file),
                parquet_schema()?,
                Arc::new(props),
            )?;
            Box::new(ParquetSink { writer, start })
        }
    };
    let mut side = Side {
        extras: Extras::new(args.seed, args.days, args.acquisition_days),
        events: args
            .events
            .as_deref()
            .map(|p| side_file(p, "customer_id,timestamp,event,email\n"))
            .transpose()?,
        attributes: args
            .attributes
            .as_deref()
            .map(|p| {
                side_file(
                    p,
                    "customer_id,acquisition_channel,acquisition_cost,city,age\n",
                )
            })
            .transpose()?,
        lines: args
            .lines
            .as_deref()
            .map(|p| {
                side_file(
                    p,
                    "order_id,customer_id,order_date,product_id,category,brand,quantity,unit_price,unit_cost\n",
                )
            })
            .transpose()?,
        order_lines: Vec::new(),
        visitors: args.visitors_per_customer,
        start,
        buffer: Vec::new(),
        line: String::new(),
        written: (0, 0, 0),
    };
    let plants = args
        .plant
        .iter()
        .map(|p| p.parse::<Plant>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(InputError)?;
    if !plants.is_empty() && args.attributes.is_none() {
        return Err(InputError(
            "--plant needs --attributes FILE: the planted attribute is written there".into(),
        )
        .into());
    }
    let with_side = side.events.is_some() || side.attributes.is_some() || side.lines.is_some();
    let mut batch = Vec::with_capacity(1 << 20);
    let mut rows = 0u64;
    let mut customers = 0u64;
    let max_customers = args.customers.unwrap_or(u64::MAX);
    let max_rows = args.rows.unwrap_or(u64::MAX);
    while customers < max_customers && rows + (batch.len() as u64) < max_rows {
        let from = batch.len();
        let attributes = side
            .attributes
            .is_some()
            .then(|| side.extras.attributes(generator.next_id()));
        let effect = attributes
            .as_ref()
            .map_or_else(Effect::default, |a| effect_of(&plants, a));
        generator.next_customer_with(effect, &mut batch);
        customers += 1;
        if with_side {
            side.customer(&batch[from..], attributes.as_ref())?;
        }
        if batch.len() >= 1 << 20 {
            sink.write(&batch)?;
            rows += batch.len() as u64;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        sink.write(&batch)?;
        rows += batch.len() as u64;
    }
    sink.finish()?;
    let (events, attributes, lines) = side.written;
    side.finish()?;
    eprintln!(
        "wrote {rows} orders of {customers} customers to {}",
        args.out.display()
    );
    if let Some(p) = &args.events {
        eprintln!("wrote {events} events to {}", p.display());
    }
    if let Some(p) = &args.lines {
        eprintln!("wrote {lines} order lines to {}", p.display());
    }
    if let Some(p) = &args.attributes {
        eprintln!(
            "wrote {attributes} customers' attributes to {}",
            p.display()
        );
    }
    Ok(())
}
