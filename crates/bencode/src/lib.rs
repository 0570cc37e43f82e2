//! # tessera-bencode
//!
//! Bencode for BitTorrent: a zero-copy decoder, a canonical encoder and serde support.
//!
//! ```text
//!  &[u8] / Bytes ──decode──▶ Document (flat tape of tokens, spans into the input)
//!                                 │ root()
//!                                 ▼
//!              ValueRef / DictRef / ListRef   (borrowed views: &'a [u8], i64, raw spans)
//!                                 │ to_owned()             ▲
//!                                 ▼                        │ serde: from_bytes::<T>()
//!                               Value ──encode (sorted keys)──▶ Vec<u8>
//! ```
//!
//! * The decoder never recurses and never panics: nesting depth and value count are bounded
//!   ([`DecodeOptions`]), integers are checked against `i64`, string lengths against the input.
//! * Every value keeps its exact byte span ([`ValueRef::raw`]), so an info dictionary can be
//!   hashed exactly as it appears in a file.
//! * [`Mode::Strict`] rejects non-canonical input with an [`Error`] carrying the byte offset and
//!   key path; [`Mode::Lenient`] accepts what real torrents contain and reports [`Warning`]s.
//!
//! ```
//! use tessera_bencode::{decode, decode_lenient, Irregularity};
//!
//! let doc = decode(b"d3:cow3:moo4:spaml1:a1:bee").unwrap();
//! let root = doc.root().as_dict().unwrap();
//! assert_eq!(root.get_bytes(b"cow"), Some(&b"moo"[..]));
//! assert_eq!(root.get(b"spam").unwrap().raw(), b"l1:a1:be");
//!
//! // Unsorted keys: an error in strict mode, a warning in lenient mode.
//! let err = decode(b"d1:bi1e1:ai2ee").unwrap_err();
//! assert_eq!(err.offset, 7);
//! let doc = decode_lenient(b"d1:bi1e1:ai2ee").unwrap();
//! assert_eq!(doc.warnings()[0].kind, Irregularity::UnsortedKeys);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decode;
mod encode;
mod error;
mod value;

pub use decode::{
    decode, decode_lenient, DecodeOptions, DictIter, DictRef, Document, Kind, ListIter, ListRef,
    Mode, ValueRef, DEFAULT_MAX_DEPTH, DEFAULT_MAX_TOKENS,
};
pub use encode::{put_bytes, put_int, DictBuilder, Encode};
pub use error::{Error, ErrorKind, Irregularity, Path, PathSegment, Warning};
pub use value::Value;
