//! Tongban's wire vocabulary: the v1 gRPC APIs of the four services and the event envelope,
//! generated from `proto/` at build time.
//!
//! Besides the generated modules this crate offers [`DESCRIPTOR_SET`] (for server reflection,
//! with the protos' comments kept), [`json`] for proto3 JSON in and out of any Tongban message
//! (the CLI reads the example application with it and prints `--output json` through it), and
//! the small pieces of wire vocabulary every service shares: [`page`] (opaque page tokens),
//! [`structs`] (`Struct` ⇄ JSON for forms), [`error`] (the `ErrorInfo` catalogue) and [`time`].
//!
//! `docs/api.md` is rendered from the descriptor set by this crate's `api_docs` test; after a
//! proto change run `UPDATE_API_DOCS=1 cargo test -p tongban-proto --test api_docs`.

#![allow(unreachable_pub, clippy::all)]

pub mod tongban {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("tongban.common.v1");
        }
    }
    pub mod intake {
        pub mod v1 {
            tonic::include_proto!("tongban.intake.v1");
        }
    }
    pub mod approval {
        pub mod v1 {
            tonic::include_proto!("tongban.approval.v1");
        }
    }
    pub mod dispatch {
        pub mod v1 {
            tonic::include_proto!("tongban.dispatch.v1");
        }
    }
    pub mod notification {
        pub mod v1 {
            tonic::include_proto!("tongban.notification.v1");
        }
    }
    pub mod events {
        pub mod v1 {
            tonic::include_proto!("tongban.events.v1");
        }
    }
    pub mod ops {
        pub mod v1 {
            tonic::include_proto!("tongban.ops.v1");
        }
    }
}

pub use tongban::ops::v1 as ops;
pub use tongban::{approval::v1 as approval, common::v1 as common, dispatch::v1 as dispatch};
pub use tongban::{events::v1 as events, intake::v1 as intake, notification::v1 as notification};

/// Encoded `FileDescriptorSet` of every Tongban proto, for reflection and JSON.
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tongban_descriptor.bin"));

pub mod error;
pub mod json;
pub mod page;
pub mod structs;
pub mod time;
