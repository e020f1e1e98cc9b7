//! `lifecycle serve`: the HTTP server. So far: `/healthz` and the Segment
//! ingestion endpoints `/v1/{identify,track,page,screen,alias,group,batch}`
//! (HTTP Basic auth with a write key as the user name, gzip bodies, the
//! spec's size limits), which store each message as an event and answer
//! only after the store's commit is durable.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use lifecycle_store::{EventOrder, KeyKind, NewEvent, Store, StoreError, StoreUrl};
use serde_json::json;

use crate::segment::{self, Kind, MAX_BATCH_BYTES, Message};

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("--listen {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Runtime(#[from] std::io::Error),
}

#[derive(Clone)]
struct App {
    store: Arc<Mutex<Store>>,
}

/// Runs the server until Ctrl-C / SIGTERM, calling `ready` with the bound
/// address (port 0 picks a free one) once it accepts connections.
pub fn serve(
    db: &StoreUrl,
    listen: &str,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let store = Store::open(db)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr()?;
        let app = router(App {
            store: Arc::new(Mutex::new(store)),
        });
        ready(addr);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await?;
        Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/{kind}", post(ingest))
        .with_state(app)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"success": false, "error": message.into()})),
    )
        .into_response()
}

/// The write key of an `Authorization: Basic base64(key:)` header.
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next()?.to_string();
    (!user.is_empty()).then_some(user)
}

/// The body, gunzipped when `Content-Encoding: gzip` (never more than the
/// batch limit and one byte, so the size check still applies).
fn body_bytes(headers: &HeaderMap, body: Bytes) -> Result<Vec<u8>, String> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .take(MAX_BATCH_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the gzip body is broken: {e}"))?;
    Ok(out)
}

fn event_of(m: &Message) -> NewEvent {
    let customer_id = match (&m.user_id, &m.anonymous_id) {
        (Some(u), _) => u.clone(),
        (None, Some(a)) => format!("anon:{a}"),
        (None, None) => String::new(),
    };
    NewEvent {
        customer_id,
        message_id: m.message_id.clone(),
        kind: m.kind.name().to_string(),
        event: m.event.clone(),
        at_ms: m.timestamp.as_millisecond(),
        received_ms: m.received_at.as_millisecond(),
        payload: json!({
            "traits": m.traits, "properties": m.properties, "context": m.context,
            "anonymousId": m.anonymous_id, "previousId": m.previous_id,
        })
        .to_string(),
    }
}

/// The order an `Order Completed` / `Order Refunded` track carries (the
/// e-commerce spec's fields, read as the NDJSON importer reads them):
/// keyed by `order_id` (or, without one, the messageId), amount from
/// `total`, `revenue` or `value`, on the timestamp's UTC day.
fn order_of(m: &Message, customer_id: &str) -> Option<EventOrder> {
    let refund = match m.event.as_deref() {
        Some("Order Completed") => false,
        Some("Order Refunded") => true,
        _ => return None,
    };
    let p = &m.properties;
    let id = ["order_id", "orderId", "checkout_id"]
        .iter()
        .find_map(|k| match p.get(*k) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                Some(s.trim().to_string())
            }
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| m.message_id.clone());
    let amount = ["total", "revenue", "value"]
        .iter()
        .find_map(|k| match p.get(*k) {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|a: &f64| a.is_finite())
        .unwrap_or(0.0);
    Some(EventOrder {
        customer_id: customer_id.to_string(),
        order_key: lifecycle_ingest::order_key(id.as_bytes()),
        day: m.timestamp.as_second().div_euclid(86_400) as i32,
        amount,
        refund,
    })
}

async fn ingest(
    State(app): State<App>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind_of = if kind == "batch" {
        None
    } else {
        match Kind::parse(&kind) {
            Some(k) => Some(k),
            None => return error(StatusCode::NOT_FOUND, format!("no endpoint /v1/{kind}")),
        }
    };
    // Authentication before anything else; no detail on failure.
    let Some(key) = basic_user(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let body = match body_bytes(&headers, body) {
        Ok(b) => b,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let store = app.store.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<Response, StoreError> {
        let mut store = match store.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if store.key_kind(&key)? != Some(KeyKind::Write) {
            return Ok(error(StatusCode::UNAUTHORIZED, "unauthorized"));
        }
        let received_at = jiff::Timestamp::now();
        let messages = match kind_of {
            Some(k) => segment::single(&body, k, received_at).map(|m| vec![m]),
            None => segment::batch(&body, received_at),
        };
        let messages = match messages {
            Ok(m) => m,
            Err(e) => return Ok(error(StatusCode::BAD_REQUEST, e.to_string())),
        };
        let events: Vec<NewEvent> = messages.iter().map(event_of).collect();
        let orders: Vec<EventOrder> = messages
            .iter()
            .zip(&events)
            .filter_map(|(m, e)| order_of(m, &e.customer_id))
            .collect();
        // Durable before the answer.
        let stats = store.ingest(&events, &orders)?;
        Ok((
            StatusCode::OK,
            axum::Json(json!({
                "success": true, "stored": stats.inserted, "duplicates": stats.duplicates,
                "orders_new": stats.orders_new, "orders_updated": stats.orders_updated
            })),
        )
            .into_response())
    })
    .await;
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the store failed: {e}"),
        ),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"),
    }
}
