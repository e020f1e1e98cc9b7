//! The customer attributes file: one row per customer,
//! `customer_id,acquisition_cost[,acquisition_channel,...]`, what a store
//! knows about each customer besides their orders. Other columns are kept
//! as text attributes (by their header) for segments and KPIs.
//!
//! Ids are normalised as in orders files (trimmed, emails lower-cased), so
//! they match. A customer listed twice is an error naming both lines.

/// A hash map with a fast, fixed hasher.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;
use std::path::Path;

use crate::layout::normalize;
use crate::{IngestError, parse_amount};

/// One customer's attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    pub acquisition_cost: Option<f64>,
    pub acquisition_channel: Option<String>,
    /// Other columns, in header order (empty cells are `None`).
    pub other: Vec<Option<String>>,
    /// The line of the file it was read from.
    pub line: u64,
}

/// The attributes file, by customer id.
#[derive(Debug, Clone, Default)]
pub struct AttributesFile {
    /// Header names of [`Attributes::other`].
    pub other_columns: Vec<String>,
    pub customers: HashMap<String, Attributes>,
}

impl Attributes {
    /// The value of grouping column `i` of [`AttributesFile::columns`]:
    /// 0 is the acquisition channel, then the other columns in order.
    pub fn column(&self, i: usize) -> Option<&str> {
        let v = if i == 0 {
            self.acquisition_channel.as_deref()
        } else {
            self.other.get(i - 1).and_then(|v| v.as_deref())
        };
        v.map(str::trim).filter(|v| !v.is_empty())
    }
}

impl AttributesFile {
    /// The grouping columns: `acquisition_channel`, then the other columns.
    pub fn columns(&self) -> Vec<String> {
        std::iter::once("acquisition_channel".to_string())
            .chain(self.other_columns.iter().cloned())
            .collect()
    }

    /// A customer's attributes, by an id as the orders spell it.
    pub fn get(&self, customer: &str) -> Option<&Attributes> {
        self.customers.get(normalized_id(customer).as_ref())
    }
}

/// Ids as the file keys them (emails lower-cased).
pub fn normalize_id(s: &str) -> String {
    normalized_id(s).into_owned()
}

/// [`normalize_id`] without copying an id that is already normal.
pub fn normalized_id(s: &str) -> std::borrow::Cow<'_, str> {
    let s = s.trim();
    if s.contains('@') && s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Reads an attributes CSV (comma, tab or semicolon separated, with a
/// header naming a customer column and at least one attribute).
pub fn read_attributes(path: &Path) -> Result<AttributesFile, IngestError> {
    let file = crate::small_csv::SmallCsv::open(path)?;
    let header = &file.header;
    let find = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.contains(&normalize(h).as_str()))
    };
    let id = find(&[
        "customerid",
        "customer",
        "userid",
        "email",
        "customeremail",
        "clientid",
    ])
    .ok_or_else(|| {
        IngestError::format(
            path,
            format!(
                "no customer id column (customer_id, customer, user_id or email) among: {}",
                header.join(", ")
            ),
        )
    })?;
    let cost = find(&[
        "acquisitioncost",
        "cac",
        "costofacquisition",
        "acquisitionspend",
    ]);
    let channel = find(&["acquisitionchannel", "channel", "source", "utmsource"]);
    let others: Vec<usize> = (0..header.len())
        .filter(|&i| i != id && Some(i) != cost && Some(i) != channel)
        .collect();
    let mut out = AttributesFile {
        other_columns: others.iter().map(|&i| header[i].clone()).collect(),
        customers: HashMap::with_capacity_and_hasher(file.len() / 64, Default::default()),
    };
    file.each(path, |record, row_err| {
        let raw = record.get(id).unwrap_or("");
        if raw.trim().is_empty() {
            return Err(row_err(
                id,
                "is empty: every row needs a customer id".into(),
            ));
        }
        let customer = normalize_id(raw);
        if let Some(previous) = out.customers.get(&customer) {
            return Err(row_err(
                id,
                format!(
                    "customer \"{customer}\" is already listed on line {}",
                    previous.line
                ),
            ));
        }
        let acquisition_cost = match cost.map(|c| (c, record.get(c).unwrap_or("").trim())) {
            Some((_, "")) | None => None,
            Some((c, v)) => {
                let x =
                    parse_amount(v).map_err(|_| row_err(c, format!("\"{v}\" is not a number")))?;
                if x < 0.0 {
                    return Err(row_err(c, format!("{v} is negative")));
                }
                Some(x)
            }
        };
        let text = |c: usize| {
            let v = record.get(c).unwrap_or("").trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        out.customers.insert(
            customer,
            Attributes {
                acquisition_cost,
                acquisition_channel: channel.and_then(text),
                other: others.iter().map(|&c| text(c)).collect(),
                line: record.position().map_or(0, |p| p.line()),
            },
        );
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<AttributesFile, IngestError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("customers.csv");
        std::fs::write(&path, text).unwrap();
        read_attributes(&path)
    }

    #[test]
    fn reads_costs_channels_and_other_columns() {
        let f = read(
            "customer_id,acquisition_cost,acquisition_channel,region\n\
             1,12.50,paid_social,EU\n\
             Ann@X.com,,organic,\n",
        )
        .unwrap();
        assert_eq!(f.other_columns, ["region"]);
        let one = &f.customers["1"];
        assert_eq!(one.acquisition_cost, Some(12.5));
        assert_eq!(one.acquisition_channel.as_deref(), Some("paid_social"));
        assert_eq!(one.other, [Some("EU".to_string())]);
        let ann = &f.customers["ann@x.com"];
        assert_eq!(ann.acquisition_cost, None);
        assert_eq!(ann.other, [None]);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let e = read("customer_id,acquisition_cost\n1,12\n2,twelve\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("customers.csv:3: column 'acquisition_cost': \"twelve\" is not a number"),
            "{e}"
        );
        let e = read("customer_id,cac\n1,12\n1,3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":3: column 'customer_id'") && e.contains("line 2"),
            "{e}"
        );
        let e = read("name,cac\nx,1\n").unwrap_err().to_string();
        assert!(e.contains("no customer id column"), "{e}");
        let e = read("customer_id,cac\n1,-5\n").unwrap_err().to_string();
        assert!(e.contains("negative"), "{e}");
    }
}
