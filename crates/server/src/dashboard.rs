//! The dashboard: server-rendered pages under `/app` (templates and CSS
//! compiled into the binary, no script needed), on the same data as the
//! API. Sign-in with a secret key sets a session cookie (HMAC-signed with
//! the server's secret, so any instance on the same store accepts it;
//! HttpOnly, SameSite=Strict, Secure behind HTTPS); every form that changes
//! state carries a CSRF token derived from the session. One small script of
//! our own (`live.js`) keeps the overview's figures current.
//!
//! Pages: the overview (key figures and their change between runs, the
//! segment map, flows between segments), a segment (figures, anomalies,
//! customers sorted, filtered, paged, exported), the single customer view
//! (scores with their model run, timeline), the moments (funnel,
//! definition, lift readouts, the global control), the tripwires (norms,
//! evidence, backtests, value at stake), the insights and the models
//! (parameters, tracking chart, CLV distribution). Figures that read every
//! customer come from background snapshots ([`OverviewCache`],
//! [`Background`]), so no page waits on a scan.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use lifecycle_store::{
    KeyKind, ProfileFilter, ProfileOrder, SegmentMove, SegmentTotal, StoreCounts, TripwireTotal,
};
use serde_json::{Value, json};

use crate::http::App;

const COOKIE: &str = "lc_session";
/// Sessions last 12 hours.
const SESSION_MS: i64 = 12 * 3600 * 1000;
/// Customers per page of a segment.
const PAGE: usize = 50;

/// The overview's figures take two scans of the store (about a second at
/// 10^6 customers on SQLite), too slow for every page view: they are kept
/// here and refreshed in the background once the store has changed, at
/// most every few seconds. The first view after a start computes them.
#[derive(Default)]
pub(crate) struct OverviewCache {
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    refreshing: AtomicBool,
}

pub(crate) struct Snapshot {
    /// What the store had seen (see [`Version`]).
    version: Version,
    taken: Instant,
    /// How long it took: cheap snapshots are simply taken again.
    cost: Duration,
    at_ms: i64,
    counts: StoreCounts,
    totals: Vec<SegmentTotal>,
    tripwires: Vec<TripwireTotal>,
    /// Segment moves of the last [`MOVES_DAYS`] days.
    moves: Vec<SegmentMove>,
    /// The last two model runs' figures (newest first; JSON objects).
    runs: Vec<(i64, i64, Value)>,
}

/// How far back the overview's flows may look.
const MOVES_DAYS: i64 = 90;

/// How stale the overview may be while the store changes.
const OVERVIEW_EVERY: Duration = Duration::from_secs(5);

/// What the store had seen: commits, due re-scores, the model run in
/// force and finished refits (a run is in force while it re-scores
/// everyone; its figures are written when it has finished).
type Version = (u64, u64, Option<i64>, u64);

fn version(app: &App) -> Version {
    let c = &app.engine.counters;
    (
        c.commits.load(Ordering::Relaxed),
        c.due_rescored.load(Ordering::Relaxed),
        app.engine.current_run().id,
        c.refits.load(Ordering::Relaxed),
    )
}

fn take_snapshot(app: &App) -> Result<Snapshot, lifecycle_store::StoreError> {
    let version = version(app);
    let at_ms = app.engine.clock.now_ms();
    let started = Instant::now();
    let since = at_ms.div_euclid(86_400_000) - MOVES_DAYS;
    let (counts, totals, tripwires, moves, stored) = app.engine.read(|st| {
        Ok((
            st.counts()?,
            st.segment_totals()?,
            st.tripwire_totals()?,
            st.segment_moves(since)?,
            st.runs(2)?,
        ))
    })?;
    let runs = stored
        .iter()
        .map(|r| {
            let f = r
                .figures
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok());
            (r.id, r.at_ms, f.unwrap_or(Value::Null))
        })
        .collect();
    Ok(Snapshot {
        version,
        taken: Instant::now(),
        cost: started.elapsed(),
        at_ms,
        counts,
        totals,
        tripwires,
        moves,
        runs,
    })
}

/// Takes the first snapshot in the background (at start, so that the
/// first view of the overview is fast too).
pub(crate) fn warm(app: &App) {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        if let Ok(fresh) = take_snapshot(&app)
            && let Ok(mut slot) = app.overview.snapshot.lock()
            && slot.is_none()
        {
            *slot = Some(Arc::new(fresh));
        }
    });
}

/// The current snapshot: taken now when there is none or when taking one
/// is cheap (under 50 ms: a small store), else the one kept (a refresh
/// starts in the background when it is out of date).
async fn overview_data(app: &App) -> Result<Arc<Snapshot>, Response> {
    let cache = app.overview.clone();
    let kept = cache
        .snapshot
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .filter(|s| s.version == version(app) || s.cost >= Duration::from_millis(50));
    if let Some(s) = kept {
        let stale = s.version != version(app) && s.taken.elapsed() >= OVERVIEW_EVERY;
        if stale && !cache.refreshing.swap(true, Ordering::AcqRel) {
            let app = app.clone();
            tokio::task::spawn_blocking(move || {
                if let Ok(fresh) = take_snapshot(&app)
                    && let Ok(mut slot) = app.overview.snapshot.lock()
                {
                    *slot = Some(Arc::new(fresh));
                }
                app.overview.refreshing.store(false, Ordering::Release);
            });
        }
        return Ok(s);
    }
    let for_task = app.clone();
    let fresh = Arc::new(crate::http::blocking(move || take_snapshot(&for_task)).await?);
    if let Ok(mut slot) = cache.snapshot.lock() {
        *slot = Some(fresh.clone());
    }
    Ok(fresh)
}

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("dashboard/layout.html")),
            ("login.html", include_str!("dashboard/login.html")),
            ("overview.html", include_str!("dashboard/overview.html")),
            ("segment.html", include_str!("dashboard/segment.html")),
            ("customer.html", include_str!("dashboard/customer.html")),
            ("moments.html", include_str!("dashboard/moments.html")),
            ("moment.html", include_str!("dashboard/moment.html")),
            ("tripwires.html", include_str!("dashboard/tripwires.html")),
            ("models.html", include_str!("dashboard/models.html")),
            ("insights.html", include_str!("dashboard/insights.html")),
            ("readout.html", include_str!("dashboard/readout.html")),
        ] {
            if let Err(e) = env.add_template(name, source) {
                eprintln!("dashboard template {name}: {e}");
            }
        }
        env
    })
}

/// The pages' routes (the access guard lets them through; each page checks
/// the session itself).
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/app", get(overview))
        .route("/app/login", get(login_page).post(login))
        .route("/app/logout", post(logout))
        .route("/app/segments/{name}", get(segment))
        .route("/app/segments/{name}/customers.csv", get(segment_csv))
        .route(
            "/app/segments/{name}/audience/{platform}",
            get(segment_audience),
        )
        .route("/app/customers/{id}", get(customer))
        .route("/app/moments", get(moments))
        .route("/app/tripwires", get(tripwires))
        .route("/app/models", get(models))
        .route("/app/insights", get(insights_page).post(insights_refresh))
        .route("/app/moments/{name}", get(moment))
        .route("/app/static/app.css", get(css))
        .route("/app/static/icon.svg", get(icon))
        .route("/app/static/live.js", get(live_js))
        .route("/app/overview.json", get(overview_json))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The session cookie's value when it is present, signed and unexpired.
fn session(app: &App, headers: &HeaderMap) -> Option<String> {
    let signer = app.signer.as_ref()?;
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")))?
        .to_string();
    let parts = signer.verify_parts(&value, 2)?;
    let expires: i64 = parts.get(1)?.parse().ok()?;
    (parts[0] == "session" && expires > now_ms()).then_some(value)
}

fn csrf(app: &App, session: &str) -> String {
    app.signer
        .as_ref()
        .map(|s| s.sign_parts(&["csrf", session]))
        .unwrap_or_default()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn render(name: &str, ctx: Value) -> Response {
    match templates().get_template(name).and_then(|t| t.render(&ctx)) {
        Ok(html) => {
            let mut r = Html(html).into_response();
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
            );
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        Err(e) => {
            eprintln!("dashboard: {name}: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn",
            )
                .into_response()
        }
    }
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The sign-in page for a request without a session.
fn to_login(path: &str) -> Response {
    see_other(&format!(
        "/app/login?next={}",
        lifecycle_deliver::templates::percent(path)
    ))
}

/// What every page's layout shows.
fn base(app: &App, session: Option<&str>, page: &str) -> Value {
    json!({
        "csrf": session.map(|s| csrf(app, s)),
        "page": page,
        "today": crate::http::date(Some(app.engine.clock.today())),
        "model_run": app.engine.current_run().id,
    })
}

fn extend(mut base: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

fn money(v: f64) -> String {
    lifecycle_report::money(v)
}

fn phase_key(phase: &str) -> String {
    phase.to_ascii_lowercase().replace(' ', "-")
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("dashboard/app.css"),
    )
        .into_response()
}

async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("dashboard/icon.svg"),
    )
        .into_response()
}

async fn login_page(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    render(
        "login.html",
        extend(
            base(&app, None, "login"),
            json!({"next": q.get("next").cloned().unwrap_or_default()}),
        ),
    )
}

#[derive(serde::Deserialize)]
struct LoginForm {
    key: String,
    #[serde(default)]
    next: String,
}

/// Only paths of the dashboard itself (no other site, no `//host`).
fn safe_next(next: &str) -> &str {
    if next.starts_with("/app") && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/app"
    }
}

/// The `Secure` attribute when the dashboard is reached over HTTPS.
fn secure(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https { "; Secure" } else { "" }
}

async fn login(State(app): State<App>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let kind = crate::http::key_kind(&app, f.key.trim().to_string()).await;
    let Some(signer) = app
        .signer
        .as_ref()
        .filter(|_| kind == Some(KeyKind::Secret))
    else {
        let mut r = render(
            "login.html",
            extend(
                base(&app, None, "login"),
                json!({"next": f.next, "error": "That is not a secret key of this store."}),
            ),
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let value = signer.sign_parts(&["session", &(now_ms() + SESSION_MS).to_string()]);
    let mut r = see_other(safe_next(&f.next));
    let cookie = format!(
        "{COOKIE}={value}; Path=/app; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_MS / 1000,
        secure(&headers)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(app): State<App>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let Some(s) = session(&app, &headers) else {
        return see_other("/app/login");
    };
    if !same(&f.csrf, &csrf(&app, &s)) {
        return (
            StatusCode::FORBIDDEN,
            "the form has expired: reload the page",
        )
            .into_response();
    }
    let mut r = see_other("/app/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("lc_session=; Path=/app; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

/// The flows' period: 7, 30 (the default) or 90 days.
fn period(q: &HashMap<String, String>) -> i64 {
    match q.get("days").map(String::as_str) {
        Some("7") => 7,
        Some("90") => 90,
        _ => 30,
    }
}

async fn overview(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(s) = session(&app, &headers) else {
        return to_login("/app");
    };
    let snapshot = match overview_data(&app).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let days = period(&q);
    let mut figures = overview_figures(&app, &snapshot);
    if let (Some(f), Value::Object(more)) = (figures.as_object_mut(), flows(&snapshot, days)) {
        f.extend(more);
    }
    // Each segment's net change over the period beside its size.
    let net = figures["net"].clone();
    if let Some(segments) = figures["segments"].as_array_mut() {
        for seg in segments {
            let d = net
                .as_array()
                .and_then(|n| n.iter().find(|x| x["segment"] == seg["segment"]))
                .map_or(0, |x| x["net"].as_i64().unwrap_or(0));
            seg["net_text"] = json!(format!("{d:+}"));
        }
    }
    render(
        "overview.html",
        extend(base(&app, Some(&s), "overview"), figures),
    )
}

/// The overview's figures from a snapshot (the page's and overview.json's).
fn overview_figures(app: &App, snapshot: &Snapshot) -> Value {
    let (counts, totals) = (&snapshot.counts, &snapshot.totals);
    let all: u64 = totals.iter().map(|t| t.customers).sum();
    let segments: Vec<Value> = app
        .engine
        .table
        .segments()
        .iter()
        .map(|seg| {
            let t = totals.iter().find(|t| t.segment == seg.name);
            let n = t.map_or(0, |t| t.customers);
            json!({
                "segment": seg.name, "phase": seg.phase.name(), "phase_key": phase_key(seg.phase.name()),
                "goal": seg.goal, "customers": n,
                // Tiles grow with their share (a floor keeps empty ones visible).
                "weight": format!("{:.3}", 0.15 + if all > 0 { 10.0 * n as f64 / all as f64 } else { 0.0 }),
                "revenue_text": money(t.map_or(0.0, |t| t.revenue)),
                "clv_text": money(t.map_or(0.0, |t| t.clv)),
            })
        })
        .collect();
    let phases: Vec<Value> = lifecycle_rfm::Phase::ALL
        .iter()
        .map(|p| json!({"name": p.name(), "key": phase_key(p.name())}))
        .collect();
    json!({
        "counts": {"customers": counts.customers, "orders": counts.orders},
        "customers": counts.customers,
        "orders": counts.orders,
        "buyers": totals.iter().filter(|t| !t.segment.contains("Visitors")).map(|t| t.customers).sum::<u64>(),
        "revenue": money(counts.amount),
        "equity": money(totals.iter().map(|t| t.clv).sum()),
        "segments": segments,
        "phases": phases,
        "figures_at": when(snapshot.at_ms),
    })
}

/// A change between two figures in words: "▲ 3.1%" (`None` without both).
fn change(now: Option<f64>, before: Option<f64>, points: bool) -> Option<String> {
    let (now, before) = (now?, before?);
    let delta = if points {
        100.0 * (now - before)
    } else if before != 0.0 {
        100.0 * (now - before) / before.abs()
    } else {
        return None;
    };
    let arrow = if delta > 0.0 {
        "▲"
    } else if delta < 0.0 {
        "▼"
    } else {
        "="
    };
    Some(format!(
        "{arrow} {:.1}{}",
        delta.abs(),
        if points { " pts" } else { "%" }
    ))
}

/// The figures the model runs took (active customers, retention, equity)
/// with their change since the run before, and the segment flows of the
/// last `days` days: who moved from where to where, and each segment's
/// size then (today's size less those who came, plus those who left).
fn flows(snapshot: &Snapshot, days: i64) -> Value {
    let today = snapshot.at_ms.div_euclid(86_400_000);
    let since = today - days + 1;
    let mut pairs: Vec<(String, String, u64)> = Vec::new();
    let mut net: HashMap<&str, i64> = HashMap::new();
    for m in snapshot.moves.iter().filter(|m| m.day >= since) {
        match pairs.iter_mut().find(|p| p.0 == m.from && p.1 == m.to) {
            Some(p) => p.2 += m.customers,
            None => pairs.push((m.from.clone(), m.to.clone(), m.customers)),
        }
        *net.entry(m.to.as_str()).or_default() += m.customers as i64;
        if !m.from.is_empty() {
            *net.entry(m.from.as_str()).or_default() -= m.customers as i64;
        }
    }
    pairs.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    let moved: u64 = pairs.iter().filter(|p| !p.0.is_empty()).map(|p| p.2).sum();
    let arrivals: u64 = pairs.iter().filter(|p| p.0.is_empty()).map(|p| p.2).sum();
    let top: Vec<Value> = pairs
        .iter()
        .take(12)
        .map(|(from, to, n)| {
            json!({"from": if from.is_empty() { "(new customers)" } else { from }, "to": to, "customers": n})
        })
        .collect();
    let sizes: Vec<Value> = snapshot
        .totals
        .iter()
        .map(|t| {
            let d = net.get(t.segment.as_str()).copied().unwrap_or(0);
            json!({"segment": t.segment, "net": d, "net_text": format!("{d:+}")})
        })
        .collect();
    let latest = snapshot.runs.first().map(|r| &r.2);
    let before = snapshot.runs.get(1).map(|r| &r.2);
    let f = |r: Option<&Value>, k: &str, k2: Option<&str>| {
        r.and_then(|v| match k2 {
            Some(k2) => v[k][k2].as_f64(),
            None => v[k].as_f64(),
        })
    };
    let active = f(latest, "active", None);
    let retention = f(latest, "retention", Some("rate"));
    json!({
        "days": days,
        "flows": top, "moved": moved, "arrivals": arrivals, "net": sizes,
        "active": active.map_or_else(|| "–".to_string(), |a| format!("{a:.0}")),
        "active_change": change(active, f(before, "active", None), false),
        "retention": retention.map_or_else(|| "–".to_string(), |r| format!("{:.1}%", 100.0 * r)),
        "retention_change": change(retention, f(before, "retention", Some("rate")), true),
        "equity_change": change(f(latest, "equity", None), f(before, "equity", None), false),
        "customers_change": change(f(latest, "customers", None), f(before, "customers", None), false),
        "previous_run": snapshot.runs.get(1).map(|r| when(r.1)),
    })
}

/// The overview's figures for the page's script.
async fn overview_json(State(app): State<App>, headers: HeaderMap) -> Response {
    if session(&app, &headers).is_none() {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    }
    match overview_data(&app).await {
        Ok(s) => {
            let mut r = axum::Json(overview_figures(&app, &s)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(r) => r,
    }
}

async fn live_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("dashboard/live.js"),
    )
        .into_response()
}

fn min_clv(q: &HashMap<String, String>) -> Option<f64> {
    q.get("min_clv")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

async fn segment(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(s) = session(&app, &headers) else {
        return to_login(&format!(
            "/app/segments/{}",
            lifecycle_deliver::templates::percent(&name)
        ));
    };
    let Some(seg) = app
        .engine
        .table
        .segments()
        .iter()
        .find(|x| x.name == name)
        .cloned()
    else {
        return (StatusCode::NOT_FOUND, "no such segment").into_response();
    };
    let order = q
        .get("sort")
        .and_then(|k| ProfileOrder::parse(k))
        .unwrap_or_default();
    let filter = ProfileFilter {
        segment: Some(name.clone()),
        phase: None,
        min_clv: min_clv(&q),
        after: q.get("cursor").cloned(),
        limit: PAGE,
        order,
        after_value: q
            .get("cursor_value")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite()),
    };
    let engine = app.engine.clone();
    let rows = match crate::http::blocking(move || engine.read(|st| st.profiles(&filter))).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let last = rows.last().filter(|_| rows.len() == PAGE);
    let next = last.map(|p| p.customer_id.clone());
    let next_value = last.and_then(|p| order.value_of(p)).map(|v| v.to_string());
    // The segment's figures (from the overview's snapshot) and what the
    // last insights found about it.
    let snapshot = overview_data(&app).await.ok();
    let figures = snapshot.as_ref().map(|snap| {
        let t = snap.totals.iter().find(|t| t.segment == name);
        let n = t.map_or(0, |t| t.customers);
        let all: u64 = snap.totals.iter().map(|t| t.customers).sum();
        let since = snap.at_ms.div_euclid(86_400_000) - 30 + 1;
        let (came, left) = snap.moves.iter().filter(|m| m.day >= since).fold((0, 0), |(c, l), m| {
            (
                c + if m.to == name { m.customers } else { 0 },
                l + if m.from == name { m.customers } else { 0 },
            )
        });
        json!({
            "customers": n,
            "share": if all > 0 { format!("{:.1}%", 100.0 * n as f64 / all as f64) } else { "–".into() },
            "revenue": money(t.map_or(0.0, |t| t.revenue)),
            "clv": money(t.map_or(0.0, |t| t.clv)),
            "mean_clv": if n > 0 { money(t.map_or(0.0, |t| t.clv) / n as f64) } else { "–".into() },
            "came": came, "left": left,
        })
    });
    let anomalies: Vec<Value> = app
        .slow
        .insights
        .last()
        .and_then(|l| {
            l.value
                .as_ref()
                .ok()
                .map(|(meta, _)| meta["anomalies"].clone())
        })
        .and_then(|a| a.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["segment"] == name.as_str())
        .collect();
    let sorts: Vec<Value> = ProfileOrder::ALL
        .iter()
        .map(|o| {
            let label = match o {
                ProfileOrder::CustomerId => "customer",
                ProfileOrder::ClvHighest => "highest CLV",
                ProfileOrder::ClvLowest => "lowest CLV",
                ProfileOrder::SpendHighest => "highest spend",
                ProfileOrder::LastOrderNewest => "newest order",
                ProfileOrder::LastOrderOldest => "oldest order",
            };
            json!({"key": o.key(), "label": label, "current": *o == order})
        })
        .collect();
    let num = |v: Option<f64>, d: usize| v.map_or_else(|| "–".to_string(), |x| format!("{x:.d$}"));
    let customers: Vec<Value> = rows
        .iter()
        .map(|p| {
            json!({
                "customer_id": p.customer_id, "orders": p.n_orders, "spend": money(p.total_spend),
                "last_order": crate::http::date(p.last_order),
                "rfm": match (p.r, p.f, p.m) { (Some(r), Some(f), Some(m)) => format!("{r} {f} {m}"), _ => "–".into() },
                "clv": p.clv.map_or_else(|| "–".to_string(), money), "p_alive": num(p.p_alive, 2),
            })
        })
        .collect();
    render(
        "segment.html",
        extend(
            base(&app, Some(&s), "segment"),
            json!({
                "segment": {
                    "name": seg.name, "phase": seg.phase.name(), "phase_key": phase_key(seg.phase.name()),
                    "description": seg.description, "goal": seg.goal, "campaigns": seg.campaigns,
                },
                "customers": customers, "next": next, "next_value": next_value,
                "min_clv": q.get("min_clv").cloned().unwrap_or_default(),
                "sort": order.key(), "sorts": sorts, "by_value": order != ProfileOrder::CustomerId,
                "figures": figures, "anomalies": anomalies,
            }),
        ),
    )
}

async fn segment_csv(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if session(&app, &headers).is_none() {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    }
    let filter = ProfileFilter {
        segment: Some(name.clone()),
        phase: None,
        min_clv: min_clv(&q),
        after: None,
        limit: i64::MAX as usize,
        ..ProfileFilter::default()
    };
    let engine = app.engine.clone();
    match crate::http::blocking(move || engine.read(|st| st.profiles(&filter))).await {
        Ok(rows) => crate::http::csv_response(
            crate::http::profiles_csv(&rows),
            &format!(
                "{}.csv",
                name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            ),
        ),
        Err(r) => r,
    }
}

/// A segment as an ad audience: Meta's or Google's hashed CSV of the
/// members' emails and phones (customers who refused audiences left out).
async fn segment_audience(
    State(app): State<App>,
    headers: HeaderMap,
    Path((name, platform)): Path<(String, String)>,
) -> Response {
    if session(&app, &headers).is_none() {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    }
    let Some(p) = platform
        .strip_suffix(".csv")
        .and_then(lifecycle_deliver::audiences::Platform::parse)
    else {
        return (
            StatusCode::NOT_FOUND,
            "the platforms are meta.csv and google.csv",
        )
            .into_response();
    };
    let engine = app.engine.clone();
    match crate::http::blocking(move || engine.read(|st| st.segment_traits(&name))).await {
        Ok(members) => crate::http::csv_response(
            lifecycle_deliver::audiences::audience_csv(p, &members),
            &format!("audience-{}.csv", p.name()),
        ),
        Err(r) => r,
    }
}

async fn customer(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(s) = session(&app, &headers) else {
        return to_login(&format!(
            "/app/customers/{}",
            lifecycle_deliver::templates::percent(&id)
        ));
    };
    let c = match crate::http::customer_view(&app, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such customer").into_response(),
        Err(r) => return r,
    };
    let phase = c["phase"].as_str().map(phase_key).unwrap_or_default();
    let traits: Vec<(String, String)> = c["traits"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let f = |v: &Value, d: usize| {
        v.as_f64()
            .map_or_else(|| "–".to_string(), |x| format!("{x:.d$}"))
    };
    let rfm = match (
        c["rfm"]["r"].as_i64(),
        c["rfm"]["f"].as_i64(),
        c["rfm"]["m"].as_i64(),
    ) {
        (Some(r), Some(fq), Some(m)) => format!("{r} {fq} {m}"),
        _ => "–".into(),
    };
    let timeline = timeline(&c);
    render(
        "customer.html",
        extend(
            base(&app, Some(&s), "customer"),
            json!({
                "timeline": timeline,
                "spend": c["orders"]["total_spend"].as_f64().map_or_else(|| "–".to_string(), money),
                "clv": c["value"]["clv"].as_f64().map_or_else(|| "–".to_string(), money),
                "p_alive": f(&c["value"]["p_alive"], 2), "rfm": rfm, "phase_key": phase,
                "clv_at_run": money_of(&c["value"]["clv_at_model_run"]),
                "traits": traits, "c": c,
            }),
        ),
    )
}

async fn moments(State(app): State<App>, headers: HeaderMap) -> Response {
    let Some(s) = session(&app, &headers) else {
        return to_login("/app/moments");
    };
    let shown = app.slow.moment_list.current(&app, moment_list).await;
    let (list, list_at, list_error) = match shown.as_ref().map(|c| (c, &c.value)) {
        Some((c, Ok(v))) => (v.clone(), Some(when(c.at_ms)), None),
        Some((_, Err(e))) => (Vec::new(), None, Some(e.clone())),
        None => (Vec::new(), None, None),
    };
    // The global control readout, from the background.
    let share = app.engine.journey_options.global_control;
    let last = app.slow.global.last();
    if share > 0.0
        && last.as_ref().is_none_or(|g| {
            g.version != version(&app) && g.taken.elapsed() >= Duration::from_secs(60)
        })
    {
        start_global(&app);
    }
    let global = match last.as_ref().map(|g| (g, &g.value)) {
        Some((g, Ok(v))) => json!({"at": when(g.at_ms), "readout": readout_view(v)}),
        Some((_, Err(e))) => json!({"error": e}),
        None => Value::Null,
    };
    render(
        "moments.html",
        extend(
            base(&app, Some(&s), "moments"),
            json!({
                "moments": list, "moments_at": list_at, "moments_error": list_error,
                "moments_computing": shown.is_none(), "global": global,
                "global_share": format!("{:.0}%", 100.0 * share), "has_global": share > 0.0,
            }),
        ),
    )
}

async fn moment(State(app): State<App>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let Some(s) = session(&app, &headers) else {
        return to_login(&format!(
            "/app/moments/{}",
            lifecycle_deliver::templates::percent(&name)
        ));
    };
    // Only moments that exist get a slot (the list of names is small).
    let engine = app.engine.clone();
    let wanted = name.clone();
    let exists = crate::http::blocking(move || {
        engine.read(|st| Ok(st.moments()?.iter().any(|m| m.name == wanted)))
    })
    .await;
    match exists {
        Ok(true) => {}
        Ok(false) => return (StatusCode::NOT_FOUND, "no such moment").into_response(),
        Err(r) => return r,
    }
    let slot = match app.slow.moments.lock() {
        Ok(mut pages) => pages.entry(name.clone()).or_default().clone(),
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "busy").into_response(),
    };
    let for_work = name.clone();
    let shown = slot
        .current(&app, move |app| moment_data(app, &for_work))
        .await;
    let mut page = base(&app, Some(&s), "moments");
    page["name"] = json!(name);
    match shown.as_ref().map(|c| (c, &c.value)) {
        Some((c, Ok(v))) => {
            page = extend(page, v.clone());
            page["at"] = json!(when(c.at_ms));
            page["refreshing"] = json!(slot.running());
        }
        Some((_, Err(e))) => page["error"] = json!(e),
        None => page["computing"] = json!(true),
    }
    render("moment.html", page)
}

/// Every moment's newest version with its journey counts.
fn moment_list(app: &App) -> Result<Vec<Value>, String> {
    let rows = app
        .engine
        .read(|st| {
            let mut latest: Vec<lifecycle_store::StoredMoment> = Vec::new();
            for m in st.moments()? {
                match latest.iter_mut().find(|x| x.name == m.name) {
                    Some(x) if x.version < m.version => *x = m,
                    Some(_) => {}
                    None => latest.push(m),
                }
            }
            latest
                .into_iter()
                .map(|m| Ok((st.moment_counts(&m.name)?, m)))
                .collect::<Result<Vec<_>, lifecycle_store::StoreError>>()
        })
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|(c, m)| {
            json!({
                "name": m.name, "version": m.version, "active": m.active,
                "enrolled": c.enrolled, "in_journey": c.active, "holdout": c.holdout,
                "goals": c.goals_treated,
            })
        })
        .collect())
}

/// A moment's page: its definition, journey counts and funnel, and its
/// lift readout (every enrolment read: seconds for 10^6 of them).
fn moment_data(app: &App, name: &str) -> Result<Value, String> {
    let err = |e: lifecycle_store::StoreError| e.to_string();
    let (rows, m) = crate::http::read_moment(&app.engine, name)
        .map_err(err)?
        .ok_or_else(|| "no such moment".to_string())?;
    let steps = m.steps.len() + 1;
    let (counts, funnel, source) = app
        .engine
        .read(|st| {
            let source = st
                .moments()?
                .into_iter()
                .rev()
                .find(|x| x.name == name)
                .map(|x| x.source);
            Ok((
                st.moment_counts(name)?,
                st.moment_funnel(name, steps)?,
                source,
            ))
        })
        .map_err(err)?;
    let funnel: Vec<Value> = funnel
        .iter()
        .map(|f| {
            let what = m
                .steps
                .get(f.step as usize)
                .map_or_else(|| "end of the journey".to_string(), describe_step);
            json!({
                "step": f.step + 1, "what": what, "reached": f.reached, "here_now": f.here_now,
                "messages": f.messages.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", "),
            })
        })
        .collect();
    let readout = crate::results::moment_results(
        &rows,
        m.holdout,
        app.engine.journey_options.global_control,
        0.05,
    );
    Ok(json!({
        "counts": {
            "enrolled": counts.enrolled, "active": counts.active, "holdout": counts.holdout,
            "global_control": counts.global_control, "goals_treated": counts.goals_treated,
            "goals_held_out": counts.goals_held_out, "messages": counts.messages,
        },
        "funnel": funnel, "source": source,
        "trigger": describe_trigger(&m), "holdout_share": format!("{:.0}%", 100.0 * m.holdout),
        "goal": format!("{} within {} days", m.goal.event.event, m.goal.within_days),
        "readout": readout_view(&readout),
    }))
}

/// A lift readout (a moment's or the global control's) for the page: its
/// lines of context (warnings marked), the forest plot, the table.
fn readout_view(readout: &Value) -> Value {
    let (context, forest, table) = crate::results::readout_parts(readout);
    let context: Vec<Value> = context
        .iter()
        .map(|c| match c.strip_prefix("!! ") {
            Some(w) => json!({"text": w, "warning": true}),
            None => json!({"text": c, "warning": false}),
        })
        .collect();
    let (head, body) = table
        .split_first()
        .map_or((Vec::new(), &[][..]), |(h, b)| (h.clone(), b));
    json!({
        "context": context,
        "forest": if forest.is_empty() { String::new() } else { lifecycle_report::forest_svg(&forest) },
        "table_head": head, "table_rows": body,
    })
}

/// Open tripwires (from the overview's snapshot) against the norms of the
/// model run in force, with their backtest evidence.
async fn tripwires(State(app): State<App>, headers: HeaderMap) -> Response {
    let Some(s) = session(&app, &headers) else {
        return to_login("/app/tripwires");
    };
    let snapshot = match overview_data(&app).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let run = app.engine.current_run();
    let count = |name: &str, status: &str| {
        snapshot
            .tripwires
            .iter()
            .find(|t| t.name == name && t.status == status)
            .map_or((0, 0.0), |t| (t.customers, t.clv))
    };
    // The run's backtests (kept with its figures).
    let backtests = snapshot
        .runs
        .first()
        .filter(|r| Some(r.0) == run.id)
        .and_then(|r| r.2["backtests"].as_object());
    let mut rows: Vec<Value> = run
        .run
        .norms
        .iter()
        .map(|n| {
            let key = n.step.key();
            let (warning, _) = count(&key, "warning");
            let (tripped, at_stake) = count(&key, "tripped");
            let backtest = backtests.and_then(|b| b.get(&key)).map(backtest_text);
            json!({
                "name": key, "statement": lifecycle_tripwires::describe(n, "Champions"),
                "warning": warning, "tripped": tripped, "at_stake": money(at_stake),
                "backtest": backtest, "norm": true,
            })
        })
        .collect();
    // Tripwires that are open but are not a norm of this run (the personal
    // rhythm, custom ones).
    for t in &snapshot.tripwires {
        if !rows.iter().any(|r| r["name"] == t.name) {
            let (warning, _) = count(&t.name, "warning");
            let (tripped, at_stake) = count(&t.name, "tripped");
            rows.push(json!({
                "name": t.name, "statement": t.name.replace('_', " "),
                "warning": warning, "tripped": tripped, "at_stake": money(at_stake),
                "backtest": null, "norm": false,
            }));
        }
    }
    render(
        "tripwires.html",
        extend(
            base(&app, Some(&s), "tripwires"),
            json!({"tripwires": rows, "figures_at": when(snapshot.at_ms)}),
        ),
    )
}

/// A time for people: minutes, UTC.
fn when(ms: i64) -> String {
    crate::http::time(ms)
        .as_str()
        .map(|t| format!("{} UTC", t.get(..16).unwrap_or(t).replace('T', " ")))
        .unwrap_or_default()
}

fn share_text(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "–".into(), |x| format!("{:.1}%", 100.0 * x))
}

fn money_of(v: &Value) -> String {
    v.as_f64().map_or_else(|| "–".into(), money)
}

/// The model runs: the one in force (fitted parameters with what they
/// mean, valuation settings, notes, the tracking chart, the CLV
/// distribution) and the ones before it.
async fn models(State(app): State<App>, headers: HeaderMap) -> Response {
    let Some(s) = session(&app, &headers) else {
        return to_login("/app/models");
    };
    let engine = app.engine.clone();
    let runs = match crate::http::blocking(move || engine.read(|st| st.runs(30))).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let page = base(&app, Some(&s), "models");
    let Some(latest) = runs.first() else {
        return render("models.html", extend(page, json!({"run": null})));
    };
    let params: Value = serde_json::from_str(&latest.params).unwrap_or(Value::Null);
    let figures_of = |r: &lifecycle_store::StoredRun| -> Value {
        r.figures
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or(Value::Null)
    };
    let figures = figures_of(latest);
    let num = |v: &Value| v.as_f64().map_or_else(|| "–".into(), |x| format!("{x:.4}"));
    let param = |name: &str, v: &Value, means: String| json!({"name": name, "value": num(v), "means": means});
    let pm = &params["purchase_model"];
    let purchase = pm.is_object().then(|| {
        let (r, alpha, a, b) = (
            pm["r"].as_f64(),
            pm["alpha"].as_f64(),
            pm["a"].as_f64(),
            pm["b"].as_f64(),
        );
        let rate = r.zip(alpha).map(|(r, al)| r / al);
        let drop = a.zip(b).map(|(a, b)| a / (a + b));
        vec![
            param("r", &pm["r"], String::new()),
            param(
                "α",
                &pm["alpha"],
                rate.map_or_else(String::new, |x| {
                    format!(
                        "(an active customer buys {:.2} times a year on average)",
                        365.0 * x
                    )
                }),
            ),
            param("a", &pm["a"], String::new()),
            param(
                "b",
                &pm["b"],
                drop.map_or_else(String::new, |x| {
                    format!(
                        "(after each purchase, {:.1}% of customers drop out on average)",
                        100.0 * x
                    )
                }),
            ),
        ]
    });
    let sm = &params["spend_model"];
    let spend = sm.is_object().then(|| {
        let mean = match (sm["p"].as_f64(), sm["q"].as_f64(), sm["gamma"].as_f64()) {
            (Some(p), Some(q), Some(g)) if q > 1.0 => {
                format!(
                    "(mean order value across customers {})",
                    money(p * g / (q - 1.0))
                )
            }
            _ => String::new(),
        };
        vec![
            param("p", &sm["p"], String::new()),
            param("q", &sm["q"], String::new()),
            param("γ", &sm["gamma"], mean),
        ]
    });
    let v = &params["valuation"];
    let valuation = vec![
        json!({"name": "Horizon", "value": v["horizon_days"].as_f64().map_or_else(|| "–".into(), |d| format!("{d:.0} days"))}),
        json!({"name": "Annual discount rate", "value": share_text(&v["annual_discount"])}),
        json!({"name": "Margin", "value": share_text(&v["margin"])}),
        json!({"name": "Declining when CLV falls by", "value": share_text(&v["decline_share"])}),
    ];
    let tracking: Vec<(usize, f64, f64)> = figures["tracking"]
        .as_array()
        .map(|pts| {
            pts.iter()
                .filter_map(|p| Some((p[0].as_u64()? as usize, p[1].as_f64()?, p[2].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let bands: Vec<(String, f64)> = figures["clv"]["bands"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .filter_map(|b| {
                    let (lo, hi, n) = (b[0].as_f64()?, b[1].as_f64()?, b[2].as_f64()?);
                    Some((format!("{lo}–{hi}"), n))
                })
                .collect()
        })
        .unwrap_or_default();
    let clv = &figures["clv"];
    let history: Vec<Value> = runs
        .iter()
        .map(|r| {
            let f = figures_of(r);
            json!({
                "id": r.id, "at": when(r.at_ms), "customers": r.customers,
                "active": f["active"].as_u64().map_or_else(|| "–".into(), |n| n.to_string()),
                "retention": share_text(&f["retention"]["rate"]),
                "equity": money_of(&f["equity"]),
            })
        })
        .collect();
    render(
        "models.html",
        extend(
            page,
            json!({
                "run": {
                    "id": latest.id, "at": when(latest.at_ms),
                    "as_of": crate::http::date(Some(latest.as_of)), "customers": latest.customers,
                },
                "purchase": purchase, "spend": spend, "valuation": valuation,
                "notes": params["notes"],
                "tracking": (!tracking.is_empty()).then(|| lifecycle_report::tracking_svg(&tracking, None)),
                "clv_chart": (!bands.is_empty()).then(|| lifecycle_report::bars_svg(&bands, "predicted CLV", "customers")),
                "clv": {
                    "customers": clv["customers"], "mean": money_of(&clv["mean"]),
                    "p10": money_of(&clv["p10"]), "p50": money_of(&clv["p50"]),
                    "p90": money_of(&clv["p90"]), "p99": money_of(&clv["p99"]),
                },
                "runs": history,
            }),
        ),
    )
}

/// A figure too slow for a page view (a scan of every customer or order):
/// computed in the background, shown from its last result.
pub(crate) struct Background<T> {
    last: Mutex<Option<Arc<Computed<T>>>>,
    running: AtomicBool,
}

impl<T> Default for Background<T> {
    fn default() -> Self {
        Background {
            last: Mutex::new(None),
            running: AtomicBool::new(false),
        }
    }
}

pub(crate) struct Computed<T> {
    taken: Instant,
    at_ms: i64,
    seconds: f64,
    /// The model run in force when it was computed.
    run: Option<i64>,
    /// The store's version then (commits, due re-scores, run).
    version: Version,
    /// The figure, or why it could not be computed.
    value: Result<T, String>,
}

impl<T: Send + Sync + 'static> Background<T> {
    fn last(&self) -> Option<Arc<Computed<T>>> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// What a page shows: the last result while the store has not changed;
    /// after a change, a new one when the last was cheap (under 50 ms: a
    /// small store, always fresh: waited for, up to 150 ms) or is 5 s old
    /// (computed behind the last one, which is shown meanwhile). The first
    /// is waited for up to 150 ms; `None` until it exists.
    async fn current(
        self: &Arc<Self>,
        app: &App,
        work: impl FnOnce(&App) -> Result<T, String> + Send + 'static,
    ) -> Option<Arc<Computed<T>>> {
        let last = self.last();
        let due = last.as_ref().is_none_or(|l| {
            l.version != version(app) && (l.seconds < 0.05 || l.taken.elapsed() >= OVERVIEW_EVERY)
        });
        if !due {
            return last;
        }
        self.start(app, work);
        // Wait for a first result, or for a cheap one; an expensive one
        // is refreshed behind the last.
        if last.as_ref().is_some_and(|l| l.seconds >= 0.05) {
            return last;
        }
        let until = Instant::now() + Duration::from_millis(150);
        while self.running() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.last().or(last)
    }

    /// Starts `work` unless it is running already. A bug must not leave a
    /// page waiting forever: a panic is an outcome too.
    fn start(
        self: &Arc<Self>,
        app: &App,
        work: impl FnOnce(&App) -> Result<T, String> + Send + 'static,
    ) {
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (slot, app) = (self.clone(), app.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let (run, version) = (app.engine.current_run().id, version(&app));
            let value = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&app)))
                .unwrap_or_else(|p| {
                    Err(format!(
                        "internal error: {}",
                        p.downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| p.downcast_ref::<&str>().copied())
                            .unwrap_or("panic")
                    ))
                });
            let done = Computed {
                taken: Instant::now(),
                at_ms: app.engine.clock.now_ms(),
                seconds: started.elapsed().as_secs_f64(),
                run,
                version,
                value,
            };
            if let Ok(mut last) = slot.last.lock() {
                *last = Some(Arc::new(done));
            }
            slot.running.store(false, Ordering::Release);
        });
    }
}

/// The dashboard's background figures.
#[derive(Default)]
pub(crate) struct Slow {
    /// The insights' sources and warnings, and their sections as HTML.
    /// Insights read every order, line and answer (tens of seconds at
    /// 10^6 customers): computed at first view, again when a model run is
    /// newer than the result or on the page's button.
    insights: Arc<Background<(Value, String)>>,
    /// The global control group's readout (every customer's revenue and
    /// orders of the last 90 days): again when the store has changed and
    /// the result is a minute old.
    global: Arc<Background<Value>>,
    /// The moments list's counts (a scan of each moment's enrolments).
    moment_list: Arc<Background<Vec<Value>>>,
    /// Each moment's page (its readout reads every enrolment).
    moments: Mutex<HashMap<String, Arc<Background<Value>>>>,
    /// Insights settings when lifecycle.toml has no `[kpis]`: the event
    /// forms only, files into a temporary folder.
    fallback: OnceLock<Arc<crate::insights::Insights>>,
}

fn insights_settings(app: &App) -> Arc<crate::insights::Insights> {
    if let Some(i) = &app.insights {
        return i.clone();
    }
    app.slow
        .fallback
        .get_or_init(|| {
            Arc::new(crate::insights::Insights {
                settings: crate::insights::InsightsSettings {
                    out: std::env::temp_dir()
                        .join(format!("lifecycle-insights-{}", std::process::id())),
                    ..Default::default()
                },
                running: Mutex::new(()),
            })
        })
        .clone()
}

/// Starts computing the insights unless they are being computed.
fn start_insights(app: &App) {
    app.slow.insights.start(app, |app| {
        let settings = insights_settings(app);
        let v = crate::insights::run(&app.engine, &settings, app.engine.clock.today())
            .map_err(|e| e.to_string())?;
        let html = lifecycle_report::kpis_html(&v["insights"]);
        Ok((
            json!({
                "customers": v["customers"], "sources": v["sources"], "warnings": v["warnings"],
                "anomalies": v["insights"]["anomalies"]["headlines"],
            }),
            html,
        ))
    });
}

/// The global control readout over the last 90 days (as
/// `/api/v1/results/global` computes it).
fn start_global(app: &App) {
    app.slow.global.start(app, |app| {
        crate::results::global_readout(&app.engine, 90, 0.05).map_err(|e| e.to_string())
    });
}

/// Cohorts, retention curves, Pareto, stickiness by channel, LTV:CAC, ICP,
/// upsell pairs and experience: the `analyze --kpis` report's sections,
/// drawn by the same code, over the stored data.
async fn insights_page(State(app): State<App>, headers: HeaderMap) -> Response {
    let Some(s) = session(&app, &headers) else {
        return to_login("/app/insights");
    };
    let last = app.slow.insights.last();
    let outdated = last
        .as_ref()
        .is_none_or(|l| l.run != app.engine.current_run().id);
    if outdated {
        start_insights(&app);
    }
    let computing = app.slow.insights.running();
    let mut ctx = json!({
        "computing": computing, "configured": app.insights.is_some(),
    });
    if let Some(l) = &last {
        ctx["at"] = json!(when(l.at_ms));
        ctx["seconds"] = json!(format!("{:.1}", l.seconds));
        match &l.value {
            Ok((meta, html)) => {
                ctx["meta"] = meta.clone();
                ctx["sources"] = json!(
                    meta["sources"]
                        .as_object()
                        .map(|m| m
                            .iter()
                            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>())
                        .unwrap_or_default()
                );
                ctx["html"] = json!(html);
            }
            Err(e) => ctx["error"] = json!(e),
        }
    }
    render(
        "insights.html",
        extend(base(&app, Some(&s), "insights"), ctx),
    )
}

/// The page's "Compute again" button.
async fn insights_refresh(
    State(app): State<App>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some(s) = session(&app, &headers) else {
        return to_login("/app/insights");
    };
    if !same(&f.csrf, &csrf(&app, &s)) {
        return (
            StatusCode::FORBIDDEN,
            "the form has expired: reload the page",
        )
            .into_response();
    }
    start_insights(&app);
    see_other("/app/insights")
}

/// A journey step in words.
fn describe_step(s: &lifecycle_moments::LabeledStep) -> String {
    use lifecycle_moments::Step;
    let what = match &s.step {
        Step::Send {
            channel, template, ..
        } => format!("send {} ({template})", channel.name()),
        Step::Wait { days, until } => match until {
            Some(f) => format!("wait up to {days} days for {}", f.event),
            None => format!("wait {days} days"),
        },
        Step::Branch {
            condition, then, ..
        } => format!("if {} then go to {then}", condition.field),
        Step::Split { arms } => format!("split into {} arms", arms.len()),
        Step::UpdateTrait { name, value } => format!("set {name} = {value}"),
        Step::Exit => "exit".to_string(),
    };
    match &s.label {
        Some(l) => format!("{l}: {what}"),
        None => what,
    }
}

fn describe_trigger(m: &lifecycle_moments::Moment) -> String {
    use lifecycle_moments::Trigger;
    match &m.trigger {
        Trigger::Event(f) => format!("the event {}", f.event),
        Trigger::SegmentEntered(s) => format!("entering {s}"),
        Trigger::SegmentExited(s) => format!("leaving {s}"),
        Trigger::Tripwire { name, status } => {
            format!("the tripwire {} ({status:?})", name.replace('_', " "))
        }
        Trigger::ValueDecline => "a predicted value in decline".to_string(),
        Trigger::DateTrait {
            trait_name,
            offset_days,
        } => format!("the date in {trait_name}, {offset_days:+} days"),
        Trigger::Absence { event, days } => format!("no {} for {days} days", event.event),
    }
}

/// The customer's story, newest first: orders and refunds, segment
/// changes, tripwires, journeys and messages, and their other events.
fn timeline(c: &Value) -> Vec<Value> {
    let mut items: Vec<(String, &str, String)> = Vec::new();
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    for o in c["order_history"].as_array().into_iter().flatten() {
        let amount = o["amount"].as_f64().unwrap_or(0.0);
        let (kind, text) = if o["refund"] == true {
            ("refund", format!("Refund {}", money(amount)))
        } else {
            ("order", format!("Order {}", money(amount)))
        };
        items.push((s(&o["date"]), kind, text));
    }
    for e in c["events"].as_array().into_iter().flatten() {
        let name = e["event"]
            .as_str()
            .unwrap_or_else(|| e["type"].as_str().unwrap_or(""));
        let p = &e["properties"];
        let (kind, text) = match name {
            // Orders are listed from the store (imported ones too).
            "Order Completed" | "Order Refunded" => continue,
            "Segment Entered" => (
                "segment",
                match p["from"].as_str() {
                    Some(from) => format!("Moved from {from} to {}", s(&p["segment"])),
                    None => format!("Entered {}", s(&p["segment"])),
                },
            ),
            "Segment Exited" => continue,
            "Tripwire Warning" | "Tripwire Tripped" => (
                "tripwire",
                format!("{}: {}", name, s(&p["tripwire"]).replace('_', " ")),
            ),
            _ => ("event", name.to_string()),
        };
        items.push((s(&e["timestamp"]), kind, text));
    }
    for j in c["journeys"].as_array().into_iter().flatten() {
        items.push((
            s(&j["entered"]),
            "journey",
            format!(
                "Entered the moment {} ({})",
                s(&j["moment"]),
                s(&j["group"])
            ),
        ));
    }
    for m in c["messages"].as_array().into_iter().flatten() {
        items.push((
            s(&m["created"]),
            "message",
            format!(
                "{} message of {}: {}",
                s(&m["channel"]),
                s(&m["moment"]),
                s(&m["status"])
            ),
        ));
    }
    items.sort_by(|a, b| b.0.cmp(&a.0));
    items
        .into_iter()
        .map(|(at, kind, text)| {
            let shown = at.get(..16).unwrap_or(&at).replace('T', " ");
            json!({"at": shown, "kind": kind, "text": text})
        })
        .collect()
}

/// A norm's backtest in words.
fn backtest_text(b: &Value) -> String {
    let pct = |v: &Value| {
        v["value"]
            .as_f64()
            .map_or_else(|| "–".to_string(), |x| format!("{:.1}%", 100.0 * x))
    };
    let judged = b["kept"]["customers"].as_u64().unwrap_or(0)
        + b["tripped"]["customers"].as_u64().unwrap_or(0);
    let mut text = format!(
        "Learned on the history before {} ({} days then), judged on {judged} later deadlines: {} of those who kept it ordered again within {} days, {} of those who tripped it",
        crate::http::date(b["split_day"].as_i64().and_then(|d| i32::try_from(d).ok()))
            .as_str()
            .unwrap_or("–"),
        b["norm_days"],
        pct(&b["repeat_rate_kept"]),
        b["horizon_days"],
        pct(&b["repeat_rate_tripped"]),
    );
    let d = &b["repeat_rate_difference"];
    if let (Some(v), Some(lo), Some(hi)) =
        (d["value"].as_f64(), d["low"].as_f64(), d["high"].as_f64())
    {
        text.push_str(&format!(
            " (difference {:+.1} points, 95% interval {:+.1} to {:+.1})",
            100.0 * v,
            100.0 * lo,
            100.0 * hi
        ));
    }
    let r = &b["revenue_difference"];
    if let (Some(v), Some(lo), Some(hi)) =
        (r["value"].as_f64(), r["low"].as_f64(), r["high"].as_f64())
    {
        text.push_str(&format!(
            "; revenue per customer {} more ({} to {})",
            money(v),
            money(lo),
            money(hi)
        ));
    }
    text.push('.');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backtest_in_words() {
        let b = json!({
            "split_day": 19_700, "horizon_days": 180, "norm_days": 42,
            "kept": {"customers": 300, "repeaters": 150}, "tripped": {"customers": 100, "repeaters": 20},
            "repeat_rate_kept": {"value": 0.5, "low": 0.44, "high": 0.56},
            "repeat_rate_tripped": {"value": 0.2, "low": 0.13, "high": 0.29},
            "repeat_rate_difference": {"value": 0.3, "low": 0.2, "high": 0.4},
            "revenue_difference": null,
        });
        assert_eq!(
            backtest_text(&b),
            "Learned on the history before 2023-12-09 (42 days then), judged on 400 later deadlines: 50.0% of those who kept it ordered again within 180 days, 20.0% of those who tripped it (difference +30.0 points, 95% interval +20.0 to +40.0)."
        );
    }

    #[test]
    fn flows_count_moves_in_the_period() {
        let move_of = |day, from: &str, to: &str, n| SegmentMove {
            day,
            from: from.into(),
            to: to.into(),
            customers: n,
        };
        let snapshot = Snapshot {
            version: (0, 0, None, 0),
            taken: Instant::now(),
            cost: Duration::ZERO,
            at_ms: 100 * 86_400_000,
            counts: StoreCounts::default(),
            totals: vec![],
            tripwires: vec![],
            moves: vec![
                move_of(60, "", "A", 5),
                move_of(95, "", "A", 2),
                move_of(96, "A", "B", 3),
                move_of(99, "A", "B", 1),
            ],
            runs: vec![],
        };
        let week = flows(&snapshot, 7);
        assert_eq!(week["arrivals"], 2);
        assert_eq!(week["moved"], 4);
        assert_eq!(week["flows"][0]["from"], "A");
        assert_eq!(week["flows"][0]["customers"], 4);
        let quarter = flows(&snapshot, 90);
        assert_eq!(quarter["arrivals"], 7);
        assert_eq!(
            change(Some(110.0), Some(100.0), false).as_deref(),
            Some("▲ 10.0%")
        );
        assert_eq!(
            change(Some(0.25), Some(0.3), true).as_deref(),
            Some("▼ 5.0 pts")
        );
    }
}
