//! The real-time engine's edge: what arrives over HTTP, how it becomes
//! stored events and current profiles, and what the API answers.
//!
//! It owns the Segment HTTP Tracking API's message model ([`segment`]), the
//! running engine ([`engine`]: one writer thread with group commit, read
//! connections, the model run in force, the clock, the due-time index
//! pass), model runs as JSON ([`runs`]), the HTTP server and its access
//! table ([`http`]; ingested bodies are parsed on lower-priority threads,
//! `lowpriority`), `/openapi.json` built from the endpoint table
//! ([`openapi`]) and `/metrics` ([`metrics`]). Scoring rules live in the
//! pure `lifecycle-engine`; storage in `lifecycle-store`. It depends on
//! them, never the reverse, and holds no statistics of its own.

mod dashboard;
pub mod engine;
pub mod http;
pub mod insights;
pub mod journeys;
mod lowpriority;
pub mod metrics;
pub mod openapi;
pub mod results;
pub mod runs;
pub mod segment;

pub use engine::Settings;
pub use http::{Currency, ServeError, ServeOptions, serve};
pub use journeys::{EmailOptions, JourneyOptions};
