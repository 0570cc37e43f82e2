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
//!                               Value ──encode (sorted keys)──▶ Vec<u8> ◀── serde: to_bytes(&T)
//! ```
//!
//! * The decoder never recurses and never panics: nesting depth and value count are bounded
//!   ([`DecodeOptions`]), integers are checked against `i64`, string lengths against the input.
//! * Every value keeps its exact byte span ([`ValueRef::raw`]), so an info dictionary can be
//!   hashed exactly as it appears in a file.
//! * A container that holds most of the input and is read once anyway (a torrent's file list)
//!   can be left off the tape ([`DecodeOptions::decode_folded`]) and read from its encoding
//!   with [`RawValue`], after the decoder has checked it like the rest.
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
//!
//! [`fuzzing`] holds the entry points of the fuzz targets: functions that panic when an
//! invariant between the strict decoder, the lenient decoder, the encoder and serde breaks.
//!
//! ## serde
//!
//! [`to_bytes`] always writes canonical bencode (keys sorted, `None` fields left out);
//! [`from_bytes`] decodes strictly and then deserializes from the tape, so byte strings can be
//! borrowed from the input. [`from_value_ref`] deserializes one value of a [`Document`], and
//! [`from_bytes_with`] takes [`DecodeOptions`] (e.g. lenient). [`Serializer`] and [`Deserializer`]
//! describe how serde's data model maps onto bencode.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use tessera_bencode::{from_bytes, to_bytes};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct File<'a> {
//!     length: u64,
//!     #[serde(borrow)]
//!     path: Vec<&'a str>,
//!     #[serde(with = "serde_bytes", skip_serializing_if = "Option::is_none", default)]
//!     md5sum: Option<&'a [u8]>,
//! }
//!
//! let file = File { length: 42, path: vec!["dir", "a.txt"], md5sum: None };
//! let bytes = to_bytes(&file).unwrap();
//! assert_eq!(bytes, b"d6:lengthi42e4:pathl3:dir5:a.txtee");
//! assert_eq!(from_bytes::<File>(&bytes).unwrap(), file);
//!
//! // Type errors carry the byte offset and key path of the offending value.
//! let err = from_bytes::<File>(b"d6:lengthi42e4:pathl3:diri7eee").unwrap_err();
//! assert_eq!(err.offset(), Some(25));
//! assert_eq!(err.path().to_string(), "path[1]");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod de;
mod decode;
mod encode;
mod error;
pub mod fuzzing;
mod raw;
mod scan;
mod ser;
mod value;

pub use de::{from_bytes, from_bytes_with, from_value_ref, DeError, Deserializer};

pub use decode::{
    decode, decode_lenient, ClaimLimits, Claimed, DecodeOptions, DictIter, DictRef, Document, Kind,
    ListIter, ListRef, Mode, ValueRef, DEFAULT_MAX_DEPTH, DEFAULT_MAX_TOKENS,
};
pub use encode::{put_bytes, put_int, DictBuilder, Encode};
pub use error::{Error, ErrorKind, Irregularity, Path, PathSegment, Warning};
pub use raw::{RawDictIter, RawListIter, RawValue};
pub use scan::find_root_value;
pub use ser::{to_bytes, to_writer, DictSerializer, SeqSerializer, SerError, Serializer};
pub use value::Value;
