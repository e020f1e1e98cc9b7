//! Delivery: turning a queued send into a message on a channel. It owns
//! message templates ([`templates`]: minijinja files next to the moments,
//! personalised with traits, scores and segment), email over SMTP
//! ([`email`], `lettre`), signed webhooks ([`webhook`]: HMAC-SHA256, an
//! idempotency key, private addresses refused), SMS and push through
//! providers' HTTP APIs ([`providers`]), signed links for unsubscribing
//! ([`links`]), and
//! the send-time policy ([`policy`]: quiet hours in the customer's time
//! zone, frequency caps).
//!
//! It is an edge crate: it does network IO and reads template files, but
//! it never touches the store (the server hands it what to send and
//! records the outcome) and never decides who gets what: that is the
//! journeys' business (`lifecycle-moments`).

pub mod audiences;
pub mod email;
pub mod links;
pub mod policy;
pub mod providers;
pub mod templates;
pub mod webhook;

/// Why a message could not be prepared or sent.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// A template is missing or wrong (a definition problem: not retried).
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    /// The channel's settings are wrong.
    #[error("{0}")]
    Config(String),
    /// The provider refused or could not be reached.
    #[error("{message}")]
    Send {
        message: String,
        /// Retrying cannot help (e.g. SMTP 5xx, an invalid address).
        permanent: bool,
    },
}

impl DeliverError {
    /// Worth trying again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DeliverError::Send {
                permanent: false,
                ..
            }
        )
    }
}
