//! # tessera
//!
//! The umbrella crate of the Tessera toolkit for incentivised BitTorrent. It re-exports each
//! library crate under a short name; depend on the individual `tessera-*` crates to pull in less.
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`bencode`] | `tessera-bencode` | zero-copy bencode decoder, canonical encoder, serde |
//! | [`metainfo`] | `tessera-metainfo` | .torrent files (v1, v2, hybrid), magnet links, creation, merkle trees |
//! | [`store`] | `tessera-store` | piece store: file mapping, backends, verification, recheck, resume |
//! | [`wire`] | `tessera-wire` | peer wire protocol codec: handshake, messages, extensions |
//! | [`swarm`] | `tessera-swarm` | sans-IO swarm engine (peers, picker, choker, metadata, PEX) and its tokio driver |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The `bytes` crate, whose `Bytes`/`BytesMut` carry payloads through the wire codec.
pub use bytes;
pub use tessera_bencode as bencode;
pub use tessera_dht as dht;
pub use tessera_ledger as ledger;
pub use tessera_metainfo as metainfo;
pub use tessera_store as store;
pub use tessera_swarm as swarm;
pub use tessera_wire as wire;
