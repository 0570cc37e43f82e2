//! # tessera-wire
//!
//! A sans-IO codec for the BitTorrent peer wire protocol (in progress).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
