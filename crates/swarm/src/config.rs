//! Settings of a swarm session.

use std::time::Duration;

use crate::choker::ChokerConfig;
use crate::picker::PickerConfig;

/// Settings of a [`Session`](crate::Session). Every limit that a peer could otherwise push
/// without bound is here.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Our 20-byte peer id.
    pub peer_id: [u8; 20],
    /// Client name and version sent in the extension handshake (`v`).
    pub client: String,
    /// The TCP port we accept connections on, announced in the extension handshake (`p`).
    pub listen_port: Option<u16>,
    /// Most peer connections at once.
    pub max_peers: usize,
    /// Most requests we queue from one peer (announced as `reqq`); more are rejected.
    pub max_incoming_requests: usize,
    /// Most requests we keep outstanding to one peer, whatever it announces.
    pub max_outgoing_requests: usize,
    /// Requests we keep outstanding to a peer before its rate is known.
    pub initial_outgoing_requests: usize,
    /// Seconds of download at a peer's current rate to keep requested from it.
    pub request_queue_time: Duration,
    /// A peer that sends none of the blocks we asked for in this long is snubbed: its
    /// requests go to others.
    pub request_timeout: Duration,
    /// A peer that sends nothing at all for this long is disconnected.
    pub inactivity_timeout: Duration,
    /// A connection whose handshake has not arrived in this long is dropped.
    pub handshake_timeout: Duration,
    /// We send a keep-alive after this long without sending anything.
    pub keepalive_interval: Duration,
    /// How often we tell peers about other peers (BEP 11); the first message goes out
    /// shortly after the extension handshake.
    pub pex_interval: Duration,
    /// Most peer addresses learnt from PEX that we remember.
    pub max_known_peers: usize,
    /// Bytes of outgoing messages a peer may have queued before we stop reading blocks for it.
    pub max_send_buffer: usize,
    /// Bytes of unverified piece data we hold in memory across the torrent before we stop
    /// requesting new pieces.
    pub max_piece_buffer: usize,
    /// Allowed-fast pieces we grant each peer (BEP 6).
    pub allowed_fast: usize,
    /// Unsolicited or duplicate block bytes a peer may send before it is dropped.
    pub max_wasted_bytes: u64,
    /// Piece picker settings.
    pub picker: PickerConfig,
    /// Choker settings.
    pub choker: ChokerConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let mut peer_id = *b"-TS0100-000000000000";
        // Not secret, only distinct per process: mix the clock and the process id.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
        let mut x = seed | 1;
        for b in peer_id.iter_mut().skip(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = b"0123456789abcdefghijklmnopqrstuvwxyz"
                .get((x % 36) as usize)
                .copied()
                .unwrap_or(b'0');
        }
        SessionConfig {
            peer_id,
            client: format!("Tessera {}", env!("CARGO_PKG_VERSION")),
            listen_port: None,
            max_peers: 200,
            max_incoming_requests: 500,
            max_outgoing_requests: 1000,
            initial_outgoing_requests: 64,
            request_queue_time: Duration::from_secs(3),
            request_timeout: Duration::from_secs(20),
            inactivity_timeout: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(60),
            pex_interval: Duration::from_secs(60),
            max_known_peers: 1000,
            max_send_buffer: 4 * 1024 * 1024,
            max_piece_buffer: 256 * 1024 * 1024,
            allowed_fast: 10,
            max_wasted_bytes: 16 * 1024 * 1024,
            picker: PickerConfig {
                seed,
                ..PickerConfig::default()
            },
            choker: ChokerConfig {
                seed: seed.rotate_left(17),
                ..ChokerConfig::default()
            },
        }
    }
}
