//! The passerelle broker.

pub mod store;
