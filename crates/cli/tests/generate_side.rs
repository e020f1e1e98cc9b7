//! `lifecycle generate` beside the orders: NDJSON (Segment `Order
//! Completed` messages) reads as the same orders as the CSV; asking for
//! events and attributes leaves the orders unchanged; the events make the
//! visitor segments (some visitors signed up, some only looked) and every
//! buyer has a first visit; the attributes give one row per customer.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

#[test]
fn ndjson_events_and_attributes_beside_the_same_orders() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let generate = |extra: &[&str]| {
        let mut args = vec!["generate", "--customers", "3000", "--seed", "12"];
        args.extend_from_slice(extra);
        let o = lifecycle(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    generate(&["--out", &p("plain.csv")]);
    generate(&[
        "--out",
        &p("with.csv"),
        "--events",
        &p("events.csv"),
        "--attributes",
        &p("attributes.csv"),
    ]);
    generate(&["--out", &p("orders.ndjson")]);
    assert_eq!(
        std::fs::read(p("plain.csv")).unwrap(),
        std::fs::read(p("with.csv")).unwrap(),
        "side files never change the orders"
    );

    let summary = |input: &str, extra: &[&str], out: &str| {
        let mut args = vec!["analyze", input, "--json", "--out", out];
        args.extend_from_slice(extra);
        let o = lifecycle(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let csv = summary(&p("plain.csv"), &[], &p("a"));
    let ndjson = summary(&p("orders.ndjson"), &[], &p("b"));
    for k in ["orders", "purchase_days", "revenue", "buyers"] {
        assert_eq!(csv[k], ndjson[k], "{k}");
    }

    let with_events = summary(&p("plain.csv"), &["--events", &p("events.csv")], &p("c"));
    let count = |name: &str| {
        with_events["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["customers"]
            .as_u64()
            .unwrap()
    };
    let (engaged, loyal) = (count("Engaged Visitors"), count("Loyal Visitors"));
    assert!(
        engaged > 300 && loyal > 300,
        "{engaged} engaged, {loyal} loyal visitors"
    );
    assert_eq!(with_events["buyers"], csv["buyers"]);

    let events = std::fs::read_to_string(p("events.csv")).unwrap();
    let buyers_seen: std::collections::BTreeSet<&str> = events
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|id| id.starts_with('C'))
        .collect();
    assert_eq!(buyers_seen.len(), 3000, "every buyer visited");
    let attributes = std::fs::read_to_string(p("attributes.csv")).unwrap();
    assert!(attributes.starts_with("customer_id,acquisition_channel,acquisition_cost,city,age\n"));
    assert_eq!(attributes.lines().count(), 3001);
    let kpis = summary(
        &p("plain.csv"),
        &["--kpis", "--attributes", &p("attributes.csv")],
        &p("d"),
    );
    assert!(
        std::fs::read_to_string(dir.path().join("d/stickiness.csv"))
            .unwrap()
            .contains("acquisition_channel,search,"),
        "{kpis}"
    );
}

/// `--plant` changes the purchase process of the customers with the planted
/// attribute, and fitting each group's orders recovers the planted factor:
/// Lyon customers buy twice as often (BG/NBD E[λ] = r/α), display customers
/// drop out 1.5 times as readily (E[p] = a/(a+b)) and spend 1.5 times as much
/// per order; everyone else is drawn as without plants.
#[test]
fn planted_effects_are_recovered_by_fitting_each_group() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let o = lifecycle(&[
        "generate",
        "--customers",
        "40000",
        "--seed",
        "5",
        "--out",
        &p("orders.csv"),
        "--attributes",
        &p("attributes.csv"),
        "--plant",
        "city=Lyon:frequency*2",
        "--plant",
        "channel=display:dropout*1.5",
        "--plant",
        "channel=display:spend*1.5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, attrs) = read_csv(std::path::Path::new(&p("attributes.csv")));
    let city: std::collections::HashMap<String, (String, String)> = attrs
        .into_iter()
        .map(|r| (r[0].clone(), (r[3].clone(), r[1].clone())))
        .collect();
    let text = std::fs::read_to_string(p("orders.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    // Groups: Lyon (not display), display (not Lyon), neither.
    let mut groups: [String; 3] = std::array::from_fn(|_| format!("{header}\n"));
    let mut spend = [(0.0f64, 0u64); 3];
    for l in lines {
        let id = l.split(',').next().unwrap();
        let (c, ch) = &city[id];
        let g = match (c == "Lyon", ch == "display") {
            (true, false) => 0,
            (false, true) => 1,
            (false, false) => 2,
            (true, true) => continue,
        };
        groups[g].push_str(l);
        groups[g].push('\n');
        let amount: f64 = l.rsplit(',').next().unwrap().parse().unwrap();
        spend[g].0 += amount;
        spend[g].1 += 1;
    }
    let fit = |g: usize| {
        let path = p(&format!("group{g}.csv"));
        std::fs::write(&path, &groups[g]).unwrap();
        let o = lifecycle(&["fit", "--model", "bgnbd", "--json", &path]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let q = |k: &str| v["params"][k].as_f64().unwrap();
        (q("r") / q("alpha"), q("a") / (q("a") + q("b")))
    };
    let (lyon, display, rest) = (fit(0), fit(1), fit(2));
    let rate = lyon.0 / rest.0;
    assert!(
        (1.7..2.3).contains(&rate),
        "Lyon's purchase rate ×{rate:.2}"
    );
    let dropout = display.1 / rest.1;
    assert!(
        (1.25..1.8).contains(&dropout),
        "display's drop-out ×{dropout:.2}"
    );
    // Lyon's drop-out and display's rate are not planted.
    assert!(
        (0.8..1.25).contains(&(lyon.1 / rest.1)),
        "{lyon:?} {rest:?}"
    );
    assert!(
        (0.8..1.25).contains(&(display.0 / rest.0)),
        "{display:?} {rest:?}"
    );
    let mean = |g: usize| spend[g].0 / spend[g].1 as f64;
    let value = mean(1) / mean(2);
    assert!(
        (1.35..1.65).contains(&value),
        "display's order value ×{value:.2}"
    );
    assert!((0.9..1.1).contains(&(mean(0) / mean(2))));
}

/// `--lines` writes each order as lines of catalogue products that add up
/// to the order's amount, leaves the orders unchanged, and is read by
/// `analyze --kpis --lines` (what customers buy).
#[test]
fn order_lines_add_up_to_the_orders() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    for (out, lines) in [("plain.csv", None), ("orders.csv", Some("lines.csv"))] {
        let mut args = vec!["generate", "--customers", "2000", "--seed", "9", "--out"];
        let out = p(out);
        args.push(&out);
        let lines = lines.map(p);
        if let Some(l) = &lines {
            args.extend(["--lines", l]);
        }
        let o = lifecycle(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read(p("plain.csv")).unwrap(),
        std::fs::read(p("orders.csv")).unwrap()
    );
    let (_, orders) = read_csv(std::path::Path::new(&p("orders.csv")));
    let (header, lines) = read_csv(std::path::Path::new(&p("lines.csv")));
    assert_eq!(
        header.join(","),
        "order_id,customer_id,order_date,product_id,category,brand,quantity,unit_price,unit_cost"
    );
    let mut by_order: std::collections::HashMap<&str, (i64, &str, &str, usize)> =
        std::collections::HashMap::new();
    for l in &lines {
        let cents =
            (l[7].parse::<f64>().unwrap() * 100.0).round() as i64 * l[6].parse::<i64>().unwrap();
        let e = by_order.entry(&l[0]).or_insert((0, &l[1], &l[2], 0));
        e.0 += cents;
        e.3 += 1;
        assert!(l[3].starts_with('P') && !l[4].is_empty() && !l[5].is_empty());
    }
    assert_eq!(by_order.len(), orders.len());
    for o in &orders {
        let (cents, customer, date, n) = by_order[o[1].as_str()];
        assert_eq!(cents, (o[3].parse::<f64>().unwrap() * 100.0).round() as i64);
        assert_eq!((customer, date), (o[0].as_str(), o[2].as_str()));
        assert!((1..=3).contains(&n));
    }
    let out = p("report");
    let o = lifecycle(&[
        "analyze",
        &p("orders.csv"),
        "--kpis",
        "--lines",
        &p("lines.csv"),
        "--json",
        "--out",
        &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let read = &v["kpis"]["lines"];
    assert_eq!(read["lines"].as_u64().unwrap(), lines.len() as u64);
    assert_eq!(read["products"].as_u64().unwrap(), 60);
    let revenue: f64 = orders.iter().map(|o| o[3].parse::<f64>().unwrap()).sum();
    assert!((read["revenue"].as_f64().unwrap() - revenue).abs() < 0.01);
}
