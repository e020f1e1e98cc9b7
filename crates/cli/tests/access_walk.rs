//! The access table, route by route: every operation in `/openapi.json`
//! is called with no key, a public key, a write key, a secret key and a
//! dashboard session cookie, and answers 401 exactly when the table says
//! that credential may not call it (`/v1/*`: write keys; on-site message
//! routes: public or secret keys; other `/api/*` routes and `/metrics`:
//! secret keys; a dashboard session opens no API route; `/u/`, `/c/`,
//! `/healthz`, `/openapi.json`, `/onsite.js`: anyone). Keys are presented
//! as HTTP Basic (Segment's form) and as Bearer.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use serde_json::Value;

/// Who may call a path, by credential: (none, public, write, secret).
fn allowed(path: &str) -> [bool; 4] {
    let onsite = path.starts_with("/api/v1/customers/{id}/messages");
    if path.starts_with("/v1/") {
        [false, false, true, false]
    } else if onsite {
        [false, true, false, true]
    } else if path.starts_with("/api/") || path == "/metrics" {
        [false, false, false, true]
    } else {
        [true, true, true, true]
    }
}

/// A concrete path for a templated one.
fn concrete(path: &str) -> String {
    path.replace("{kind}", "track")
        .replace("{id}", "nobody")
        .replace("{name}", "nothing")
        .replace("{key}", "nokey")
        .replace("{list}", "email")
        .replace("{token}", "not-a-token")
}

#[test]
fn every_route_answers_each_credential_as_the_access_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("w.db").display());
    let keys = [
        None,
        Some(create_key(&db, "public")),
        Some(create_key(&db, "write")),
        Some(create_key(&db, "secret")),
    ];
    let secret = keys[3].clone().unwrap();
    let server = start(&db, &["--refit-every", "off"]);
    let addr = server.addr.as_str();
    let (status, doc) = request(addr, "GET", "/openapi.json", &[], b"");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    // A dashboard session, signed in with the secret key.
    let form = format!("key={secret}&next=%2Fapp");
    let (status, head, _) = request_with_head(
        addr,
        "POST",
        "/app/login",
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded".to_string(),
        )],
        form.as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().to_string())
        })
        .unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let mut calls = 0;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{} paths", paths.len());
    for (path, ops) in paths {
        let url = concrete(path);
        let allow = allowed(path);
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_ascii_uppercase();
            for (k, key) in keys.iter().enumerate() {
                let forms: Vec<Vec<(&str, String)>> = match key {
                    None => vec![vec![]],
                    Some(key) => vec![
                        vec![basic(key)],
                        vec![("Authorization", format!("Bearer {key}"))],
                    ],
                };
                for headers in forms {
                    let (status, body) = request(addr, &method, &url, &headers, b"{}");
                    calls += 1;
                    if allow[k] {
                        assert_ne!(status, 401, "{method} {path} with credential {k}: {body}");
                    } else {
                        assert_eq!(status, 401, "{method} {path} with credential {k}: {body}");
                    }
                }
            }
            // A dashboard session opens nothing beyond the open routes.
            let (status, body) = request(addr, &method, &url, &[("Cookie", cookie.clone())], b"{}");
            calls += 1;
            if allow[0] {
                assert_ne!(status, 401, "{method} {path} with a session: {body}");
            } else {
                assert_eq!(status, 401, "{method} {path} with a session: {body}");
            }
        }
    }
    assert!(calls > 200, "{calls} calls");
    // The server is still healthy after every refusal and odd request.
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").0, 200);
}
