//! # tessera-wire
//!
//! A sans-IO codec for the BitTorrent peer wire protocol: the handshake (BEP 3) with its
//! reserved bits, the messages of BEP 3, 5, 6, 10 and 52, and the BEP 6 allowed-fast set. It
//! turns bytes into typed messages and back, and keeps no connection state: the session that
//! decides what to send lives above it.
//!
//! ```text
//!  socket bytes ─▶ BytesMut ─┬─ Handshake::decode / HandshakePrefix::decode ─▶ Handshake
//!                            ├─ MessageDecoder::decode (checked against Limits) ─▶ Message
//!                            │     Ok(None) = need more bytes; payloads are zero-copy Bytes
//!                            └─ MessageDecoder::decode_slice (same checks, same code) ─▶
//!                                  (MessageRef, bytes used); payloads borrow the buffer:
//!                                  no allocation, no reference count
//!  Message ─▶ Message::encode ─▶ BytesMut ─▶ socket
//!  piece:      encode_piece_header ─▶ 13 bytes ┐
//!              data: Bytes ────────────────────┴─▶ vectored write, no copy
//!  (feature "tokio": HandshakeCodec / MessageCodec for tokio_util::codec::Framed)
//! ```
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use tessera_metainfo::Sha1Hash;
//! use tessera_wire::{BlockRequest, Handshake, Limits, Message, MessageDecoder, Reserved};
//!
//! // Our side: a handshake, then a request.
//! let mut out = BytesMut::new();
//! let hs = Handshake {
//!     reserved: Reserved::FAST | Reserved::EXTENSION_PROTOCOL,
//!     info_hash: Sha1Hash([0xAA; 20]),
//!     peer_id: *b"-TS0001-000000000000",
//! };
//! hs.encode(&mut out);
//! Message::Request(BlockRequest { index: 0, begin: 0, length: 16384 }).encode(&mut out);
//! Message::Piece { index: 0, begin: 0, data: Bytes::from_static(b"hello") }.encode(&mut out);
//!
//! // The peer's side, fed one byte at a time.
//! let decoder = MessageDecoder::new(Limits::default().for_torrent(1 << 20, 1 << 16));
//! let mut rx = BytesMut::new();
//! let mut got = Vec::new();
//! let mut handshake = None;
//! for &b in out.iter() {
//!     rx.extend_from_slice(&[b]);
//!     if handshake.is_none() {
//!         handshake = Handshake::decode(&mut rx)?;
//!     } else if let Some(msg) = decoder.decode(&mut rx)? {
//!         got.push(msg);
//!     }
//! }
//! assert_eq!(handshake, Some(hs));
//! assert!(handshake.unwrap().reserved.fast());
//! assert_eq!(got.len(), 2);
//! assert!(matches!(&got[1], Message::Piece { data, .. } if &data[..] == b"hello"));
//! # Ok::<(), tessera_wire::Error>(())
//! ```
//!
//! [`fuzzing`] holds the entry points of the fuzz targets.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod codec;
mod decoder;
mod error;
mod fast;
pub mod fuzzing;
mod handshake;
mod limits;
mod message;

// Extension layer: BEP 10 handshake and registry, typed extensions, BEP 52 hash verification.
mod donthave;
mod ext_error;
mod extension;
mod hash_verify;
mod metadata;
mod pex;

#[cfg(feature = "tokio")]
pub use codec::{CodecError, HandshakeCodec, MessageCodec};
pub use decoder::MessageDecoder;
pub use error::{Error, ErrorKind};
pub use fast::allowed_fast_set;
pub use handshake::{
    Handshake, HandshakePrefix, Reserved, HANDSHAKE_LEN, HANDSHAKE_PREFIX_LEN, PROTOCOL,
};
pub use limits::{Limits, DEFAULT_MAX_MESSAGE_LEN, DEFAULT_MAX_REQUEST_LEN};
pub use message::{
    encode_piece_header, message_id, BlockRequest, HashRequest, Hashes, Message, MessageRef,
    PIECE_HEADER_LEN,
};

pub use donthave::LtDonthave;
pub use ext_error::ExtError;
pub use extension::{
    extension_payloads, ExtendedHandshake, ExtensionMessage, ExtensionRegistry, Incoming,
    UploadOnly, HANDSHAKE_ID, MAX_EXTENSIONS, MAX_EXTENSION_NAME_LEN, MAX_HANDSHAKE_LEN,
    MAX_VERSION_LEN,
};
pub use hash_verify::{
    answer_hash_request, uncle_count, validate_hash_request, verify_hashes, MAX_HASH_REQUEST_LENGTH,
};
pub use metadata::{UtMetadata, MAX_METADATA_PIECES, MAX_METADATA_SIZE, METADATA_PIECE_SIZE};
pub use pex::{PexFlags, UtPex, MAX_PEX_LEN, MAX_PEX_PEERS};
