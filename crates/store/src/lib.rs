//! # tessera-store
//!
//! The piece store (in progress): maps pieces and blocks to file spans, reads and writes them
//! through a storage backend, and verifies them against v1 and v2 hashes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
