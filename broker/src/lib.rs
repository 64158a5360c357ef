//! The passerelle broker: configuration, storage, the claim lifecycle, the
//! gRPC API and the command line. See docs/ARCHITECTURE.md.

pub mod admission;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod console;
pub mod dev;
pub mod identity;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod otel;
pub mod pki;
pub mod server;
pub mod service;
#[cfg(test)]
mod source_guard;
pub mod store;
pub mod tls;
