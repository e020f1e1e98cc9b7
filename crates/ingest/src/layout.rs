//! Recognising a file: compression, format, delimiter, header and columns.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::IngestError;
use crate::datetime::{DateStyle, Evidence, Inference, StyleInference, evidence};
use crate::number::parse_amount;

/// How many bytes are looked at to recognise a text file.
const SNIFF_BYTES: usize = 256 * 1024;
/// How many records are used to infer columns and date styles.
const SNIFF_RECORDS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV, TSV and friends, with RFC 4180 quoting.
    Delimited(u8),
    /// Fields separated by runs of spaces or tabs (the CDNOW files).
    Whitespace,
    /// One JSON object per line; Segment-spec messages are recognised.
    NdJson {
        segment: bool,
    },
    Parquet,
}

impl Format {
    pub fn describe(&self) -> String {
        match self {
            Format::Delimited(b',') => "CSV".into(),
            Format::Delimited(b'\t') => "TSV".into(),
            Format::Delimited(d) => format!("delimited by '{}'", char::from(*d)),
            Format::Whitespace => "whitespace-separated text".into(),
            Format::NdJson { segment: true } => "NDJSON (Segment messages)".into(),
            Format::NdJson { segment: false } => "NDJSON".into(),
            Format::Parquet => "Parquet".into(),
        }
    }
}

/// Where one field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// 0-based field index (delimited, whitespace, Parquet top-level column).
    Index(usize),
    /// A JSON key path, e.g. `["properties", "total"]`.
    Path(Vec<String>),
}

/// One logical column; the first alternative with a non-empty value wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub label: String,
    pub sources: Vec<Source>,
}

/// The column of an event property: `properties.NAME` (or `NAME`) in
/// NDJSON, the header column NAME (case-insensitive) in a delimited file.
pub fn property_column(s: &Sniffed, name: &str) -> Option<Column> {
    if let Format::NdJson { .. } = s.format {
        let nested = format!("properties.{name}");
        return Some(Column::paths(&[nested.as_str(), name]));
    }
    s.header
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(name))
        .map(|i| Column::index(&s.header[i], i))
}

impl Column {
    fn index(label: &str, i: usize) -> Column {
        Column {
            label: label.to_string(),
            sources: vec![Source::Index(i)],
        }
    }
    fn paths(paths: &[&str]) -> Column {
        Column {
            label: paths.first().copied().unwrap_or_default().to_string(),
            sources: paths
                .iter()
                .map(|p| Source::Path(p.split('.').map(str::to_string).collect()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountSpec {
    Column(Column),
    PriceTimesQuantity { price: Column, quantity: Column },
}

impl AmountSpec {
    pub fn describe(&self) -> String {
        match self {
            AmountSpec::Column(c) => c.label.clone(),
            AmountSpec::PriceTimesQuantity { price, quantity } => {
                format!("{} × {}", price.label, quantity.label)
            }
        }
    }
}

/// Which input columns an orders file maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderColumns {
    pub customer: Column,
    pub date: Column,
    pub amount: AmountSpec,
    pub order_id: Option<Column>,
    pub status: Option<Column>,
    pub currency: Option<Column>,
    pub refunded: Option<Column>,
    /// The date column holds UTC wall-clock times (its name says so).
    pub naive_is_utc: bool,
    /// Segment messages: the `type` and `event` fields.
    pub segment_event: Option<(Column, Column)>,
    /// The amount is the order's total (repeated on line-item rows), so
    /// rows of one order count it once; otherwise they are summed.
    pub amount_is_order_total: bool,
}

/// Which input columns an events file maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventColumns {
    pub customer: Column,
    pub date: Column,
    pub event: Option<Column>,
    pub email: Option<Column>,
    pub naive_is_utc: bool,
}

/// The result of looking at a text file's head.
#[derive(Debug, Clone)]
pub struct Sniffed {
    pub compression: Compression,
    pub format: Format,
    pub has_header: bool,
    /// Column names (from the header, or `column N`), or JSON keys.
    pub header: Vec<String>,
    /// Up to [`SNIFF_RECORDS`] records as text fields (delimited formats).
    pub sample: Vec<Vec<String>>,
    /// The first JSON objects (NDJSON).
    pub json_sample: Vec<serde_json::Value>,
    /// Mean bytes per record in the sample (for capacity guesses).
    pub sample_bytes_per_record: u64,
}

/// `--columns` overrides, by role: a header name (any case) or a 1-based
/// column number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnOverrides {
    pub entries: Vec<(String, String)>,
}

impl ColumnOverrides {
    pub const ORDER_ROLES: &'static [&'static str] = &[
        "customer", "date", "amount", "price", "quantity", "order", "status", "currency",
        "refunded",
    ];

    /// Parses `customer=Email,date=3,amount=Total`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (role, col) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not ROLE=COLUMN"))?;
            let role = role.trim().to_ascii_lowercase();
            let role = if role == "order_id" {
                "order".to_string()
            } else {
                role
            };
            if !Self::ORDER_ROLES.contains(&role.as_str())
                && !["event", "email"].contains(&role.as_str())
            {
                return Err(format!(
                    "unknown column role '{role}' (known: {}, event, email)",
                    Self::ORDER_ROLES.join(", ")
                ));
            }
            entries.push((role, col.trim().to_string()));
        }
        Ok(ColumnOverrides { entries })
    }

    fn get(&self, role: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, c)| c.as_str())
    }
}

/// Lower-case letters and digits only: `Created (UTC)` → `createdutc`.
pub fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

const CUSTOMER: &[&str] = &[
    "customerid",
    "customer",
    "customerno",
    "customernumber",
    "custid",
    "clientid",
    "userid",
    "user",
    "memberid",
    "accountid",
    "email",
    "customeremail",
    "billingemail",
    "emailbilling",
    "emailaddress",
    "contactemail",
    "anonymousid",
];
const DATE: &[&str] = &[
    "date",
    "orderdate",
    "invoicedate",
    "timestamp",
    "createdat",
    "createdutc",
    "createddateutc",
    "created",
    "createddate",
    "orderdatetime",
    "orderdategmt",
    "purchasedate",
    "transactiondate",
    "datetime",
    "paidat",
    "orderedat",
    "time",
];
const AMOUNT: &[&str] = &[
    "amount",
    "revenue",
    "dollarvalue",
    "total",
    "ordertotal",
    "ordertotalamount",
    "totalprice",
    "totalamount",
    "grandtotal",
    "netamount",
    "sales",
    "value",
    "ordervalue",
    "saleamount",
    "totalspent",
];
/// Amount columns that hold the whole order's total.
const ORDER_TOTAL: &[&str] = &[
    "total",
    "ordertotal",
    "ordertotalamount",
    "totalprice",
    "totalamount",
    "grandtotal",
    "ordervalue",
];
const PRICE: &[&str] = &["unitprice", "price", "itemprice", "lineitemprice"];
const QUANTITY: &[&str] = &["quantity", "qty", "units", "lineitemquantity"];
const ORDER_ID: &[&str] = &[
    "orderid",
    "invoiceno",
    "invoice",
    "invoiceid",
    "invoicenumber",
    "ordernumber",
    "orderno",
    "transactionid",
];
const STATUS: &[&str] = &["financialstatus", "orderstatus", "paymentstatus", "status"];
const CURRENCY: &[&str] = &["currency", "currencycode", "ordercurrency"];
const REFUNDED: &[&str] = &[
    "amountrefunded",
    "refundedamount",
    "orderrefundamount",
    "refunded",
    "totalrefunded",
    "orderrefund",
];
const EVENT: &[&str] = &["event", "eventname", "eventtype", "type", "action", "name"];
const EMAIL: &[&str] = &[
    "email",
    "emailaddress",
    "useremail",
    "customeremail",
    "billingemail",
    "emailbilling",
];

const ALL_ALIASES: &[&[&str]] = &[
    CUSTOMER, DATE, AMOUNT, PRICE, QUANTITY, ORDER_ID, STATUS, CURRENCY, REFUNDED,
];

/// Opens a file, transparently decompressing gzip.
pub fn open(path: &Path) -> Result<(Box<dyn Read + Send>, Compression), IngestError> {
    open_with(path, |file| file)
}

/// Opens a file, lets `wrap` wrap the raw file (e.g. to count the bytes
/// read), and decompresses gzip, recognised by its magic bytes.
pub fn open_with<R: Read + Send + 'static>(
    path: &Path,
    wrap: impl FnOnce(File) -> R,
) -> Result<(Box<dyn Read + Send>, Compression), IngestError> {
    let mut file = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = read_fully(&mut file, &mut magic).map_err(|e| IngestError::io(path, e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| IngestError::io(path, e))?;
    let inner = wrap(file);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok((
            Box::new(MultiGzDecoder::new(BufReader::with_capacity(
                1 << 20,
                inner,
            ))),
            Compression::Gzip,
        ))
    } else {
        Ok((Box::new(inner), Compression::None))
    }
}

fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Is this a Parquet file? (`PAR1` at both ends.)
pub fn is_parquet(path: &Path) -> Result<bool, IngestError> {
    let mut f = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let mut magic = [0u8; 4];
    let n = read_fully(&mut f, &mut magic).map_err(|e| IngestError::io(path, e))?;
    Ok(n == 4 && &magic == b"PAR1")
}

/// Looks at the head of a text file.
pub fn sniff(path: &Path) -> Result<Sniffed, IngestError> {
    let (reader, compression) = open(path)?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    reader
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| decompress_error(path, compression, e))?;
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
    if head.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::format(
            path,
            "the file is empty: no header and no rows",
        ));
    }
    if let Some(pos) = head.iter().position(|&b| b == 0) {
        return Err(IngestError::format(
            path,
            format!(
                "this is not a text export (binary byte 0x00 at offset {pos}); supported: CSV/TSV, whitespace text, NDJSON, Parquet, and their .gz"
            ),
        ));
    }
    let valid = match std::str::from_utf8(head) {
        Ok(_) => head.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(), // cut mid-character
        Err(e) => {
            return Err(IngestError::format(
                path,
                format!(
                    "this is not UTF-8 text (invalid byte at offset {}); save the export as UTF-8",
                    e.valid_up_to()
                ),
            ));
        }
    };
    // Only whole lines, unless the file is shorter than the sniff window.
    let text = &head[..valid];
    let complete = if head.len() < SNIFF_BYTES {
        text
    } else {
        match memchr::memrchr(b'\n', text) {
            Some(i) => &text[..=i],
            None => {
                return Err(IngestError::LineTooLong {
                    path: path.to_path_buf(),
                    line: 1,
                    limit: SNIFF_BYTES,
                });
            }
        }
    };
    let text = std::str::from_utf8(complete).expect("validated above");
    let first = text.trim_start();
    if first.starts_with('[') {
        return Err(IngestError::format(
            path,
            "a JSON array is not supported: write one JSON object per line (NDJSON)",
        ));
    }
    if first.starts_with('{') {
        return sniff_json(path, compression, text);
    }
    let format = detect_delimiter(text);
    let mut records =
        split_records(text, format, SNIFF_RECORDS + 1).map_err(|m| IngestError::format(path, m))?;
    if records.is_empty() {
        return Err(IngestError::format(
            path,
            "the file is empty: no header and no rows",
        ));
    }
    let has_header = looks_like_header(&records);
    let header = if has_header {
        records.remove(0)
    } else {
        (1..=records[0].len())
            .map(|i| format!("column {i}"))
            .collect()
    };
    let n_records = records.len() as u64 + u64::from(has_header);
    let sample_bytes_per_record = complete.len() as u64 / n_records.max(1);
    Ok(Sniffed {
        compression,
        format,
        has_header,
        header,
        sample: records,
        json_sample: Vec::new(),
        sample_bytes_per_record,
    })
}

pub fn decompress_error(path: &Path, compression: Compression, e: std::io::Error) -> IngestError {
    if compression == Compression::Gzip {
        IngestError::format(
            path,
            format!("the gzip stream is corrupt or truncated ({e})"),
        )
    } else {
        IngestError::io(path, e)
    }
}

fn sniff_json(path: &Path, compression: Compression, text: &str) -> Result<Sniffed, IngestError> {
    let mut objects = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .take(SNIFF_RECORDS)
    {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v @ serde_json::Value::Object(_)) => objects.push(v),
            Ok(_) => {
                return Err(IngestError::format(
                    path,
                    format!("line {}: expected a JSON object", i + 1),
                ));
            }
            // A cut last line of the sniff window is fine; the reader will see it whole.
            Err(_) if !objects.is_empty() && i + 1 == text.lines().count() => break,
            Err(e) => {
                return Err(IngestError::Row {
                    path: path.to_path_buf(),
                    row: crate::RowError::new(
                        crate::Location::Line(i as u64 + 1),
                        None,
                        format!("is not valid JSON: {e}"),
                    ),
                });
            }
        }
    }
    let segment = objects.iter().any(|o| {
        (o.get("type").is_some() || o.get("event").is_some())
            && (o.get("userId").is_some()
                || o.get("anonymousId").is_some()
                || o.get("properties").is_some())
    });
    let mut header: Vec<String> = Vec::new();
    for o in &objects {
        if let serde_json::Value::Object(m) = o {
            for k in m.keys() {
                if !header.contains(k) {
                    header.push(k.clone());
                }
            }
        }
    }
    Ok(Sniffed {
        compression,
        format: Format::NdJson { segment },
        has_header: true,
        header,
        sample: Vec::new(),
        sample_bytes_per_record: text.len() as u64 / (objects.len() as u64).max(1),
        json_sample: objects,
    })
}

fn detect_delimiter(text: &str) -> Format {
    let mut best: Option<(u8, usize)> = None;
    for d in [b',', b'\t', b';', b'|'] {
        let counts = counts_per_record(text, d, 50);
        let Some(&first) = counts.first() else {
            continue;
        };
        if first == 0 {
            continue;
        }
        // Consistent on every record but perhaps a cut last one.
        let consistent = counts.iter().filter(|&&c| c == first).count() + 1 >= counts.len();
        if consistent && best.is_none_or(|(_, n)| first > n) {
            best = Some((d, first));
        }
    }
    match best {
        Some((d, _)) => Format::Delimited(d),
        None => {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(50)
                .collect();
            let ws = lines
                .iter()
                .filter(|l| l.split_ascii_whitespace().count() >= 2)
                .count();
            if ws > 0 && ws + 1 >= lines.len() {
                Format::Whitespace
            } else {
                Format::Delimited(b',')
            }
        }
    }
}

/// Delimiters outside quotes in each of the first `max` non-empty records
/// (a newline inside quotes does not end a record).
fn counts_per_record(text: &str, d: u8, max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut inside, mut n, mut empty) = (false, 0usize, true);
    for &b in text.as_bytes() {
        match b {
            b'"' => {
                inside = !inside;
                empty = false;
            }
            b'\n' if !inside => {
                if !empty {
                    out.push(n);
                    if out.len() == max {
                        return out;
                    }
                }
                n = 0;
                empty = true;
            }
            b'\r' => {}
            _ if b == d && !inside => {
                n += 1;
                empty = false;
            }
            _ => empty = empty && b.is_ascii_whitespace(),
        }
    }
    if !empty {
        out.push(n);
    }
    out
}

/// Splits sample text into records of string fields.
pub fn split_records(text: &str, format: Format, max: usize) -> Result<Vec<Vec<String>>, String> {
    let mut out = Vec::new();
    match format {
        Format::Delimited(d) => {
            let mut rdr = csv::ReaderBuilder::new()
                .delimiter(d)
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes());
            for rec in rdr.records().take(max) {
                match rec {
                    Ok(r) => out.push(r.iter().map(str::to_string).collect()),
                    Err(e) => return Err(format!("cannot read the first rows: {e}")),
                }
            }
        }
        Format::Whitespace => {
            for line in text.lines().filter(|l| !l.trim().is_empty()).take(max) {
                out.push(line.split_ascii_whitespace().map(str::to_string).collect());
            }
        }
        Format::NdJson { .. } | Format::Parquet => {}
    }
    Ok(out)
}

fn looks_like_header(records: &[Vec<String>]) -> bool {
    let first = &records[0];
    if first.iter().any(|f| {
        ALL_ALIASES
            .iter()
            .any(|list| list.contains(&normalize(f).as_str()))
    }) {
        return true;
    }
    let is_data = |f: &String| parse_amount(f).is_ok() || evidence(f) != Evidence::NotADate;
    let first_has_data = first.iter().any(is_data);
    let second_has_data = records.get(1).is_some_and(|r| r.iter().any(is_data));
    !first_has_data && second_has_data
}

fn find(header: &[String], aliases: &[&str]) -> Option<usize> {
    let norm: Vec<String> = header.iter().map(|h| normalize(h)).collect();
    aliases
        .iter()
        .find_map(|a| norm.iter().position(|h| h == a))
}

fn resolve_override(
    header: &[String],
    has_header: bool,
    role: &str,
    spec: &str,
) -> Result<usize, String> {
    if let Ok(n) = spec.parse::<usize>()
        && (!has_header || !header.iter().any(|h| h == spec))
    {
        if n == 0 || n > header.len() {
            return Err(format!(
                "--columns {role}={spec}: there are {} columns",
                header.len()
            ));
        }
        return Ok(n - 1);
    }
    let want = normalize(spec);
    header
        .iter()
        .position(|h| h.eq_ignore_ascii_case(spec))
        .or_else(|| header.iter().position(|h| normalize(h) == want))
        .ok_or_else(|| {
            format!(
                "--columns {role}={spec}: no such column; the columns are: {}",
                header.join(", ")
            )
        })
}

/// Picks the column for `role`: override, then aliases.
fn pick(
    s: &Sniffed,
    o: &ColumnOverrides,
    role: &str,
    aliases: &[&str],
) -> Result<Option<Column>, String> {
    if let Some(spec) = o.get(role) {
        if let Format::NdJson { .. } = s.format {
            return Ok(Some(Column::paths(&[spec])));
        }
        let i = resolve_override(&s.header, s.has_header, role, spec)?;
        return Ok(Some(Column::index(&s.header[i], i)));
    }
    if let Format::NdJson { .. } = s.format {
        return Ok(find(&s.header, aliases).map(|i| Column::paths(&[s.header[i].as_str()])));
    }
    if !s.has_header {
        return Ok(None);
    }
    Ok(find(&s.header, aliases).map(|i| Column::index(&s.header[i], i)))
}

fn missing(s: &Sniffed, role: &str, aliases: &[&str]) -> String {
    let names = if s.header.is_empty() {
        "(none)".to_string()
    } else {
        s.header.join(", ")
    };
    format!(
        "no {role} column found (looked for {}); the columns are: {names}. Name it with --columns {role}=COLUMN",
        aliases
            .iter()
            .take(8)
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Maps a sniffed file's columns to the order roles.
pub fn order_columns(s: &Sniffed, o: &ColumnOverrides) -> Result<OrderColumns, String> {
    if let Format::NdJson { segment: true } = s.format {
        let has_override = ["customer", "date", "amount"]
            .iter()
            .any(|r| o.get(r).is_some());
        if !has_override {
            return Ok(OrderColumns {
                customer: Column::paths(&["userId", "anonymousId"]),
                date: Column::paths(&["timestamp", "originalTimestamp", "sentAt", "receivedAt"]),
                amount: AmountSpec::Column(Column::paths(&[
                    "properties.total",
                    "properties.revenue",
                    "properties.value",
                ])),
                order_id: Some(Column::paths(&[
                    "properties.order_id",
                    "properties.orderId",
                    "properties.checkout_id",
                ])),
                status: None,
                currency: Some(Column::paths(&["properties.currency"])),
                refunded: None,
                naive_is_utc: true,
                segment_event: Some((Column::paths(&["type"]), Column::paths(&["event"]))),
                amount_is_order_total: true,
            });
        }
    }
    if !s.has_header && o.entries.is_empty() {
        return infer_headerless(s);
    }
    let shopify = s.has_header
        && ["name", "financialstatus"]
            .iter()
            .all(|n| s.header.iter().any(|h| normalize(h) == *n));
    let mut customer = pick(s, o, "customer", CUSTOMER)?;
    let mut date = pick(s, o, "date", DATE)?;
    let mut amount = pick(s, o, "amount", AMOUNT)?;
    if !s.has_header && (customer.is_none() || date.is_none() || amount.is_none()) {
        // Fill what --columns left open from the content.
        let inferred = infer_headerless(s)?;
        customer = customer.or(Some(inferred.customer));
        date = date.or(Some(inferred.date));
        if amount.is_none()
            && let AmountSpec::Column(c) = inferred.amount
        {
            amount = Some(c);
        }
    }
    let customer = customer.ok_or_else(|| missing(s, "customer", CUSTOMER))?;
    let date = date.ok_or_else(|| missing(s, "date", DATE))?;
    let amount = match amount {
        Some(c) => AmountSpec::Column(c),
        None => {
            let price = pick(s, o, "price", PRICE)?;
            let quantity = pick(s, o, "quantity", QUANTITY)?;
            match (price, quantity) {
                (Some(price), Some(quantity)) => AmountSpec::PriceTimesQuantity { price, quantity },
                _ => {
                    return Err(format!(
                        "{} (or a price and a quantity column)",
                        missing(s, "amount", AMOUNT)
                    ));
                }
            }
        }
    };
    let mut order_id = pick(s, o, "order", ORDER_ID)?;
    if order_id.is_none()
        && shopify
        && let Some(i) = find(&s.header, &["name"])
    {
        order_id = Some(Column::index(&s.header[i], i));
    }
    let naive_is_utc = date.label.to_ascii_lowercase().contains("utc")
        || date.label.to_ascii_lowercase().ends_with("gmt");
    let amount_is_order_total = match &amount {
        AmountSpec::Column(c) => ORDER_TOTAL.contains(&normalize(&c.label).as_str()),
        AmountSpec::PriceTimesQuantity { .. } => false,
    };
    // A second customer column as fallback (Stripe: guest payments have an
    // email but no customer id).
    let mut customer = customer;
    if o.get("customer").is_none()
        && s.has_header
        && !matches!(s.format, Format::NdJson { .. })
        && let Some(i) = find(&s.header, EMAIL)
        && customer.sources != vec![Source::Index(i)]
    {
        customer.sources.push(Source::Index(i));
    }
    Ok(OrderColumns {
        customer,
        date,
        amount,
        order_id,
        status: pick(s, o, "status", STATUS)?,
        currency: pick(s, o, "currency", CURRENCY)?,
        refunded: pick(s, o, "refunded", REFUNDED)?,
        naive_is_utc,
        segment_event: None,
        amount_is_order_total,
    })
}

/// Without a header: the date column is the first whose values are all
/// dates; the amount the last other numeric column (preferring one with
/// decimals); the customer the first remaining column.
fn infer_headerless(s: &Sniffed) -> Result<OrderColumns, String> {
    let n = s.header.len();
    let col_values = |i: usize| {
        s.sample
            .iter()
            .filter_map(move |r| r.get(i))
            .map(String::as_str)
    };
    let is_date_col = |i: usize| {
        let mut inf = StyleInference::new();
        col_values(i).for_each(|v| inf.add(v));
        inf.all_dates() && !matches!(inf.result(), Inference::Mixed(_))
    };
    let date = (0..n)
        .find(|&i| is_date_col(i))
        .ok_or("the file has no header and no column of dates; add a header or use --columns")?;
    let numeric: Vec<usize> = (0..n)
        .filter(|&i| i != date && col_values(i).all(|v| parse_amount(v).is_ok()))
        .collect();
    let amount = numeric
        .iter()
        .rev()
        .find(|&&i| col_values(i).any(|v| v.contains('.')))
        .or(numeric.last())
        .copied()
        .ok_or(
            "the file has no header and no numeric amount column; add a header or use --columns",
        )?;
    let customer = (0..n)
        .find(|&i| i != date && i != amount)
        .ok_or("the file has no header and no customer column; add a header or use --columns")?;
    Ok(OrderColumns {
        customer: Column::index(&s.header[customer], customer),
        date: Column::index(&s.header[date], date),
        amount: AmountSpec::Column(Column::index(&s.header[amount], amount)),
        order_id: None,
        status: None,
        currency: None,
        refunded: None,
        naive_is_utc: false,
        segment_event: None,
        amount_is_order_total: false,
    })
}

/// Maps a sniffed events file's columns.
pub fn event_columns(s: &Sniffed, o: &ColumnOverrides) -> Result<EventColumns, String> {
    if let Format::NdJson { segment: true } = s.format {
        return Ok(EventColumns {
            customer: Column::paths(&["userId", "anonymousId"]),
            date: Column::paths(&["timestamp", "originalTimestamp", "sentAt", "receivedAt"]),
            event: Some(Column::paths(&["event", "type"])),
            email: Some(Column::paths(&[
                "traits.email",
                "context.traits.email",
                "properties.email",
            ])),
            naive_is_utc: true,
        });
    }
    let customer =
        pick(s, o, "customer", CUSTOMER)?.ok_or_else(|| missing(s, "customer", CUSTOMER))?;
    let date = pick(s, o, "date", DATE)?.ok_or_else(|| missing(s, "date", DATE))?;
    let mut email = pick(s, o, "email", EMAIL)?;
    if email.as_ref() == Some(&customer) {
        email = None;
    }
    let naive_is_utc = date.label.to_ascii_lowercase().contains("utc");
    Ok(EventColumns {
        customer,
        date,
        event: pick(s, o, "event", EVENT)?,
        email,
        naive_is_utc,
    })
}

/// Decides the date style of a column from the sample; ambiguous slashed
/// dates are settled by scanning further with `more` (the rest of the file).
pub fn infer_date_style(
    sample: impl Iterator<Item = String>,
    more: impl FnOnce(&mut StyleInference),
) -> Result<DateStyle, String> {
    let mut inf = StyleInference::new();
    sample.for_each(|v| inf.add(&v));
    if !inf.settled() {
        more(&mut inf);
    }
    match inf.result() {
        Inference::Style(s) => Ok(s),
        Inference::Ambiguous => Err(
            "every date fits both day-first and month-first (e.g. 1/2/2024); pass --date-format %m/%d/%Y or %d/%m/%Y"
                .into(),
        ),
        Inference::Mixed(why) => Err(format!("cannot tell the date format: {why}; pass --date-format")),
    }
}

/// Reads a text line limit-safely for scanning (used by the date pre-scan).
pub fn lines_of(reader: Box<dyn Read + Send>) -> impl Iterator<Item = std::io::Result<String>> {
    BufReader::with_capacity(1 << 20, reader).lines()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniffed(text: &str) -> Sniffed {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        std::fs::write(&p, text).unwrap();
        sniff(&p).unwrap()
    }

    #[test]
    fn delimiters_and_headers() {
        let s = sniffed("customer_id,date,amount\na,2024-01-01,1.00\n");
        assert_eq!(s.format, Format::Delimited(b','));
        assert!(s.has_header);
        let s = sniffed("a\t2024-01-01\t3\nb\t2024-01-02\t4\n");
        assert_eq!(s.format, Format::Delimited(b'\t'));
        assert!(!s.has_header);
        let s = sniffed(" 00001 19970101  1   11.77\n 00002 19970112  1   12.00\n");
        assert_eq!(s.format, Format::Whitespace);
        assert!(!s.has_header);
        let s = sniffed("x;y;z\n\"a;b\";2024-01-01;2\n");
        assert_eq!(s.format, Format::Delimited(b';'));
    }

    #[test]
    fn columns_by_name_and_content() {
        let s =
            sniffed(" customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n");
        let c = order_columns(&s, &ColumnOverrides::default()).unwrap();
        assert_eq!(c.customer.sources, vec![Source::Index(0)]);
        assert_eq!(
            c.amount,
            AmountSpec::Column(Column::index("dollar_value", 3))
        );
        let s = sniffed(" 00004 0001 19970101  2   29.33\n 00004 0001 19970118  2   29.73\n");
        let c = order_columns(&s, &ColumnOverrides::default()).unwrap();
        assert_eq!(
            (c.customer.sources[0].clone(), c.date.sources[0].clone()),
            (Source::Index(0), Source::Index(2))
        );
        assert_eq!(c.amount, AmountSpec::Column(Column::index("column 5", 4)));
        let s = sniffed(
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n536365,85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom\n",
        );
        let c = order_columns(&s, &ColumnOverrides::default()).unwrap();
        assert!(matches!(c.amount, AmountSpec::PriceTimesQuantity { .. }));
        assert_eq!(c.order_id.unwrap().label, "InvoiceNo");
    }

    #[test]
    fn overrides_and_missing_columns() {
        let s = sniffed("who,when,paid\na,2024-01-01,1\n");
        let err = order_columns(&s, &ColumnOverrides::default()).unwrap_err();
        assert!(
            err.contains("no customer column") && err.contains("who, when, paid"),
            "{err}"
        );
        let o = ColumnOverrides::parse("customer=who,date=WHEN,amount=3").unwrap();
        let c = order_columns(&s, &o).unwrap();
        assert_eq!(c.date.label, "when");
        assert_eq!(c.amount, AmountSpec::Column(Column::index("paid", 2)));
        assert!(ColumnOverrides::parse("colour=red").is_err());
        let o = ColumnOverrides::parse("customer=nope").unwrap();
        assert!(
            order_columns(&s, &o)
                .unwrap_err()
                .contains("no such column")
        );
    }
}
