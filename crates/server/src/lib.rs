//! The real-time engine's edge: what arrives over HTTP and how it becomes
//! stored events. So far it owns the Segment HTTP Tracking API's message
//! model ([`segment`]): parsing `identify`, `track`, `page`, `screen`,
//! `alias`, `group` and `batch` payloads, the spec's size limits, ids and
//! the clock-skew correction of timestamps; and the HTTP server ([`http`],
//! `lifecycle serve`) that authenticates, decompresses and stores them. It depends on the pure crates and the store, never the
//! reverse, and holds no statistics of its own.

pub mod http;
pub mod segment;

pub use http::{ServeError, serve};
