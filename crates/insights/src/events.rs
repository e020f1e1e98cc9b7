//! The event forms of the inputs, for `serve`: what a store learns from
//! Segment-style messages instead of files.
//!
//! - attributes: each customer's merged `identify` traits (`city`,
//!   `country`, `gender`, `age`, `birthday`, `address.city`...,
//!   `acquisition_channel` or `utm_source`, `acquisition_cost`);
//! - order lines: `Order Completed` with `products: [{product_id | sku,
//!   category, brand, price, quantity, cost}]` and the order's `coupon`;
//! - experience: `Survey Answered` / `NPS Submitted` (`nps`, `ces`, or
//!   `question` + `score`, `comment`), `Product Reviewed` (`rating`),
//!   `Order Refunded` / `Product Returned` (`quantity`), `Ticket Opened`,
//!   `Ticket Resolved`.

use lifecycle_ingest::Clock;
use lifecycle_ingest::attributes::{Attributes, AttributesFile, normalize_id};
use lifecycle_ingest::experience::ExperienceInput;
use lifecycle_kpis::experience::Signal;
use lifecycle_kpis::lines::{Line, LineTable};
use serde_json::{Map, Value};

use crate::LineFacts;

/// The track events the experience form reads.
pub const EXPERIENCE_EVENTS: &[&str] = &[
    "Survey Answered",
    "Survey Submitted",
    "NPS Submitted",
    "Product Reviewed",
    "Order Refunded",
    "Product Returned",
    "Ticket Opened",
    "Ticket Resolved",
];

/// Traits that identify or contact a customer, or are ids: not attributes.
const NOT_ATTRIBUTES: &[&str] = &[
    "email",
    "phone",
    "name",
    "firstname",
    "lastname",
    "username",
    "id",
    "userid",
    "avatar",
    "address",
    "street",
    "postalcode",
    "zip",
    "pushtoken",
    "createdat",
    "description",
    "title",
    "website",
];

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The customers' traits as an attributes file: the acquisition channel and
/// cost, and every other scalar trait (nested objects flattened by their
/// last key, e.g. `address.city` → `city`) except contact details and ids.
pub fn attributes_from_traits(traits: &[(String, Map<String, Value>)]) -> AttributesFile {
    let flat = |m: &Map<String, Value>| -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (k, v) in m {
            match v {
                Value::Object(inner) => {
                    for (k2, v2) in inner {
                        if !v2.is_object() && !v2.is_array() {
                            out.push((k2.clone(), v2.clone()));
                        }
                    }
                }
                Value::Array(_) | Value::Null => {}
                _ => out.push((k.clone(), v.clone())),
            }
        }
        out
    };
    let key = |k: &str| lifecycle_ingest::normalize(k);
    let is_channel =
        |k: &str| ["acquisitionchannel", "channel", "utmsource", "source"].contains(&k);
    let is_cost = |k: &str| ["acquisitioncost", "cac"].contains(&k);
    let mut columns: Vec<String> = Vec::new();
    for (_, m) in traits {
        for (k, _) in flat(m) {
            let n = key(&k);
            if !NOT_ATTRIBUTES.contains(&n.as_str())
                && !is_channel(&n)
                && !is_cost(&n)
                && !columns.iter().any(|c| key(c) == n)
            {
                columns.push(k);
            }
        }
    }
    columns.sort();
    let mut out = AttributesFile {
        other_columns: columns.clone(),
        ..AttributesFile::default()
    };
    for (i, (id, m)) in traits.iter().enumerate() {
        let f = flat(m);
        let find =
            |pred: &dyn Fn(&str) -> bool| f.iter().find(|(k, _)| pred(&key(k))).map(|p| &p.1);
        out.customers.insert(
            normalize_id(id),
            Attributes {
                acquisition_cost: find(&is_cost).and_then(number).filter(|c| *c >= 0.0),
                acquisition_channel: find(&is_channel).and_then(text),
                other: columns
                    .iter()
                    .map(|c| f.iter().find(|(k, _)| k == c).and_then(|p| text(&p.1)))
                    .collect(),
                line: i as u64 + 1,
            },
        );
    }
    out
}

/// Order lines from `Order Completed` events (customer, ms since 1970,
/// payload); `None` when no event lists products.
pub fn lines_from_events(events: &[(String, i64, Value)], clock: &Clock) -> Option<LineFacts> {
    let mut t = LineTable::default();
    let mut has_cost = false;
    for (customer, at_ms, payload) in events {
        let props = &payload["properties"];
        let (day, local) = clock.localize_epoch(at_ms.div_euclid(1000));
        let code = props.get("coupon").and_then(text);
        for p in props["products"].as_array().into_iter().flatten() {
            let Some(product) = p
                .get("product_id")
                .or_else(|| p.get("sku"))
                .or_else(|| p.get("id"))
                .and_then(text)
            else {
                continue;
            };
            let quantity = p.get("quantity").and_then(number).unwrap_or(1.0);
            let price = p.get("price").and_then(number).unwrap_or(0.0);
            let cost = p.get("cost").and_then(number).map(|c| c * quantity);
            has_cost |= cost.is_some();
            if !quantity.is_finite() || !price.is_finite() {
                continue;
            }
            let line = Line {
                customer: t.customers.intern(&normalize_id(customer)),
                day,
                hour: Some((local.rem_euclid(86_400) / 3600) as u8),
                product: t.products.intern(&product),
                category: p
                    .get("category")
                    .and_then(text)
                    .map(|c| t.categories.intern(&c)),
                brand: p.get("brand").and_then(text).map(|b| t.brands.intern(&b)),
                quantity,
                revenue: price * quantity,
                cost,
                discount: code.as_deref().map(|c| t.discounts.intern(c)),
            };
            t.lines.push(line);
        }
    }
    if t.lines.is_empty() {
        return None;
    }
    let customers = lifecycle_kpis::lines::by_customer(&mut t);
    Some(LineFacts {
        table: t,
        customers,
        has_cost,
    })
}

/// Experience signals from the [`EXPERIENCE_EVENTS`]; values off their
/// scale are left out and counted.
pub fn experience_from_events(events: &[(String, i64, Value)]) -> (ExperienceInput, u64) {
    use lifecycle_ingest::experience::signal;
    let mut out = ExperienceInput::default();
    let mut rejected = 0u64;
    for (customer, _, payload) in events {
        let id = normalize_id(customer);
        let props = &payload["properties"];
        let name = payload["event"].as_str().unwrap_or("");
        let mut kinds: Vec<(String, Option<f64>)> = Vec::new();
        match name {
            "Product Reviewed" => {
                kinds.push(("review".into(), props.get("rating").and_then(number)))
            }
            "Order Refunded" | "Product Returned" => {
                kinds.push(("return".into(), props.get("quantity").and_then(number)));
            }
            "Ticket Opened" => kinds.push(("ticketopened".into(), Some(1.0))),
            "Ticket Resolved" => kinds.push(("ticketresolved".into(), Some(1.0))),
            _ => {
                for k in ["nps", "ces"] {
                    if let Some(v) = props.get(k).and_then(number) {
                        kinds.push((k.into(), Some(v)));
                    }
                }
                if let (Some(q), Some(v)) = (
                    props
                        .get("question")
                        .or_else(|| props.get("kind"))
                        .and_then(text),
                    props.get("score").and_then(number),
                ) {
                    let q = lifecycle_ingest::normalize(&q);
                    let kind = if q.contains("recommend") {
                        "nps".to_string()
                    } else {
                        q
                    };
                    kinds.push((kind, Some(v)));
                }
            }
        }
        for (kind, v) in kinds {
            match signal(&kind, v) {
                Ok(signals) => out
                    .signals
                    .extend(signals.into_iter().map(|s: Signal| (id.clone(), s))),
                Err(_) => rejected += 1,
            }
        }
        if let Some(c) = props.get("comment").and_then(text) {
            out.comments.push((id.clone(), name.to_string(), c));
        }
    }
    (out, rejected)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn traits_lines_and_answers_from_events() {
        let traits = vec![
            (
                "Ann@X.com".to_string(),
                json!({"email": "Ann@X.com", "address": {"city": "Lyon", "street": "x"}, "gender": "F", "utm_source": "display", "acquisition_cost": 60})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ("b".to_string(), json!({"city": "Paris"}).as_object().unwrap().clone()),
        ];
        let a = attributes_from_traits(&traits);
        assert_eq!(a.other_columns, ["city", "gender"]);
        let ann = a.get("ann@x.com").unwrap();
        assert_eq!(ann.acquisition_channel.as_deref(), Some("display"));
        assert_eq!(ann.acquisition_cost, Some(60.0));
        assert_eq!(ann.other, [Some("Lyon".to_string()), Some("F".to_string())]);
        assert_eq!(a.get("b").unwrap().other[0].as_deref(), Some("Paris"));

        // 2024-03-05T14:00:00Z.
        let ms = 1_709_647_200_000;
        let orders = vec![(
            "b".to_string(),
            ms,
            json!({"properties": {"coupon": "W10", "products": [
                {"product_id": "p1", "category": "Tea", "price": 4.5, "quantity": 2, "cost": 1},
                {"sku": "p2", "price": "3"},
                {"name": "no id"}
            ]}}),
        )];
        let l = lines_from_events(&orders, &Clock::utc()).unwrap();
        assert_eq!(l.table.lines.len(), 2);
        let c = l.get("b").unwrap();
        assert!((c.revenue - 12.0).abs() < 1e-12);
        assert_eq!(c.margin, Some(7.0), "only the line with a cost");
        assert_eq!(l.table.discounts.name(c.first_discount.unwrap()), "W10");
        assert_eq!(l.table.lines[0].hour, Some(14));
        assert!(lines_from_events(&[], &Clock::utc()).is_none());

        let answers = vec![
            (
                "b".to_string(),
                0,
                json!({"event": "Survey Answered", "properties": {"nps": 9, "comment": "great"}}),
            ),
            (
                "b".to_string(),
                0,
                json!({"event": "Survey Answered", "properties": {"question": "How likely are you to recommend us?", "score": 3}}),
            ),
            (
                "b".to_string(),
                0,
                json!({"event": "Product Reviewed", "properties": {"rating": 4}}),
            ),
            (
                "b".to_string(),
                0,
                json!({"event": "Product Reviewed", "properties": {"rating": 9}}),
            ),
            (
                "b".to_string(),
                0,
                json!({"event": "Ticket Opened", "properties": {}}),
            ),
        ];
        let (e, rejected) = experience_from_events(&answers);
        assert_eq!(rejected, 1, "a rating of 9 is off the 1–5 scale");
        let kinds: Vec<Signal> = e.signals.iter().map(|s| s.1).collect();
        assert_eq!(
            kinds,
            [
                Signal::Nps(9.0),
                Signal::Nps(3.0),
                Signal::Review(4.0),
                Signal::TicketOpened
            ]
        );
        assert_eq!(e.comments[0].2, "great");
    }
}
