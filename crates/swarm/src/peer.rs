//! The state the session keeps for one peer connection.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tessera_store::Bitfield;
use tessera_wire::{
    encode_piece_header, BlockRequest, ExtensionRegistry, Message, Reserved, PIECE_HEADER_LEN,
};

use crate::picker::BlockRef;
use crate::rate::RateMeter;

/// How a peer's pieces are counted in the picker's availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// Not yet (no metadata).
    No,
    /// Through its bitfield (`has`).
    Bitfield,
    /// As a seed (have all).
    Seed,
}

/// One outstanding request of ours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutRequest {
    pub(crate) block: BlockRef,
    pub(crate) sent: Instant,
}

#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    pub(crate) outgoing: bool,
    pub(crate) connected_at: Instant,
    pub(crate) handshake_done: bool,
    pub(crate) peer_id: [u8; 20],
    pub(crate) reserved: Reserved,
    /// The peer speaks BEP 52 (hash requests) for this torrent.
    pub(crate) v2: bool,

    pub(crate) recv: BytesMut,
    send: VecDeque<Bytes>,
    small: BytesMut,
    pub(crate) send_queued: usize,
    pub(crate) last_recv: Instant,
    pub(crate) last_send: Instant,

    pub(crate) am_choking: bool,
    pub(crate) am_interested: bool,
    pub(crate) peer_choking: bool,
    pub(crate) peer_interested: bool,

    pub(crate) has: Bitfield,
    pub(crate) is_seed: bool,
    pub(crate) counted: Counted,
    /// A bitfield / have-all / have-none was received (only one is allowed, first).
    pub(crate) got_bitfield: bool,
    /// A bitfield that arrived before the metadata (magnet links), applied once it is known.
    pub(crate) early_bitfield: Option<Bytes>,
    pub(crate) early_have_all: bool,

    pub(crate) ext: ExtensionRegistry,
    pub(crate) reqq: usize,
    pub(crate) listen_port: Option<u16>,
    pub(crate) metadata_size: Option<u64>,
    pub(crate) upload_only: bool,

    pub(crate) out: Vec<OutRequest>,
    /// Requests of the peer handed to the driver to read and not answered yet.
    pub(crate) reads: BTreeSet<(u32, u32, u32)>,
    /// Accepted requests not yet handed to the driver, in arrival order (stale entries, no
    /// longer in `reads`, are skipped).
    pub(crate) read_queue: VecDeque<BlockRequest>,
    /// Bytes of reads handed to the driver and not yet answered.
    pub(crate) reads_issued: u64,
    pub(crate) allowed_in: Vec<u32>,
    pub(crate) allowed_out: Vec<u32>,

    pub(crate) down: RateMeter,
    pub(crate) up: RateMeter,
    pub(crate) last_block: Instant,
    pub(crate) snubbed: bool,
    pub(crate) wasted: u64,

    pub(crate) pex_next: Option<Instant>,
    pub(crate) pex_sent: BTreeSet<SocketAddr>,
}

pub(crate) fn read_key(r: &BlockRequest) -> (u32, u32, u32) {
    (r.index, r.begin, r.length)
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr, outgoing: bool, now: Instant) -> Self {
        Peer {
            addr,
            outgoing,
            connected_at: now,
            handshake_done: false,
            peer_id: [0; 20],
            reserved: Reserved::EMPTY,
            v2: false,
            recv: BytesMut::new(),
            send: VecDeque::new(),
            small: BytesMut::new(),
            send_queued: 0,
            last_recv: now,
            last_send: now,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            has: Bitfield::new(0),
            is_seed: false,
            counted: Counted::No,
            got_bitfield: false,
            early_bitfield: None,
            early_have_all: false,
            ext: ExtensionRegistry::with_builtin(),
            reqq: 250,
            listen_port: None,
            metadata_size: None,
            upload_only: false,
            out: Vec::new(),
            reads: BTreeSet::new(),
            read_queue: VecDeque::new(),
            reads_issued: 0,
            allowed_in: Vec::new(),
            allowed_out: Vec::new(),
            down: RateMeter::new(now),
            up: RateMeter::new(now),
            last_block: now,
            snubbed: false,
            wasted: 0,
            pex_next: None,
            pex_sent: BTreeSet::new(),
        }
    }

    pub(crate) fn fast(&self) -> bool {
        self.reserved.fast()
    }

    /// Queues a message.
    pub(crate) fn push(&mut self, msg: &Message, now: Instant) {
        let before = self.small.len();
        msg.encode(&mut self.small);
        self.send_queued = self.send_queued.saturating_add(self.small.len() - before);
        self.last_send = now;
    }

    /// Queues raw bytes (the handshake).
    pub(crate) fn push_raw(&mut self, bytes: &[u8], now: Instant) {
        self.small.extend_from_slice(bytes);
        self.send_queued = self.send_queued.saturating_add(bytes.len());
        self.last_send = now;
    }

    /// Queues a block without copying it.
    pub(crate) fn push_piece(&mut self, index: u32, begin: u32, data: Bytes, now: Instant) {
        if encode_piece_header(index, begin, data.len(), &mut self.small).is_err() {
            return;
        }
        let small = self.small.split().freeze();
        self.send.push_back(small);
        self.send_queued = self
            .send_queued
            .saturating_add(PIECE_HEADER_LEN)
            .saturating_add(data.len());
        self.send.push_back(data);
        self.last_send = now;
    }

    /// True if bytes are waiting to be sent.
    pub(crate) fn wants_transmit(&self) -> bool {
        !self.send.is_empty() || !self.small.is_empty()
    }

    /// The next bytes to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        let next = match self.send.pop_front() {
            Some(b) => b,
            None if !self.small.is_empty() => self.small.split().freeze(),
            None => return None,
        };
        self.send_queued = self.send_queued.saturating_sub(next.len());
        Some(next)
    }

    /// Drops queued requests of the peer (we choked it); returns them.
    pub(crate) fn take_reads(&mut self) -> Vec<(u32, u32, u32)> {
        std::mem::take(&mut self.reads).into_iter().collect()
    }
}
