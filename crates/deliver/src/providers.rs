//! SMS and push through providers' HTTP APIs, configured by base URL and
//! credentials: a Twilio-style Messages API (form POST to
//! `{base}/2010-04-01/Accounts/{account}/Messages.json`, HTTP Basic
//! `account:token`) and an FCM-style HTTP v1 push API (JSON POST to
//! `{base}/v1/projects/{project}/messages:send`, Bearer token). The base URL
//! is the operator's setting (a provider, or a local fake in the tests),
//! so unlike webhooks it is not checked against internal addresses.

use std::time::Duration;

use serde_json::json;

use crate::DeliverError;
use crate::webhook::{AllowList, Guard, refused_for, refused_literal};

fn config(e: impl std::fmt::Display) -> DeliverError {
    DeliverError::Config(e.to_string())
}

/// An HTTP client that never connects to an internal address the allow
/// rules refuse (names are resolved through the guard; no redirects).
fn client(allow: &AllowList) -> Result<reqwest::blocking::Client, DeliverError> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lifecycle/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(std::sync::Arc::new(Guard {
            allow: allow.clone(),
        }))
        .build()
        .map_err(config)
}

/// A provider's answer as an outcome: 2xx sent (with the body's id when
/// it has one), 5xx / 429 / 408 worth retrying, other statuses permanent.
fn answer(
    what: &str,
    r: reqwest::blocking::Response,
    id_field: &str,
) -> Result<String, DeliverError> {
    let status = r.status();
    let text = r.text().unwrap_or_default();
    if status.is_success() {
        let id = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get(id_field).and_then(|s| s.as_str()).map(str::to_string));
        return Ok(match id {
            Some(id) => format!("HTTP {} {id}", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        });
    }
    let transient = status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
    let mut detail: String = text.chars().take(200).collect();
    if !detail.is_empty() {
        detail = format!(": {detail}");
    }
    Err(DeliverError::Send {
        message: format!("{what}: HTTP {}{detail}", status.as_u16()),
        permanent: !transient,
    })
}

/// A failed request, with its causes (a refused internal address is
/// permanent: retrying cannot help).
fn network(what: &str, e: reqwest::Error) -> DeliverError {
    let mut message = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    let permanent = message.contains("is an internal address");
    DeliverError::Send { message, permanent }
}

fn base(url: &str, what: &str, allow: &AllowList) -> Result<String, DeliverError> {
    let parsed: reqwest::Url = url
        .parse()
        .map_err(|e| config(format!("{what} base_url \"{url}\": {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(config(format!("{what} base_url \"{url}\": not http(s)")));
    }
    if let Some(ip) = refused_literal(&parsed, allow) {
        return Err(config(format!(
            "{what} base_url \"{url}\": {}",
            refused_for(ip, what)
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A Twilio-style SMS API.
pub struct Sms {
    client: reqwest::blocking::Client,
    url: String,
    account: String,
    token: String,
    from: String,
}

impl Sms {
    pub fn new(
        base_url: &str,
        account: &str,
        token: &str,
        from: &str,
        allow: &AllowList,
    ) -> Result<Sms, DeliverError> {
        let base = base(base_url, "sms", allow)?;
        Ok(Sms {
            client: client(allow)?,
            url: format!("{base}/2010-04-01/Accounts/{account}/Messages.json"),
            account: account.to_string(),
            token: token.to_string(),
            from: from.to_string(),
        })
    }

    /// Sends `body` to the phone number `to` (E.164).
    pub fn send(&self, to: &str, body: &str) -> Result<String, DeliverError> {
        let r = self
            .client
            .post(&self.url)
            .basic_auth(&self.account, Some(&self.token))
            .form(&[("To", to), ("From", self.from.as_str()), ("Body", body)])
            .send()
            .map_err(|e| network("sms", e))?;
        answer("sms", r, "sid")
    }
}

/// An FCM-style push API.
pub struct Push {
    client: reqwest::blocking::Client,
    url: String,
    token: String,
}

impl Push {
    pub fn new(
        base_url: &str,
        project: &str,
        token: &str,
        allow: &AllowList,
    ) -> Result<Push, DeliverError> {
        let base = base(base_url, "push", allow)?;
        Ok(Push {
            client: client(allow)?,
            url: format!("{base}/v1/projects/{project}/messages:send"),
            token: token.to_string(),
        })
    }

    /// Sends a notification to a device token; `key` travels as data.
    pub fn send(
        &self,
        device: &str,
        title: &str,
        body: &str,
        key: &str,
    ) -> Result<String, DeliverError> {
        let payload = json!({"message": {
            "token": device,
            "notification": {"title": title, "body": body},
            "data": {"lifecycle_key": key},
        }});
        let r = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&payload)
            .send()
            .map_err(|e| network("push", e))?;
        answer("push", r, "name")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A provider at an internal address is refused unless allow-listed:
    /// literally (at start-up, as a configuration error) and through a name
    /// that resolves to one (at send time, before connecting).
    #[test]
    fn providers_cannot_reach_internal_addresses_unless_allowed() {
        let none = AllowList::default();
        for url in [
            "http://127.0.0.1:9",
            "http://10.1.2.3",
            "http://[::1]:9",
            "http://169.254.169.254",
        ] {
            let e = Sms::new(url, "AC1", "t", "+1555", &none)
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains("internal address") && e.contains("[channels.sms] allow_private"),
                "{e}"
            );
            let e = Push::new(url, "p", "t", &none).err().unwrap().to_string();
            assert!(e.contains("[channels.push] allow_private"), "{e}");
        }
        let local = AllowList::parse(&["127.0.0.0/8".to_string()]).unwrap();
        assert!(Sms::new("http://127.0.0.1:9", "AC1", "t", "+1555", &local).is_ok());
        // A name for loopback: refused by the resolver, never connected.
        let sms = Sms::new("http://localhost:9", "AC1", "t", "+1555", &none).unwrap();
        let e = sms.send("+15551234567", "hi").err().unwrap().to_string();
        assert!(e.contains("internal address"), "{e}");
    }
}
