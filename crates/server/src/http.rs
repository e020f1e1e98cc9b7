//! `lifecycle serve`: the HTTP server.
//!
//! Access is decided in one place, [`access_of`], from the path alone (the
//! README's access table):
//!
//! | path | who |
//! |---|---|
//! | `/healthz`, `/readyz`, `/openapi.json` | open |
//! | `/v1/*` (Segment ingestion) | write key (HTTP Basic, key as user name) |
//! | `/api/v1/*` (customers, segments, models, admin) | secret key (Bearer or Basic) |
//! | `/metrics` | secret key, or open with `--metrics-open` |
//!
//! A wrong or missing key is a 401 that says nothing more.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use base64::Engine as _;
use lifecycle_store::{
    BackupStats, CustomerRecord, EventOrder, KeyKind, NewEvent, ProfileFilter, ProfileRow, Store,
    StoreError, StoreUrl,
};
use serde_json::{Value, json};

use crate::engine::{Clock, Engine, EngineError};
use crate::lowpriority::LowPriority;
use crate::metrics::Metrics;
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

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: String,
    /// Refit and re-score everyone this often (`None`: only on request).
    pub refit_every: Option<Duration>,
    /// Start a simulated clock at this time (ms since 1970) instead of the
    /// system's; it then moves only through `POST /api/v1/admin/clock`.
    pub simulated_clock_ms: Option<i64>,
    /// Serve `/metrics` without a key.
    pub metrics_open: bool,
    /// How often the due-time index is checked.
    pub due_every: Duration,
    /// Raw events older than this are deleted (aggregates stay).
    pub event_retention: Option<Duration>,
    /// Segment rules, scoring and valuation.
    pub settings: crate::engine::Settings,
    /// The time zone in which a purchase day begins and ends.
    pub timezone: jiff::tz::TimeZone,
    /// Order amounts in other currencies are converted with these rates.
    pub currency: Option<Currency>,
    /// `[kpis]`: the insights' input files, options and output folder.
    pub insights: Option<crate::insights::InsightsSettings>,
}

/// The reporting currency and the rates that convert others into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Currency {
    /// e.g. USD.
    pub base: String,
    /// Upper-case code → value of one unit in the base currency.
    pub rates: HashMap<String, f64>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: "127.0.0.1:8080".into(),
            refit_every: Some(Duration::from_secs(24 * 3600)),
            simulated_clock_ms: None,
            metrics_open: false,
            due_every: Duration::from_secs(1),
            event_retention: None,
            settings: crate::engine::Settings::default(),
            timezone: jiff::tz::TimeZone::UTC,
            currency: None,
            insights: None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) engine: Arc<Engine>,
    pub(crate) metrics: Arc<Metrics>,
    /// Key kinds by the key's SHA-256 digest.
    pub(crate) keys: Arc<RwLock<HashMap<String, KeyKind>>>,
    pub(crate) metrics_open: bool,
    pub(crate) currency: Option<Arc<Currency>>,
    /// Checks unsubscribe links.
    pub(crate) signer: Option<lifecycle_deliver::links::Signer>,
    pub(crate) insights: Option<Arc<crate::insights::Insights>>,
    /// The dashboard overview's figures.
    pub(crate) overview: Arc<crate::dashboard::OverviewCache>,
    /// The dashboard's figures computed in the background.
    pub(crate) slow: Arc<crate::dashboard::Slow>,
    /// Where ingested bodies are parsed (below the workers' priority).
    pub(crate) parsers: Arc<LowPriority>,
}

/// Who may call a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Write,
    Secret,
    /// `/metrics`: secret key unless opened by configuration.
    Metrics,
    /// On-site messages: a public key (safe in a web page) or a secret
    /// one; answered with CORS headers.
    Public,
}

/// `/api/v1/customers/{id}/messages` and `.../messages/{key}/dismiss`.
fn is_onsite_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/customers/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    matches!(
        parts.as_slice(),
        [_, "messages"] | [_, "messages", _, "dismiss"]
    )
}

/// The access table: the one place that decides who may call what.
pub fn access_of(path: &str) -> Access {
    if path.starts_with("/v1/") {
        Access::Write
    } else if is_onsite_path(path) {
        Access::Public
    } else if path.starts_with("/u/") || path.starts_with("/c/") {
        // The signed token is the authority.
        Access::Open
    } else if path.starts_with("/api/") {
        Access::Secret
    } else if path == "/metrics" {
        Access::Metrics
    } else {
        Access::Open
    }
}

/// Runs the server until Ctrl-C / SIGTERM, calling `ready` with the bound
/// address (port 0 picks a free one) once it accepts connections. On
/// shutdown, in-flight requests finish and queued writes are committed.
pub fn serve(
    db: &StoreUrl,
    options: &ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let clock = match options.simulated_clock_ms {
        Some(ms) => Clock::simulated(ms, options.timezone.clone()),
        None => Clock::system(options.timezone.clone()),
    };
    let engine = Engine::start(db, clock, options.settings.clone(), 4)?;
    // (Store calls block: they run outside the runtime or on its blocking
    // threads, never on an async worker.)
    let needs_first_run =
        engine.current_run().id.is_none() && engine.read(|s| s.counts())?.orders > 0;
    let delivery = engine.prepare_delivery()?;
    let secret = delivery.secret.clone();
    // Kept outside the runtime until started: its HTTP clients must not be
    // dropped inside it (an early error leaves it here).
    let delivery = std::sync::Mutex::new(Some(delivery));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: options.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr()?;
        if let Some(d) = delivery.lock().ok().and_then(|mut d| d.take()) {
            engine.start_delivery(d, format!("http://{addr}"))?;
        }
        let app = App {
            engine: engine.clone(),
            metrics: Arc::new(Metrics::default()),
            keys: Arc::new(RwLock::new(HashMap::new())),
            metrics_open: options.metrics_open,
            currency: options.currency.clone().map(Arc::new),
            signer: Some(lifecycle_deliver::links::Signer::new(secret.as_bytes())),
            insights: options.insights.clone().map(|settings| {
                Arc::new(crate::insights::Insights {
                    settings,
                    running: std::sync::Mutex::new(()),
                })
            }),
            overview: Arc::default(),
            slow: Arc::default(),
            parsers: Arc::new(LowPriority::start(
                std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
                crate::engine::WRITER_NICE,
                "lifecycle-parse",
            )?),
        };
        // A first run when the store has history but no run yet.
        if needs_first_run {
            let _ = engine.refit().await;
        }
        spawn_schedules(&engine, options);
        crate::dashboard::warm(&app);
        ready(addr);
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown())
            .await?;
        Ok(())
    });
    // Drain: queued writes are committed before the process ends.
    engine.stop();
    result
}

fn spawn_schedules(engine: &Arc<Engine>, options: &ServeOptions) {
    let due = engine.clone();
    let every = options.due_every.max(Duration::from_millis(10));
    // On a simulated clock the due pass runs when the clock is moved (and
    // only then, so that a test can count its work exactly).
    let simulated = engine.clock.is_simulated();
    tokio::spawn(async move {
        if simulated {
            return;
        }
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if due.run_due().await.is_err() {
                return;
            }
        }
    });
    if let (Some(dir), Some(every)) = (
        options.settings.journeys.dir.clone(),
        options.settings.journeys.watch_every,
    ) {
        let watch = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut seen = folder_fingerprint(&dir);
            loop {
                tick.tick().await;
                let now = folder_fingerprint(&dir);
                if now == seen {
                    continue;
                }
                seen = now;
                match watch.moments(crate::engine::MomentsJob::SyncFolder).await {
                    Ok(_) => {}
                    Err(crate::engine::EngineError::ShuttingDown) => return,
                    Err(e) => eprintln!("{e}"),
                }
            }
        });
    }
    if let Some(every) = options.refit_every {
        let refit = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            tick.tick().await; // the first tick is immediate
            loop {
                tick.tick().await;
                let _ = refit.refit().await;
            }
        });
    }
    if let Some(keep) = options.event_retention {
        let expire = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                // Received times are the engine clock's, so is the cut-off.
                let cutoff = expire.clock.now_ms() - keep.as_millis() as i64;
                if expire.expire_events(cutoff).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The moment files and templates of a folder with their sizes and
/// modification times: a change in any of them is a change of the folder.
fn folder_fingerprint(
    dir: &std::path::Path,
) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
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

/// One endpoint: its route and its documentation, from which both the
/// router and `/openapi.json` are built.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub doc: crate::openapi::Doc,
    route: axum::routing::MethodRouter<App>,
}

fn endpoint(
    method: Method,
    path: &'static str,
    route: axum::routing::MethodRouter<App>,
    doc: crate::openapi::Doc,
) -> Endpoint {
    Endpoint {
        method,
        path,
        doc,
        route,
    }
}

/// Every endpoint the server has.
pub fn endpoints() -> Vec<Endpoint> {
    use crate::openapi::docs;
    vec![
        endpoint(
            Method::GET,
            "/healthz",
            get(|| async { "ok" }),
            docs::healthz(),
        ),
        endpoint(Method::GET, "/readyz", get(readyz), docs::readyz()),
        endpoint(Method::GET, "/openapi.json", get(openapi), docs::openapi()),
        endpoint(Method::GET, "/metrics", get(metrics), docs::metrics()),
        endpoint(Method::POST, "/v1/{kind}", post(ingest), docs::ingest()),
        endpoint(
            Method::GET,
            "/api/v1/customers",
            get(list_customers),
            docs::list_customers(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/customers/{id}",
            get(get_customer),
            docs::get_customer(),
        ),
        endpoint(
            Method::DELETE,
            "/api/v1/customers/{id}",
            delete(erase_customer),
            docs::erase_customer(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/customers/{id}/export",
            get(export_customer),
            docs::export_customer(),
        ),
        endpoint(Method::GET, "/api/v1/backup", get(backup), docs::backup()),
        endpoint(
            Method::POST,
            "/api/v1/customers/{id}/merge",
            post(merge_customer),
            docs::merge_customer(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/segments",
            get(segments),
            docs::segments(),
        ),
        endpoint(
            Method::POST,
            "/api/v1/models/refit",
            post(refit),
            docs::refit(),
        ),
        endpoint(Method::GET, "/api/v1/models/runs", get(runs), docs::runs()),
        endpoint(
            Method::POST,
            "/api/v1/admin/clock",
            post(clock),
            docs::clock(),
        ),
        endpoint(Method::GET, "/api/v1/audit", get(audit), docs::audit()),
        endpoint(
            Method::GET,
            "/api/v1/moments",
            get(list_moments),
            docs::list_moments(),
        ),
        endpoint(
            Method::POST,
            "/api/v1/moments",
            post(post_moment),
            docs::save_moment(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/moments/{name}",
            get(get_moment),
            docs::get_moment(),
        ),
        endpoint(
            Method::PUT,
            "/api/v1/moments/{name}",
            put(put_moment),
            docs::put_moment(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/customers/{id}/messages",
            get(onsite_messages),
            docs::onsite_messages(),
        ),
        endpoint(
            Method::POST,
            "/api/v1/customers/{id}/messages/{key}/dismiss",
            post(dismiss_message),
            docs::dismiss_message(),
        ),
        endpoint(Method::GET, "/onsite.js", get(onsite_js), docs::onsite_js()),
        endpoint(
            Method::GET,
            "/api/v1/moments/{name}/audience",
            get(moment_audience),
            docs::moment_audience(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/messages",
            get(list_messages),
            docs::list_messages(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/suppressions",
            get(list_suppressions),
            docs::list_suppressions(),
        ),
        endpoint(
            Method::PUT,
            "/api/v1/suppressions/{list}",
            put(add_suppressions),
            docs::add_suppressions(),
        ),
        endpoint(
            Method::DELETE,
            "/api/v1/suppressions/{list}",
            delete(remove_suppressions),
            docs::remove_suppressions(),
        ),
        endpoint(
            Method::POST,
            "/api/v1/providers/email/events",
            post(email_events),
            docs::email_events(),
        ),
        endpoint(Method::GET, "/c/{token}", get(click), docs::click()),
        endpoint(Method::GET, "/api/v1/kpis", get(kpis), docs::kpis()),
        endpoint(
            Method::GET,
            "/api/v1/kpis/insights",
            get(insights),
            docs::insights(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/kpis/files/{name}",
            get(insight_file),
            docs::insight_file(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/moments/{name}/results",
            get(moment_results),
            docs::moment_results(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/moments/{name}/export",
            get(moment_export),
            docs::moment_export(),
        ),
        endpoint(
            Method::GET,
            "/api/v1/results/global",
            get(global_results),
            docs::global_results(),
        ),
        endpoint(
            Method::POST,
            "/api/v1/moments/{name}/test",
            post(test_send),
            docs::test_send(),
        ),
        endpoint(
            Method::GET,
            "/u/{token}",
            get(unsubscribe),
            docs::unsubscribe(),
        ),
        endpoint(
            Method::POST,
            "/u/{token}",
            post(unsubscribe),
            docs::unsubscribe(),
        ),
    ]
}

fn router(app: App) -> Router {
    let mut router = Router::new();
    for e in endpoints() {
        router = router.route(e.path, e.route);
    }
    router
        .merge(crate::dashboard::routes())
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"success": false, "error": message.into()})),
    )
        .into_response()
}

fn engine_error(e: EngineError) -> Response {
    match e {
        EngineError::Store(StoreError::NotFound(id)) => {
            error(StatusCode::NOT_FOUND, format!("no customer {id}"))
        }
        EngineError::Store(StoreError::Refused(m)) => error(StatusCode::BAD_REQUEST, m),
        EngineError::ShuttingDown => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        EngineError::Store(e) => {
            // The details (the store's name, the database's message) go to
            // the operator's log, not to the caller; 503 makes clients retry.
            eprintln!("error: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                if e.is_disk_full() {
                    "the store's disk is full; nothing was stored; retry later"
                } else {
                    "the store is unavailable; retry later"
                },
            )
        }
    }
}

/// The key of `Authorization: Basic base64(key:)` or `Bearer key`.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        let t = token.trim();
        return (!t.is_empty()).then(|| t.to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next()?.to_string();
    (!user.is_empty()).then_some(user)
}

pub(crate) async fn key_kind(app: &App, key: String) -> Option<KeyKind> {
    // Cached and compared by digest, never by the key itself (no timing
    // about a key's bytes from the comparison).
    let digest = lifecycle_store::key_hash(&key);
    if let Some(k) = app.keys.read().ok().and_then(|m| m.get(&digest).copied()) {
        return Some(k);
    }
    let engine = app.engine.clone();
    let probe = key.clone();
    let kind = tokio::task::spawn_blocking(move || engine.read(|s| s.key_kind(&probe)))
        .await
        .ok()?
        .ok()??;
    if let Ok(mut m) = app.keys.write() {
        m.insert(digest, kind);
    }
    Some(kind)
}

/// The largest request body any route reads (axum's default limit).
const MAX_BODY_BYTES: u64 = 2 << 20;

/// Authorisation (the access table) and request metrics, for every route.
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let needed = match access_of(&path) {
        Access::Metrics if app.metrics_open => Access::Open,
        Access::Metrics => Access::Secret,
        other => other,
    };
    if needed == Access::Public && request.method() == Method::OPTIONS {
        // A browser's CORS preflight.
        let mut r = StatusCode::NO_CONTENT.into_response();
        cors(&mut r);
        return r;
    }
    if needed != Access::Open {
        let want: &[KeyKind] = match needed {
            Access::Write => &[KeyKind::Write],
            Access::Public => &[KeyKind::Public, KeyKind::Secret],
            _ => &[KeyKind::Secret],
        };
        let presented = presented_key(request.headers()).or_else(|| {
            (needed == Access::Public)
                .then(|| query_key(request.uri().query()))
                .flatten()
        });
        let ok = match presented {
            Some(key) => key_kind(&app, key).await.is_some_and(|k| want.contains(&k)),
            None => false,
        };
        if !ok {
            app.metrics.rejected("unauthorized");
            let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
            if needed == Access::Public {
                cors(&mut r);
            }
            if needed == Access::Write {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"lifecycle\""),
                );
            }
            return r;
        }
    }
    // A body declared larger than any route reads is refused from its
    // headers, before it is read (axum's own limit only stops reading).
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared.filter(|n| *n > MAX_BODY_BYTES) {
        app.metrics.rejected("too_large");
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {len} bytes; the limit is {MAX_BODY_BYTES} bytes"),
        );
    }
    let class = match access_of(&path) {
        Access::Write => "ingest",
        Access::Secret => "api",
        _ => "other",
    };
    let mut response = next.run(request).await;
    if needed == Access::Public {
        cors(&mut response);
    }
    if response.status() == StatusCode::BAD_REQUEST {
        app.metrics.rejected("bad_request");
    }
    app.metrics.observe(class, started.elapsed());
    response
}

/// CORS headers for the on-site endpoints (called from shop pages).
fn cors(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

/// `key=` in a query string (the on-site snippet's public key).
fn query_key(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// The body, gunzipped when `Content-Encoding: gzip` (never more than the
/// batch limit and one byte, so the size check still applies).
fn body_bytes(gzip: bool, body: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    if !gzip {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_BATCH_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the gzip body is broken: {e}"))?;
    Ok(std::borrow::Cow::Owned(out))
}

/// The stored event of a message, with the order it carries (its day in
/// the engine's time zone, its amount in the base currency).
fn event_of(m: &Message, clock: &Clock, currency: Option<&Currency>) -> Result<NewEvent, String> {
    Ok(NewEvent {
        user_id: m.user_id.clone(),
        anonymous_id: m.anonymous_id.clone(),
        previous_id: m.previous_id.clone(),
        message_id: m.message_id.clone(),
        kind: m.kind.name().to_string(),
        event: m.event.clone(),
        at_ms: m.timestamp.as_millisecond(),
        received_ms: m.received_at.as_millisecond(),
        payload: payload_of(m),
        traits: (m.kind == Kind::Identify && !m.traits.is_empty()).then(|| m.traits.clone()),
        order: order_of(m, clock, currency)?,
    })
}

/// What is kept of a message besides its columns: traits, properties,
/// context and the ids, each only when present.
fn payload_of(m: &Message) -> String {
    let mut p = serde_json::Map::new();
    for (k, v) in [
        ("traits", &m.traits),
        ("properties", &m.properties),
        ("context", &m.context),
    ] {
        if !v.is_empty() {
            p.insert(k.into(), Value::Object(v.clone()));
        }
    }
    for (k, v) in [
        ("anonymousId", &m.anonymous_id),
        ("previousId", &m.previous_id),
    ] {
        if let Some(v) = v {
            p.insert(k.into(), json!(v));
        }
    }
    Value::Object(p).to_string()
}

/// The order an `Order Completed` / `Order Refunded` track carries (the
/// e-commerce spec's fields, read as the NDJSON importer reads them):
/// keyed by `order_id` (or, without one, the messageId), amount from
/// `total`, `revenue` or `value`, on the timestamp's day in the engine's
/// time zone. With a currency configuration, an order in another currency
/// is converted, and one in a currency without a rate is refused.
fn order_of(
    m: &Message,
    clock: &Clock,
    currency: Option<&Currency>,
) -> Result<Option<EventOrder>, String> {
    let refund = match m.event.as_deref() {
        Some("Order Completed") => false,
        Some("Order Refunded") => true,
        _ => return Ok(None),
    };
    let p = &m.properties;
    let id = ["order_id", "orderId", "checkout_id"]
        .iter()
        .find_map(|k| match p.get(*k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| m.message_id.clone());
    let mut amount = ["total", "revenue", "value"]
        .iter()
        .find_map(|k| match p.get(*k) {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|a: &f64| a.is_finite())
        .unwrap_or(0.0);
    if amount.abs() > MAX_ORDER_AMOUNT {
        return Err(format!(
            "order {id}: the amount {amount} is out of range (at most 10^12 either way)"
        ));
    }
    if let (Some(c), Some(code)) = (currency, p.get("currency").and_then(Value::as_str)) {
        let code = code.trim().to_ascii_uppercase();
        if !code.is_empty() && code != c.base {
            match c.rates.get(&code) {
                Some(rate) => amount *= rate,
                None => {
                    return Err(format!(
                        "order {id}: no rate for currency '{code}' (base {}); add it to [currency.rates] in lifecycle.toml",
                        c.base
                    ));
                }
            }
        }
    }
    Ok(Some(EventOrder {
        order_key: lifecycle_ingest::order_key(id.as_bytes()),
        day: clock.day_of(m.timestamp),
        amount,
        refund,
    }))
}

/// The largest order amount accepted in either direction: beyond it a
/// value is a mistake or an attack, and would swamp every total.
const MAX_ORDER_AMOUNT: f64 = 1e12;

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
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    // Clock skew is corrected against the system's time of receipt.
    let received_at = jiff::Timestamp::now();
    let (engine, currency) = (app.engine.clone(), app.currency.clone());
    let parsed = app
        .parsers
        .run(move || {
            events_of(
                &engine.clock,
                currency.as_deref(),
                kind_of,
                gzip,
                &body,
                received_at,
            )
        })
        .await;
    let events = match parsed {
        Some(Ok(events)) => events,
        Some(Err(message)) => return error(StatusCode::BAD_REQUEST, message),
        None => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request could not be read",
            );
        }
    };
    // Durable before the answer.
    match app.engine.ingest(events).await {
        Ok(stats) => (
            StatusCode::OK,
            axum::Json(json!({
                "success": true, "stored": stats.inserted, "duplicates": stats.duplicates,
                "orders_new": stats.orders_new, "orders_updated": stats.orders_updated,
                "merged": stats.merged, "merges_refused": stats.refused,
            })),
        )
            .into_response(),
        Err(e) => engine_error(e),
    }
}

/// The events of an ingested body (one message of `kind`, or a batch),
/// or why it is refused (a 400). A message without a timestamp
/// happens now on the engine's clock (the system's, or the simulated one
/// of a replay).
fn events_of(
    clock: &Clock,
    currency: Option<&Currency>,
    kind: Option<Kind>,
    gzip: bool,
    body: &[u8],
    received_at: jiff::Timestamp,
) -> Result<Vec<NewEvent>, String> {
    let body = body_bytes(gzip, body)?;
    let clock_now = jiff::Timestamp::from_millisecond(clock.now_ms()).unwrap_or(received_at);
    let messages = match kind {
        Some(k) => segment::single(&body, k, received_at, clock_now).map(|m| vec![m]),
        None => segment::batch(&body, received_at, clock_now),
    }
    .map_err(|e| e.to_string())?;
    let mut events = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let e =
            event_of(m, clock, currency).map_err(|message| format!("message {i}: {message}"))?;
        events.push(e);
    }
    Ok(events)
}

/// Days since 1970-01-01 as an ISO date.
pub(crate) fn date(day: Option<i32>) -> Value {
    let Some(day) = day else {
        return Value::Null;
    };
    let epoch = jiff::civil::date(1970, 1, 1);
    match epoch.checked_add(jiff::Span::new().days(i64::from(day))) {
        Ok(d) => json!(d.to_string()),
        Err(_) => Value::Null,
    }
}

pub(crate) fn time(ms: i64) -> Value {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => json!(t.to_string()),
        Err(_) => Value::Null,
    }
}

fn profile_json(p: &ProfileRow, today: i32) -> Value {
    json!({
        "customer_id": p.customer_id,
        "segment": p.segment,
        "phase": p.phase,
        "orders": {
            "count": p.n_orders,
            "total_spend": p.total_spend,
            "first_order": date(p.first_order),
            "last_order": date(p.last_order),
            "days_since_last_order": p.last_order.map(|d| (today - d).max(0)),
        },
        "rfm": p.r.map(|r| json!({"r": r, "f": p.f, "m": p.m, "code": format!("{}{}{}", r, p.f.unwrap_or(0), p.m.unwrap_or(0))})),
        "value": {
            "clv": p.clv,
            "p_alive": p.p_alive,
            "expected_purchases": p.expected_purchases,
            "expected_next_order": date(p.next_order_day),
            "clv_at_model_run": p.clv_at_run,
            "declining": p.declining,
        },
        "model_run": p.run_id,
        "tripwires": p.tripwires.iter().map(|t| json!({
            "tripwire": t.name, "status": t.status, "since": date(Some(t.since)),
            "started": date(Some(t.started)), "days_overdue": t.days_overdue,
            "probability": t.probability,
        })).collect::<Vec<_>>(),
        "next_review": date(p.due_day),
        "updated_at": time(p.updated_ms),
    })
}

fn record_json(app: &App, c: &CustomerRecord) -> Value {
    let today = app.engine.clock.today();
    let mut v = match &c.profile {
        Some(p) => profile_json(p, today),
        None => json!({"customer_id": c.customer_id}),
    };
    if let Some(segment) = c.profile.as_ref().and_then(|p| {
        app.engine
            .table
            .segments()
            .iter()
            .find(|s| s.name == p.segment)
    }) {
        v["segment_goal"] = json!(segment.goal);
        v["suggested_campaigns"] = json!(segment.campaigns);
    }
    v["ids"] = json!(c.ids);
    v["traits"] = Value::Object(c.traits.clone());
    v["merges"] = Value::Array(
        c.merges
            .iter()
            .map(|m| json!({"customer_id": m.customer_id, "merged_id": m.merged_id, "at": time(m.at_ms), "how": m.how}))
            .collect(),
    );
    v["order_history"] = Value::Array(
        c.orders
            .iter()
            .map(|o| json!({"date": date(Some(o.day)), "amount": o.amount, "refund": !o.is_order}))
            .collect(),
    );
    v["events"] = Value::Array(
        c.events
            .iter()
            .map(|e| {
                let payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
                json!({
                    "messageId": e.message_id, "type": e.kind, "event": e.event,
                    "timestamp": time(e.at_ms), "receivedAt": time(e.received_ms),
                    "properties": payload.get("properties"), "traits": payload.get("traits"),
                })
            })
            .collect(),
    );
    v
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(engine_error(EngineError::Store(e))),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed",
        )),
    }
}

async fn get_customer(State(app): State<App>, Path(id): Path<String>) -> Response {
    match customer_view(&app, id).await {
        Ok(Some(v)) => axum::Json(v).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such customer"),
        Err(r) => r,
    }
}

/// The single customer view as JSON (the API's and the dashboard's).
pub(crate) async fn customer_view(app: &App, id: String) -> Result<Option<Value>, Response> {
    let engine = app.engine.clone();
    let work = move || {
        engine.read(|s| {
            let Some(c) = s.customer(&id, 50)? else {
                return Ok(None);
            };
            let enrolments = s.enrolments(&c.customer_id)?;
            let messages = s.messages(&c.customer_id)?;
            Ok(Some((c, enrolments, messages)))
        })
    };
    // On SQLite a view is a fraction of a millisecond of reads from memory
    // and the operating system's cache: run on the request's own thread,
    // it saves the hand-off to a blocking thread and back (~10-15% of the
    // workers' CPU under the soak). PostgreSQL's round trips (and its
    // outages) stay off the workers.
    let found = if matches!(app.engine.url(), StoreUrl::Sqlite(_)) {
        work().map_err(|e| engine_error(EngineError::Store(e)))?
    } else {
        blocking(work).await?
    };
    let Some((c, enrolments, messages)) = found else {
        return Ok(None);
    };
    let mut v = record_json(app, &c);
    v["journeys"] = Value::Array(
        enrolments
            .iter()
            .map(|e| {
                json!({
                    "moment": e.moment, "version": e.version, "entered": time(e.entered_ms),
                    "step": e.step, "next_step_at": e.wake_ms.map(time),
                    "group": if e.global_control { "global control" } else if e.held_out { "holdout" } else { "treatment" },
                    "ended": e.ended, "ended_at": e.ended_ms.map(time),
                    "goal_reached_at": e.goal_ms.map(time), "goal_value": e.goal_value,
                })
            })
            .collect(),
    );
    v["messages"] = Value::Array(
        messages
            .iter()
            .map(|m| {
                json!({
                    "key": m.key, "moment": m.moment, "version": m.version, "step": m.step,
                    "channel": m.channel, "template": m.template, "status": m.status,
                    "created": time(m.created_ms), "due": time(m.due_ms),
                    "sent": m.sent_ms.map(time), "attempts": m.attempts, "detail": m.detail,
                })
            })
            .collect(),
    );
    Ok(Some(v))
}

/// A text field for CSV (quoted when needed, formulas neutralised).
pub(crate) use lifecycle_insights::csv_text as csv_field;

/// Percent-encodes everything but unreserved ASCII (for a header value
/// that `cursor=` accepts back).
fn percent_encode(s: &str) -> String {
    lifecycle_deliver::templates::percent(s)
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| format!("{x:.6}"))
}

pub(crate) fn csv_response(body: String, name: &str) -> Response {
    attachment(Body::from(body), "text/csv; charset=utf-8", name)
}

/// A response a browser saves as the file `name`.
fn attachment(body: Body, content_type: &'static str, name: &str) -> Response {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// Profiles as customers.csv rows.
pub(crate) fn profiles_csv(rows: &[lifecycle_store::ProfileRow]) -> String {
    let mut out = String::from(
        "customer_id,segment,phase,orders,total_spend,first_order,last_order,r,f,m,clv,p_alive,expected_purchases,expected_next_order,declining\n",
    );
    for p in rows {
        let d = |v: Option<i32>| date(v).as_str().unwrap_or("").to_string();
        let i = |v: Option<i64>| v.map_or_else(String::new, |x| x.to_string());
        out.push_str(&format!(
            "{},{},{},{},{:.2},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&p.customer_id),
            csv_field(&p.segment),
            csv_field(&p.phase),
            p.n_orders,
            p.total_spend,
            d(p.first_order),
            d(p.last_order),
            i(p.r),
            i(p.f),
            i(p.m),
            num(p.clv),
            num(p.p_alive),
            num(p.expected_purchases),
            d(p.next_order_day),
            p.declining
        ));
    }
    out
}

async fn list_customers(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "limit must be 1..=10000"),
    };
    let min_clv = match q.get("min_clv").map(|v| v.parse::<f64>()) {
        None => None,
        Some(Ok(v)) if v.is_finite() => Some(v),
        Some(_) => return error(StatusCode::BAD_REQUEST, "min_clv must be a number"),
    };
    let filter = ProfileFilter {
        segment: q.get("segment").cloned(),
        phase: q.get("phase").cloned(),
        min_clv,
        after: q.get("cursor").cloned(),
        limit,
        ..ProfileFilter::default()
    };
    let csv = q.get("format").is_some_and(|f| f == "csv");
    let engine = app.engine.clone();
    let rows = match blocking(move || engine.read(|s| s.profiles(&filter))).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|p| p.customer_id.clone()))
        .flatten();
    if csv {
        let out = profiles_csv(&rows);
        let mut r = csv_response(out, "customers.csv");
        if let Some(n) = next
            .as_deref()
            .and_then(|n| HeaderValue::from_str(&percent_encode(n)).ok())
        {
            r.headers_mut().insert("x-next-cursor", n);
        }
        return r;
    }
    let today = app.engine.clock.today();
    axum::Json(json!({
        "customers": rows.iter().map(|p| profile_json(p, today)).collect::<Vec<_>>(),
        "next_cursor": next,
    }))
    .into_response()
}

async fn segments(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    let engine = app.engine.clone();
    let totals = match blocking(move || engine.read(|s| s.segment_totals())).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let rows: Vec<(String, String, String, u64, f64, f64)> = app
        .engine
        .table
        .segments()
        .iter()
        .map(|s| {
            let t = totals.iter().find(|t| t.segment == s.name);
            (
                s.name.clone(),
                s.phase.name().to_string(),
                s.goal.clone(),
                t.map_or(0, |t| t.customers),
                t.map_or(0.0, |t| t.revenue),
                t.map_or(0.0, |t| t.clv),
            )
        })
        .collect();
    if q.get("format").is_some_and(|f| f == "csv") {
        let mut out = String::from("segment,phase,customers,revenue,clv\n");
        for (name, phase, _, n, revenue, clv) in &rows {
            out.push_str(&format!(
                "{},{},{n},{revenue:.2},{clv:.2}\n",
                csv_field(name),
                csv_field(phase)
            ));
        }
        return csv_response(out, "segments.csv");
    }
    let run = app.engine.current_run();
    axum::Json(json!({
        "segments": rows.iter().map(|(name, phase, goal, n, revenue, clv)| json!({
            "segment": name, "phase": phase, "goal": goal, "customers": n,
            "revenue": revenue, "clv": clv,
        })).collect::<Vec<_>>(),
        "model_run": run.id,
    }))
    .into_response()
}

fn run_json(id: Option<i64>, at_ms: i64, customers: Option<i64>, params: &str) -> Value {
    json!({
        "id": id,
        "at": time(at_ms),
        "customers": customers,
        "params": serde_json::from_str::<Value>(params).unwrap_or(Value::Null),
    })
}

async fn refit(State(app): State<App>) -> Response {
    let started = Instant::now();
    match app.engine.refit().await {
        Ok(run) => {
            let mut v = run_json(run.id, run.at_ms, None, &crate::runs::run_to_json(&run.run));
            v["seconds"] = json!(started.elapsed().as_secs_f64());
            axum::Json(v).into_response()
        }
        Err(e) => engine_error(e),
    }
}

async fn runs(State(app): State<App>) -> Response {
    let engine = app.engine.clone();
    match blocking(move || engine.read(|s| s.runs(100))).await {
        Ok(runs) => axum::Json(json!({
            "runs": runs.iter().map(|r| {
                let mut v = run_json(Some(r.id), r.at_ms, Some(r.customers), &r.params);
                v["figures"] = r.figures.as_deref().and_then(|f| serde_json::from_str(f).ok()).unwrap_or(Value::Null);
                v
            }).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn merge_customer(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    let from = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("from").and_then(Value::as_str).map(String::from));
    let Some(from) = from else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be {\"from\": \"<customer id to merge into this one>\"}",
        );
    };
    // Both ids may be any id or email of the customers.
    let engine = app.engine.clone();
    let (a, b) = (id.clone(), from.clone());
    let found =
        blocking(move || engine.read(|s| Ok((s.find_customer(&a)?, s.find_customer(&b)?)))).await;
    let (target, source) = match found {
        Ok((Some(t), Some(s))) => (t, s),
        Ok((None, _)) => return error(StatusCode::NOT_FOUND, format!("no customer {id}")),
        Ok((_, None)) => return error(StatusCode::NOT_FOUND, format!("no customer {from}")),
        Err(r) => return r,
    };
    match app.engine.merge(target.clone(), source.clone()).await {
        Ok(_) => axum::Json(json!({"success": true, "customer_id": target, "merged": source}))
            .into_response(),
        Err(e) => engine_error(e),
    }
}

/// The customer an id, alias or email address names, or the response.
async fn resolve(app: &App, id: &str) -> Result<String, Response> {
    let engine = app.engine.clone();
    let key = id.to_string();
    match blocking(move || engine.read(|s| s.find_customer(&key))).await? {
        Some(c) => Ok(c),
        None => Err(error(StatusCode::NOT_FOUND, format!("no customer {id}"))),
    }
}

async fn erase_customer(State(app): State<App>, Path(id): Path<String>) -> Response {
    let customer = match resolve(&app, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match app.engine.erase(customer).await {
        Ok(e) => axum::Json(json!({
            "erased": true,
            "events_deleted": e.events,
            "identities_deleted": e.identities,
            "orders_kept_anonymously": e.orders_kept_anonymously,
            "enrolments_kept_anonymously": e.enrolments_kept_anonymously,
            "messages_cleared": e.messages_cleared,
        }))
        .into_response(),
        Err(e) => engine_error(e),
    }
}

async fn export_customer(State(app): State<App>, Path(id): Path<String>) -> Response {
    let customer = match resolve(&app, &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let engine = app.engine.clone();
    match blocking(move || engine.read(|s| s.export_customer(&customer))).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

/// Sends what a [`std::io::Write`] is given to a response body, 64 KiB at
/// a time; fails once the client has gone.
struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl BodyWriter {
    const CHUNK: usize = 64 << 10;

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(BodyWriter::CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BodyWriter::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The whole store as `lifecycle backup` writes it (gzip), read in one
/// snapshot on a connection of its own and streamed while it is read: the
/// way to back up a store whose events the server holds (a SQLite store
/// with its events tree). A failure part-way ends the response early, so
/// the file is incomplete and `restore` refuses it.
async fn backup(State(app): State<App>) -> Response {
    let url = app.engine.url().clone();
    let now_ms = app.engine.clock.now_ms();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut body = BodyWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(BodyWriter::CHUNK),
        };
        let written = (|| -> Result<BackupStats, String> {
            let mut store = Store::open(&url).map_err(|e| e.to_string())?;
            let mut gz = flate2::write::GzEncoder::new(&mut body, flate2::Compression::fast());
            let stats = store.backup(&mut gz).map_err(|e| e.to_string())?;
            gz.finish()
                .and_then(std::io::Write::flush)
                .map_err(|e| e.to_string())?;
            let detail = json!({"tables": stats.tables, "rows": stats.rows}).to_string();
            store
                .audit(now_ms, "backup", &detail)
                .map_err(|e| e.to_string())?;
            Ok(stats)
        })();
        if let Err(e) = written {
            eprintln!("backup through the API failed: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let chunks = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut r = attachment(
        Body::from_stream(chunks),
        "application/gzip",
        "lifecycle-backup.jsonl.gz",
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn clock(State(app): State<App>, body: Bytes) -> Response {
    if !app.engine.clock.is_simulated() {
        return error(
            StatusCode::CONFLICT,
            "the clock is the system's; start serve with --simulated-clock to move it",
        );
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let seconds = v["advance_days"]
        .as_f64()
        .map(|d| d * 86_400.0)
        .or_else(|| v["advance_seconds"].as_f64());
    let Some(seconds) = seconds.filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e11) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be {\"advance_days\": N} or {\"advance_seconds\": N} with N >= 0",
        );
    };
    app.engine.clock.advance((seconds * 1000.0) as i64);
    // Apply the due-time index now, so the answer reflects the new time.
    match app.engine.run_due().await {
        Ok(moved) => axum::Json(json!({
            "now": time(app.engine.clock.now_ms()), "rescored": moved,
        }))
        .into_response(),
        Err(e) => engine_error(e),
    }
}

async fn list_moments(State(app): State<App>) -> Response {
    let engine = app.engine.clone();
    let result = blocking(move || {
        engine.read(|s| {
            let stored = s.moments()?;
            let mut out = Vec::new();
            for m in stored.iter().filter(|m| m.active) {
                let counts = s.moment_counts(&m.name)?;
                out.push((m.clone(), counts));
            }
            Ok((stored, out))
        })
    })
    .await;
    match result {
        Ok((stored, live)) => {
            let table = &app.engine.table;
            let moments: Vec<Value> = live
                .iter()
                .filter_map(|(m, counts)| {
                    let mut parsed =
                        lifecycle_ingest::config::parse_moment(&m.source, table).ok()?;
                    parsed.version = m.version;
                    Some(crate::journeys::moment_json(&parsed, &stored, counts))
                })
                .collect();
            axum::Json(json!({"moments": moments})).into_response()
        }
        Err(r) => r,
    }
}

async fn get_moment(State(app): State<App>, Path(name): Path<String>) -> Response {
    let engine = app.engine.clone();
    let lookup = name.clone();
    let result = blocking(move || {
        engine.read(|s| {
            let stored = s.moments()?;
            let counts = s.moment_counts(&lookup)?;
            Ok((stored, counts))
        })
    })
    .await;
    match result {
        Ok((stored, counts)) => {
            let Some(latest) = stored.iter().rev().find(|m| m.name == name) else {
                return error(StatusCode::NOT_FOUND, format!("no moment \"{name}\""));
            };
            match lifecycle_ingest::config::parse_moment(&latest.source, &app.engine.table) {
                Ok(mut m) => {
                    m.version = latest.version;
                    let mut v = crate::journeys::moment_json(&m, &stored, &counts);
                    v["active"] = json!(latest.active);
                    axum::Json(v).into_response()
                }
                Err(ps) => error(StatusCode::INTERNAL_SERVER_ERROR, ps.join("; ")),
            }
        }
        Err(r) => r,
    }
}

async fn save_moment(app: App, body: Bytes, name: Option<String>) -> Response {
    let Ok(source) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "the definition is not UTF-8 text");
    };
    match app
        .engine
        .moments(crate::engine::MomentsJob::Save { source, name })
        .await
    {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => engine_error(e),
    }
}

async fn post_moment(State(app): State<App>, body: Bytes) -> Response {
    save_moment(app, body, None).await
}

async fn put_moment(State(app): State<App>, Path(name): Path<String>, body: Bytes) -> Response {
    save_moment(app, body, Some(name)).await
}

async fn onsite_messages(State(app): State<App>, Path(id): Path<String>) -> Response {
    let engine = app.engine.clone();
    let since = app.engine.clock.now_ms() - 7 * 86_400_000;
    let found = blocking(move || {
        engine.read(|s| match s.find_customer(&id)? {
            Some(c) => s.onsite_messages(&c, since).map(|m| Some((c, m))),
            None => Ok(None),
        })
    })
    .await;
    match found {
        Ok(Some((customer, messages))) => axum::Json(json!({
            "customer_id": customer,
            "messages": messages.iter().map(|(key, moment, content)| json!({
                "key": key, "moment": moment, "html": content,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Ok(None) => axum::Json(json!({"messages": []})).into_response(),
        Err(r) => r,
    }
}

async fn dismiss_message(
    State(app): State<App>,
    Path((id, key)): Path<(String, String)>,
) -> Response {
    let engine = app.engine.clone();
    let done = blocking(move || {
        engine.read(|s| match s.find_customer(&id)? {
            Some(c) => s.dismiss(&c, &key),
            None => Ok(false),
        })
    })
    .await;
    match done {
        Ok(true) => axum::Json(json!({"success": true})).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such message"),
        Err(r) => r,
    }
}

/// The embeddable snippet that shows a customer's on-site messages.
const ONSITE_JS: &str = include_str!("onsite.js");

async fn onsite_js() -> Response {
    let mut r = Response::new(Body::from(ONSITE_JS));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r
}

async fn moment_audience(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    use lifecycle_deliver::audiences::{Platform, audience_csv};
    let platform = match q.get("platform").map(String::as_str) {
        None => Platform::Meta,
        Some(p) => match Platform::parse(p) {
            Some(p) => p,
            None => return error(StatusCode::BAD_REQUEST, "platform must be meta or google"),
        },
    };
    let engine = app.engine.clone();
    match blocking(move || engine.read(|s| s.audience_members(&name))).await {
        Ok(members) => csv_response(
            audience_csv(platform, &members),
            &format!("audience-{}.csv", platform.name()),
        ),
        Err(r) => r,
    }
}

async fn list_messages(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let status = q.get("status").cloned().unwrap_or_else(|| "failed".into());
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .min(10_000);
    let engine = app.engine.clone();
    match blocking(move || engine.read(|s| s.messages_by_status(&status, limit))).await {
        Ok(rows) => axum::Json(json!({
            "messages": rows.iter().map(|(customer, m)| json!({
                "customer_id": customer, "key": m.key, "moment": m.moment, "version": m.version,
                "step": m.step, "channel": m.channel, "status": m.status,
                "created": time(m.created_ms), "attempts": m.attempts, "detail": m.detail,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// A list's values from a body: a JSON array of strings, or one per line.
fn values_of(body: &[u8]) -> Result<Vec<String>, String> {
    let text = String::from_utf8_lossy(body);
    if text.trim_start().starts_with('[') {
        return serde_json::from_str::<Vec<String>>(&text)
            .map_err(|e| format!("the body must be a JSON array of strings: {e}"));
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

async fn list_suppressions(State(app): State<App>) -> Response {
    let engine = app.engine.clone();
    match blocking(move || engine.read(|s| s.suppression_lists())).await {
        Ok(lists) => axum::Json(json!({
            "lists": lists.iter().map(|(l, n)| json!({"list": l, "values": n})).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn add_suppressions(
    State(app): State<App>,
    Path(list): Path<String>,
    body: Bytes,
) -> Response {
    let values = match values_of(&body) {
        Ok(v) => v,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let engine = app.engine.clone();
    let now = app.engine.clock.now_ms();
    match blocking(move || engine.read(|s| s.suppress(&list, &values, now))).await {
        Ok(n) => axum::Json(json!({"success": true, "added": n})).into_response(),
        Err(r) => r,
    }
}

async fn remove_suppressions(
    State(app): State<App>,
    Path(list): Path<String>,
    body: Bytes,
) -> Response {
    let values = match values_of(&body) {
        Ok(v) => v,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let engine = app.engine.clone();
    match blocking(move || engine.read(|s| s.unsuppress(&list, &values))).await {
        Ok(n) => axum::Json(json!({"success": true, "removed": n})).into_response(),
        Err(r) => r,
    }
}

/// Hard bounces and complaints in the shapes providers post: a generic
/// `{"type": "bounce"|"complaint", "email"}`, SendGrid's event array
/// (`bounce`, `dropped`, `spamreport`), Mailgun's `event-data` (`failed`
/// with `severity: permanent`, `complained`) and Amazon SES's
/// notifications (`Bounce` of type `Permanent`, `Complaint`).
fn provider_events(v: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut push = |kind: &'static str, email: Option<&str>| {
        if let Some(e) = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| e.contains('@'))
        {
            out.push((kind, e));
        }
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for item in items {
        if let Some(d) = item.get("event-data") {
            let recipient = d["recipient"].as_str();
            match (d["event"].as_str(), d["severity"].as_str()) {
                (Some("failed"), Some("permanent")) => push("bounce", recipient),
                (Some("complained"), _) => push("complaint", recipient),
                _ => {}
            }
            continue;
        }
        if let Some(t) = item["notificationType"].as_str() {
            match t {
                "Bounce" if item["bounce"]["bounceType"] == "Permanent" => {
                    for r in item["bounce"]["bouncedRecipients"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        push("bounce", r["emailAddress"].as_str());
                    }
                }
                "Complaint" => {
                    for r in item["complaint"]["complainedRecipients"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        push("complaint", r["emailAddress"].as_str());
                    }
                }
                _ => {}
            }
            continue;
        }
        let kind = item["type"].as_str().or_else(|| item["event"].as_str());
        match kind {
            Some("bounce" | "dropped") => push("bounce", item["email"].as_str()),
            Some("complaint" | "spamreport") => push("complaint", item["email"].as_str()),
            _ => {}
        }
    }
    out
}

async fn email_events(State(app): State<App>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body must be JSON");
    };
    let events = provider_events(&v);
    let mut suppressed = 0;
    for (kind, email) in &events {
        let engine = app.engine.clone();
        let (list, address) = (format!("email-{kind}s"), email.clone());
        let now = app.engine.clock.now_ms();
        let found = blocking(move || {
            engine.read(|s| {
                s.suppress(&list, std::slice::from_ref(&address), now)?;
                s.find_customer(&address)
            })
        })
        .await;
        match found {
            Ok(Some(customer)) => {
                match app
                    .engine
                    .consent(
                        customer,
                        lifecycle_moments::Channel::Email,
                        false,
                        (*kind).into(),
                    )
                    .await
                {
                    Ok(_) => suppressed += 1,
                    Err(e) => return engine_error(e),
                }
            }
            Ok(None) => {}
            Err(r) => return r,
        }
    }
    axum::Json(
        json!({"success": true, "events": events.len(), "customers_unsubscribed": suppressed}),
    )
    .into_response()
}

async fn test_send(State(app): State<App>, Path(name): Path<String>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be {\"step\": N, \"to\": [\"seed@example.com\"], \"customer\": \"optional id\"}",
        );
    };
    let step = v["step"].as_u64().unwrap_or(1) as usize;
    let to: Vec<String> = v["to"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    let customer = v["customer"].as_str().map(str::to_string);
    let engine = app.engine.clone();
    let result = tokio::task::spawn_blocking(move || {
        let options = engine.journey_options.clone();
        let table = engine.table.clone();
        engine.read(|s| {
            Ok(crate::journeys::test_send(
                &options,
                s,
                &table,
                &name,
                step,
                &to,
                customer.as_deref(),
            ))
        })
    })
    .await;
    match result {
        Ok(Ok(Ok(sent))) => axum::Json(json!({"success": true, "sent": sent})).into_response(),
        Ok(Ok(Err(message))) => error(StatusCode::BAD_REQUEST, message),
        Ok(Err(e)) => engine_error(EngineError::Store(e)),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"),
    }
}

/// Retention, cohorts and concentration over the stored orders, as of today.
async fn kpis(State(app): State<App>) -> Response {
    let engine = app.engine.clone();
    let today = app.engine.clock.today();
    let result = blocking(move || {
        let builder = engine.read(|s| s.load())?;
        let mut k = lifecycle_kpis::KpiBuilder::new();
        builder.for_each_customer_orders(today, |_, entries| k.add(entries));
        Ok(k.finish())
    })
    .await;
    match result {
        Ok(k) => {
            let label = lifecycle_kpis::month_label;
            axum::Json(json!({
                "as_of": date(Some(today)),
                "customers": k.customers,
                "repeat_rate": k.repeat_rate,
                "pareto_top20_share": k.pareto_top20_share,
                "pareto_top_n": k.pareto_top_n,
                "gini": k.gini,
                "days_between_orders": {"count": k.gaps.count, "mean": k.gaps.mean, "p25": k.gaps.p25,
                    "p50": k.gaps.p50, "p75": k.gaps.p75, "p90": k.gaps.p90},
                "period_retention": k.period_retention.iter().map(|p| json!({
                    "month": label(p.month), "previous_active": p.previous_active,
                    "retained": p.retained, "rate": p.rate(),
                })).collect::<Vec<_>>(),
                "quarterly_retention": k.quarterly_retention.iter().map(|p| json!({
                    "quarter": lifecycle_kpis::Period::Quarter.label(p.month),
                    "previous_active": p.previous_active, "retained": p.retained, "rate": p.rate(),
                })).collect::<Vec<_>>(),
                "yearly_retention": k.yearly_retention.iter().map(|p| json!({
                    "year": lifecycle_kpis::Period::Year.label(p.month),
                    "previous_active": p.previous_active, "retained": p.retained, "rate": p.rate(),
                })).collect::<Vec<_>>(),
                "cohorts": k.cohorts.iter().map(|c| json!({
                    "cohort": label(c.month), "size": c.size, "active": c.active, "revenue": c.revenue,
                })).collect::<Vec<_>>(),
            }))
            .into_response()
        }
        Err(r) => r,
    }
}

/// The insights over the stored orders (`[kpis]` of lifecycle.toml).
async fn insights(State(app): State<App>) -> Response {
    let Some(insights) = app.insights.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "no [kpis] section in lifecycle.toml: add one (its files are optional: without them the stored identify traits and Order Completed, survey, review, return and ticket events are used)",
        );
    };
    let engine = app.engine.clone();
    let today = app.engine.clock.today();
    match tokio::task::spawn_blocking(move || crate::insights::run(&engine, &insights, today)).await
    {
        Ok(Ok(mut v)) => {
            v["as_of"] = date(Some(today));
            axum::Json(v).into_response()
        }
        Ok(Err(crate::insights::InsightsRunError::Store(e))) => engine_error(EngineError::Store(e)),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"),
    }
}

/// A file written by the insights.
async fn insight_file(State(app): State<App>, Path(name): Path<String>) -> Response {
    let Some(insights) = app.insights.clone() else {
        return error(StatusCode::NOT_FOUND, "no [kpis] section in lifecycle.toml");
    };
    if !crate::insights::FILES.contains(&name.as_str()) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no insight file named {name}"),
        );
    }
    let path = insights.settings.out.join(&name);
    match tokio::task::spawn_blocking(move || std::fs::read(&path)).await {
        Ok(Ok(bytes)) => (
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            bytes,
        )
            .into_response(),
        _ => error(
            StatusCode::NOT_FOUND,
            format!("{name} has not been written yet: GET /api/v1/kpis/insights first"),
        ),
    }
}

fn alpha_of(q: &HashMap<String, String>) -> Result<f64, String> {
    match q.get("alpha") {
        None => Ok(0.05),
        Some(a) => a
            .parse::<f64>()
            .ok()
            .filter(|a| *a > 0.0 && *a < 0.5)
            .ok_or_else(|| format!("alpha={a}: expected a level between 0 and 0.5")),
    }
}

/// The rows of a moment and its live definition (holdout, goal window).
pub(crate) async fn moment_rows(
    app: &App,
    name: String,
) -> Result<(Vec<lifecycle_store::MomentRow>, lifecycle_moments::Moment), Response> {
    let engine = app.engine.clone();
    let found = blocking(move || read_moment(&engine, &name)).await?;
    found.ok_or_else(|| error(StatusCode::NOT_FOUND, "no such moment"))
}

/// A moment's latest definition and every enrolment's outcome row
/// (blocking; `None` when there is no such moment).
pub(crate) fn read_moment(
    engine: &crate::engine::Engine,
    name: &str,
) -> Result<Option<(Vec<lifecycle_store::MomentRow>, lifecycle_moments::Moment)>, StoreError> {
    engine.read(|s| {
        let Some(latest) = s.moments()?.into_iter().rev().find(|m| m.name == name) else {
            return Ok(None);
        };
        let Ok(m) = lifecycle_ingest::config::parse_moment(&latest.source, &engine.table) else {
            return Ok(None);
        };
        let rows = s.moment_rows(name, i64::from(m.goal.within_days))?;
        Ok(Some((rows, m)))
    })
}

async fn moment_results(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let alpha = match alpha_of(&q) {
        Ok(a) => a,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let (rows, m) = match moment_rows(&app, name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut v = crate::results::moment_results(
        &rows,
        m.holdout,
        app.engine.journey_options.global_control,
        alpha,
    );
    v["moment"] = json!(m.name);
    v["window_days"] = json!(m.goal.within_days);
    if q.get("format").map(String::as_str) == Some("html") {
        let page = crate::results::readout_html(&format!("{}: lift", m.name), &v);
        let mut r = Response::new(Body::from(page));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return r;
    }
    axum::Json(v).into_response()
}

async fn moment_export(State(app): State<App>, Path(name): Path<String>) -> Response {
    match moment_rows(&app, name).await {
        Ok((rows, m)) => csv_response(
            crate::results::moment_csv(&rows),
            &format!(
                "{}-customers.csv",
                m.name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            ),
        ),
        Err(r) => r,
    }
}

async fn global_results(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let alpha = match alpha_of(&q) {
        Ok(a) => a,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let days = match q.get("days").map(|d| d.parse::<i64>()) {
        None => 90,
        Some(Ok(d)) if (1..=3650).contains(&d) => d,
        Some(_) => return error(StatusCode::BAD_REQUEST, "days: expected 1 to 3650"),
    };
    let engine = app.engine.clone();
    match blocking(move || crate::results::global_readout(&engine, days, alpha)).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

/// A tracked link: records `Email Link Clicked` for the customer, then
/// redirects to the (signed, so never an open redirect) URL.
async fn click(State(app): State<App>, Path(token): Path<String>) -> Response {
    let Some(parts) = app.signer.as_ref().and_then(|s| s.verify_parts(&token, 4)) else {
        return error(StatusCode::NOT_FOUND, "not a valid link");
    };
    let [customer, moment, key, url] = [&parts[0], &parts[1], &parts[2], &parts[3]];
    let now = app.engine.clock.now_ms();
    let event = NewEvent {
        user_id: Some(customer.clone()),
        message_id: format!("click:{key}:{now}"),
        kind: "track".into(),
        event: Some("Email Link Clicked".into()),
        at_ms: now,
        received_ms: now,
        payload: json!({"properties": {"url": url, "moment": moment, "message": key}}).to_string(),
        ..NewEvent::default()
    };
    if let Err(e) = app.engine.ingest(vec![event]).await {
        // The customer still gets where they clicked.
        eprintln!("click {key}: {e}");
    }
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn unsubscribe(State(app): State<App>, Path(token): Path<String>) -> Response {
    let signer = match app.signer.as_ref() {
        Some(s) => s.clone(),
        None => return error(StatusCode::NOT_FOUND, "not a valid link"),
    };
    let Some((customer, channel)) = signer.verify(&token) else {
        return error(StatusCode::NOT_FOUND, "not a valid link");
    };
    let Some(ch) = lifecycle_moments::Channel::parse(&channel) else {
        return error(StatusCode::NOT_FOUND, "not a valid link");
    };
    match app
        .engine
        .consent(customer, ch, false, "unsubscribe link".into())
        .await
    {
        Ok(true) => {
            let mut r = Response::new(Body::from(format!(
                "<!doctype html><meta charset=utf-8><title>Unsubscribed</title><p>You are unsubscribed: no more {channel} messages from us.</p>"
            )));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "not a valid link"),
        Err(e) => engine_error(e),
    }
}

async fn audit(State(app): State<App>) -> Response {
    let engine = app.engine.clone();
    match blocking(move || engine.read(|s| s.audit_log(500))).await {
        Ok(rows) => axum::Json(json!({
            "entries": rows.iter().map(|(at, action, detail)| json!({
                "at": time(*at), "action": action,
                "detail": serde_json::from_str::<Value>(detail).unwrap_or(json!(detail)),
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// Readiness: the store answers a query on a read connection (a load
/// balancer sends traffic elsewhere while, say, PostgreSQL restarts). Not
/// logged when it fails: probes come every few seconds.
async fn readyz(State(app): State<App>) -> Response {
    let engine = app.engine.clone();
    match tokio::task::spawn_blocking(move || engine.read(|s| s.schema_version())).await {
        Ok(Ok(_)) => "ready".into_response(),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable"),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let c = &app.engine.counters;
    let counters = [
        (
            "lifecycle_events_stored_total",
            "Events stored",
            &c.events_stored,
        ),
        (
            "lifecycle_events_duplicate_total",
            "Events ignored as duplicate messageIds",
            &c.events_duplicate,
        ),
        (
            "lifecycle_orders_new_total",
            "Orders added by events",
            &c.orders_new,
        ),
        (
            "lifecycle_orders_updated_total",
            "Orders updated by re-sent events",
            &c.orders_updated,
        ),
        (
            "lifecycle_merges_total",
            "Anonymous visitors merged into customers",
            &c.merges,
        ),
        (
            "lifecycle_merges_refused_total",
            "Implicit merges of two known customers refused",
            &c.merges_refused,
        ),
        (
            "lifecycle_segment_events_total",
            "Segment Entered/Exited events emitted",
            &c.segment_events,
        ),
        (
            "lifecycle_commits_total",
            "Write transactions committed",
            &c.commits,
        ),
        (
            "lifecycle_due_rescored_total",
            "Customers re-scored by the due-time index",
            &c.due_rescored,
        ),
        ("lifecycle_refits_total", "Model runs", &c.refits),
        (
            "lifecycle_journey_wakes_total",
            "Journey waits ended by the timer pass",
            &c.journeys_woken,
        ),
        (
            "lifecycle_messages_sent_total",
            "Messages handed to a channel",
            &c.messages_sent,
        ),
        (
            "lifecycle_messages_failed_total",
            "Messages given up (dead letters)",
            &c.messages_failed,
        ),
        (
            "lifecycle_messages_retried_total",
            "Delivery attempts that failed and will be retried",
            &c.messages_retried,
        ),
        (
            "lifecycle_messages_suppressed_total",
            "Messages not sent on purpose (consent, frequency cap)",
            &c.messages_suppressed,
        ),
        (
            "lifecycle_messages_deferred_total",
            "Messages deferred by quiet hours",
            &c.messages_deferred,
        ),
    ];
    let mut out = String::new();
    for (name, help, v) in counters {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            v.load(Ordering::Relaxed)
        ));
    }
    for (name, help, us) in [
        (
            "lifecycle_writer_work_seconds_total",
            "The writer's time running write transactions' statements",
            &c.writer_work_us,
        ),
        (
            "lifecycle_writer_commit_seconds_total",
            "The writer's time committing (the log written and synced, checkpoints)",
            &c.writer_commit_us,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {:.6}\n",
            us.load(Ordering::Relaxed) as f64 / 1e6
        ));
    }
    app.metrics.render(&mut out);
    let mut r = Response::new(Body::from(out));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_text_cannot_become_a_formula() {
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        assert_eq!(csv_field("@x"), "'@x");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("Champions"), "Champions");
    }

    #[test]
    fn cursors_are_header_safe() {
        assert_eq!(percent_encode("josé 1"), "jos%C3%A9%201");
        assert_eq!(percent_encode("u-1_2.3~"), "u-1_2.3~");
    }

    #[test]
    fn the_access_table() {
        assert_eq!(access_of("/healthz"), Access::Open);
        assert_eq!(access_of("/readyz"), Access::Open);
        assert_eq!(access_of("/openapi.json"), Access::Open);
        assert_eq!(access_of("/v1/batch"), Access::Write);
        assert_eq!(access_of("/api/v1/customers/x"), Access::Secret);
        assert_eq!(access_of("/metrics"), Access::Metrics);
    }

    #[test]
    fn on_site_paths_are_public() {
        assert_eq!(access_of("/api/v1/customers/c1/messages"), Access::Public);
        assert_eq!(
            access_of("/api/v1/customers/c1/messages/k/dismiss"),
            Access::Public
        );
        assert_eq!(access_of("/api/v1/customers/c1/merge"), Access::Secret);
        assert_eq!(access_of("/u/token"), Access::Open);
        assert_eq!(access_of("/c/token"), Access::Open);
    }

    #[test]
    fn provider_notifications() {
        let sendgrid = json!([
            {"email": "A@x.org", "event": "bounce"},
            {"email": "b@x.org", "event": "spamreport"},
            {"email": "c@x.org", "event": "delivered"},
        ]);
        assert_eq!(
            provider_events(&sendgrid),
            vec![
                ("bounce", "a@x.org".to_string()),
                ("complaint", "b@x.org".to_string())
            ]
        );
        let mailgun = json!({"event-data": {"event": "failed", "severity": "permanent", "recipient": "d@x.org"}});
        assert_eq!(
            provider_events(&mailgun),
            vec![("bounce", "d@x.org".to_string())]
        );
        let soft = json!({"event-data": {"event": "failed", "severity": "temporary", "recipient": "d@x.org"}});
        assert!(provider_events(&soft).is_empty());
        let ses = json!({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent",
            "bouncedRecipients": [{"emailAddress": "e@x.org"}]}});
        assert_eq!(
            provider_events(&ses),
            vec![("bounce", "e@x.org".to_string())]
        );
        let ses_complaint = json!({"notificationType": "Complaint", "complaint": {
            "complainedRecipients": [{"emailAddress": "f@x.org"}]}});
        assert_eq!(
            provider_events(&ses_complaint),
            vec![("complaint", "f@x.org".to_string())]
        );
        assert_eq!(
            provider_events(&json!({"type": "bounce", "email": "g@x.org"})),
            vec![("bounce", "g@x.org".to_string())]
        );
    }
}
