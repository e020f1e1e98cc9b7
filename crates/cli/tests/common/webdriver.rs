//! A minimal W3C WebDriver client over chromedriver, for the dashboard's
//! browser tests: Chromium (from `scripts/chromium.sh`) runs headless with
//! `--no-sandbox` (root in a container) and background networking off.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::request_with_head;

/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = request_with_head(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            b"",
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn call(addr: &str, method: &str, path: &str, body: &Value) -> Value {
    let text = body.to_string();
    let headers = [("Content-Type", "application/json".to_string())];
    let (status, _, reply) =
        request_with_head(addr, method, path, &headers, text.as_bytes()).unwrap();
    let v: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
    assert!(status == 200, "{method} {path}: {status} {reply}");
    v["value"].clone()
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    pub fn start(chromium: &str, width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok((200, _, body)) = request_with_head(&addr, "GET", "/status", &[], b"")
                && body.contains("\"ready\":true")
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-dev-shm-usage",
                         "--hide-scrollbars", format!("--window-size={width},{height}")],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = call(&addr, "POST", "/session", &caps);
        let session = v["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            addr,
            session,
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn go(&self, url: &str) {
        call(&self.addr, "POST", &self.path("/url"), &json!({"url": url}));
    }

    /// Waits (up to 10 s) until the address satisfies `ok`: a click that
    /// submits a form returns before the next page has loaded.
    pub fn wait_url(&self, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let url = self.url();
            let ready = self
                .script("return document.readyState")
                .as_str()
                .is_some_and(|s| s == "complete");
            if ok(&url) && ready {
                return url;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still at {url}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        call(&self.addr, "GET", &self.path("/url"), &json!({}))
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> String {
        let v = call(
            &self.addr,
            "POST",
            &self.path("/element"),
            &json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT].as_str().unwrap().to_string()
    }

    pub fn count(&self, css: &str) -> usize {
        call(
            &self.addr,
            "POST",
            &self.path("/elements"),
            &json!({"using": "css selector", "value": css}),
        )
        .as_array()
        .map_or(0, Vec::len)
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        call(
            &self.addr,
            "GET",
            &self.path(&format!("/element/{e}/text")),
            &json!({}),
        )
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        call(
            &self.addr,
            "POST",
            &self.path(&format!("/element/{e}/value")),
            &json!({"text": text}),
        );
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        call(
            &self.addr,
            "POST",
            &self.path(&format!("/element/{e}/click")),
            &json!({}),
        );
    }

    pub fn resize(&self, width: u32, height: u32) {
        call(
            &self.addr,
            "POST",
            &self.path("/window/rect"),
            &json!({"width": width, "height": height}),
        );
    }

    pub fn script(&self, source: &str) -> Value {
        call(
            &self.addr,
            "POST",
            &self.path("/execute/sync"),
            &json!({"script": source, "args": []}),
        )
    }

    pub fn script_async(&self, source: &str) -> Value {
        call(
            &self.addr,
            "POST",
            &self.path("/execute/async"),
            &json!({"script": source, "args": []}),
        )
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let v = call(&self.addr, "GET", &self.path("/screenshot"), &json!({}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// The browser console's messages at level SEVERE (errors) since the
    /// last call.
    pub fn console_errors(&self) -> Vec<String> {
        call(
            &self.addr,
            "POST",
            &self.path("/se/log"),
            &json!({"type": "browser"}),
        )
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["level"] == "SEVERE")
        .map(|m| m["message"].as_str().unwrap_or("").to_string())
        .collect()
    }
}
