//! The dashboard's shell through the real server (HTTP; the browser tests
//! come with the rest of the dashboard): without a session every page sends
//! to the sign-in; only a secret key signs in, into an HttpOnly, SameSite
//! session cookie; the overview shows the segment map, a segment its
//! customers (with the CSV export), a customer their view; signing out
//! needs the form's CSRF token; forged cookies and off-site `next` links
//! are refused. The pages as served are screenshot at 1280 and 390 px into
//! the target folder by the Chromium `scripts/chromium.sh` provides.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use serde_json::json;

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn sign_in_pages_export_and_sign_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let (secret, write) = (create_key(&db, "secret"), create_key(&db, "write"));
    let server = start(
        &db,
        &[
            "--simulated-clock",
            "2024-06-01T00:00:00Z",
            "--refit-every",
            "off",
        ],
    );
    let addr = server.addr.as_str();
    let mut batch = Vec::new();
    for i in 0..60 {
        let c = format!("c{i}");
        batch.push(json!({"type": "identify", "userId": c, "messageId": format!("i{i}"),
            "timestamp": "2024-01-01T10:00:00Z", "traits": {"first_name": format!("Name {i}"), "city": if i % 2 == 0 { "Lyon" } else { "Nice" },
                "email": format!("Person{i}@Example.com"), "consent_audience": i != 3}}));
        for k in 0..(1 + i % 4) {
            batch.push(json!({"type": "track", "event": "Order Completed", "userId": c,
                "messageId": format!("o{i}-{k}"), "timestamp": format!("2024-0{}-1{}T10:00:00Z", 1 + k, i % 9),
                "properties": {"order_id": format!("o{i}-{k}"), "revenue": 10 + i}}));
        }
    }
    let body = json!({"batch": batch}).to_string();
    let (status, text) = request(addr, "POST", "/v1/batch", &[basic(&write)], body.as_bytes());
    assert_eq!(status, 200, "{text}");
    let (status, text) = request(addr, "POST", "/api/v1/models/refit", &[basic(&secret)], b"");
    assert_eq!(status, 200, "{text}");

    // No session: to the sign-in, remembering the page.
    let get = |path: &str, cookie: Option<&str>| {
        let h: Vec<(&str, String)> = cookie
            .map(|c| ("Cookie", c.to_string()))
            .into_iter()
            .collect();
        request_with_head(addr, "GET", path, &h, b"").unwrap()
    };
    let (status, head, _) = get("/app", None);
    assert_eq!(status, 303);
    assert_eq!(header(&head, "location"), Some("/app/login?next=%2Fapp"));
    let (status, _, page) = get("/app/login", None);
    assert_eq!(status, 200);
    assert!(
        page.contains("<form method=\"post\" action=\"/app/login\">")
            && page.contains("<label for=\"key\">")
    );
    let post = |path: &str, form: &str, cookie: Option<&str>| {
        let mut h = vec![(
            "Content-Type",
            "application/x-www-form-urlencoded".to_string(),
        )];
        if let Some(c) = cookie {
            h.push(("Cookie", c.to_string()));
        }
        request_with_head(addr, "POST", path, &h, form.as_bytes()).unwrap()
    };
    // A write key is not enough.
    let (status, head, page) = post("/app/login", &format!("key={write}&next=%2Fapp"), None);
    assert_eq!(status, 401);
    assert!(header(&head, "set-cookie").is_none());
    assert!(page.contains("not a secret key"), "{page}");
    // The secret key: a session, back to the page asked for.
    let (status, head, _) = post(
        "/app/login",
        &format!("key={secret}&next=%2Fapp%2Fcustomers%2Fc3"),
        None,
    );
    assert_eq!(status, 303, "{head}");
    assert_eq!(header(&head, "location"), Some("/app/customers/c3"));
    let set = header(&head, "set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/app"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    // An off-site next goes home instead.
    let (_, head, _) = post(
        "/app/login",
        &format!("key={secret}&next=%2F%2Fevil.example"),
        None,
    );
    assert_eq!(header(&head, "location"), Some("/app"));

    // The overview: figures and the segment map.
    let (status, head, overview) = get("/app", Some(&cookie));
    assert_eq!(status, 200);
    assert!(header(&head, "content-security-policy").is_some());
    assert!(overview.contains("<h1>Overview</h1>") && overview.contains("Customer equity"));
    assert!(overview.contains(">60<"), "60 customers");
    assert!(overview.contains("class=\"segmap\"") && overview.contains("Champions"));
    // The figures the page's script polls.
    assert_eq!(get("/app/overview.json", None).0, 401);
    let (status, _, figures) = get("/app/overview.json", Some(&cookie));
    assert_eq!(status, 200);
    let figures: serde_json::Value = serde_json::from_str(&figures).unwrap();
    assert_eq!(figures["customers"], 60);
    assert_eq!(figures["segments"].as_array().unwrap().len(), 11);
    let (status, head, _) = get("/app/static/live.js", None);
    assert_eq!(status, 200);
    assert!(
        header(&head, "content-type")
            .unwrap()
            .starts_with("text/javascript")
    );

    // A customer's view, then their segment's list and export.
    let (status, _, view) = get("/app/customers/c3", Some(&cookie));
    assert_eq!(status, 200);
    assert!(view.contains("<h1>c3") && view.contains("Name 3"));
    // The timeline: c3's 4 orders of 13.00 each, their segment changes.
    assert_eq!(view.matches("class=\"k-order\"").count(), 4, "{view}");
    assert!(view.contains("Order 13.00") && view.contains("class=\"k-segment\""));
    assert!(view.contains("href=\"/app/models\">model run 1</a>"));
    let segment = view
        .split("href=\"/app/segments/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let (status, _, list) = get(&format!("/app/segments/{segment}"), Some(&cookie));
    assert_eq!(status, 200);
    assert!(
        list.contains("href=\"/app/customers/c3\""),
        "c3 is listed in its segment"
    );
    let (status, head, csv) = get(
        &format!("/app/segments/{segment}/customers.csv"),
        Some(&cookie),
    );
    assert_eq!(status, 200);
    assert!(
        header(&head, "content-type")
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(csv.starts_with("customer_id,segment,phase,") && csv.contains("\nc3,"));
    assert_eq!(
        get(&format!("/app/segments/{segment}/customers.csv"), None).0,
        401
    );
    assert_eq!(get("/app/customers/nobody", Some(&cookie)).0, 404);
    let (status, _, page) = get("/app/tripwires", Some(&cookie));
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Tripwires</h1>"));
    assert_eq!(get("/app/tripwires", None).0, 303);

    // Flows: every customer arrived today (the simulated day), into a
    // segment; the period can be chosen.
    assert!(
        overview.contains("60 new customers"),
        "{}",
        overview.split("id=\"flows\"").nth(1).unwrap_or("")
    );
    assert!(overview.contains("<td>(new customers)</td>"));
    let (_, _, week) = get("/app?days=7", Some(&cookie));
    assert!(week.contains("href=\"/app?days=7#flows\" aria-current=\"true\""));

    // The models: these few histories do not fit a BG/NBD, and the page
    // says so and why (the browser test sees a fitted run's charts).
    let (status, _, page) = get("/app/models", Some(&cookie));
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Models</h1>") && page.contains("Model run 1,"));
    assert!(page.contains("Not fitted (the notes say why)") && page.contains("did not converge"));
    assert!(!page.contains("aria-label=\"Tracking chart\""));
    let (_, runs) = request(addr, "GET", "/api/v1/models/runs", &[basic(&secret)], b"");
    // The API shows the same figures.
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    let figures = &runs["runs"][0]["figures"];
    assert_eq!(figures["customers"], 60);
    assert_eq!(figures["buyers"], 60);
    let valued = figures["clv"]["customers"].as_u64().unwrap();
    let banded: u64 = figures["clv"]["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[2].as_u64().unwrap())
        .sum();
    assert_eq!(banded, valued);
    assert_eq!(get("/app/models", None).0, 303);

    // A forged or altered cookie is no session.
    let forged = format!("{}x", cookie);
    assert_eq!(get("/app", Some(&forged)).0, 303);
    assert_eq!(
        get(
            "/app",
            Some("lc_session=c2Vzc2lvbg.OTk5OTk5OTk5OTk5OQ.AAAA")
        )
        .0,
        303
    );

    // Screenshots of the pages as served, in the Chromium the project's
    // script provides (scripts/chromium.sh installs it when missing).
    {
        let o = std::process::Command::new(repo().join("scripts/chromium.sh"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let chromium = String::from_utf8(o.stdout).unwrap().trim().to_string();
        let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        let (_, _, css) = get("/app/static/app.css", None);
        for (name, html) in [
            ("overview", &overview),
            ("customer", &view),
            ("segment", &list),
        ] {
            let page = html.replace(
                "<link rel=\"stylesheet\" href=\"/app/static/app.css\">\n<link rel=\"icon\" href=\"/app/static/icon.svg\" type=\"image/svg+xml\">",
                &format!("<style>{css}</style>"),
            );
            let file = shots.join(format!("{name}.html"));
            std::fs::write(&file, page).unwrap();
            for width in [1280, 390] {
                let png = shots.join(format!("{name}-{width}.png"));
                let o = std::process::Command::new(&chromium)
                    .args([
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--hide-scrollbars",
                        &format!("--window-size={width},1600"),
                        &format!("--screenshot={}", png.display()),
                    ])
                    .arg(format!("file://{}", file.display()))
                    .output()
                    .unwrap();
                assert!(png.exists(), "{}", String::from_utf8_lossy(&o.stderr));
            }
        }
    }

    // Signing out needs the page's CSRF token.
    let token = overview
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    // So does asking for the insights again.
    assert_eq!(post("/app/insights", "csrf=wrong", Some(&cookie)).0, 403);
    let (status, head, _) = post("/app/insights", &format!("csrf={token}"), Some(&cookie));
    assert_eq!(status, 303);
    assert_eq!(header(&head, "location"), Some("/app/insights"));
    assert_eq!(post("/app/logout", "csrf=wrong", Some(&cookie)).0, 403);
    let (status, head, _) = post("/app/logout", &format!("csrf={token}"), Some(&cookie));
    assert_eq!(status, 303);
    assert!(header(&head, "set-cookie").unwrap().contains("Max-Age=0"));
}
