//! Segment's HTTP Tracking API messages, as the existing tracking libraries
//! (analytics-python, analytics-node, analytics.js, RudderStack's SDKs)
//! send them: one message per call to `/v1/identify`, `/v1/track`,
//! `/v1/page`, `/v1/screen`, `/v1/alias`, `/v1/group`, or many in
//! `/v1/batch` as `{"batch": [...], "sentAt": ...}`.
//!
//! Rules (Segment's spec, "Common fields" and "HTTP Tracking API"):
//! - a message is at most 32 KB and a batch request at most 500 KB;
//! - every message needs `userId` or `anonymousId` (`alias` needs
//!   `previousId` and `userId`; `track` needs `event`);
//! - `messageId` identifies a message for de-duplication (one is derived
//!   from the content when a client sends none, so a retried identical
//!   message is still a duplicate);
//! - the stored `timestamp` corrects the client's clock: with `sentAt`
//!   given, timestamp = receivedAt − (sentAt − originalTimestamp), where
//!   originalTimestamp is the message's `timestamp`; without `sentAt`,
//!   the message's `timestamp`; without either, receivedAt.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

/// At most this many bytes per message (32 KB).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// At most this many bytes per batch request (500 KB).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// A rejected request: the HTTP API answers 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error("the batch is {size} bytes; the limit is 500 KB ({MAX_BATCH_BYTES} bytes)")]
    BatchTooLarge { size: usize },
    #[error(
        "message {index} is {size} bytes; the limit is 32 KB ({MAX_MESSAGE_BYTES} bytes) a message"
    )]
    MessageTooLarge { index: usize, size: usize },
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("message {index}: {message}")]
    Invalid { index: usize, message: String },
}

/// The kinds of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identify,
    Track,
    Page,
    Screen,
    Alias,
    Group,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "identify" => Kind::Identify,
            "track" => Kind::Track,
            "page" => Kind::Page,
            "screen" => Kind::Screen,
            "alias" => Kind::Alias,
            "group" => Kind::Group,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Identify => "identify",
            Kind::Track => "track",
            Kind::Page => "page",
            Kind::Screen => "screen",
            Kind::Alias => "alias",
            Kind::Group => "group",
        }
    }
}

/// One validated message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub message_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// `alias`: the id being merged into `user_id`.
    pub previous_id: Option<String>,
    /// `track`: the event name; `page`/`screen`: the name, if any.
    pub event: Option<String>,
    /// Corrected for the client's clock skew (see the module).
    pub timestamp: Timestamp,
    pub received_at: Timestamp,
    pub traits: Map<String, Value>,
    pub properties: Map<String, Value>,
    pub context: Map<String, Value>,
}

/// Event times accepted: from 1970-01-01 (Unix time 0) to the end of 2199
/// (UTC, in seconds). A birth date in the traits may be earlier: traits are
/// not event times.
const EARLIEST: i64 = 0;
const LATEST: i64 = 7_258_118_400;

fn ts(v: Option<&Value>, index: usize, field: &str) -> Result<Option<Timestamp>, MessageError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let range = || MessageError::Invalid {
                index,
                message: format!(
                    "{field} \"{s}\" is outside the accepted range (1970-01-01 to 2199-12-31 UTC)"
                ),
            };
            let year: Option<i32> = s.get(..4).and_then(|y| y.parse().ok());
            match s.parse::<Timestamp>() {
                Ok(t) if (EARLIEST..LATEST).contains(&t.as_second()) => Ok(Some(t)),
                Ok(_) => Err(range()),
                Err(_) if year.is_some_and(|y| !(1970..2200).contains(&y)) => Err(range()),
                Err(_) => Err(MessageError::Invalid {
                    index,
                    message: format!(
                        "{field} \"{s}\" is not an ISO-8601 date-time with a time zone"
                    ),
                }),
            }
        }
        Some(other) => Err(MessageError::Invalid {
            index,
            message: format!("{field} must be an ISO-8601 string, not {other}"),
        }),
    }
}

fn id(v: Option<&Value>, index: usize, field: &str) -> Result<Option<String>, MessageError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        // Libraries accept numeric ids; keep their decimal form.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(MessageError::Invalid {
            index,
            message: format!("{field} must be a string, not {other}"),
        }),
    }
}

fn object(
    v: Option<&Value>,
    index: usize,
    field: &str,
) -> Result<Map<String, Value>, MessageError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(MessageError::Invalid {
            index,
            message: format!("{field} must be an object, not {other}"),
        }),
    }
}

/// A message id derived from the content (FNV-1a, 128 bits as hex), for
/// clients that send none: a retried identical message gets the same id.
fn derived_id(raw: &Value) -> String {
    let text = raw.to_string();
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in text.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    format!("derived-{h:032x}")
}

/// Validates one message; `kind` is the endpoint's kind (`None` inside a
/// batch, where each message says its `type`), `sent_at` the batch's.
pub fn message(
    raw: &Value,
    index: usize,
    kind: Option<Kind>,
    sent_at: Option<Timestamp>,
    received_at: Timestamp,
    clock_now: Timestamp,
) -> Result<Message, MessageError> {
    let invalid = |message: String| MessageError::Invalid { index, message };
    let Value::Object(m) = raw else {
        return Err(invalid(format!(
            "a message must be a JSON object, not {raw}"
        )));
    };
    let size = raw.to_string().len();
    if size > MAX_MESSAGE_BYTES {
        return Err(MessageError::MessageTooLarge { index, size });
    }
    let kind = match (kind, m.get("type").and_then(Value::as_str)) {
        (Some(k), _) => k,
        (None, Some(t)) => Kind::parse(t).ok_or_else(|| {
            invalid(format!(
                "type \"{t}\" is not one of identify, track, page, screen, alias, group"
            ))
        })?,
        (None, None) => return Err(invalid("a batch message needs a \"type\"".into())),
    };
    let user_id = id(m.get("userId"), index, "userId")?;
    let anonymous_id = id(m.get("anonymousId"), index, "anonymousId")?;
    let previous_id = id(m.get("previousId"), index, "previousId")?;
    if kind == Kind::Alias {
        if previous_id.is_none() || user_id.is_none() {
            return Err(invalid("alias needs previousId and userId".into()));
        }
    } else if user_id.is_none() && anonymous_id.is_none() {
        return Err(invalid(format!(
            "{} needs a userId or an anonymousId",
            kind.name()
        )));
    }
    let event = match kind {
        Kind::Track => Some(
            id(m.get("event"), index, "event")?
                .ok_or_else(|| invalid("track needs an \"event\" name".into()))?,
        ),
        Kind::Page | Kind::Screen => id(m.get("name"), index, "name")?,
        _ => None,
    };
    let original = ts(m.get("timestamp"), index, "timestamp")?;
    let sent_at = ts(m.get("sentAt"), index, "sentAt")?.or(sent_at);
    let timestamp = match (original, sent_at) {
        (Some(t), Some(sent)) => {
            let skew: SignedDuration = sent.duration_since(t);
            received_at.checked_sub(skew).unwrap_or(received_at)
        }
        (Some(t), None) => t,
        (None, _) => clock_now,
    };
    let message_id = match id(m.get("messageId"), index, "messageId")? {
        Some(mid) => mid,
        None => derived_id(raw),
    };
    Ok(Message {
        kind,
        message_id,
        user_id,
        anonymous_id,
        previous_id,
        event,
        timestamp,
        received_at: clock_now,
        traits: object(m.get("traits"), index, "traits")?,
        properties: object(m.get("properties"), index, "properties")?,
        context: object(m.get("context"), index, "context")?,
    })
}

/// A single-message request body (`/v1/track` etc.).
pub fn single(
    body: &[u8],
    kind: Kind,
    received_at: Timestamp,
    clock_now: Timestamp,
) -> Result<Message, MessageError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::MessageTooLarge {
            index: 0,
            size: body.len(),
        });
    }
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| MessageError::NotJson(e.to_string()))?;
    message(&raw, 0, Some(kind), None, received_at, clock_now)
}

/// A `/v1/batch` request body: every message validated, or the first
/// error (the request is all or nothing).
pub fn batch(
    body: &[u8],
    received_at: Timestamp,
    clock_now: Timestamp,
) -> Result<Vec<Message>, MessageError> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(MessageError::BatchTooLarge { size: body.len() });
    }
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| MessageError::NotJson(e.to_string()))?;
    let invalid = |message: &str| MessageError::Invalid {
        index: 0,
        message: message.to_string(),
    };
    let Some(items) = raw.get("batch").and_then(Value::as_array) else {
        return Err(invalid("a batch body is {\"batch\": [messages...]}"));
    };
    let sent_at = ts(raw.get("sentAt"), 0, "sentAt")?;
    items
        .iter()
        .enumerate()
        .map(|(i, m)| message(m, i, None, sent_at, received_at, clock_now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's clock is the system's.
    fn single(body: &[u8], kind: Kind, t: Timestamp) -> Result<Message, MessageError> {
        super::single(body, kind, t, t)
    }

    fn batch(body: &[u8], t: Timestamp) -> Result<Vec<Message>, MessageError> {
        super::batch(body, t, t)
    }

    /// On a simulated clock, a message without a timestamp happens at the
    /// clock's now; skew is still corrected against the system's receipt.
    #[test]
    fn simulated_clock_times() {
        let system = at("2026-11-29T12:00:00Z");
        let clock = at("2024-01-01T00:00:00Z");
        let m =
            super::single(br#"{"userId":"u","event":"x"}"#, Kind::Track, system, clock).unwrap();
        assert_eq!((m.timestamp, m.received_at), (clock, clock));
        let m = super::single(
            br#"{"userId":"u","event":"x","timestamp":"2023-12-20T00:00:00Z","sentAt":"2026-11-29T11:59:59Z"}"#,
            Kind::Track,
            system,
            clock,
        )
        .unwrap();
        assert_eq!(m.timestamp, at("2023-12-20T00:00:01Z"));
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// The track example of Segment's spec, sent through analytics-node.
    #[test]
    fn track_with_clock_skew_correction() {
        let body = br#"{
            "type": "track", "event": "Order Completed", "userId": "97980cfea0067",
            "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
            "timestamp": "2015-02-23T22:28:55.111Z", "sentAt": "2015-02-23T22:28:55.111Z",
            "properties": {"order_id": "50314b8e9bcf000000000000", "total": 27.5, "currency": "USD"},
            "context": {"ip": "8.8.8.8"}
        }"#;
        // The device's clock is 2 s behind the server's.
        let m = single(body, Kind::Track, at("2015-02-23T22:28:57.111Z")).unwrap();
        assert_eq!(m.event.as_deref(), Some("Order Completed"));
        assert_eq!(m.message_id, "022bb90c-bbac-11e4-8dfc-aa07a5b093db");
        assert_eq!(m.timestamp, at("2015-02-23T22:28:57.111Z"));
        assert_eq!(m.properties["total"], 27.5);
        // Queued offline for an hour, sent with a correct clock.
        let body = br#"{"userId": "u", "event": "Email Opened",
            "timestamp": "2024-01-01T10:00:00Z", "sentAt": "2024-01-01T11:00:00Z"}"#;
        let m = single(body, Kind::Track, at("2024-01-01T11:00:01Z")).unwrap();
        assert_eq!(m.timestamp, at("2024-01-01T10:00:01Z"));
        // No sentAt: the message's timestamp; neither: receivedAt.
        let m = single(
            br#"{"userId":"u","event":"x","timestamp":"2024-01-01T10:00:00+02:00"}"#,
            Kind::Track,
            at("2024-06-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(m.timestamp, at("2024-01-01T08:00:00Z"));
        let m = single(
            br#"{"userId":"u","event":"x"}"#,
            Kind::Track,
            at("2024-06-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(m.timestamp, at("2024-06-01T00:00:00Z"));
    }

    #[test]
    fn batches_take_the_batch_sent_at_and_each_type() {
        let body = br#"{"batch": [
            {"type": "identify", "userId": "u1", "traits": {"email": "Ann@x.com"}, "timestamp": "2024-01-01T00:00:00Z"},
            {"type": "track", "anonymousId": "a1", "event": "Product Viewed", "timestamp": "2024-01-01T00:00:10Z"},
            {"type": "page", "anonymousId": "a1", "name": "Home"},
            {"type": "alias", "previousId": "a1", "userId": "u1"}
        ], "sentAt": "2024-01-01T00:01:00Z"}"#;
        let ms = batch(body, at("2024-01-01T00:01:30Z")).unwrap();
        assert_eq!(ms.len(), 4);
        assert_eq!(ms[0].kind, Kind::Identify);
        assert_eq!(ms[0].timestamp, at("2024-01-01T00:00:30Z"));
        assert_eq!(ms[1].timestamp, at("2024-01-01T00:00:40Z"));
        assert_eq!(ms[2].event.as_deref(), Some("Home"));
        assert_eq!(ms[3].previous_id.as_deref(), Some("a1"));
        // Without messageIds, identical messages get the same derived id.
        assert_eq!(
            ms[2].message_id,
            batch(body, at("2024-01-02T00:00:00Z")).unwrap()[2].message_id
        );
        assert_ne!(ms[2].message_id, ms[3].message_id);
    }

    #[test]
    fn limits_and_errors_say_what_is_wrong() {
        let big = format!(
            r#"{{"userId":"u","event":"x","properties":{{"p":"{}"}}}}"#,
            "a".repeat(40_000)
        );
        let e = single(big.as_bytes(), Kind::Track, Timestamp::UNIX_EPOCH).unwrap_err();
        assert!(e.to_string().contains("limit is 32 KB"), "{e}");
        let one = r#"{"type":"track","userId":"u","event":"x","properties":{"p":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#;
        let many = format!(r#"{{"batch":[{}]}}"#, vec![one; 5_000].join(","));
        let e = batch(many.as_bytes(), Timestamp::UNIX_EPOCH).unwrap_err();
        assert!(e.to_string().contains("limit is 500 KB"), "{e}");
        let huge_message = format!(
            r#"{{"batch":[{{"type":"track","userId":"u","event":"x"}},{}]}}"#,
            big.replace(r#"{"userId""#, r#"{"type":"track","userId""#)
        );
        let e = batch(huge_message.as_bytes(), Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(
            e,
            MessageError::MessageTooLarge {
                index: 1,
                size: big.len() + 15
            }
        );
        for (body, want) in [
            (r#"{"event":"x"}"#, "needs a userId or an anonymousId"),
            (r#"{"userId":"u"}"#, "track needs an \"event\""),
            (
                r#"{"userId":"u","event":"x","timestamp":"yesterday"}"#,
                "not an ISO-8601",
            ),
            (
                r#"{"userId":"u","event":"x","properties":[1]}"#,
                "properties must be an object",
            ),
            ("not json", "not JSON"),
        ] {
            let e = single(body.as_bytes(), Kind::Track, Timestamp::UNIX_EPOCH)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        let e = batch(
            br#"{"batch":[{"type":"purchase","userId":"u"}]}"#,
            Timestamp::UNIX_EPOCH,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("type \"purchase\" is not one of"), "{e}");
        let e = single(br#"{"userId":"u"}"#, Kind::Alias, Timestamp::UNIX_EPOCH)
            .unwrap_err()
            .to_string();
        assert!(e.contains("alias needs previousId and userId"), "{e}");
    }
}
