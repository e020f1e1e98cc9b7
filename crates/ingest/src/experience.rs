//! The experience file: survey answers, reviews, returns and support
//! tickets per customer, in either shape:
//!
//! - long: `customer_id,kind,value[,date][,comment]` with `kind` one of
//!   `nps` (0–10), `ces` (1–7), `review` (1–5), `return` (items returned,
//!   1 when empty), `ticket_opened`, `ticket_resolved`, or `ticket` (value 1
//!   when resolved, 0 when open);
//! - wide (a survey tool's export): `customer_id` and any of the columns
//!   `nps` (or `likelihood_to_recommend`), `ces` (or `effort`), `review`
//!   (or `rating`), `returns`, `tickets_opened`, `tickets_resolved`,
//!   `comment`; empty cells are no answer.
//!
//! NPS answers are kept apart from every other question. Values out of
//! their scale are errors naming the line and column.

use std::path::Path;

use lifecycle_kpis::experience::Signal;

use crate::attributes::normalize_id;
use crate::layout::normalize;
use crate::{IngestError, parse_amount};

/// What the file holds.
#[derive(Debug, Default)]
pub struct ExperienceInput {
    /// (customer id as normalised, signal).
    pub signals: Vec<(String, Signal)>,
    /// (customer id, question or kind, free text).
    pub comments: Vec<(String, String, String)>,
}

/// The signals of one answer: `kind` normalised (see [`crate::normalize`]),
/// e.g. `nps`, `ces`, `review`, `return`, `ticketopened`, `ticket`.
pub fn signal(kind: &str, v: Option<f64>) -> Result<Vec<Signal>, String> {
    let need = |lo: f64, hi: f64, whole: bool| -> Result<f64, String> {
        let v = v.ok_or("has no value")?;
        if v < lo || v > hi || (whole && v.fract() != 0.0) {
            return Err(format!(
                "{v} is outside the {kind} scale {lo}–{hi}{}",
                if whole { " (whole numbers)" } else { "" }
            ));
        }
        Ok(v)
    };
    Ok(match kind {
        "nps" | "likelihoodtorecommend" | "recommend" => vec![Signal::Nps(need(0.0, 10.0, true)?)],
        "ces" | "effort" | "customereffort" => vec![Signal::Ces(need(1.0, 7.0, false)?)],
        "review" | "rating" | "reviewscore" | "stars" => {
            vec![Signal::Review(need(1.0, 5.0, false)?)]
        }
        "return" | "returns" | "returned" | "returneditems" => {
            let n = v.unwrap_or(1.0);
            if n < 0.0 || !n.is_finite() {
                return Err(format!("{n} returned items"));
            }
            vec![Signal::Return(n)]
        }
        "ticketopened" | "ticketsopened" => {
            vec![Signal::TicketOpened; v.unwrap_or(1.0).max(0.0) as usize]
        }
        "ticketresolved" | "ticketsresolved" => {
            vec![Signal::TicketResolved; v.unwrap_or(1.0).max(0.0) as usize]
        }
        "ticket" => match v {
            Some(1.0) => vec![Signal::TicketOpened, Signal::TicketResolved],
            Some(0.0) => vec![Signal::TicketOpened],
            _ => return Err("a ticket's value is 1 (resolved) or 0 (open)".into()),
        },
        other => {
            return Err(format!(
                "unknown kind \"{other}\" (nps, ces, review, return, ticket_opened, ticket_resolved, ticket)"
            ));
        }
    })
}

/// Reads an experience CSV (comma, tab or semicolon separated, with a header).
pub fn read_experience(path: &Path) -> Result<ExperienceInput, IngestError> {
    let file = crate::small_csv::SmallCsv::open(path)?;
    let header = &file.header;
    let norm: Vec<String> = header.iter().map(|h| normalize(h)).collect();
    let find = |names: &[&str]| norm.iter().position(|h| names.contains(&h.as_str()));
    let id = find(&["customerid", "customer", "userid", "email", "clientid"]).ok_or_else(|| {
        IngestError::format(
            path,
            format!("no customer id column among: {}", header.join(", ")),
        )
    })?;
    let kind = find(&["kind", "type", "question", "metric"]);
    let value = find(&["value", "score", "answer"]);
    let comment = find(&["comment", "text", "freetext", "feedback", "verbatim"]);
    let wide: Vec<usize> = (0..header.len())
        .filter(|&i| {
            i != id
                && Some(i) != comment
                && signal(&norm[i], Some(1.0)).is_ok()
                && norm[i] != "ticket"
        })
        .collect();
    if kind.is_none() && wide.is_empty() {
        return Err(IngestError::format(
            path,
            format!(
                "neither a kind,value pair nor answer columns (nps, ces, review, returns, tickets_opened, tickets_resolved) among: {}",
                header.join(", ")
            ),
        ));
    }
    let mut out = ExperienceInput::default();
    file.each(path, |record, err| {
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let customer = field(id);
        if customer.is_empty() {
            return Err(err(id, "is empty: every row needs a customer id".into()));
        }
        let customer = normalize_id(customer);
        let number = |i: usize| -> Result<Option<f64>, IngestError> {
            let v = field(i);
            if v.is_empty() {
                return Ok(None);
            }
            parse_amount(v)
                .map(Some)
                .map_err(|_| err(i, format!("\"{v}\" is not a number")))
        };
        if let Some(k) = kind {
            let kind_name = normalize(field(k));
            let v = match value {
                Some(i) => number(i)?,
                None => None,
            };
            for s in signal(&kind_name, v).map_err(|m| err(value.unwrap_or(k), m))? {
                out.signals.push((customer.clone(), s));
            }
            if let Some(c) = comment.map(field).filter(|c| !c.is_empty()) {
                out.comments
                    .push((customer.clone(), field(k).to_string(), c.to_string()));
            }
        } else {
            for &i in &wide {
                if let Some(v) = number(i)? {
                    for s in signal(&norm[i], Some(v)).map_err(|m| err(i, m))? {
                        out.signals.push((customer.clone(), s));
                    }
                }
            }
            if let Some(c) = comment.map(field).filter(|c| !c.is_empty()) {
                out.comments.push((
                    customer.clone(),
                    header[comment.unwrap_or(0)].clone(),
                    c.to_string(),
                ));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read(text: &str) -> Result<ExperienceInput, IngestError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("experience.csv");
        std::fs::write(&p, text).unwrap();
        read_experience(&p)
    }

    #[test]
    fn long_and_wide_shapes() {
        let e = read("customer_id,kind,value,date,comment\nA@x.com,nps,9,2024-01-01,great\nb,ticket,0,,\nb,return,,,\n").unwrap();
        assert_eq!(
            e.signals,
            vec![
                ("a@x.com".to_string(), Signal::Nps(9.0)),
                ("b".to_string(), Signal::TicketOpened),
                ("b".to_string(), Signal::Return(1.0)),
            ]
        );
        assert_eq!(e.comments[0].2, "great");
        let e = read("email,Likelihood to recommend,CES,Comment\nx,10,,fine\ny,,3,\n").unwrap();
        assert_eq!(
            e.signals,
            vec![
                ("x".to_string(), Signal::Nps(10.0)),
                ("y".to_string(), Signal::Ces(3.0))
            ]
        );
    }

    #[test]
    fn values_off_the_scale_say_where() {
        let e = read("customer_id,kind,value\nx,nps,11\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(
                "experience.csv:2: column 'value': 11 is outside the nps scale 0–10 (whole numbers)"
            ),
            "{e}"
        );
        let e = read("customer_id,kind,value\nx,mood,3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown kind \"mood\""), "{e}");
        let e = read("customer_id,city\nx,Lyon\n").unwrap_err().to_string();
        assert!(e.contains("neither a kind,value pair"), "{e}");
    }
}
