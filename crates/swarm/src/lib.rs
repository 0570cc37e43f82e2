//! # tessera-swarm
//!
//! The sans-IO swarm engine: it turns the wire codec and the piece store into a BitTorrent
//! client for one torrent — handshakes, piece picking, choking, metadata exchange and PEX —
//! while the driver owns sockets, files and the clock.
//!
//! ```text
//!   driver (tokio, threads, or a simulation)            Session (this crate)
//!   ───────────────────────────────────────            ────────────────────
//!   socket bytes ──────────── handle_recv ───────────▶ peers ─▶ picker / choker
//!   poll_transmit / poll_dirty ◀────────────────────── bytes to send
//!   Event::Read ◀──────────────────────────────────── a peer asked for a block
//!   store read ───────────── block_read ─────────────▶ queued as a piece message
//!   Event::Verify ◀────────────────────────────────── a piece is complete in memory
//!   hash + write ──────────── piece_checked ─────────▶ HAVE to every peer
//!   clock ─────────────────── handle_timeout ────────▶ timeouts, keep-alives, PEX, rechoke
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod choker;
mod config;
#[cfg(feature = "tokio")]
pub mod driver;
mod error;
mod event;
pub mod fuzzing;
mod hashes;
mod metadata;
mod peer;
pub mod picker;
mod rate;
mod session;

pub use config::SessionConfig;
pub use error::SwarmError;
pub use event::{DisconnectReason, Event};
pub use session::{Direction, Session, SessionStats};

/// Identifies one peer connection inside a torrent session. Keys are never reused while the
/// session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u32);
