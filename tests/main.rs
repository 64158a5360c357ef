//! The end-to-end suites, as one test binary (one link, one harness build):
//! each file of this folder is a module; `common/` is the shared harness.
//! Run one suite with `cargo test -p passerelle-broker --test e2e claims::`.

mod common;

mod bad_input;
mod claims;
mod cli;
mod clients;
mod console;
mod crash;
mod dev;
mod failures;
mod hardening;
mod json_door;
mod operations;
mod replicas;
mod security;
mod translate;
