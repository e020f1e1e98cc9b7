//! The dashboard in a real browser: headless Chromium through chromedriver
//! (both from `scripts/chromium.sh`) drives the real server. It signs in
//! through the form, opens the overview, follows a segment tile to its
//! customers and a customer to their view, filters the list, and signs out;
//! the overview updates itself when an order arrives; the moments list
//! leads to a moment's journey counts and lift readout;
//! on every page the console has no error and axe-core (npm, installed by
//! `tests/dashboard_browser/setup.sh`) reports no serious or critical
//! violation. Screenshots at 1280 and 390 px wide are kept in the target
//! folder (`dashboard-browser/`).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::webdriver::Browser;
use common::*;

use std::path::Path;
use std::process::Command;

use serde_json::json;

/// axe-core's serious and critical violations on the current page.
/// The shoppers who arrive as events (on top of the imported history).
const SHOPPERS: usize = 80;

fn accessibility(b: &Browser, axe: &str) -> Vec<String> {
    b.script(axe);
    let v = b.script_async(
        "const done = arguments[arguments.length - 1];\
         axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
           .filter(v => v.impact === 'serious' || v.impact === 'critical')\
           .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))));",
    );
    v.as_array()
        .into_iter()
        .flatten()
        .map(|x| x.as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_marketer_signs_in_and_walks_the_dashboard() {
    let o = Command::new(repo().join("scripts/chromium.sh"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let chromium = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let tools = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser");
    let o = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard_browser/setup.sh"))
        .arg(tools.join("npm"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "axe-core: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let axe = std::fs::read_to_string(String::from_utf8(o.stdout).unwrap().trim()).unwrap();
    let shots = tools.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("b.db").display());
    let (secret, write) = (create_key(&db, "secret"), create_key(&db, "write"));
    // Two years of a shop's orders (drawn from BG/NBD and Gamma-Gamma), so
    // that the models fit, the Champions define tripwire norms and their
    // backtests have closed windows.
    let orders = dir.path().join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        "3000",
        "--seed",
        "11",
        "--start",
        "2022-06-01",
        "--days",
        "730",
        "--out",
        orders.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lifecycle(&["import", orders.to_str().unwrap(), "--db", &db]);
    assert!(o.status.success(), "{}", stderr(&o));
    // One moment: a welcome banner on sign-up, with a holdout.
    let moments = dir.path().join("moments");
    std::fs::create_dir_all(&moments).unwrap();
    std::fs::write(
        moments.join("welcome.toml"),
        "name = \"Welcome\"\nholdout = 0.2\n\n[goal]\nevent = \"Order Completed\"\nwithin_days = 30\n\n[trigger]\nevent = \"Signed Up\"\n\n[[step]]\nsend = { channel = \"onsite\", template = \"banner.html\" }\n",
    )
    .unwrap();
    std::fs::write(moments.join("banner.html"), "<b>Welcome!</b>").unwrap();
    let server = start(
        &db,
        &[
            "--simulated-clock",
            "2024-06-01T00:00:00Z",
            "--refit-every",
            "off",
            "--moments",
            moments.to_str().unwrap(),
        ],
    );
    let addr = server.addr.as_str();
    let mut batch = Vec::new();
    for i in 0..SHOPPERS {
        let c = format!("shopper-{i}");
        let city = ["Lyon", "Nice", "Lille"][i % 3];
        batch.push(
            json!({"type": "identify", "userId": c, "messageId": format!("i{i}"),
            "timestamp": "2024-01-01T10:00:00Z",
            "traits": {"first_name": format!("Shopper {i}"), "city": city,
                "acquisition_channel": (["search", "social"][i % 2]), "acquisition_cost": (20 + 10 * (i % 2))}}),
        );
        batch.push(json!({"type": "track", "event": "Signed Up", "userId": c,
            "messageId": format!("s{i}"), "timestamp": "2024-05-31T09:00:00Z"}));
        for k in 0..(1 + i % 5) {
            batch.push(
                json!({"type": "track", "event": "Order Completed", "userId": c,
                "messageId": format!("o{i}-{k}"),
                "timestamp": format!("2024-0{}-{:02}T10:00:00Z", 1 + k, 1 + (i * 7) % 27),
                "properties": {"order_id": format!("o{i}-{k}"), "revenue": 15 + (i * 13) % 90,
                    "products": [{"product_id": format!("P{}", (i + k) % 4), "price": 15 + (i * 13) % 90, "quantity": 1}]}}),
            );
        }
    }
    let body = json!({"batch": batch}).to_string();
    assert_eq!(
        request(addr, "POST", "/v1/batch", &[basic(&write)], body.as_bytes()).0,
        200
    );
    assert_eq!(
        request(addr, "POST", "/api/v1/models/refit", &[basic(&secret)], b"").0,
        200
    );

    let b = Browser::start(&chromium, 1280, 1000);
    let base = format!("http://{addr}");
    let check = |b: &Browser, name: &str| {
        let errors = b.console_errors();
        assert!(errors.is_empty(), "{name}: console errors {errors:?}");
        let a11y = accessibility(b, &axe);
        assert!(a11y.is_empty(), "{name}: {a11y:?}");
        for (width, height) in [(1280, 1000), (390, 844)] {
            b.resize(width, height);
            b.screenshot(&shots.join(format!("{name}-{width}.png")));
        }
        b.resize(1280, 1000);
    };

    // Not signed in: the sign-in page; a wrong key is refused in words.
    b.go(&format!("{base}/app"));
    assert!(b.url().contains("/app/login"), "{}", b.url());
    check(&b, "login");
    b.type_into("#key", &write);
    b.click("button[type=submit]");
    b.wait_url(|_| b.count("[role=alert]") > 0);
    assert!(b.text("[role=alert]").contains("not a secret key"));
    // The refused sign-in answers 401, which the console reports: the only
    // message expected there.
    let refused = b.console_errors();
    assert!(
        refused
            .iter()
            .all(|m| m.contains("/app/login") && m.contains("401")),
        "{refused:?}"
    );
    b.type_into("#key", &secret);
    b.click("button[type=submit]");
    assert_eq!(b.wait_url(|u| u.ends_with("/app")), format!("{base}/app"));
    assert_eq!(b.text("h1"), "Overview");
    assert_eq!(b.count(".segmap .seg"), 11, "the 11 segments on the map");
    check(&b, "overview");

    // Live: a new customer's order shows on the open page within seconds.
    let customers: usize = b.text("[data-live=customers]").parse().unwrap();
    assert!(customers > SHOPPERS, "{customers}");
    let order =
        json!({"batch": [{"type": "track", "event": "Order Completed", "userId": "newcomer",
        "messageId": "n1", "timestamp": "2024-05-31T10:00:00Z",
        "properties": {"order_id": "n1", "revenue": 20}}]})
        .to_string();
    assert_eq!(
        request(
            addr,
            "POST",
            "/v1/batch",
            &[basic(&write)],
            order.as_bytes()
        )
        .0,
        200
    );
    let started = std::time::Instant::now();
    while b.text("[data-live=customers]") != (customers + 1).to_string() {
        assert!(
            started.elapsed().as_secs() < 20,
            "the overview did not update"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(b.console_errors().is_empty());

    // A segment tile to its customers, a customer to their view.
    let tile = b
        .script("return [...document.querySelectorAll('.segmap .seg')].find(a => !a.textContent.includes(' 0 customers')).getAttribute('href')")
        .as_str()
        .unwrap()
        .to_string();
    b.click(&format!(".segmap .seg[href=\"{tile}\"]"));
    b.wait_url(|u| u.ends_with(&tile));
    assert!(b.count("tbody a[href^=\"/app/customers/\"]") > 0);
    check(&b, "segment");
    // Sort by CLV, highest first, from the column's header.
    b.click("th a[href^=\"?sort=-clv\"]");
    b.wait_url(|u| u.contains("sort=-clv"));
    assert_eq!(b.count("th[aria-sort=descending]"), 1);
    let clv = b.script("return [...document.querySelectorAll('tbody tr td:nth-child(6)')].map(td => parseFloat(td.textContent.replace(/,/g, '')))");
    let clv: Vec<f64> = clv
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    assert!(
        !clv.is_empty() && clv.windows(2).all(|w| w[0] >= w[1]),
        "{clv:?}"
    );
    // Export: the CSV link downloads this segment's customers with the
    // session (fetched from the page, as the browser would save it).
    let csv = b.script_async(
        "const done = arguments[arguments.length - 1];
         fetch(document.querySelector('a[href$=\"customers.csv\"]').href)
           .then(r => r.text().then(t => done([r.status, r.headers.get('content-type'), t])));",
    );
    assert_eq!(csv[0], 200);
    assert!(csv[1].as_str().unwrap().starts_with("text/csv"));
    let csv = csv[2].as_str().unwrap();
    assert!(csv.starts_with("customer_id,segment,"), "{csv}");
    let members = b.text("[aria-label=\"Segment figures\"] .tile .value");
    assert_eq!(
        (csv.lines().count() - 1).to_string(),
        members,
        "every customer of the segment"
    );
    b.go(&format!("{base}{tile}"));
    let first = b.text("tbody a[href^=\"/app/customers/\"]");
    b.click("tbody a[href^=\"/app/customers/\"]");
    b.wait_url(|u| u.contains("/app/customers/"));
    assert!(b.text("h1").starts_with(&first), "{}", b.text("h1"));
    assert!(
        b.count(".timeline li.k-order") > 0,
        "orders on the timeline"
    );
    check(&b, "customer");

    // The moments: the list, then the welcome moment with its readout.
    b.click("nav a[href=\"/app/moments\"]");
    b.wait_url(|u| u.ends_with("/app/moments"));
    assert_eq!(b.text("h1"), "Moments");
    // The global control readout comes from the background: reload until
    // it is there.
    let started = std::time::Instant::now();
    while !b
        .text("main")
        .contains("Marketed against the global control")
    {
        assert!(started.elapsed().as_secs() < 20, "{}", b.text("main"));
        std::thread::sleep(std::time::Duration::from_millis(300));
        b.go(&format!("{base}/app/moments"));
    }
    assert!(b.text("main").contains("Sample ratio"));
    check(&b, "moments");
    b.click("tbody a[href=\"/app/moments/Welcome\"]");
    b.wait_url(|u| u.ends_with("/app/moments/Welcome"));
    assert_eq!(b.text("h1"), "Welcome");
    assert_eq!(
        b.text("[aria-label=Journey] .tile .value"),
        SHOPPERS.to_string(),
        "every shopper signed up"
    );
    // The journey step by step, and the definition it runs.
    let steps = b.text("main");
    assert!(steps.contains("send onsite (banner.html)"), "{steps}");
    assert!(steps.contains("Starts on the event Signed Up"), "{steps}");
    b.click("details summary");
    assert!(b.text("details pre").contains("holdout = 0.2"));
    check(&b, "moment");

    // The tripwires: norms of the run in force and who is late for them.
    b.click("nav a[href=\"/app/tripwires\"]");
    b.wait_url(|u| u.ends_with("/app/tripwires"));
    assert_eq!(b.text("h1"), "Tripwires");
    assert!(b.count("tbody tr") >= 1);
    let page = b.text("main");
    assert!(page.contains("of your Champions placed their"), "{page}");
    assert!(page.contains("Learned on the history before"), "{page}");
    check(&b, "tripwires");

    // The models: the fitted parameters, the tracking chart and the CLV
    // distribution drawn as SVG.
    b.click("nav a[href=\"/app/models\"]");
    b.wait_url(|u| u.ends_with("/app/models"));
    assert_eq!(b.text("h1"), "Models");
    assert!(b.text("#purchase-model + p").contains("BG/NBD"));
    assert_eq!(b.count("figure.chart svg path"), 2, "actual and predicted");
    assert!(b.count("figure[aria-label=\"CLV distribution\"] svg rect") > 0);
    check(&b, "models");

    // The insights: computed in the background (the page reloads itself
    // until they are there), drawn by the report's chart code.
    b.click("nav a[href=\"/app/insights\"]");
    b.wait_url(|u| u.ends_with("/app/insights"));
    let started = std::time::Instant::now();
    while b.count(".report") == 0 {
        let main = b.script("return document.querySelector('main')?.innerText || ''");
        assert!(
            started.elapsed().as_secs() < 30 && b.count(".error") == 0,
            "no insights: {main}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let report = b.text(".report");
    assert!(report.contains("Retention and concentration"), "{report}");
    assert!(
        report.contains("city"),
        "stickiness by the customers' city: {report}"
    );
    for section in [
        "New-customer stickiness",
        "Value against acquisition cost",
        "What customers buy",
        "Ideal customer profile",
    ] {
        assert!(report.contains(section), "{section}: {report}");
    }
    assert!(b.count(".report svg") >= 2, "cohort heatmap and curves");
    check(&b, "insights");

    // Filter the segment by CLV: a high bar leaves nobody.
    b.go(&format!("{base}{tile}"));
    b.type_into("#min_clv", "1000000000");
    b.click(".filters button[type=submit]");
    b.wait_url(|u| u.contains("min_clv=1000000000"));
    assert_eq!(b.count("tbody a[href^=\"/app/customers/\"]"), 0);

    // Sign out: back to the sign-in page, and the pages are closed again.
    b.click(".logout button");
    b.wait_url(|u| u.contains("/app/login"));
    b.go(&format!("{base}/app"));
    b.wait_url(|u| u.contains("/app/login"));
}
