//! What the session asks its driver to do, and tells it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tessera_metainfo::Metainfo;
use tessera_wire::BlockRequest;

use crate::PeerKey;

/// Something the driver must do or may report, from [`Session::poll_event`](crate::Session::poll_event).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Read this block from the store and hand it to
    /// [`Session::block_read`](crate::Session::block_read).
    Read {
        /// The peer that asked for it.
        peer: PeerKey,
        /// The block.
        request: BlockRequest,
    },
    /// Every block of `piece` has arrived: verify `data` (the whole piece), write it to the
    /// store if it is good, and report with
    /// [`Session::piece_checked`](crate::Session::piece_checked).
    Verify {
        /// The piece.
        piece: u32,
        /// Its contents.
        data: Bytes,
    },
    /// The piece passed its hash check and is now announced to peers.
    PieceVerified {
        /// The piece.
        piece: u32,
    },
    /// The piece failed its hash check; its blocks will be downloaded again.
    PieceFailed {
        /// The piece.
        piece: u32,
    },
    /// Every wanted piece is verified.
    Finished,
    /// The info dictionary arrived from peers (magnet links) and matches the info hash.
    MetadataReceived(Arc<Metainfo>),
    /// A handshake completed.
    PeerConnected {
        /// The peer.
        peer: PeerKey,
        /// Its peer id.
        peer_id: [u8; 20],
    },
    /// The session gave up on a peer: close its connection. The peer is already forgotten.
    Disconnect {
        /// The peer.
        peer: PeerKey,
        /// Why.
        reason: DisconnectReason,
    },
    /// Peers learnt through PEX (BEP 11) that we are not connected to.
    PeersDiscovered(Vec<SocketAddr>),
}

/// Why a peer was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer broke the protocol; the message says how.
    ProtocolViolation(String),
    /// The handshake names another torrent.
    WrongInfoHash,
    /// We connected to ourselves.
    SelfConnection,
    /// No handshake in time.
    HandshakeTimeout,
    /// Nothing received for too long.
    Inactive,
    /// The peer sent too many blocks nobody asked for.
    TooMuchWaste,
    /// Both sides have everything: the connection is of no use.
    BothSeeds,
    /// The session is at its connection limit.
    TooManyPeers,
    /// The peer offered metadata that does not match the info hash.
    BadMetadata,
    /// The peer kept sending while it did not read what we sent, past what we buffer.
    Flooding,
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::ProtocolViolation(m) => write!(f, "protocol violation: {m}"),
            DisconnectReason::WrongInfoHash => f.write_str("handshake for another torrent"),
            DisconnectReason::SelfConnection => f.write_str("connected to ourselves"),
            DisconnectReason::HandshakeTimeout => f.write_str("no handshake in time"),
            DisconnectReason::Inactive => f.write_str("inactive"),
            DisconnectReason::TooMuchWaste => f.write_str("too many unrequested blocks"),
            DisconnectReason::BothSeeds => f.write_str("both sides are seeds"),
            DisconnectReason::TooManyPeers => f.write_str("too many peers"),
            DisconnectReason::BadMetadata => f.write_str("metadata does not match the info hash"),
            DisconnectReason::Flooding => f.write_str("sent too much while not reading"),
        }
    }
}
