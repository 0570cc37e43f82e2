//! # tessera-metainfo
//!
//! BitTorrent metainfo for v1 (BEP 3), v2 (BEP 52) and hybrid (BEP 47/52) torrents: parsing
//! with the same verdicts as libtorrent, magnet links (BEP 9), torrent creation, and the BEP 52
//! merkle tree code that the piece store and the wire codec reuse.
//!
//! ```text
//!  .torrent bytes ──Metainfo::from_bytes──▶ Metainfo { info hashes, files, pieces, trackers… }
//!  magnet URI ─────Magnet::parse──────────▶ Magnet { info hashes, name, trackers, peers… }
//!  files on disk ──TorrentBuilder─────────▶ .torrent bytes (v1, v2 or hybrid)
//!  merkle: leaves ─▶ MerkleTree ─▶ piece layers, roots, proofs
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod create;
mod error;
mod file;
pub mod fuzzing;
mod hash;
mod magnet;
pub mod merkle;
mod path;
mod torrent;
mod url;
mod v1list;
mod version;
mod worker;

pub use create::{CreateError, CreatedTorrent, TorrentBuilder};
pub use error::Error;
pub use file::{FileAttributes, FileEntry, Files, FilesIter, RawPathIter};
pub use hash::{to_hex, HexError, InfoHashes, Sha1Hash, Sha256Hash};
pub use magnet::{Magnet, MagnetError};
pub use torrent::{Metainfo, ParseOptions, Strictness};
pub use version::TorrentVersion;
