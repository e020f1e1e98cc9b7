//! Email over SMTP (`lettre`): `smtp://host:port` (plain, for a local
//! relay), `smtp://host?tls=required` (STARTTLS) or `smtps://user:pass@host`
//! (implicit TLS). Every message carries a `Message-ID` derived from its
//! outbox key, so that a re-send after a crash (SMTP cannot de-duplicate)
//! is recognisable downstream as the same message, and the one-click
//! `List-Unsubscribe` headers of RFC 8058.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{Message, SmtpTransport, Transport};
use sha2::{Digest, Sha256};

use crate::DeliverError;

/// One email, rendered.
#[derive(Debug, Clone)]
pub struct Email<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    /// The outbox key (the Message-ID is made from it).
    pub key: &'a str,
    /// The unsubscribe URL (`List-Unsubscribe`).
    pub unsubscribe: Option<&'a str>,
}

/// An SMTP connection pool and the sender address.
pub struct Smtp {
    transport: SmtpTransport,
    from: Mailbox,
    domain: String,
}

fn config(e: impl std::fmt::Display) -> DeliverError {
    DeliverError::Config(e.to_string())
}

impl Smtp {
    /// `url`: see the module; `from`: `Shop <shop@example.com>`.
    pub fn new(url: &str, from: &str) -> Result<Smtp, DeliverError> {
        let transport = SmtpTransport::from_url(url)
            .map_err(|e| config(format!("email smtp \"{}\": {e}", redact(url))))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| config(format!("email from \"{from}\": {e}")))?;
        let domain = from.email.domain().to_string();
        Ok(Smtp {
            transport,
            from,
            domain,
        })
    }

    /// The Message-ID of the message with this outbox key.
    pub fn message_id(&self, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("<{hex}@{}>", self.domain)
    }

    /// Sends the email; returns the server's answer.
    pub fn send(&self, e: &Email<'_>) -> Result<String, DeliverError> {
        let to: Mailbox = e.to.parse().map_err(|err| DeliverError::Send {
            message: format!("the address \"{}\" is not valid: {err}", e.to),
            permanent: true,
        })?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(e.subject)
            .message_id(Some(self.message_id(e.key)));
        let header = |name: &str, value: String| {
            HeaderName::new_from_ascii(name.to_string())
                .map(|n| HeaderValue::new(n, value))
                .map_err(config)
        };
        builder = builder.raw_header(header("X-Lifecycle-Key", e.key.to_string())?);
        if let Some(u) = e.unsubscribe {
            builder = builder
                .raw_header(header("List-Unsubscribe", format!("<{u}>"))?)
                .raw_header(header(
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click".to_string(),
                )?);
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                e.text.to_string(),
                e.html.to_string(),
            ))
            .map_err(|err| DeliverError::Send {
                message: format!("cannot build the message: {err}"),
                permanent: true,
            })?;
        match self.transport.send(&message) {
            Ok(r) => Ok(format!(
                "{} {}",
                r.code(),
                r.message().collect::<Vec<_>>().join(" ")
            )),
            Err(err) => Err(DeliverError::Send {
                message: format!("SMTP: {err}"),
                permanent: err.is_permanent(),
            }),
        }
    }
}

/// A URL with its password hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn settings_errors_and_message_ids() {
        let e = Smtp::new("ftp://x", "a@b.c").err().unwrap().to_string();
        assert!(e.starts_with("email smtp \"ftp://x\""), "{e}");
        let e = Smtp::new("smtp://127.0.0.1:25", "not an address")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("email from"), "{e}");
        let s = Smtp::new("smtp://127.0.0.1:25", "Shop <shop@example.com>").unwrap();
        let id = s.message_id("m:1:c:0:0");
        assert_eq!(id, s.message_id("m:1:c:0:0"));
        assert_ne!(id, s.message_id("m:1:c:0:1"));
        assert!(id.ends_with("@example.com>"));
        assert_eq!(redact("smtps://u:secret@h:465"), "smtps://u:***@h:465");
    }

    /// A recipient address carrying a header (CR LF) is refused as invalid,
    /// permanently, before any connection is made: no Bcc can be smuggled.
    #[test]
    fn header_injection_in_the_address_is_refused() {
        // Port 9 (discard) is never connected to: the address fails first.
        let s = Smtp::new("smtp://127.0.0.1:9", "Shop <shop@example.com>").unwrap();
        for to in [
            "ann@example.com\r\nBcc: evil@example.com",
            "ann@example.com\nBcc: evil@example.com",
            "\"Ann\r\nBcc: evil@example.com\" <ann@example.com>",
        ] {
            let e = Email {
                to,
                subject: "Hello",
                html: "<p>Hi</p>",
                text: "Hi",
                key: "m:1:c:0:0",
                unsubscribe: None,
            };
            match s.send(&e) {
                Err(DeliverError::Send { message, permanent }) => {
                    assert!(permanent, "{to:?}: {message}");
                    assert!(message.contains("is not valid"), "{to:?}: {message}");
                }
                other => panic!("{to:?}: {other:?}"),
            }
        }
    }
}
