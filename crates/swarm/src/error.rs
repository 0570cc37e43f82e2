//! Errors of the swarm engine.

use tessera_store::StoreError;

/// What went wrong setting up or driving a session. Misbehaving peers are not errors: they are
/// disconnected with a [`DisconnectReason`](crate::DisconnectReason).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// The torrent could not be mapped to files.
    #[error("torrent layout: {0}")]
    Layout(#[from] StoreError),
    /// Neither a v1 nor a v2 info hash was given.
    #[error("no info hash")]
    NoInfoHash,
    /// The bitfield of verified pieces does not fit the torrent.
    #[error("bitfield of {got} pieces for a torrent of {expected}")]
    HaveMismatch {
        /// Pieces in the torrent.
        expected: u32,
        /// Pieces in the bitfield.
        got: u32,
    },
    /// The session is at its connection limit.
    #[error("too many peers (limit {limit})")]
    TooManyPeers {
        /// The limit.
        limit: usize,
    },
}
