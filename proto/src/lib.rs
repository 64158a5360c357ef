//! gRPC contracts of passerelle, generated from the `.proto` files in this
//! crate by protox and tonic-prost-build at build time.
//!
//! Only this crate and `passerelle_broker::api` (plus the grpc adapter) know
//! about prost types: the domain works on its own types.

#![allow(clippy::all, missing_docs)]

pub mod common {
    pub mod v1 {
        tonic::include_proto!("passerelle.common.v1");
    }
}
pub mod scheme {
    pub mod v1 {
        tonic::include_proto!("passerelle.scheme.v1");
    }
}
pub mod partner {
    pub mod v1 {
        tonic::include_proto!("passerelle.partner.v1");
    }
}
pub mod roster {
    pub mod v1 {
        tonic::include_proto!("passerelle.roster.v1");
    }
}
pub mod settlement {
    pub mod v1 {
        tonic::include_proto!("passerelle.settlement.v1");
    }
}
pub mod product {
    pub mod v1 {
        tonic::include_proto!("passerelle.product.v1");
    }
}
pub mod admin {
    pub mod v1 {
        tonic::include_proto!("passerelle.admin.v1");
    }
}

pub mod connect;
pub mod convert;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod json;
pub mod openapi;
pub mod parse;

/// Encoded `FileDescriptorSet` of every passerelle proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/passerelle_descriptor.bin"));
