//! The order-lines file: one row per product bought,
//! `customer_id,date,product_id[,category][,brand][,quantity][,price|line_total][,cost|margin_rate][,discount_code][,discount]`
//! (CSV, TSV or semicolon-separated, optionally gzip-compressed, with a
//! header; columns found by their common names). A line-item export used as
//! the orders file is also a lines file.
//!
//! A line's revenue is `price × quantity − discount` (or the line total);
//! its cost `cost × quantity` (or `revenue × (1 − margin_rate)`, a rate
//! written 0.35 or 35%). Negative quantities are returns. Bad rows are
//! skipped and reported by line and column.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use lifecycle_kpis::lines::{Line, LineTable};

use crate::attributes::normalized_id;
use crate::datetime::{self, Clock, DateStyle};
use crate::layout::{self, Format, Source, normalize};
use crate::record::{Field, Rec};
use crate::{IngestError, Location, RowError, parse_amount};

const PRODUCT: &[&str] = &[
    "productid",
    "product",
    "sku",
    "itemid",
    "item",
    "stockcode",
    "variantid",
    "productsku",
    "lineitemsku",
    "productname",
    "lineitemname",
    "description",
];
const CATEGORY: &[&str] = &[
    "category",
    "productcategory",
    "categoryname",
    "producttype",
    "department",
];
const BRAND: &[&str] = &["brand", "brandname", "vendor", "manufacturer"];
const QUANTITY: &[&str] = &["quantity", "qty", "units", "lineitemquantity"];
const PRICE: &[&str] = &["unitprice", "price", "itemprice", "lineitemprice"];
const LINE_TOTAL: &[&str] = &[
    "linetotal",
    "lineamount",
    "linerevenue",
    "amount",
    "revenue",
    "sales",
    "total",
];
const COST: &[&str] = &["unitcost", "cost", "costprice", "cogs", "costofgoods"];
const MARGIN_RATE: &[&str] = &[
    "marginrate",
    "marginpct",
    "marginpercent",
    "grossmarginrate",
];
const DISCOUNT_CODE: &[&str] = &[
    "discountcode",
    "couponcode",
    "coupon",
    "promocode",
    "voucher",
    "vouchercode",
    "discountcodes",
];
const DISCOUNT: &[&str] = &[
    "discount",
    "discountamount",
    "linediscount",
    "lineitemdiscount",
];
const CUSTOMER: &[&str] = &[
    "customerid",
    "customer",
    "custid",
    "clientid",
    "userid",
    "memberid",
    "email",
    "customeremail",
];
const DATE: &[&str] = &[
    "date",
    "orderdate",
    "invoicedate",
    "timestamp",
    "createdat",
    "created",
    "purchasedate",
    "datetime",
    "time",
];

/// The lines read, and the rows skipped.
#[derive(Debug)]
pub struct LinesInput {
    pub table: LineTable,
    pub rows: u64,
    pub skipped: u64,
    /// The first bad rows (at most 10).
    pub errors: Vec<RowError>,
    /// Which columns were used, as `role=header` pairs.
    pub columns: Vec<(String, String)>,
    pub has_cost: bool,
}

struct Cols {
    customer: usize,
    date: usize,
    product: usize,
    category: Option<usize>,
    brand: Option<usize>,
    quantity: Option<usize>,
    price: Option<usize>,
    total: Option<usize>,
    cost: Option<usize>,
    margin_rate: Option<usize>,
    discount_code: Option<usize>,
    discount: Option<usize>,
}

/// Reads an order-lines file on `threads` workers; days are local to `clock`.
pub fn read_order_lines(
    path: &Path,
    clock: &Clock,
    threads: usize,
) -> Result<LinesInput, IngestError> {
    let parquet = layout::is_parquet(path)?;
    let (header, sample, delimiter) = if parquet {
        let (h, sample) = crate::parquet_source::header_and_sample(path)?;
        (h, sample, b',')
    } else {
        let sniffed = layout::sniff(path)?;
        let delimiter = match sniffed.format {
            Format::Delimited(d) => d,
            other => {
                return Err(IngestError::format(
                    path,
                    format!(
                        "order lines must be CSV, TSV or Parquet with a header (this looks like {})",
                        other.describe()
                    ),
                ));
            }
        };
        if !sniffed.has_header {
            return Err(IngestError::format(
                path,
                "order lines need a header row (customer_id, date, product_id, …)",
            ));
        }
        (sniffed.header, sniffed.sample, delimiter)
    };
    let header = &header;
    let norm: Vec<String> = header.iter().map(|h| normalize(h)).collect();
    let find = |aliases: &[&str]| {
        aliases
            .iter()
            .find_map(|a| norm.iter().position(|h| h == a))
    };
    let need = |role: &str, aliases: &[&str]| {
        find(aliases).ok_or_else(|| {
            IngestError::format(
                path,
                format!(
                    "no {role} column (looked for {}); the columns are: {}",
                    aliases
                        .iter()
                        .take(6)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", "),
                    header.join(", ")
                ),
            )
        })
    };
    let cols = Cols {
        customer: need("customer", CUSTOMER)?,
        date: need("date", DATE)?,
        product: need("product", PRODUCT)?,
        category: find(CATEGORY),
        brand: find(BRAND),
        quantity: find(QUANTITY),
        price: find(PRICE),
        total: find(LINE_TOTAL),
        cost: find(COST),
        margin_rate: find(MARGIN_RATE),
        discount_code: find(DISCOUNT_CODE),
        discount: find(DISCOUNT),
    };
    if cols.price.is_none() && cols.total.is_none() {
        return Err(IngestError::format(
            path,
            format!(
                "no price or line total column (looked for unit_price, price, line_total, amount, revenue); the columns are: {}",
                header.join(", ")
            ),
        ));
    }
    let mut used = vec![
        ("customer", Some(cols.customer)),
        ("date", Some(cols.date)),
        ("product", Some(cols.product)),
        ("category", cols.category),
        ("brand", cols.brand),
        ("quantity", cols.quantity),
        ("price", cols.price),
        ("line_total", cols.total),
        ("cost", cols.cost),
        ("margin_rate", cols.margin_rate),
        ("discount_code", cols.discount_code),
        ("discount", cols.discount),
    ];
    used.retain(|u| u.1.is_some());
    let columns: Vec<(String, String)> = used
        .iter()
        .filter_map(|(r, i)| Some((r.to_string(), header.get((*i)?)?.clone())))
        .collect();
    let style = layout::infer_date_style(
        sample
            .iter()
            .filter_map(|r| r.get(cols.date).cloned())
            .filter(|v| !v.is_empty()),
        |_| {},
    )
    .map_err(|m| IngestError::format(path, format!("column '{}': {m}", header[cols.date])))?;
    let naive_is_utc = norm[cols.date].contains("utc");
    let has_cost = cols.cost.is_some() || cols.margin_rate.is_some();
    let opts = crate::ReadOptions {
        threads,
        ..crate::ReadOptions::default()
    };
    let parse = |rec: &Rec<'_>, loc: Location, names: &mut LineTable| {
        row(rec, &cols, header, &style, naive_is_utc, clock, loc, names)
    };
    if parquet {
        let scan = crate::parquet_source::Scan {
            needed: None,
            halt: None,
            progress: None,
            typed: true,
        };
        let parts = crate::parquet_source::for_each_batch(
            path,
            threads,
            &scan,
            Part::default,
            |part: &mut Part, g, rows| {
                let mut lines = Vec::new();
                for (rec, loc) in rows {
                    part.take(rec, loc, &parse, &mut lines);
                }
                part.chunks.push((g, lines));
            },
        )?;
        return Ok(merge(parts, columns, has_cost));
    }
    let halt = AtomicU64::new(u64::MAX);
    let format = Format::Delimited(delimiter);
    let parts = crate::orders::run_text(
        path,
        &opts,
        format,
        &halt,
        Part::default,
        |part: &mut Part, chunk| {
            let mut lines = Vec::with_capacity(chunk.data.len() / 48);
            crate::orders::for_each_record(chunk, format, true, |rec, loc| {
                part.take(rec, loc, &parse, &mut lines);
                ControlFlow::Continue(())
            });
            part.chunks.push((chunk.seq, lines));
        },
    )?;
    Ok(merge(parts, columns, has_cost))
}

/// One worker's lines, by chunk, with its own name tables.
#[derive(Default)]
struct Part {
    names: LineTable,
    chunks: Vec<(u64, Vec<Line>)>,
    rows: u64,
    skipped: u64,
    errors: Vec<RowError>,
}

/// Parses one record into a line, interning its names.
type Parse<'p> = dyn Fn(&Rec<'_>, Location, &mut LineTable) -> Result<Line, RowError> + 'p;

impl Part {
    /// One record: its line into `lines`, or the row counted as skipped
    /// (the first ten errors kept).
    fn take(
        &mut self,
        rec: Result<Rec<'_>, RowError>,
        loc: Location,
        parse: &Parse<'_>,
        lines: &mut Vec<Line>,
    ) {
        self.rows += 1;
        match rec.and_then(|rec| parse(&rec, loc, &mut self.names)) {
            Ok(line) => lines.push(line),
            Err(e) => {
                self.skipped += 1;
                if self.errors.len() < 10 {
                    self.errors.push(e);
                }
            }
        }
    }
}

/// Puts the workers' chunks back under one set of names (ids numbered by
/// first appearance in the file, as one reader would) and the lines in
/// customer order, file order within a customer (a counting sort: one copy,
/// no sort buffer).
fn merge(mut parts: Vec<Part>, columns: Vec<(String, String)>, has_cost: bool) -> LinesInput {
    let mut out = LinesInput {
        table: LineTable::default(),
        rows: parts.iter().map(|p| p.rows).sum(),
        skipped: parts.iter().map(|p| p.skipped).sum(),
        errors: Vec::new(),
        columns,
        has_cost,
    };
    let mut errors: Vec<RowError> = parts
        .iter()
        .flat_map(|p| p.errors.iter().cloned())
        .collect();
    errors.sort_by_key(|e| e.location);
    errors.truncate(10);
    out.errors = errors;
    let mut order: Vec<(u64, usize, usize)> = parts
        .iter()
        .enumerate()
        .flat_map(|(p, part)| {
            part.chunks
                .iter()
                .enumerate()
                .map(move |(c, ch)| (ch.0, p, c))
        })
        .collect();
    order.sort_unstable();
    // Per part and name table: local id → global id (u32::MAX: not yet).
    let mut maps: Vec<[Vec<u32>; 5]> = parts
        .iter()
        .map(|p| {
            let n = &p.names;
            [
                vec![u32::MAX; n.customers.len()],
                vec![u32::MAX; n.products.len()],
                vec![u32::MAX; n.categories.len()],
                vec![u32::MAX; n.brands.len()],
                vec![u32::MAX; n.discounts.len()],
            ]
        })
        .collect();
    // Pass 1, in file order: global ids written into the lines, and the
    // number of lines of each customer.
    let t = &mut out.table;
    let mut counts: Vec<usize> = Vec::new();
    for &(_, p, c) in &order {
        let part = &mut parts[p];
        let local = &part.names;
        let map = &mut maps[p];
        let mut global = |k: usize, id: u32, t: &mut LineTable| -> u32 {
            let slot = &mut map[k][id as usize];
            if *slot == u32::MAX {
                let (from, to) = match k {
                    0 => (&local.customers, &mut t.customers),
                    1 => (&local.products, &mut t.products),
                    2 => (&local.categories, &mut t.categories),
                    3 => (&local.brands, &mut t.brands),
                    _ => (&local.discounts, &mut t.discounts),
                };
                *slot = to.intern(from.name(id));
            }
            *slot
        };
        for l in part.chunks[c].1.iter_mut() {
            l.customer = global(0, l.customer, t);
            l.product = global(1, l.product, t);
            l.category = l.category.map(|x| global(2, x, t));
            l.brand = l.brand.map(|x| global(3, x, t));
            l.discount = l.discount.map(|x| global(4, x, t));
            let i = l.customer as usize;
            if counts.len() <= i {
                counts.resize(i + 1, 0);
            }
            counts[i] += 1;
        }
    }
    drop(maps);
    // Pass 2: each line to its customer's next slot.
    let mut next: Vec<usize> = Vec::with_capacity(counts.len());
    let mut acc = 0;
    for n in &counts {
        next.push(acc);
        acc += n;
    }
    let Some(filler) = order
        .first()
        .and_then(|&(_, p, c)| parts[p].chunks[c].1.first().copied())
        .or_else(|| {
            parts
                .iter()
                .flat_map(|p| &p.chunks)
                .find_map(|c| c.1.first().copied())
        })
    else {
        return out;
    };
    let mut lines = vec![filler; acc];
    for &(_, p, c) in &order {
        for l in std::mem::take(&mut parts[p].chunks[c].1) {
            let slot = &mut next[l.customer as usize];
            lines[*slot] = l;
            *slot += 1;
        }
    }
    out.table.lines = lines;
    out
}

#[allow(clippy::too_many_arguments)]
fn row(
    r: &Rec<'_>,
    c: &Cols,
    header: &[String],
    style: &DateStyle,
    naive_is_utc: bool,
    clock: &Clock,
    loc: Location,
    t: &mut LineTable,
) -> Result<Line, RowError> {
    let text = |i: usize| -> Result<std::borrow::Cow<'_, str>, RowError> {
        use std::borrow::Cow;
        Ok(match r.source(&Source::Index(i)) {
            Field::Text(b) => {
                Cow::Borrowed(std::str::from_utf8(b).map(str::trim).map_err(|_| {
                    RowError::new(loc, header.get(i).map(String::as_str), "is not UTF-8")
                })?)
            }
            Field::Int(v) => Cow::Owned(v.to_string()),
            Field::Float(v) => Cow::Owned(v.to_string()),
            Field::Bool(v) => Cow::Owned(v.to_string()),
            Field::Date(d) => Cow::Owned(crate::format_day(d)),
            _ => Cow::Borrowed(""),
        })
    };
    let opt = |i: Option<usize>| -> Result<Option<std::borrow::Cow<'_, str>>, RowError> {
        match i {
            Some(i) => Ok(Some(text(i)?).filter(|s| !s.is_empty())),
            None => Ok(None),
        }
    };
    let num = |i: Option<usize>| -> Result<Option<f64>, RowError> {
        if let Some(k) = i {
            match r.source(&Source::Index(k)) {
                Field::Float(v) => return Ok(Some(v)),
                Field::Int(v) => return Ok(Some(v as f64)),
                _ => {}
            }
        }
        match opt(i)? {
            Some(s) => parse_amount(&s).map(Some).map_err(|m| {
                RowError::new(
                    loc,
                    i.and_then(|i| header.get(i)).map(String::as_str),
                    format!("\"{s}\" is not a number ({m})"),
                )
            }),
            None => Ok(None),
        }
    };
    let col = |i: usize| header.get(i).map(String::as_str);
    let customer = text(c.customer)?;
    if customer.is_empty() {
        return Err(RowError::new(loc, col(c.customer), "no customer id"));
    }
    let (day, hour) = match r.source(&Source::Index(c.date)) {
        Field::Date(d) => (d, None),
        Field::Micros { value, utc } => {
            let secs = value.div_euclid(1_000_000);
            let (day, local) = if utc {
                clock.localize_epoch(secs)
            } else {
                (secs.div_euclid(86_400) as i32, secs)
            };
            (day, Some((local.rem_euclid(86_400) / 3600) as u8))
        }
        _ => {
            let date = text(c.date)?;
            let civil = datetime::parse(&date, style)
                .map_err(|m| RowError::new(loc, col(c.date), format!("\"{date}\": {m}")))?;
            let (day, local) = clock.localize(civil, naive_is_utc);
            let hour = date
                .contains(':')
                .then(|| (local.rem_euclid(86_400) / 3600) as u8);
            (day, hour)
        }
    };
    let product = text(c.product)?;
    if product.is_empty() {
        return Err(RowError::new(loc, col(c.product), "no product"));
    }
    let quantity = num(c.quantity)?.unwrap_or(1.0);
    let revenue = match (num(c.total)?, num(c.price)?) {
        (Some(t), _) => t,
        (None, Some(p)) => p * quantity - num(c.discount)?.unwrap_or(0.0),
        (None, None) => {
            return Err(RowError::new(
                loc,
                col(c.price.or(c.total).unwrap_or(c.product)),
                "no price or line total",
            ));
        }
    };
    let cost = match (num(c.cost)?, opt(c.margin_rate)?) {
        (Some(unit), _) => Some(unit * quantity),
        (None, Some(rate)) => {
            let (s, pct) = match rate.strip_suffix('%') {
                Some(s) => (s.trim(), true),
                None => (&*rate, false),
            };
            let v = parse_amount(s).map_err(|m| {
                RowError::new(
                    loc,
                    col(c.margin_rate.unwrap_or(0)),
                    format!("\"{rate}\": {m}"),
                )
            })?;
            let v = if pct || v > 1.0 { v / 100.0 } else { v };
            Some(revenue * (1.0 - v))
        }
        (None, None) => None,
    };
    if !revenue.is_finite() || !quantity.is_finite() || cost.is_some_and(|c| !c.is_finite()) {
        return Err(RowError::new(loc, None, "amount out of range"));
    }
    Ok(Line {
        customer: t.customers.intern(&normalized_id(&customer)),
        day,
        hour,
        product: t.products.intern(&product),
        category: opt(c.category)?.map(|s| t.categories.intern(&s)),
        brand: opt(c.brand)?.map(|s| t.brands.intern(&s)),
        quantity,
        revenue,
        cost,
        discount: opt(c.discount_code)?.map(|s| t.discounts.intern(&s)),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read(text: &str) -> Result<LinesInput, IngestError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lines.csv");
        std::fs::write(&p, text).unwrap();
        read_order_lines(&p, &Clock::utc(), 2)
    }

    #[test]
    fn columns_amounts_and_bad_rows() {
        let r = read(
            "Customer ID,Order Date,SKU,Category,Brand,Qty,Unit Price,Unit Cost,Coupon,Discount\n\
             A@x.com,2024-03-05 14:30:00,p1,Shoes,Acme,2,10.00,4,WELCOME,5\n\
             b,2024-03-06,p2,,,1,7.5,,,\n\
             c,2024-03-07,p3,,,1,abc,,,\n\
             d,2024-13-07,p3,,,1,1,,,\n",
        )
        .unwrap();
        assert_eq!((r.rows, r.skipped), (4, 2));
        assert_eq!(r.errors[0].location, Location::Line(4));
        assert_eq!(r.errors[0].column.as_deref(), Some("Unit Price"));
        assert_eq!(r.errors[1].column.as_deref(), Some("Order Date"));
        let l = r.table.lines[0];
        assert_eq!(r.table.customers.name(l.customer), "a@x.com");
        assert_eq!(l.hour, Some(14));
        assert!((l.revenue - 15.0).abs() < 1e-12, "2 × 10 − 5");
        assert_eq!(l.cost, Some(8.0));
        assert_eq!(r.table.categories.name(l.category.unwrap()), "Shoes");
        assert_eq!(r.table.discounts.name(l.discount.unwrap()), "WELCOME");
        let l = r.table.lines[1];
        assert_eq!((l.hour, l.cost, l.category), (None, None, None));
        assert!(r.has_cost);
    }

    #[test]
    fn chunks_read_in_parallel_merge_in_file_order() {
        // About 12 MB: several 4 MB chunks over two workers.
        let mut text = String::from("customer_id,date,product_id,category,unit_price\n");
        for i in 0..220_000u64 {
            let c = (i * 7_919) % 50_000;
            text.push_str(&format!(
                "c{c},2024-{:02}-{:02},p{},k{},{}.5 \n",
                1 + i % 12,
                1 + i % 28,
                (i * 31) % 997,
                i % 13,
                i % 90
            ));
            if i == 150_000 {
                text.push_str("bad,2024-01-01,p1,k1,abc\n");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lines.csv");
        std::fs::write(&p, &text).unwrap();
        let one = read_order_lines(&p, &Clock::utc(), 1).unwrap();
        let two = read_order_lines(&p, &Clock::utc(), 2).unwrap();
        assert_eq!(one.table.lines.len(), 220_000);
        assert_eq!(one.table.lines, two.table.lines);
        for i in 0..50_000u32 {
            assert_eq!(one.table.customers.name(i), two.table.customers.name(i));
        }
        assert_eq!(
            one.table.customers.name(1),
            "c7919",
            "numbered by first appearance"
        );
        assert_eq!((one.skipped, two.skipped), (1, 1));
        assert_eq!(two.errors[0].location, Location::Line(150_003));
    }

    /// Writes `rows` (customer, micros since 1970 UTC, product, price,
    /// quantity) as a Parquet file with one row group per `per_group` rows.
    fn write_parquet(path: &Path, rows: &[(&str, i64, &str, f64, i64)], per_group: usize) {
        use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
        use parquet::file::writer::SerializedFileWriter;
        let schema = std::sync::Arc::new(
            parquet::schema::parser::parse_message_type(
                "message lines { REQUIRED BYTE_ARRAY customer_id (UTF8); REQUIRED INT64 order_date (TIMESTAMP(MICROS,true)); REQUIRED BYTE_ARRAY sku (UTF8); REQUIRED DOUBLE unit_price; REQUIRED INT64 qty; }",
            )
            .unwrap(),
        );
        let file = std::fs::File::create(path).unwrap();
        let mut w = SerializedFileWriter::new(file, schema, Default::default()).unwrap();
        for group in rows.chunks(per_group) {
            let mut rg = w.next_row_group().unwrap();
            let text = |k: usize| -> Vec<ByteArray> {
                group
                    .iter()
                    .map(|r| if k == 0 { r.0 } else { r.2 }.into())
                    .collect()
            };
            let mut col = rg.next_column().unwrap().unwrap();
            col.typed::<ByteArrayType>()
                .write_batch(&text(0), None, None)
                .unwrap();
            col.close().unwrap();
            let mut col = rg.next_column().unwrap().unwrap();
            let v: Vec<i64> = group.iter().map(|r| r.1).collect();
            col.typed::<Int64Type>()
                .write_batch(&v, None, None)
                .unwrap();
            col.close().unwrap();
            let mut col = rg.next_column().unwrap().unwrap();
            col.typed::<ByteArrayType>()
                .write_batch(&text(2), None, None)
                .unwrap();
            col.close().unwrap();
            let mut col = rg.next_column().unwrap().unwrap();
            let v: Vec<f64> = group.iter().map(|r| r.3).collect();
            col.typed::<DoubleType>()
                .write_batch(&v, None, None)
                .unwrap();
            col.close().unwrap();
            let mut col = rg.next_column().unwrap().unwrap();
            let v: Vec<i64> = group.iter().map(|r| r.4).collect();
            col.typed::<Int64Type>()
                .write_batch(&v, None, None)
                .unwrap();
            col.close().unwrap();
            rg.close().unwrap();
        }
        w.close().unwrap();
    }

    #[test]
    fn parquet_lines_read_as_csv_ones() {
        // 2024-03-05T14:30:00Z and a day later.
        let t = 1_709_649_000_000_000i64;
        let day = 86_400_000_000i64;
        let rows = [
            ("b", t, "p1", 10.0, 2),
            ("a", t + day, "p2", 4.5, 1),
            ("b", t + 2 * day, "p3", 7.0, 1),
        ];
        let dir = tempfile::tempdir().unwrap();
        let pq = dir.path().join("lines.parquet");
        write_parquet(&pq, &rows, 2);
        let csv = dir.path().join("lines.csv");
        std::fs::write(
            &csv,
            "customer_id,order_date,sku,unit_price,qty\nb,2024-03-05T14:30:00Z,p1,10,2\na,2024-03-06T14:30:00Z,p2,4.5,1\nb,2024-03-07T14:30:00Z,p3,7,1\n",
        )
        .unwrap();
        let (p, c) = (
            read_order_lines(&pq, &Clock::utc(), 2).unwrap(),
            read_order_lines(&csv, &Clock::utc(), 2).unwrap(),
        );
        assert_eq!(p.table.lines, c.table.lines);
        assert_eq!(p.table.lines[0].hour, Some(14));
        assert!((p.table.lines[0].revenue - 20.0).abs() < 1e-12);
        assert_eq!((p.rows, p.skipped), (3, 0));
    }

    #[test]
    fn margin_rates_and_missing_columns() {
        let r = read("customer,date,product,line_total,margin_rate\nx,2024-01-01,p,100,35%\ny,2024-01-01,p,100,0.2\n")
            .unwrap();
        assert_eq!(r.table.lines[0].cost, Some(65.0));
        assert_eq!(r.table.lines[1].cost, Some(80.0));
        let e = read("customer,date,total\nx,2024-01-01,3\n").unwrap_err();
        assert!(e.to_string().contains("no product column"), "{e}");
    }
}
