//! Webhooks: a JSON POST signed with HMAC-SHA256, carrying the outbox key
//! as its idempotency key, so that the receiver (Klaviyo, Braze, an ESP, an
//! in-house service) can drop a repeat after a crash or a retry.
//!
//! Headers: `Idempotency-Key: <key>` and `X-Lifecycle-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the scheme
//! Stripe made familiar: the receiver recomputes the HMAC with the shared
//! secret and checks the time is recent).
//!
//! Requests to loopback, private, link-local or otherwise internal
//! addresses are refused (a moment must not become a way into the
//! internal network) unless the address is allow-listed; the check covers
//! literal addresses in the URL and every address a name resolves to, at
//! connection time (no re-resolution in between).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::DeliverError;

/// Addresses that may be called although internal (`127.0.0.1`, `10.0.0.0/8`).
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    nets: Vec<(IpAddr, u8)>,
}

impl AllowList {
    /// Parses `["127.0.0.1", "10.0.0.0/8", "::1"]`.
    pub fn parse(items: &[String]) -> Result<AllowList, String> {
        let mut nets = Vec::new();
        for item in items {
            let (ip, len) = match item.split_once('/') {
                Some((ip, len)) => (ip, Some(len)),
                None => (item.as_str(), None),
            };
            let ip: IpAddr = ip.trim().parse().map_err(|_| {
                format!("\"{item}\" is not an address or network (e.g. 10.0.0.0/8)")
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| format!("\"{item}\": the prefix length must be 0 to {max}"))?,
                None => max,
            };
            nets.push((ip, len));
        }
        Ok(AllowList { nets })
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|(net, len)| in_net(ip, *net, *len))
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, multicast,
/// documentation and unique-local addresses: not the public internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10
                || o[0] == 0
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
        }
    }
}

fn refused(ip: IpAddr) -> String {
    refused_for(ip, "webhook")
}

/// Why `ip` may not be called by `channel`, and how to allow it.
pub(crate) fn refused_for(ip: IpAddr, channel: &str) -> String {
    format!(
        "refused: {ip} is an internal address (allow it with [channels.{channel}] allow_private)"
    )
}

/// The internal address a URL names literally (not through DNS) and the
/// allow rules refuse, if any.
pub(crate) fn refused_literal(url: &reqwest::Url, allow: &AllowList) -> Option<IpAddr> {
    let ip = url
        .host_str()?
        .trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .ok()?;
    (is_internal(ip) && !allow.allows(ip)).then_some(ip)
}

/// Resolves names and keeps only addresses the allow rules accept (so a
/// name that resolves, or later re-resolves, to an internal address is
/// never connected to).
pub(crate) struct Guard {
    pub(crate) allow: AllowList,
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let allow = self.allow.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = (host.as_str(), 0).to_socket_addrs()?.collect();
            let (ok, bad): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
                .into_iter()
                .partition(|a| !is_internal(a.ip()) || allow.allows(a.ip()));
            if ok.is_empty() {
                let why = bad
                    .first()
                    .map_or_else(|| format!("{host} has no address"), |a| refused(a.ip()));
                return Err(why.into());
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A webhook endpoint.
pub struct Webhook {
    client: reqwest::blocking::Client,
    url: reqwest::Url,
    secret: Vec<u8>,
    allow: AllowList,
}

fn config(e: impl std::fmt::Display) -> DeliverError {
    DeliverError::Config(e.to_string())
}

/// `t=<seconds>,v1=<hex HMAC-SHA256(secret, "<seconds>.<body>")>`.
pub fn signature(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={unix_seconds},v1={hex}")
}

impl Webhook {
    pub fn new(url: &str, secret: &str, allow: AllowList) -> Result<Webhook, DeliverError> {
        let parsed: reqwest::Url = url
            .parse()
            .map_err(|e| config(format!("webhook url \"{url}\": {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(config(format!("webhook url \"{url}\": not http(s)")));
        }
        if secret.len() < 16 {
            return Err(config(
                "webhook secret: at least 16 characters (it signs every request)",
            ));
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lifecycle/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(Guard {
                allow: allow.clone(),
            }))
            .build()
            .map_err(config)?;
        Ok(Webhook {
            client,
            url: parsed,
            secret: secret.as_bytes().to_vec(),
            allow,
        })
    }

    /// POSTs `body` (JSON) under the idempotency key `key`, signed at
    /// `unix_seconds`; returns the receiver's status.
    pub fn send(&self, key: &str, body: &[u8], unix_seconds: i64) -> Result<String, DeliverError> {
        if let Some(host) = self.url.host_str()
            && let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>()
            && is_internal(ip)
            && !self.allow.allows(ip)
        {
            return Err(DeliverError::Send {
                message: refused(ip),
                permanent: true,
            });
        }
        let response = self
            .client
            .post(self.url.clone())
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", key)
            .header(
                "X-Lifecycle-Signature",
                signature(&self.secret, unix_seconds, body),
            )
            .body(body.to_vec())
            .send()
            .map_err(|e| {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message = format!("{message}: {s}");
                    source = s.source();
                }
                DeliverError::Send {
                    permanent: message.contains("refused: "),
                    message: format!("webhook: {message}"),
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(format!("HTTP {}", status.as_u16()));
        }
        let transient = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        Err(DeliverError::Send {
            message: format!("webhook: HTTP {}", status.as_u16()),
            permanent: !transient,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn internal_addresses_and_allow_lists() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
        let a = AllowList::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        assert!(a.allows("127.0.0.1".parse().unwrap()));
        assert!(a.allows("10.200.0.1".parse().unwrap()));
        assert!(!a.allows("127.0.0.2".parse().unwrap()));
        assert!(AllowList::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(AllowList::parse(&["x".into()]).is_err());
    }

    #[test]
    fn refuses_internal_targets_and_signs() {
        let w = Webhook::new(
            "http://127.0.0.1:9/x",
            "0123456789abcdef",
            AllowList::default(),
        )
        .unwrap();
        let e = w.send("k", b"{}", 0).unwrap_err();
        assert!(e.to_string().starts_with("refused: 127.0.0.1"), "{e}");
        assert!(!e.is_transient());
        let w = Webhook::new(
            "http://localhost:9/x",
            "0123456789abcdef",
            AllowList::default(),
        )
        .unwrap();
        let e = w.send("k", b"{}", 0).unwrap_err();
        assert!(e.to_string().contains("refused: "), "{e}");
        assert!(!e.is_transient(), "{e}");
        assert!(Webhook::new("ftp://x", "0123456789abcdef", AllowList::default()).is_err());
        assert!(Webhook::new("http://x", "short", AllowList::default()).is_err());
        // A known HMAC-SHA256 value: RFC 4231 test case 2 (key "Jefe").
        let s = signature(b"Jefe", 0, b"");
        assert!(s.starts_with("t=0,v1="));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
