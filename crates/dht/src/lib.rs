//! # tessera-dht
//!
//! A sans-IO Mainline DHT node (BEP 5): it takes datagrams and time in, and hands datagrams,
//! events and its next deadline out. A tokio UDP driver is behind the `tokio` feature.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bep44;
pub mod bloom;
pub mod compact;
#[cfg(feature = "tokio")]
pub mod driver;
pub mod fuzzing;
pub mod id;
pub mod krpc;
pub mod lookup;
pub mod node;
mod rng;
pub mod routing;
pub mod secure_id;
pub mod sim;
pub mod store;
pub mod token;

pub use bep44::{ImmutableItem, ItemError, MutableItem};
pub use bloom::ScrapeBloom;
pub use id::{Contact, Id};
pub use krpc::{Body, KrpcError, Message, Query, Response, Want};
pub use lookup::{Lookup, LookupConfig, LookupStats};
pub use node::{Event, FoundItem, LookupId, Node, NodeConfig, NodeStats, Transmit};
pub use routing::{Heard, Insert, RejectReason, RoutingConfig, RoutingTable, K};
pub use store::{ItemStore, ItemStoreConfig, PeerStore, PeerStoreConfig, StoredItem};
pub use token::TokenSecrets;
