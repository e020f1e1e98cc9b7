//! Ad audiences: a moment's audience as the customer lists Meta Custom
//! Audiences and Google Customer Match take, emails and phone numbers
//! normalised by each platform's published rules and hashed with SHA-256
//! (lower-case hex):
//!
//! - Meta: email trimmed and lower-cased; phone digits only, with the
//!   country code, no leading zeros and no `+`.
//! - Google Customer Match: email with all whitespace removed and
//!   lower-cased; phone in E.164 (`+` then the country code and number).
//!
//! Phone numbers must carry their country code (`+33 6 12 34 56 78` or
//! `0033…`); a national number cannot be told apart and is hashed as given.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn email_ok(e: &str) -> bool {
    matches!(e.split_once('@'), Some((a, b)) if !a.is_empty() && b.contains('.'))
}

pub fn meta_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    email_ok(&e).then_some(e)
}

pub fn google_email(raw: &str) -> Option<String> {
    let e: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    email_ok(&e).then_some(e)
}

/// The digits of an international number without leading zeros (`00`).
fn phone_digits(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_start_matches('0').to_string();
    (8..=15).contains(&digits.len()).then_some(digits)
}

pub fn meta_phone(raw: &str) -> Option<String> {
    phone_digits(raw)
}

pub fn google_phone(raw: &str) -> Option<String> {
    phone_digits(raw).map(|d| format!("+{d}"))
}

/// The audience file for a platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Meta,
    Google,
}

impl Platform {
    pub fn parse(s: &str) -> Option<Platform> {
        match s {
            "meta" => Some(Platform::Meta),
            "google" => Some(Platform::Google),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Meta => "meta",
            Platform::Google => "google",
        }
    }
}

/// The hashed CSV of the members' `email` and `phone` traits (a member
/// with neither is left out).
pub fn audience_csv(platform: Platform, members: &[Map<String, Value>]) -> String {
    let mut out = String::from(match platform {
        Platform::Meta => "email,phone\n",
        Platform::Google => "Email,Phone\n",
    });
    for m in members {
        let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
        let (email, phone) = match platform {
            Platform::Meta => (meta_email(text("email")), meta_phone(text("phone"))),
            Platform::Google => (google_email(text("email")), google_phone(text("phone"))),
        };
        if email.is_none() && phone.is_none() {
            continue;
        }
        let hash = |v: Option<String>| v.map(|v| sha256_hex(&v)).unwrap_or_default();
        out.push_str(&format!("{},{}\n", hash(email), hash(phone)));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn normalisation_and_hashes() {
        assert_eq!(
            meta_email("  Test@Example.COM ").unwrap(),
            "test@example.com"
        );
        assert_eq!(
            google_email(" te st@Example.com").unwrap(),
            "test@example.com"
        );
        assert_eq!(meta_email("nobody"), None);
        assert_eq!(meta_phone("+1 (415) 555-0123").unwrap(), "14155550123");
        assert_eq!(meta_phone("0033 6 12 34 56 78").unwrap(), "33612345678");
        assert_eq!(google_phone("+1 415 555 0123").unwrap(), "+14155550123");
        assert_eq!(meta_phone("123"), None);
        // SHA-256 of the normalised values (checked with Python's hashlib).
        assert_eq!(
            sha256_hex("test@example.com"),
            "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
        );
        let members: Vec<Map<String, Value>> = vec![
            serde_json::json!({"email": " Test@Example.com", "phone": "+1 415 555 0123"}),
            serde_json::json!({"first_name": "no contact"}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        assert_eq!(
            audience_csv(Platform::Google, &members),
            format!(
                "Email,Phone\n{},{}\n",
                sha256_hex("test@example.com"),
                sha256_hex("+14155550123")
            )
        );
        assert_eq!(
            audience_csv(Platform::Meta, &members)
                .lines()
                .nth(1)
                .unwrap(),
            format!(
                "{},{}",
                sha256_hex("test@example.com"),
                sha256_hex("14155550123")
            )
        );
    }
}
