//! Aurelia's wire protocol, shared by the daemon (which serves it) and the CLI (which calls it).
//!
//! - [`types`]: request and response bodies, the event stream's items, error bodies. They
//!   derive `utoipa::ToSchema`, so the daemon's `GET /v1/openapi.json` is generated from the
//!   same definitions the client deserialises.
//! - [`client`]: a small blocking HTTP/1.1 client over the Unix socket (or TCP with a bearer
//!   token). The CLI is a short-lived process whose wall time is the product's responsiveness
//!   (`aurelia status` should take a few milliseconds), so it does not start an async runtime.

pub mod client;
pub mod types;

pub use client::{Client, ClientError, Endpoint};
pub use types::*;

/// The API version prefix of every route.
pub const API_PREFIX: &str = "/v1";
