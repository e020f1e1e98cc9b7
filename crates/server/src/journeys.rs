//! Moments in the running server: definitions from a watched folder and
//! the API (stored as versions), the journeys the store runs, and the
//! delivery thread that drains the outbox through the channels.
//!
//! Delivery guarantee: a send is in the outbox under a deterministic key
//! (moment, version, customer, entry, step) in the same commit as the step
//! that made it, so no step sends twice with different keys. The delivery
//! thread leases a send, hands it to the channel, then records the outcome;
//! a crash between the two re-sends it after the lease (at least once).
//! Webhooks carry the key as their idempotency key, so the receiver drops
//! the repeat; SMTP cannot de-duplicate, so a repeat email carries the same
//! `Message-ID` and at most one repeat per crash happens per leased batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lifecycle_deliver::DeliverError;
use lifecycle_deliver::email::{Email, Smtp};
use lifecycle_deliver::links::Signer;
use lifecycle_deliver::policy::{Cap, QuietHours};
use lifecycle_deliver::providers::{Push, Sms};
use lifecycle_deliver::templates::Templates;
use lifecycle_deliver::webhook::{AllowList, Webhook};
use lifecycle_moments::{Channel, Moment};
use lifecycle_rfm::SegmentTable;
use lifecycle_store::{Journeys, OutboxItem, Outcome, Store, StoreError, StoredMoment};
use serde_json::{Value, json};

use crate::engine::Engine;

/// How moments run (`[moments]` and `[channels]` in lifecycle.toml).
#[derive(Debug, Clone)]
pub struct JourneyOptions {
    /// The folder of moment definitions (watched) and their templates.
    pub dir: Option<PathBuf>,
    /// Share of all customers never messaged by any moment.
    pub global_control: f64,
    pub email: Option<EmailOptions>,
    pub webhook: Option<WebhookOptions>,
    pub sms: Option<SmsOptions>,
    pub push: Option<PushOptions>,
    /// Where ad-audience files are written (`<moment>-meta.csv`, `-google.csv`).
    pub audience_dir: Option<PathBuf>,
    /// The server's address as customers reach it (unsubscribe links).
    pub public_url: Option<String>,
    pub caps: Vec<Cap>,
    pub quiet_hours: Option<QuietHours>,
    /// How often the folder is checked for changes (`None`: never).
    pub watch_every: Option<Duration>,
    /// How often the outbox is polled when it is empty.
    pub poll_every: Duration,
    /// Sends in flight at once (each on its own store connection).
    pub workers: usize,
    /// The product catalogue (CSV: id, name, url, and optionally image,
    /// price, category) templates draw suggestions from.
    pub catalogue: Option<PathBuf>,
    /// Upsell rules (`affinities.csv` of the insights): suggestions start
    /// with what customers who bought the same products bought next. The
    /// file is re-read when it changes.
    pub affinities: Option<PathBuf>,
    /// Audiences' consent conditions hold for everyone (`moments simulate`).
    pub assume_consent: bool,
}

impl Default for JourneyOptions {
    fn default() -> Self {
        JourneyOptions {
            dir: None,
            global_control: 0.05,
            email: None,
            webhook: None,
            sms: None,
            push: None,
            audience_dir: None,
            public_url: None,
            caps: Vec::new(),
            quiet_hours: None,
            watch_every: Some(Duration::from_secs(2)),
            poll_every: Duration::from_millis(200),
            workers: 8,
            catalogue: None,
            affinities: None,
            assume_consent: false,
        }
    }
}

/// The SMTP relay and the sender.
#[derive(Debug, Clone)]
pub struct EmailOptions {
    /// `smtp://host:port`, `smtp://host?tls=required`, `smtps://user:pass@host`.
    pub smtp: String,
    pub from: String,
}

/// A webhook endpoint: signed JSON POSTs.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub url: String,
    /// Signs every request (HMAC-SHA256).
    pub secret: String,
    /// Internal addresses that may be called (`127.0.0.1`, `10.0.0.0/8`).
    pub allow_private: Vec<String>,
}

/// A Twilio-style SMS API.
#[derive(Debug, Clone)]
pub struct SmsOptions {
    pub base_url: String,
    pub account: String,
    pub token: String,
    pub from: String,
    /// Internal addresses the provider may be reached at (e.g. a relay).
    pub allow_private: Vec<String>,
}

/// An FCM-style push API.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub base_url: String,
    pub project: String,
    pub token: String,
    /// Internal addresses the provider may be reached at.
    pub allow_private: Vec<String>,
}

/// A product of the catalogue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub url: String,
    pub image: String,
    pub price: Option<f64>,
    pub category: String,
}

/// Reads the catalogue CSV (a header naming id, name, url; image, price
/// and category when present), in the merchant's order (best first).
pub fn read_catalogue(path: &Path) -> Result<Vec<Product>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols: Vec<String> = split_csv(header)
        .iter()
        .map(|c| c.trim().to_lowercase())
        .collect();
    let at = |name: &str| cols.iter().position(|c| c == name);
    let (Some(id), Some(name), Some(url)) = (at("id"), at("name"), at("url")) else {
        return Err(format!(
            "{}: the header must name id, name and url (and may name image, price, category)",
            path.display()
        ));
    };
    let (image, price, category) = (at("image"), at("price"), at("category"));
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f = split_csv(line);
        let get = |k: Option<usize>| k.and_then(|k| f.get(k)).cloned().unwrap_or_default();
        let price = match get(price) {
            p if p.trim().is_empty() => None,
            p => Some(p.trim().parse::<f64>().map_err(|_| {
                format!(
                    "{} line {}: price \"{p}\" is not a number",
                    path.display(),
                    i + 1
                )
            })?),
        };
        if get(Some(id)).is_empty() {
            return Err(format!("{} line {}: id is empty", path.display(), i + 1));
        }
        out.push(Product {
            id: get(Some(id)),
            name: get(Some(name)),
            url: get(Some(url)),
            image: get(image),
            price,
            category: get(category),
        });
    }
    Ok(out)
}

/// One CSV line's fields (double quotes, "" inside quotes).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    out.push(field);
    out
}

/// Upsell rules: product → (product bought later, confidence), the most
/// confident first.
pub type Affinities = std::collections::HashMap<String, Vec<(String, f64)>>;

/// Reads the significant rules of an `affinities.csv` (adjusted p-value
/// under 0.05).
pub fn read_affinities(path: &Path) -> Result<Affinities, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header = split_csv(lines.next().unwrap_or(""));
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{}: no {name} column", path.display()))
    };
    let (a, b, conf, p) = (
        col("bought")?,
        col("later_bought")?,
        col("confidence")?,
        col("p_adjusted")?,
    );
    let mut out = Affinities::new();
    for (i, line) in lines.enumerate() {
        let f = split_csv(line);
        let num = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok());
        let (Some(c), Some(pv)) = (num(conf), num(p)) else {
            return Err(format!(
                "{}:{}: bad confidence or p_adjusted",
                path.display(),
                i + 2
            ));
        };
        if pv < 0.05
            && let (Some(x), Some(y)) = (f.get(a), f.get(b))
        {
            out.entry(x.clone()).or_default().push((y.clone(), c));
        }
    }
    for v in out.values_mut() {
        v.sort_by(|x, y| y.1.total_cmp(&x.1));
    }
    Ok(out)
}

/// Up to `n` suggestions among the products the customer has not bought:
/// first what the affinities say customers bought after the same products
/// (most confident first), then those of the category of their latest
/// purchase, then the catalogue's order.
pub fn suggestions(
    catalogue: &[Product],
    affinities: &Affinities,
    bought: &[String],
    n: usize,
) -> Vec<Product> {
    let mut ranked: Vec<(&str, f64)> = Vec::new();
    for b in bought {
        for (next, c) in affinities.get(b).into_iter().flatten() {
            if bought.contains(next) {
                continue;
            }
            match ranked.iter_mut().find(|r| r.0 == next) {
                Some(r) => r.1 = r.1.max(*c),
                None => ranked.push((next, *c)),
            }
        }
    }
    ranked.sort_by(|x, y| y.1.total_cmp(&x.1));
    let mut out: Vec<Product> = ranked
        .iter()
        .filter_map(|(id, _)| catalogue.iter().find(|p| p.id == *id))
        .take(n)
        .cloned()
        .collect();
    let last_category = bought
        .iter()
        .find_map(|b| catalogue.iter().find(|p| &p.id == b))
        .map(|p| p.category.clone())
        .filter(|c| !c.is_empty());
    let fresh = catalogue
        .iter()
        .filter(|p| !bought.contains(&p.id) && !out.iter().any(|o| o.id == p.id));
    let (same, other): (Vec<&Product>, Vec<&Product>) =
        fresh.partition(|p| last_category.as_ref() == Some(&p.category));
    let room = n.saturating_sub(out.len());
    out.extend(same.into_iter().chain(other).take(room).cloned());
    out
}

/// The affinities file, re-read when its modification time changes.
struct AffinityFile {
    path: PathBuf,
    state: std::sync::Mutex<(Option<std::time::SystemTime>, std::sync::Arc<Affinities>)>,
}

impl AffinityFile {
    fn current(&self) -> std::sync::Arc<Affinities> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let Ok(mut state) = self.state.lock() else {
            return std::sync::Arc::new(Affinities::new());
        };
        if modified.is_some() && modified != state.0 {
            match read_affinities(&self.path) {
                Ok(a) => *state = (modified, std::sync::Arc::new(a)),
                Err(e) => eprintln!("affinities: {e} (keeping the rules read before)"),
            }
        }
        state.1.clone()
    }
}

/// The journeys of every stored version that parses; the newest active
/// version of each name takes entrants.
pub fn journeys_from(
    stored: &[StoredMoment],
    table: &SegmentTable,
    global_control: f64,
) -> (Journeys, Vec<String>) {
    let mut live = Vec::new();
    let mut older = Vec::new();
    let mut problems = Vec::new();
    for s in stored {
        match lifecycle_ingest::config::parse_moment(&s.source, table) {
            Ok(mut m) => {
                m.version = s.version;
                if s.active {
                    live.push(m);
                } else {
                    older.push(m);
                }
            }
            Err(ps) => problems.push(format!(
                "moment {} version {}: {}",
                s.name,
                s.version,
                ps.join("; ")
            )),
        }
    }
    (Journeys::new(live, older, global_control), problems)
}

/// A new version of a moment.
#[derive(Debug)]
pub struct Changed {
    pub name: String,
    pub version: u32,
    pub source: String,
    /// The replaced version's text.
    pub previous: Option<String>,
}

/// What syncing the folder did.
#[derive(Debug, Default)]
pub struct FolderSync {
    /// Each new version.
    pub changed: Vec<Changed>,
    /// Moments whose file is gone: they stop taking entrants.
    pub removed: Vec<String>,
}

/// Stores every moment of the folder (a new version when its text
/// changed) and retires the ones whose file is gone. Nothing is stored
/// when any file has a problem.
pub fn sync_folder(
    store: &mut Store,
    dir: &Path,
    table: &SegmentTable,
    now_ms: i64,
) -> Result<FolderSync, String> {
    let entries =
        lifecycle_ingest::config::read_moment_dir(dir, table).map_err(|ps| ps.join("\n"))?;
    let templates = Templates::new(dir);
    let mut problems = Vec::new();
    for e in &entries {
        for s in &e.moment.steps {
            if let lifecycle_moments::Step::Send { template, .. } = &s.step
                && let Err(err) = templates.check(template)
            {
                problems.push(format!("{}: {err}", e.path.display()));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let mut out = FolderSync::default();
    for e in &entries {
        let saved = store
            .save_moment(
                &e.moment.name,
                &e.source,
                &e.path.display().to_string(),
                now_ms,
            )
            .map_err(|err| err.to_string())?;
        if saved.changed {
            out.changed.push(Changed {
                name: e.moment.name.clone(),
                version: saved.version,
                source: e.source.clone(),
                previous: saved.previous,
            });
        }
    }
    let dir_text = dir.display().to_string();
    for m in store.moments().map_err(|e| e.to_string())? {
        let from_folder =
            Path::new(&m.origin).parent() == Some(dir) || m.origin.starts_with(&dir_text);
        if m.active && from_folder && !entries.iter().any(|e| e.moment.name == m.name) {
            store
                .deactivate_moment(&m.name)
                .map_err(|e| e.to_string())?;
            out.removed.push(m.name);
        }
    }
    Ok(out)
}

/// A line diff of two definitions (`-` removed, `+` added), for the log
/// and the API when a live moment changes.
pub fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence table (definitions are small).
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

/// Turns outbox rows into messages.
pub struct Deliverer {
    templates: Templates,
    catalogue: Vec<Product>,
    affinities: Option<AffinityFile>,
    smtp: Option<Smtp>,
    webhook: Option<Webhook>,
    sms: Option<Sms>,
    push: Option<Push>,
    signer: Signer,
    public_url: String,
    caps: Vec<Cap>,
    quiet_hours: Option<QuietHours>,
    tz: jiff::tz::TimeZone,
}

/// Tries after a transient failure: 1, 2, 4, … minutes, then a dead letter.
const MAX_ATTEMPTS: i64 = 8;

impl Deliverer {
    pub fn new(
        options: &JourneyOptions,
        secret: &str,
        public_url: String,
        tz: jiff::tz::TimeZone,
    ) -> Result<Deliverer, DeliverError> {
        let dir = options.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let smtp = match &options.email {
            Some(e) => Some(Smtp::new(&e.smtp, &e.from)?),
            None => None,
        };
        let webhook = match &options.webhook {
            Some(w) => Some(Webhook::new(
                &w.url,
                &w.secret,
                AllowList::parse(&w.allow_private)
                    .map_err(|e| DeliverError::Config(format!("webhook allow_private: {e}")))?,
            )?),
            None => None,
        };
        let sms = match &options.sms {
            Some(o) => {
                let allow = AllowList::parse(&o.allow_private)
                    .map_err(|e| DeliverError::Config(format!("sms allow_private: {e}")))?;
                Some(Sms::new(
                    &o.base_url,
                    &o.account,
                    &o.token,
                    &o.from,
                    &allow,
                )?)
            }
            None => None,
        };
        let push = match &options.push {
            Some(o) => {
                let allow = AllowList::parse(&o.allow_private)
                    .map_err(|e| DeliverError::Config(format!("push allow_private: {e}")))?;
                Some(Push::new(&o.base_url, &o.project, &o.token, &allow)?)
            }
            None => None,
        };
        let catalogue = match &options.catalogue {
            Some(p) => read_catalogue(p).map_err(DeliverError::Config)?,
            None => Vec::new(),
        };
        Ok(Deliverer {
            templates: Templates::new(&dir),
            catalogue,
            affinities: options.affinities.as_ref().map(|p| AffinityFile {
                path: p.clone(),
                state: std::sync::Mutex::new((None, std::sync::Arc::new(Affinities::new()))),
            }),
            smtp,
            webhook,
            sms,
            push,
            signer: Signer::new(secret.as_bytes()),
            public_url: public_url.trim_end_matches('/').to_string(),
            caps: options.caps.clone(),
            quiet_hours: options.quiet_hours,
            tz,
        })
    }

    /// The HTML with every link carrying UTM parameters and going through
    /// the click redirect (`/c/{token}`, which records `Email Link Clicked`).
    fn tracked(&self, html: &str, item: &OutboxItem, channel: Channel, keep: &str) -> String {
        let campaign: String = item
            .moment
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let content = format!("step-{}", item.step + 1);
        let utm = [
            ("utm_source", "lifecycle"),
            ("utm_medium", channel.name()),
            ("utm_campaign", campaign.as_str()),
            ("utm_content", content.as_str()),
        ];
        lifecycle_deliver::templates::track_links(html, &utm, keep, |url| {
            format!(
                "{}/c/{}",
                self.public_url,
                self.signer
                    .sign_parts(&[&item.customer_id, &item.moment, &item.key, url])
            )
        })
    }

    /// Where customers reach the server (links in messages).
    pub fn set_public_url(&mut self, url: &str) {
        self.public_url = url.trim_end_matches('/').to_string();
    }

    /// Reads the templates afresh (the folder changed).
    pub fn reload_templates(&mut self) {
        self.templates = Templates::new(self.templates.dir());
    }

    fn unsubscribe_url(&self, customer: &str, channel: Channel) -> String {
        format!(
            "{}/u/{}",
            self.public_url,
            self.signer.sign(customer, channel.name())
        )
    }

    /// Delivers one leased send and says how it ended.
    pub fn deliver(&self, store: &mut Store, item: &OutboxItem, now_ms: i64) -> Outcome {
        match self.try_deliver(store, item, now_ms) {
            Ok(o) => o,
            Err(Failure::Store(e)) => Outcome::Retry {
                at_ms: now_ms + 60_000,
                error: format!("the store: {e}"),
            },
            Err(Failure::Deliver(e)) if e.is_transient() && item.attempts + 1 < MAX_ATTEMPTS => {
                let backoff = 60_000i64 << item.attempts.clamp(0, 10);
                Outcome::Retry {
                    at_ms: now_ms + backoff,
                    error: e.to_string(),
                }
            }
            Err(Failure::Deliver(e)) => Outcome::Failed {
                error: e.to_string(),
            },
        }
    }

    /// What the policy makes of a send due now: `Some` when it must not go
    /// now (consent, a frequency cap, quiet hours). A dry run (`moments
    /// simulate`) only honours an explicit refusal of consent, as history
    /// has no contact details.
    fn policy(
        &self,
        store: &mut Store,
        item: &OutboxItem,
        channel: Channel,
        traits: &serde_json::Map<String, Value>,
        now_ms: i64,
        dry_run: bool,
    ) -> Result<Option<Outcome>, Failure> {
        let refused = traits
            .get(&format!("consent_{}", channel.name()))
            .is_some_and(|v| v == &Value::Bool(false));
        if (dry_run && refused) || (!dry_run && !lifecycle_store::consents(traits, channel)) {
            return Ok(Some(Outcome::Suppressed {
                reason: format!("consent: no {} consent", channel.name()),
            }));
        }
        for cap in self.caps.iter().filter(|c| c.channel == channel) {
            let sent = store.sent_since(&item.customer_id, channel.name(), cap.since_ms(now_ms))?;
            if sent >= i64::from(cap.max) {
                return Ok(Some(Outcome::Suppressed {
                    reason: format!(
                        "cap: {} {} per {} days reached",
                        cap.max,
                        channel.name(),
                        cap.days
                    ),
                }));
            }
        }
        if let Some(q) = &self.quiet_hours {
            let tz = traits
                .get("timezone")
                .and_then(Value::as_str)
                .and_then(|name| jiff::tz::TimeZone::get(name).ok())
                .unwrap_or_else(|| self.tz.clone());
            if let Some(until) = q.deferred_until(now_ms, &tz) {
                return Ok(Some(Outcome::Deferred {
                    until_ms: until,
                    reason: "quiet hours".into(),
                }));
            }
        }
        Ok(None)
    }

    /// A dry run of one send: the policy's verdict, or "sent" (simulated).
    pub fn simulate(&self, store: &mut Store, item: &OutboxItem, now_ms: i64) -> Outcome {
        let result = (|| -> Result<Outcome, Failure> {
            let channel = Channel::parse(&item.channel).unwrap_or(Channel::Email);
            let (_, traits) = store.customer_context(&item.customer_id)?;
            Ok(self
                .policy(store, item, channel, &traits, now_ms, true)?
                .unwrap_or(Outcome::Sent {
                    detail: "simulated".into(),
                    content: None,
                }))
        })();
        result.unwrap_or_else(|_| Outcome::Retry {
            at_ms: now_ms + 60_000,
            error: "the store".into(),
        })
    }

    fn try_deliver(
        &self,
        store: &mut Store,
        item: &OutboxItem,
        now_ms: i64,
    ) -> Result<Outcome, Failure> {
        let Some(channel) = Channel::parse(&item.channel) else {
            return Ok(Outcome::Failed {
                error: format!("unknown channel {}", item.channel),
            });
        };
        let (profile, traits) = store.customer_context(&item.customer_id)?;
        if let Some(blocked) = self.policy(store, item, channel, &traits, now_ms, false)? {
            return Ok(blocked);
        }
        let unsubscribe = self.unsubscribe_url(&item.customer_id, channel);
        let ctx = json!({
            "customer_id": item.customer_id,
            "traits": traits,
            "profile": profile.as_ref().map(|p| json!({
                "segment": p.segment, "phase": p.phase, "clv": p.clv, "p_alive": p.p_alive,
                "orders": p.n_orders, "total_spend": p.total_spend,
                "r": p.r, "f": p.f, "m": p.m,
            })),
            "moment": item.moment,
            "unsubscribe_url": unsubscribe,
            "products": if self.catalogue.is_empty() {
                Vec::new()
            } else {
                let affinities = self
                    .affinities
                    .as_ref()
                    .map_or_else(|| std::sync::Arc::new(Affinities::new()), AffinityFile::current);
                suggestions(
                    &self.catalogue,
                    &affinities,
                    &store.bought_products(&item.customer_id)?,
                    3,
                )
            },
        });
        let subject = match &item.subject {
            Some(s) => self.templates.render_line("subject", s, &ctx)?,
            None => item.moment.clone(),
        };
        let text_of = |t: &Templates| -> Result<String, DeliverError> {
            let rendered = t.render(&item.template, &ctx)?;
            if item.template.ends_with(".html") {
                t.render_text(&item.template, &rendered, &ctx)
            } else {
                Ok(rendered)
            }
        };
        let not_configured = |c: Channel, section: &str| {
            Ok(Outcome::Failed {
                error: format!(
                    "the {} channel is not configured ([channels.{section}])",
                    c.name()
                ),
            })
        };
        let sent = |detail: String| Outcome::Sent {
            detail,
            content: None,
        };
        match channel {
            Channel::Email => {
                let Some(smtp) = &self.smtp else {
                    return not_configured(channel, "email");
                };
                let Some(to) = traits.get("email").and_then(Value::as_str) else {
                    return Ok(Outcome::Suppressed {
                        reason: "consent: no email address".into(),
                    });
                };
                let html = self.templates.render(&item.template, &ctx)?;
                let text = self.templates.render_text(&item.template, &html, &ctx)?;
                let html = self.tracked(&html, item, channel, &unsubscribe);
                let answer = smtp.send(&Email {
                    to,
                    subject: &subject,
                    html: &html,
                    text: &text,
                    key: &item.key,
                    unsubscribe: Some(&unsubscribe),
                })?;
                Ok(sent(answer))
            }
            Channel::Webhook => {
                let Some(hook) = &self.webhook else {
                    return not_configured(channel, "webhook");
                };
                let content = self.templates.render(&item.template, &ctx)?;
                let body = json!({
                    "id": item.key,
                    "type": "moment.message",
                    "moment": item.moment,
                    "version": item.version,
                    "step": item.step,
                    "template": item.template,
                    "subject": subject,
                    "content": content,
                    "customer": {"id": item.customer_id, "traits": ctx["traits"], "profile": ctx["profile"]},
                    "created_at": jiff::Timestamp::from_millisecond(item.created_ms).ok().map(|t| t.to_string()),
                });
                let answer = hook.send(
                    &item.key,
                    body.to_string().as_bytes(),
                    now_ms.div_euclid(1000),
                )?;
                Ok(sent(answer))
            }
            Channel::Sms => {
                let Some(sms) = &self.sms else {
                    return not_configured(channel, "sms");
                };
                let Some(phone) = traits.get("phone").and_then(Value::as_str) else {
                    return Ok(Outcome::Suppressed {
                        reason: "consent: no phone number".into(),
                    });
                };
                let text = text_of(&self.templates)?;
                Ok(sent(sms.send(phone, &text)?))
            }
            Channel::Push => {
                let Some(push) = &self.push else {
                    return not_configured(channel, "push");
                };
                let Some(device) = traits.get("push_token").and_then(Value::as_str) else {
                    return Ok(Outcome::Suppressed {
                        reason: "consent: no push token".into(),
                    });
                };
                let text = text_of(&self.templates)?;
                Ok(sent(push.send(device, &subject, &text, &item.key)?))
            }
            Channel::OnSite => {
                let content = self.templates.render(&item.template, &ctx)?;
                Ok(Outcome::Sent {
                    detail: "on-site".into(),
                    content: Some(content),
                })
            }
            Channel::Audience => Ok(sent("in the audience".into())),
        }
    }
}

enum Failure {
    Store(StoreError),
    Deliver(DeliverError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<DeliverError> for Failure {
    fn from(e: DeliverError) -> Self {
        Failure::Deliver(e)
    }
}

/// Drains the outbox until the engine stops: leases due sends (highest
/// priority first) and delivers them on several connections at once (a
/// provider's answer takes tens of milliseconds); one customer's sends stay
/// on one connection, in order, so that frequency caps count what went
/// before.
pub fn delivery_loop(
    engine: Arc<Engine>,
    mut stores: Vec<Store>,
    mut deliverer: Deliverer,
    poll: Duration,
) {
    let mut generation = engine.moments_generation.load(Ordering::SeqCst);
    let workers = stores.len().max(1);
    let mut audiences_at = std::time::Instant::now();
    while !engine.stopping.load(Ordering::SeqCst) {
        let g = engine.moments_generation.load(Ordering::SeqCst);
        if g != generation {
            generation = g;
            deliverer.reload_templates();
        }
        // Audience files follow exits too (journeys that ended since).
        if audiences_at.elapsed() >= Duration::from_secs(60)
            && let (Some(dir), Some(store)) =
                (&engine.journey_options.audience_dir, stores.first_mut())
        {
            audiences_at = std::time::Instant::now();
            if let Ok(all) = store.moments() {
                let sends_audience = |source: &str| {
                    lifecycle_ingest::config::parse_moment(source, &engine.table).is_ok_and(|m| {
                        m.steps.iter().any(|s| {
                            matches!(
                                s.step,
                                lifecycle_moments::Step::Send {
                                    channel: Channel::Audience,
                                    ..
                                }
                            )
                        })
                    })
                };
                let mut names: Vec<String> = all
                    .into_iter()
                    .filter(|m| sends_audience(&m.source))
                    .map(|m| m.name)
                    .collect();
                names.dedup();
                for name in &names {
                    if let Err(e) = write_audience_files(store, dir, name) {
                        eprintln!("audience {name}: {e}");
                    }
                }
            }
        }
        let Some(first) = stores.first_mut() else {
            return;
        };
        let now = engine.clock.now_ms();
        let items = match first.claim_outbox(now, 120_000, 25 * workers) {
            Ok(items) => items,
            Err(e) => {
                eprintln!("delivery: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if items.is_empty() {
            std::thread::sleep(poll);
            continue;
        }
        let mut parts: Vec<Vec<&OutboxItem>> = vec![Vec::new(); workers];
        for item in &items {
            let k = lifecycle_moments::assignment::position("delivery", &item.customer_id);
            parts[((k * workers as f64) as usize).min(workers - 1)].push(item);
        }
        let audiences: Vec<String> = {
            let mut m: Vec<String> = items
                .iter()
                .filter(|i| i.channel == "audience")
                .map(|i| i.moment.clone())
                .collect();
            m.dedup();
            m
        };
        let deliverer = &deliverer;
        let engine = &engine;
        std::thread::scope(|scope| {
            for (store, part) in stores.iter_mut().zip(parts) {
                if part.is_empty() {
                    continue;
                }
                scope.spawn(move || {
                    for item in part {
                        let now = engine.clock.now_ms();
                        let outcome = deliverer.deliver(store, item, now);
                        engine.count_delivery(&outcome);
                        if let Err(e) = store.finish_outbox(&item.key, &outcome, now) {
                            // The lease runs out and the send is tried
                            // again; so do the rest of this part's (the
                            // store is likely down: no point trying them).
                            eprintln!("delivery: {}: {e}", item.key);
                            break;
                        }
                    }
                });
            }
        });
        if let (Some(dir), Some(store)) = (&engine.journey_options.audience_dir, stores.first_mut())
        {
            for moment in &audiences {
                if let Err(e) = write_audience_files(store, dir, moment) {
                    eprintln!("audience {moment}: {e}");
                }
            }
        }
    }
}

/// Writes a moment's ad-audience files (`<moment>-meta.csv`,
/// `<moment>-google.csv`), replacing them atomically.
pub fn write_audience_files(store: &mut Store, dir: &Path, moment: &str) -> Result<(), String> {
    use lifecycle_deliver::audiences::{Platform, audience_csv};
    let members = store.audience_members(moment).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let slug: String = moment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    for p in [Platform::Meta, Platform::Google] {
        let path = dir.join(format!("{slug}-{}.csv", p.name()));
        let tmp = dir.join(format!(".{slug}-{}.csv.tmp", p.name()));
        std::fs::write(&tmp, audience_csv(p, &members))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Sends a moment's email step (1-based) to seed addresses now: the
/// template rendered with a customer's data when one is named (else
/// empty traits), "[test]" before the subject. Returns the SMTP answers.
#[allow(clippy::too_many_arguments)]
pub fn test_send(
    options: &JourneyOptions,
    store: &mut Store,
    table: &SegmentTable,
    name: &str,
    step: usize,
    to: &[String],
    customer: Option<&str>,
) -> Result<Vec<String>, String> {
    let stored = store.moments().map_err(|e| e.to_string())?;
    let Some(latest) = stored.iter().rev().find(|m| m.name == name) else {
        return Err(format!("no moment \"{name}\""));
    };
    let m =
        lifecycle_ingest::config::parse_moment(&latest.source, table).map_err(|p| p.join("; "))?;
    let Some(s) = step.checked_sub(1).and_then(|i| m.steps.get(i)) else {
        return Err(format!(
            "\"{name}\" has no step {step} (it has {})",
            m.steps.len()
        ));
    };
    let lifecycle_moments::Step::Send {
        channel: Channel::Email,
        template,
        subject,
    } = &s.step
    else {
        return Err(format!("step {step} of \"{name}\" is not an email send"));
    };
    let Some(email) = &options.email else {
        return Err("no email channel: set [channels.email] smtp and from".into());
    };
    if to.is_empty() || to.len() > 50 {
        return Err("\"to\" must list 1 to 50 seed addresses".into());
    }
    let smtp = Smtp::new(&email.smtp, &email.from).map_err(|e| e.to_string())?;
    let templates = Templates::new(options.dir.as_deref().unwrap_or(Path::new(".")));
    let (profile, traits) = match customer {
        Some(c) => {
            let id = store
                .find_customer(c)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no customer {c}"))?;
            store.customer_context(&id).map_err(|e| e.to_string())?
        }
        None => (None, serde_json::Map::new()),
    };
    let ctx = json!({
        "customer_id": customer,
        "traits": traits,
        "profile": profile.as_ref().map(|p| json!({
            "segment": p.segment, "phase": p.phase, "clv": p.clv, "p_alive": p.p_alive,
            "orders": p.n_orders, "total_spend": p.total_spend, "r": p.r, "f": p.f, "m": p.m,
        })),
        "moment": name,
        "unsubscribe_url": "#test-send",
        "products": [],
    });
    let html = templates
        .render(template, &ctx)
        .map_err(|e| e.to_string())?;
    let text = templates
        .render_text(template, &html, &ctx)
        .map_err(|e| e.to_string())?;
    let subject = match subject {
        Some(s) => templates
            .render_line("subject", s, &ctx)
            .map_err(|e| e.to_string())?,
        None => name.to_string(),
    };
    let subject = format!("[test] {subject}");
    let mut answers = Vec::new();
    for seed in to {
        let answer = smtp
            .send(&Email {
                to: seed,
                subject: &subject,
                html: &html,
                text: &text,
                key: &format!("test:{name}:{step}:{seed}"),
                unsubscribe: None,
            })
            .map_err(|e| format!("{seed}: {e}"))?;
        answers.push(format!("{seed}: {answer}"));
    }
    Ok(answers)
}

/// A moment's definition and counts for the API.
pub fn moment_json(
    m: &Moment,
    stored: &[StoredMoment],
    counts: &lifecycle_store::MomentCounts,
) -> Value {
    let versions: Vec<Value> = stored
        .iter()
        .filter(|s| s.name == m.name)
        .map(|s| json!({"version": s.version, "active": s.active, "origin": s.origin, "created_ms": s.created_ms}))
        .collect();
    let source = stored
        .iter()
        .rev()
        .find(|s| s.name == m.name && s.version == m.version)
        .map(|s| s.source.clone());
    json!({
        "name": m.name,
        "version": m.version,
        "holdout": m.holdout,
        "priority": m.priority,
        "steps": m.steps.len(),
        "definition": source,
        "versions": versions,
        "counts": {
            "enrolled": counts.enrolled,
            "holdout": counts.holdout,
            "global_control": counts.global_control,
            "active": counts.active,
            "goals_treated": counts.goals_treated,
            "goals_held_out": counts.goals_held_out,
            "goal_value_treated": counts.goal_value_treated,
            "goal_value_held_out": counts.goal_value_held_out,
            "messages": counts.messages.iter().map(|(s, n)| (s.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_and_suggestions() {
        let dir = std::env::temp_dir().join(format!("lc-cat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or(());
        let path = dir.join("products.csv");
        std::fs::write(
            &path,
            "id,name,url,price,category\np1,\"Tea, green\",https://s/p1,4.5,tea\np2,Mug,https://s/p2,,kitchen\np3,Black tea,https://s/p3,5,tea\n",
        )
        .unwrap_or(());
        let c = read_catalogue(&path).unwrap_or_default();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].name, "Tea, green");
        assert_eq!(c[1].price, None);
        let s = suggestions(&c, &Affinities::new(), &["p1".to_string()], 2);
        let ids: Vec<&str> = s.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            ["p3", "p2"],
            "same category first, then the catalogue's order"
        );
        // Affinities come first: after p1, customers bought p2 (most
        // confident) and p9 (not in the catalogue); p3 was not significant.
        let rules = dir.join("affinities.csv");
        std::fs::write(
            &rules,
            "bought,later_bought,customers,confidence,p_adjusted\np1,p3,9,0.9,0.2\np1,p9,9,0.8,0.001\np1,p2,9,0.6,0.001\n",
        )
        .unwrap_or(());
        let a = read_affinities(&rules).unwrap_or_default();
        assert_eq!(
            a["p1"],
            vec![("p9".to_string(), 0.8), ("p2".to_string(), 0.6)]
        );
        let s = suggestions(&c, &a, &["p1".to_string()], 2);
        let ids: Vec<&str> = s.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["p2", "p3"], "the affinity first, then the category");
        std::fs::write(&path, "sku,title\n").unwrap_or(());
        assert!(read_catalogue(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn diffs_show_changed_lines() {
        assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "- b\n+ x\n");
        assert_eq!(diff("", "a\n"), "+ a\n");
        assert_eq!(diff("a\n", "a\n"), "");
    }
}
