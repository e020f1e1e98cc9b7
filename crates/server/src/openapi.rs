//! `/openapi.json`: an OpenAPI 3.1 document built from the same endpoint
//! table the router is built from ([`crate::http::endpoints`]), so that a
//! route cannot exist undocumented. Who may call each path comes from the
//! access table ([`crate::http::access_of`]).

use serde_json::{Map, Value, json};

use crate::http::{Access, access_of, endpoints};

/// Where a parameter goes.
#[derive(Debug, Clone, Copy)]
pub enum In {
    Path,
    Query,
}

/// One parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    pub description: &'static str,
    pub required: bool,
}

/// What an endpoint does.
#[derive(Debug, Clone)]
pub struct Doc {
    pub summary: &'static str,
    pub description: &'static str,
    pub params: Vec<Param>,
    /// The request body, described (JSON).
    pub body: Option<&'static str>,
    pub responses: Vec<(u16, &'static str)>,
}

fn path(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: In::Path,
        description,
        required: true,
    }
}

fn query(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: In::Query,
        description,
        required: false,
    }
}

/// The documentation of each endpoint.
pub mod docs {
    use super::{Doc, path, query};

    const UNAUTHORIZED: (u16, &str) = (401, "Missing or wrong key (no detail is given)");

    pub fn healthz() -> Doc {
        Doc {
            summary: "Liveness",
            description: "Answers `ok` while the server runs.",
            params: vec![],
            body: None,
            responses: vec![(200, "ok")],
        }
    }
    pub fn readyz() -> Doc {
        Doc {
            summary: "Readiness",
            description: "Answers `ready` when the store answers a query; 503 while it does not (e.g. PostgreSQL restarting), for load balancers' health checks.",
            params: vec![],
            body: None,
            responses: vec![(200, "ready"), (503, "the store is unavailable")],
        }
    }
    pub fn openapi() -> Doc {
        Doc {
            summary: "This document",
            description: "The OpenAPI description of every endpoint, built from the router's own table.",
            params: vec![],
            body: None,
            responses: vec![(200, "OpenAPI 3.1 JSON")],
        }
    }
    pub fn metrics() -> Doc {
        Doc {
            summary: "Prometheus metrics",
            description: "Counters (events stored, duplicates, orders, merges, segment events, commits, refits, rejections, the writer's seconds running and committing transactions) and request latency histograms by class (ingest, api, other), in the Prometheus text format. Needs a secret key unless the server runs with --metrics-open.",
            params: vec![],
            body: None,
            responses: vec![(200, "text/plain; version=0.0.4"), UNAUTHORIZED],
        }
    }
    pub fn ingest() -> Doc {
        Doc {
            summary: "Segment HTTP Tracking API",
            description: "identify, track, page, screen, alias, group, or batch ({\"batch\": [...]}), as Segment's libraries send them; HTTP Basic auth with a write key as the user name; gzip bodies accepted; 32 KB a message, 500 KB a batch. The answer follows the durable commit; the customers' profiles are current when it arrives.",
            params: vec![path(
                "kind",
                "identify | track | page | screen | alias | group | batch",
            )],
            body: Some("A Segment message, or {\"batch\": [messages], \"sentAt\": ...}"),
            responses: vec![
                (
                    200,
                    "{success, stored, duplicates, orders_new, orders_updated, merged, merges_refused}",
                ),
                (
                    400,
                    "Invalid message or a size limit exceeded (the error says which)",
                ),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn list_customers() -> Doc {
        Doc {
            summary: "List customers",
            description: "Profiles by customer id with cursor pagination; filters combine. format=csv gives CSV with the next cursor in the X-Next-Cursor header.",
            params: vec![
                query("segment", "Segment name, e.g. Champions"),
                query("phase", "Phase name, e.g. Reactivation"),
                query("min_clv", "Only customers whose CLV is at least this"),
                query("cursor", "next_cursor of the previous page"),
                query("limit", "1..=10000, default 100"),
                query("format", "json (default) or csv"),
            ],
            body: None,
            responses: vec![
                (200, "{customers: [...], next_cursor}"),
                (400, "Bad parameter"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn get_customer() -> Doc {
        Doc {
            summary: "The single customer view",
            description: "Traits, ids and merges, order summary, R/F/M scores, segment and phase with its goal, CLV, P(alive), expected next order, value-decline flag, the model run the scores come from, and the last 50 events. The id may be a customer id, any userId or anonymousId merged into them, or an email address.",
            params: vec![path("id", "Customer id, userId, anonymousId or email")],
            body: None,
            responses: vec![
                (200, "The customer view"),
                (404, "No such customer"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn erase_customer() -> Doc {
        Doc {
            summary: "Erase a customer's personal data",
            description: "The right to erasure: deletes the person's events (with their traits and properties), traits, identities, merge history, timers and suppressions of their id, and clears their messages' subject, content and detail. Orders, scores, journey enrolments and message statuses stay under a random pseudonym that nothing links back to them, so aggregates (revenue, segments, fits, lift readouts) do not change; an email address on a suppression list stays there. {id} may be a customer id, an alias or an email address. Recorded in the audit log without naming them.",
            params: vec![path("id", "Customer id, alias or email address")],
            body: None,
            responses: vec![
                (
                    200,
                    "{erased, events_deleted, identities_deleted, orders_kept_anonymously, enrolments_kept_anonymously, messages_cleared}",
                ),
                (404, "No such customer"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn export_customer() -> Doc {
        Doc {
            summary: "Everything held on a customer",
            description: "The right of access: every stored row naming the customer, by table (events with their payloads, orders, traits, identities, merges, profile, journey enrolments, messages with their content, timers) and the suppressions of their id or email addresses.",
            params: vec![path("id", "Customer id, alias or email address")],
            body: None,
            responses: vec![
                (
                    200,
                    "{customer_id, <table>: [rows as objects], suppressions}",
                ),
                (404, "No such customer"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn backup() -> Doc {
        Doc {
            summary: "A backup of the whole store (admin)",
            description: "Every table's rows as JSON lines, gzip-compressed: the file `lifecycle backup` writes, read in one consistent snapshot while the server keeps running, and restorable with `lifecycle restore`. Streamed as it is read; a failure part-way ends the response early (the file is then incomplete and `restore` refuses it). It holds personal data and the store's secrets; each backup is recorded in the audit log. `lifecycle backup --server URL` calls it.",
            params: vec![],
            body: None,
            responses: vec![(200, "The backup (application/gzip)"), UNAUTHORIZED],
        }
    }
    pub fn merge_customer() -> Doc {
        Doc {
            summary: "Merge two customers (admin)",
            description: "Merges the customer named by `from` into {id}: their events, orders, ids and traits move; recorded in the merge history and the audit log. The only way two known customers are merged.",
            params: vec![path("id", "The customer who remains")],
            body: Some("{\"from\": \"<id of the customer merged into {id}>\"}"),
            responses: vec![
                (200, "{success, customer_id, merged}"),
                (400, "Bad body"),
                (404, "No such customer"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn segments() -> Doc {
        Doc {
            summary: "Live segment totals",
            description: "Every segment with its phase, goal, customers, revenue and CLV, live. format=csv gives CSV.",
            params: vec![query("format", "json (default) or csv")],
            body: None,
            responses: vec![(200, "{segments: [...], model_run}"), UNAUTHORIZED],
        }
    }
    pub fn refit() -> Doc {
        Doc {
            summary: "Refit the models and re-score everyone",
            description: "Takes RFM quintile bands and fits the BG/NBD and Gamma-Gamma on the stored history as of now, records the run (kept with its parameters and time) and re-scores every customer under it; segment changes become Segment Entered / Exited events.",
            params: vec![],
            body: None,
            responses: vec![(200, "The run: {id, at, params, seconds}"), UNAUTHORIZED],
        }
    }
    pub fn runs() -> Doc {
        Doc {
            summary: "Model runs",
            description: "The last 100 model runs, newest first, with their parameters and figures (active customers, 12-month retention, repeat rate, tracking chart points; once everyone is re-scored: customers, revenue and CLV by segment, customer equity, CLV bands and percentiles).",
            params: vec![],
            body: None,
            responses: vec![(200, "{runs: [...]}"), UNAUTHORIZED],
        }
    }
    pub fn clock() -> Doc {
        Doc {
            summary: "Move the simulated clock",
            description: "Only when serve runs with --simulated-clock: advances it and applies the due-time index (customers whose recency crossed a score boundary move segment).",
            params: vec![],
            body: Some("{\"advance_days\": N} or {\"advance_seconds\": N}"),
            responses: vec![
                (200, "{now, rescored}"),
                (400, "Bad body"),
                (409, "The clock is the system's"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn list_moments() -> Doc {
        Doc {
            summary: "Moments",
            description: "Every moment with its live version, enrolment, goal and message counts.",
            params: vec![],
            body: None,
            responses: vec![(200, "{moments: [...]}"), UNAUTHORIZED],
        }
    }
    pub fn get_moment() -> Doc {
        Doc {
            summary: "One moment",
            description: "Its live definition (TOML), versions, and counts: enrolled, held out (moment holdout and global control), active, goals reached by treated and held-out customers with their value, messages by status.",
            params: vec![path("name", "The moment's name")],
            body: None,
            responses: vec![(200, "The moment"), (404, "No such moment"), UNAUTHORIZED],
        }
    }
    pub fn save_moment() -> Doc {
        Doc {
            summary: "Create or change a moment",
            description: "The body is one moment's TOML definition (as in the moments folder). A changed definition becomes a new version: new entrants walk it, customers already in the journey keep the version they entered with. The answer has the version and a line diff against the replaced one.",
            params: vec![],
            body: Some("A moment definition (TOML text)"),
            responses: vec![
                (200, "{name, version, changed, diff}"),
                (400, "The definition's problems, by line"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn put_moment() -> Doc {
        Doc {
            summary: "Change a moment",
            description: "As POST /api/v1/moments; the definition must carry the name in the path.",
            params: vec![path("name", "The moment's name")],
            body: Some("A moment definition (TOML text)"),
            responses: vec![
                (200, "{name, version, changed, diff}"),
                (400, "The definition's problems, by line"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn unsubscribe() -> Doc {
        Doc {
            summary: "Unsubscribe link",
            description: "The signed link in every email (and its List-Unsubscribe header): GET shows a confirmation page and unsubscribes; POST is RFC 8058 one-click. Records an Unsubscribed event; no moment messages the customer on that channel again.",
            params: vec![path("token", "The signed token of the link")],
            body: None,
            responses: vec![(200, "Unsubscribed"), (404, "Not a valid link")],
        }
    }
    pub fn onsite_messages() -> Doc {
        Doc {
            summary: "A customer's on-site messages",
            description: "The on-site messages (banners, pop-ups) moments sent the customer in the last 7 days and not dismissed, as HTML. Called from shop pages by /onsite.js with a public key (`?key=pk_...` or Bearer); answered with CORS headers.",
            params: vec![
                path("id", "Customer id, userId, anonymousId or email"),
                query("key", "A public key (instead of the Authorization header)"),
            ],
            body: None,
            responses: vec![
                (200, "{customer_id, messages: [{key, moment, html}]}"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn dismiss_message() -> Doc {
        Doc {
            summary: "Dismiss an on-site message",
            description: "The customer closed the message: it is not shown again.",
            params: vec![
                path("id", "Customer id, userId, anonymousId or email"),
                path("key", "The message's key"),
                query("key", "A public key (instead of the Authorization header)"),
            ],
            body: None,
            responses: vec![(200, "{success}"), (404, "No such message"), UNAUTHORIZED],
        }
    }
    pub fn onsite_js() -> Doc {
        Doc {
            summary: "The on-site snippet",
            description: "JavaScript to embed in shop pages: <script src=\"/onsite.js\" data-key=\"pk_...\" data-customer=\"ID\"></script> shows the customer's on-site messages with a close button.",
            params: vec![],
            body: None,
            responses: vec![(200, "JavaScript")],
        }
    }
    pub fn moment_audience() -> Doc {
        Doc {
            summary: "A moment's ad audience",
            description: "The customers in the moment's audience now (their audience step delivered, their journey not ended) as a Meta Custom Audiences or Google Customer Match upload: emails and phones normalised by the platform's rules and SHA-256 hashed.",
            params: vec![
                path("name", "The moment's name"),
                query("platform", "meta (default) or google"),
            ],
            body: None,
            responses: vec![(200, "CSV"), (400, "Bad platform"), UNAUTHORIZED],
        }
    }
    pub fn list_messages() -> Doc {
        Doc {
            summary: "Messages by status (dead letters)",
            description: "Outbox messages with a status, newest first: failed (the dead-letter list: given up after retries or refused), suppressed, queued, sent, held_out.",
            params: vec![
                query(
                    "status",
                    "failed (default), suppressed, queued, sent, held_out",
                ),
                query("limit", "At most this many (default 100)"),
            ],
            body: None,
            responses: vec![(200, "{messages: [...]}"), UNAUTHORIZED],
        }
    }
    pub fn list_suppressions() -> Doc {
        Doc {
            summary: "Suppression lists",
            description: "Every suppression list with its size. Moments name lists in `audience.suppression_lists`; a customer whose id or email address is on one does not enter. Bounces and complaints fill `email-bounces` and `email-complaints`.",
            params: vec![],
            body: None,
            responses: vec![(200, "{lists: [{list, values}]}"), UNAUTHORIZED],
        }
    }
    pub fn add_suppressions() -> Doc {
        Doc {
            summary: "Add to a suppression list",
            description: "Customer ids or email addresses (lower-cased), as a JSON array of strings or one per line.",
            params: vec![path("list", "The list's name")],
            body: Some("[\"a@example.com\", \"customer-7\"] or one value per line"),
            responses: vec![(200, "{success, added}"), (400, "Bad body"), UNAUTHORIZED],
        }
    }
    pub fn remove_suppressions() -> Doc {
        Doc {
            summary: "Remove from a suppression list",
            description: "As PUT: the values to remove.",
            params: vec![path("list", "The list's name")],
            body: Some("[\"a@example.com\"] or one value per line"),
            responses: vec![(200, "{success, removed}"), (400, "Bad body"), UNAUTHORIZED],
        }
    }
    pub fn email_events() -> Doc {
        Doc {
            summary: "Bounces and complaints from the email provider",
            description: "Hard bounces and complaints (generic {type, email}, SendGrid's event array, Mailgun's event-data, Amazon SES notifications): the address goes on email-bounces / email-complaints and its customer's email consent is withdrawn (an Unsubscribed event), so no moment emails them again. Point the provider's webhook here with a secret key as HTTP Basic user.",
            params: vec![],
            body: Some("The provider's JSON notification"),
            responses: vec![
                (200, "{success, events, customers_unsubscribed}"),
                (400, "Not JSON"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn test_send() -> Doc {
        Doc {
            summary: "Test-send a step to seed addresses",
            description: "Sends an email step of the moment now to 1 to 50 seed addresses, rendered with a customer's data when `customer` names one, with \"[test]\" before the subject. Nothing is recorded for any customer.",
            params: vec![path("name", "The moment's name")],
            body: Some(
                "{\"step\": 1, \"to\": [\"seed@example.com\"], \"customer\": \"optional id or email\"}",
            ),
            responses: vec![
                (200, "{success, sent: [answers]}"),
                (
                    400,
                    "Not an email step, no such step or moment, no email channel",
                ),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn moment_results() -> Doc {
        Doc {
            summary: "A moment's lift",
            description: "Treated customers against held-out ones (the moment's holdout and the global control group, never messaged), each customer's first entry, outcomes within the goal's window: goal conversion, revenue, orders, visits, and predicted CLV adjusted by the CLV at entry (CUPED). Per metric: n, means, absolute and relative lift with t intervals and sequential (always-valid) intervals, p-values, the incremental total; SRM against the expected split.",
            params: vec![
                path("name", "The moment's name"),
                query("alpha", "Significance level (default 0.05)"),
            ],
            body: None,
            responses: vec![
                (200, "{arms, srm, metrics: [...]}"),
                (404, "No such moment"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn moment_export() -> Doc {
        Doc {
            summary: "A moment's per-customer rows",
            description: "customer_id, arm (treatment/control), converted, revenue, orders, visits, pclv, pre_pclv, goal_value, global_control: the shape `lifecycle lift` reads.",
            params: vec![path("name", "The moment's name")],
            body: None,
            responses: vec![(200, "CSV"), (404, "No such moment"), UNAUTHORIZED],
        }
    }
    pub fn global_results() -> Doc {
        Doc {
            summary: "All lifecycle marketing vs none",
            description: "The global control group (never messaged by any moment) against every other customer: revenue and orders over the last `days` days and predicted CLV, with t and sequential intervals and SRM.",
            params: vec![
                query("days", "The period (default 90)"),
                query("alpha", "Significance level (default 0.05)"),
            ],
            body: None,
            responses: vec![
                (200, "{arms, srm, metrics: [...]}"),
                (400, "Bad parameter"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn kpis() -> Doc {
        Doc {
            summary: "Retention, cohorts and value concentration",
            description: "Over the stored orders as of today: the cohort matrix by acquisition month (customers active and revenue per month since), monthly retention (of the customers active in a month, those active in the next), the repeat-purchase rate, the top 20%'s share of revenue, the Gini coefficient and the days between orders.",
            params: vec![],
            body: None,
            responses: vec![
                (
                    200,
                    "{customers, repeat_rate, pareto_top20_share, gini, days_between_orders, period_retention, quarterly_retention, yearly_retention, cohorts}",
                ),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn insights() -> Doc {
        Doc {
            summary: "The insights of analyze --kpis over the stored orders",
            description: "Runs the insights as of today over the stored orders with the files of lifecycle.toml's [kpis] section (attributes, order lines, spend, survey answers; re-read on each request) and each customer's live CLV: new-customer stickiness by channel, campaign and first product, anomalies by attribute and segment, the ideal customer profile and its lookalikes, upsell affinities and each customer's next best product, LTV:CAC and payback by channel, experience by segment and phase. The files are written to [kpis] out and served by /api/v1/kpis/files/{name}. One run at a time.",
            params: vec![],
            body: None,
            responses: vec![
                (
                    200,
                    "{customers, warnings, insights: {stickiness, anomalies, icp, lines, experience, ltv_cac, payback, ...}}",
                ),
                (400, "A bad input file (names the file, line and column)"),
                (404, "No [kpis] section in lifecycle.toml"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn insight_file() -> Doc {
        Doc {
            summary: "One file written by the insights",
            description: "A CSV written by the last /api/v1/kpis/insights run, e.g. lookalikes.csv, next_best.csv, affinities.csv, stickiness.csv.",
            params: vec![path("name", "File name, e.g. lookalikes.csv")],
            body: None,
            responses: vec![
                (200, "text/csv"),
                (404, "No such file (or not run yet)"),
                UNAUTHORIZED,
            ],
        }
    }
    pub fn click() -> Doc {
        Doc {
            summary: "Tracked link",
            description: "Every link of an email goes through here (with utm_source, utm_medium, utm_campaign and utm_content added): records an Email Link Clicked event (url, moment, message) for the customer and redirects (302) to the signed URL.",
            params: vec![path("token", "The signed token of the link")],
            body: None,
            responses: vec![(302, "Redirect to the link"), (404, "Not a valid link")],
        }
    }
    pub fn audit() -> Doc {
        Doc {
            summary: "Audit log",
            description: "Admin actions (merges, model runs, key creation), newest first.",
            params: vec![],
            body: None,
            responses: vec![(200, "{entries: [...]}"), UNAUTHORIZED],
        }
    }
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for e in endpoints() {
        let d = &e.doc;
        let params: Vec<Value> = d
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": match p.location { In::Path => "path", In::Query => "query" },
                    "required": p.required,
                    "description": p.description,
                    "schema": {"type": "string"},
                })
            })
            .collect();
        let responses: Map<String, Value> = d
            .responses
            .iter()
            .map(|(code, text)| (code.to_string(), json!({"description": text})))
            .collect();
        let security = match access_of(e.path) {
            Access::Open => json!([]),
            Access::Write => json!([{"writeKey": []}]),
            Access::Secret | Access::Metrics => json!([{"secretKey": []}]),
            Access::Public => json!([{"publicKey": []}, {"secretKey": []}]),
        };
        let mut op = json!({
            "summary": d.summary,
            "description": d.description,
            "parameters": params,
            "responses": responses,
            "security": security,
        });
        if let Some(body) = d.body {
            op["requestBody"] = json!({
                "description": body,
                "content": {"application/json": {"schema": {"type": "object"}}},
            });
        }
        let entry = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        entry[e.method.as_str().to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Lifecycle",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The real-time customer-lifecycle engine: Segment-compatible ingestion, the single customer view, segments and model runs.",
        },
        "paths": paths,
        "components": {"securitySchemes": {
            "writeKey": {"type": "http", "scheme": "basic", "description": "A write key as the user name, empty password (Segment's convention)"},
            "secretKey": {"type": "http", "scheme": "bearer", "description": "A secret key (Basic with the key as user name works too)"},
            "publicKey": {"type": "apiKey", "in": "query", "name": "key", "description": "A public key (safe in a web page): on-site messages only"},
        }},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_access() {
        let doc = document();
        let routes = endpoints();
        let paths = doc["paths"].as_object().unwrap();
        let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(operations, routes.len());
        for e in &routes {
            let op = &paths[e.path][e.method.as_str().to_lowercase()];
            assert!(op["summary"].is_string(), "{}", e.path);
            // Path parameters in the template are all declared.
            for part in e.path.split('/').filter(|p| p.starts_with('{')) {
                let name = part.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    op["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == name),
                    "{} lacks {name}",
                    e.path
                );
            }
        }
        assert_eq!(paths["/healthz"]["get"]["security"], json!([]));
        assert_eq!(
            paths["/v1/{kind}"]["post"]["security"],
            json!([{"writeKey": []}])
        );
        assert_eq!(
            paths["/api/v1/customers/{id}"]["get"]["security"],
            json!([{"secretKey": []}])
        );
    }
}
