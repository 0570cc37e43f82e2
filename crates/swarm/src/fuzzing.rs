//! The fuzz target of the session: whatever a hostile peer sends after a valid handshake.
//!
//! [`session_input`] builds three sessions of one small in-memory torrent — a seed, a leecher
//! with nothing, and a magnet session with only the info hashes — connects one incoming peer to
//! each, and feeds each the same bytes: a valid handshake for the torrent (so that the input
//! reaches the message layer), then the input, in chunks. Between chunks it plays the driver:
//! it carries out every event, sends every queued byte, and lets time pass.
//!
//! It must never panic on any input; it panics (through `assert!`) only when an invariant of
//! the session breaks:
//!
//! * at most one peer, and none once it was dropped or fell silent past the inactivity timeout;
//! * bytes queued for the peer stay under [`MAX_QUEUED`], every queued byte is announced by
//!   [`Session::poll_dirty`] (nothing stranded), and what we send is our handshake followed by
//!   whole messages that our own decoder accepts: pieces only of pieces we have, no request or
//!   interest from the seed;
//! * the requests the session holds for the peer at once never exceed
//!   [`MAX_INCOMING_REQUESTS`], the reads handed to the driver and not answered stay within the
//!   send budget ([`MAX_SEND_BUFFER`] in 16 KiB blocks), and every [`Event::Read`] is for a
//!   block inside a piece we have;
//! * every [`Event::Verify`] carries a whole piece we do not have yet, metadata arrives only if
//!   it matches the info hash, and payload counted as downloaded or wasted never exceeds the
//!   bytes received;
//! * carrying out the events settles: the driver is not kept busy forever.
//!
//! The torrent is a v1 single-file torrent of five 16 KiB pieces and a 1,000-byte one, written
//! out by hand (no file is read); its piece hashes are made up, so the driver reports every
//! piece as bad, unless the control byte says to report them good (a peer that sent the right
//! data), which lets the leecher serve what it downloaded.
//!
//! # Input layout
//!
//! ```text
//!  byte 0  bit 0 FAST, bit 1 EXTENSION_PROTOCOL, bit 2 V2_UPGRADE: reserved bits of the
//!          peer's handshake
//!          bits 3-4 reads: 0 answered at once, 1 every fourth chunk, 2 at the end only,
//!          3 at once but failing (the store read failed)
//!          bit 5 pieces the peer completes pass their hash check
//!          bits 6-7 time between chunks: none, 250 ms, 5 s, 45 s (times 1 to 4)
//!  byte 1  bits 0-6 largest chunk (0: the whole stream at once, 1: a byte at a time,
//!          else sizes from 1 up to it); bit 7 slow reader: queued bytes are taken only every
//!          eighth chunk
//!  rest    the peer's byte stream after its handshake
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tessera_metainfo::Metainfo;
use tessera_store::Bitfield;
use tessera_wire::{BlockRequest, Handshake, Limits, Message, MessageDecoder, Reserved};

use crate::{Direction, DisconnectReason, Event, PeerKey, Session, SessionConfig};

/// Piece length of the fuzzed torrent.
const PIECE_LENGTH: u32 = 16 * 1024;
/// Size of its last, short piece.
const LAST_PIECE_LENGTH: u32 = 1000;
/// Number of its pieces: five full ones and the short one.
const NUM_PIECES: u32 = 6;
/// Its length in bytes.
const TOTAL_LENGTH: u64 = (NUM_PIECES as u64 - 1) * PIECE_LENGTH as u64 + LAST_PIECE_LENGTH as u64;

/// Requests the fuzzed sessions hold for a peer at once (their `max_incoming_requests`): small,
/// so that inputs reach the limit.
pub const MAX_INCOMING_REQUESTS: usize = 8;
/// Wasted bytes the fuzzed sessions allow a peer (their `max_wasted_bytes`): four blocks.
pub const MAX_WASTED_BYTES: u64 = 4 * PIECE_LENGTH as u64;
/// The send budget of the fuzzed sessions (their `max_send_buffer`): four blocks, so that
/// inputs exhaust it.
pub const MAX_SEND_BUFFER: usize = 4 * PIECE_LENGTH as usize;
/// Most reads the session may hand out before they are answered: the send budget counts each
/// as a 16 KiB block.
const MAX_READS_IN_FLIGHT: usize = MAX_SEND_BUFFER.div_ceil(16 * 1024);
/// Most bytes that may ever be queued for the peer.
pub const MAX_QUEUED: usize = 64 * 1024 * 1024;
/// Rounds of carrying out events before the session must have settled.
const MAX_ROUNDS: usize = 64;

/// Our peer id in the fuzzed sessions.
const OUR_PEER_ID: [u8; 20] = *b"-TS0100-fuzzsession0";
/// The hostile peer's id.
const PEER_ID: [u8; 20] = *b"-XX0001-hostilepeer0";

/// What the driver reads from the store: zeros (no block is longer than a piece).
static ZEROS: [u8; PIECE_LENGTH as usize] = [0; PIECE_LENGTH as usize];

/// The info dictionary of the fuzzed torrent, bencoded by hand: a single file `fuzz.bin` of
/// five 16 KiB pieces and a 1,000-byte one; piece `i` has the made-up hash `[b'A' + i; 20]`.
pub fn sample_info() -> Vec<u8> {
    let mut info = format!(
        "d6:lengthi{TOTAL_LENGTH}e4:name8:fuzz.bin12:piece lengthi{PIECE_LENGTH}e6:pieces{}:",
        NUM_PIECES * 20
    )
    .into_bytes();
    for i in 0..NUM_PIECES {
        info.extend_from_slice(&[b'A'.wrapping_add(i as u8); 20]);
    }
    info.push(b'e');
    info
}

/// The fuzzed torrent (see [`sample_info`]), parsed once.
pub fn sample_metainfo() -> Arc<Metainfo> {
    static META: OnceLock<Arc<Metainfo>> = OnceLock::new();
    META.get_or_init(|| {
        let mut torrent = b"d4:info".to_vec();
        torrent.extend_from_slice(&sample_info());
        torrent.push(b'e');
        match Metainfo::from_bytes(torrent) {
            Ok(m) => Arc::new(m),
            // The torrent is fixed: failing to parse it is a bug here, not in the input.
            #[allow(clippy::panic)]
            Err(e) => panic!("the fuzzed torrent does not parse: {e}"),
        }
    })
    .clone()
}

/// The settings of the fuzzed sessions: the defaults with small request, waste and send limits
/// and fixed seeds, so that a crash replays exactly.
pub fn fuzz_config() -> SessionConfig {
    let defaults = SessionConfig::default();
    SessionConfig {
        peer_id: OUR_PEER_ID,
        max_incoming_requests: MAX_INCOMING_REQUESTS,
        max_wasted_bytes: MAX_WASTED_BYTES,
        max_send_buffer: MAX_SEND_BUFFER,
        picker: crate::picker::PickerConfig {
            seed: 1,
            ..defaults.picker.clone()
        },
        choker: crate::choker::ChokerConfig {
            seed: 2,
            ..defaults.choker.clone()
        },
        ..defaults
    }
}

/// Feeds `data` (see the [module documentation](self) for its layout) to a seed, a leecher and
/// a magnet session after a valid handshake, checking the session's invariants throughout.
///
/// # Panics
/// Only when an invariant of the session breaks: that is a bug in the session.
pub fn session_input(data: &[u8]) {
    let plan = Plan::new(data.first().copied(), data.get(1).copied());
    let stream = data.get(2..).unwrap_or_default();
    let meta = sample_metainfo();
    for kind in [Kind::Seed, Kind::Leecher, Kind::Magnet] {
        Harness::new(kind, &meta, plan).run(stream);
    }
}

/// When the driver answers the session's reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// As soon as they are asked for.
    AtOnce,
    /// After every fourth chunk.
    EveryFourth,
    /// Once the whole input is in.
    AtEnd,
    /// At once, with a failed read.
    Fail,
}

/// What the control bytes chose.
#[derive(Debug, Clone, Copy)]
struct Plan {
    reserved: Reserved,
    reads: Reads,
    pieces_pass: bool,
    step: Duration,
    max_chunk: u8,
    slow_reader: bool,
    seed: u64,
}

impl Plan {
    fn new(control: Option<u8>, chunking: Option<u8>) -> Plan {
        // Without control bytes: a fast, extension-speaking peer, whole stream, no time.
        let c = control.unwrap_or(0b11);
        let k = chunking.unwrap_or(0);
        let mut reserved = Reserved::EMPTY;
        for (bit, flag) in [
            (0, Reserved::FAST),
            (1, Reserved::EXTENSION_PROTOCOL),
            (2, Reserved::V2_UPGRADE),
        ] {
            if c & (1 << bit) != 0 {
                reserved.insert(flag);
            }
        }
        let reads = match (c >> 3) & 3 {
            0 => Reads::AtOnce,
            1 => Reads::EveryFourth,
            2 => Reads::AtEnd,
            _ => Reads::Fail,
        };
        let step = match c >> 6 {
            0 => Duration::ZERO,
            1 => Duration::from_millis(250),
            2 => Duration::from_secs(5),
            _ => Duration::from_secs(45),
        };
        Plan {
            reserved,
            reads,
            pieces_pass: c & (1 << 5) != 0,
            step,
            max_chunk: k & 0x7f,
            slow_reader: k & 0x80 != 0,
            seed: (u64::from(c) << 8 | u64::from(k)) ^ 0x9E37_79B9_7F4A_7C15,
        }
    }
}

/// Which session a harness drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Seed,
    Leecher,
    Magnet,
}

/// One session with one hostile peer, and the driver around it.
struct Harness {
    kind: Kind,
    plan: Plan,
    session: Session,
    key: PeerKey,
    now: Instant,
    rng: u64,
    /// Reads asked for and not answered yet.
    pending: Vec<(PeerKey, BlockRequest)>,
    /// Bytes handed to the session.
    fed: u64,
    connected: bool,
    gone: bool,
    /// What we sent, not yet decoded.
    sent: BytesMut,
    sent_handshake: bool,
    decoder: MessageDecoder,
}

impl Harness {
    fn new(kind: Kind, meta: &Arc<Metainfo>, plan: Plan) -> Harness {
        let now = Instant::now();
        let n = NUM_PIECES;
        let session = match kind {
            Kind::Seed => Session::new(meta.clone(), &Bitfield::full(n), fuzz_config(), now),
            Kind::Leecher => Session::new(meta.clone(), &Bitfield::new(n), fuzz_config(), now),
            Kind::Magnet => Session::from_magnet(meta.info_hashes(), fuzz_config(), now),
        };
        let mut session = match session {
            Ok(s) => s,
            #[allow(clippy::panic)]
            Err(e) => panic!("a session of the fuzzed torrent: {e}"),
        };
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 51413));
        let key = match session.add_peer(now, addr, Direction::Incoming) {
            Ok(k) => k,
            #[allow(clippy::panic)]
            Err(e) => panic!("adding the first peer: {e}"),
        };
        // Before its metadata a magnet session echoes requests (in rejects) that it cannot
        // check against the torrent: its output is held to the limits it knows.
        let limits = match kind {
            Kind::Magnet => Limits::default(),
            _ => Limits::default()
                .for_torrent(TOTAL_LENGTH, PIECE_LENGTH)
                .with_num_pieces(NUM_PIECES),
        };
        Harness {
            kind,
            plan,
            session,
            key,
            now,
            rng: plan.seed | 1,
            pending: Vec::new(),
            fed: 0,
            connected: false,
            gone: false,
            sent: BytesMut::new(),
            sent_handshake: false,
            decoder: MessageDecoder::new(limits),
        }
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn next_chunk(&mut self, left: usize) -> usize {
        let len = match self.plan.max_chunk {
            0 => left,
            1 => 1,
            m => 1 + (self.next_random() % u64::from(m)) as usize,
        };
        len.clamp(1, left.max(1))
    }

    fn run(mut self, stream: &[u8]) {
        let mut input = BytesMut::new();
        if let Some(info_hash) = self.session.info_hashes().wire_hash() {
            Handshake {
                reserved: self.plan.reserved,
                info_hash,
                peer_id: PEER_ID,
            }
            .encode(&mut input);
        }
        input.extend_from_slice(stream);
        let mut rest = &input[..];
        let mut chunks = 0usize;
        while !rest.is_empty() && !self.gone {
            let (chunk, tail) = rest.split_at(self.next_chunk(rest.len()));
            rest = tail;
            chunks += 1;
            self.fed += chunk.len() as u64;
            self.session
                .handle_recv(self.now, self.key, BytesMut::from(chunk));
            let answer = match self.plan.reads {
                Reads::AtOnce | Reads::Fail => true,
                Reads::EveryFourth => chunks % 4 == 0,
                Reads::AtEnd => false,
            };
            let transmit = !self.plan.slow_reader || chunks % 8 == 0;
            self.drain(answer, transmit);
            if !self.plan.step.is_zero() {
                let times = 1 + (self.next_random() % 4) as u32;
                self.now += self.plan.step * times;
                self.session.handle_timeout(self.now);
                self.drain(answer, transmit);
            }
        }
        self.drain(true, true);
        // The peer falls silent: it must be dropped.
        self.now += fuzz_config().inactivity_timeout + Duration::from_secs(2);
        self.session.handle_timeout(self.now);
        self.drain(true, true);
        assert_eq!(
            self.session.peer_count(),
            0,
            "{:?}: a silent peer outlived the inactivity timeout",
            self.kind
        );
    }

    /// Carries out events, answers reads (if `answer`) and takes queued bytes (if `transmit`)
    /// until the session has nothing more to say.
    fn drain(&mut self, answer: bool, transmit: bool) {
        let mut settled = false;
        for _ in 0..MAX_ROUNDS {
            let mut busy = false;
            while let Some(ev) = self.session.poll_event() {
                busy = true;
                self.on_event(ev);
            }
            if answer && !self.pending.is_empty() {
                busy = true;
                self.answer_reads();
            }
            if transmit {
                while let Some(key) = self.session.poll_dirty() {
                    busy = true;
                    self.transmit(key);
                }
            }
            if !busy {
                settled = true;
                break;
            }
        }
        assert!(settled, "{:?}: the session never settles", self.kind);
        self.check();
    }

    fn check(&self) {
        let s = &self.session;
        assert!(s.peer_count() <= 1, "{} peers", s.peer_count());
        if self.gone {
            assert_eq!(s.peer_count(), 0, "a dropped peer is still there");
        }
        let queued = s.send_queued(self.key);
        assert!(queued <= MAX_QUEUED, "{queued} bytes queued for the peer");
        let stats = s.stats();
        assert!(
            stats.downloaded.saturating_add(stats.wasted) <= self.fed,
            "{} downloaded and {} wasted out of {} bytes received",
            stats.downloaded,
            stats.wasted,
            self.fed
        );
        if self.kind == Kind::Seed {
            assert_eq!(stats.downloaded, 0, "a seed downloaded");
        }
    }

    fn piece_size(index: u32) -> Option<u32> {
        match index {
            i if i + 1 < NUM_PIECES => Some(PIECE_LENGTH),
            i if i + 1 == NUM_PIECES => Some(LAST_PIECE_LENGTH),
            _ => None,
        }
    }

    fn have(&self, piece: u32) -> bool {
        self.session.have().is_some_and(|h| h.get(piece))
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Read { peer, request } => {
                assert_eq!(peer, self.key, "a read for an unknown peer");
                assert!(
                    self.have(request.index),
                    "a read of a missing piece: {request:?}"
                );
                let end = u64::from(request.begin) + u64::from(request.length);
                let size = Self::piece_size(request.index).unwrap_or(0);
                assert!(
                    request.length > 0 && end <= u64::from(size),
                    "a read outside its piece: {request:?}"
                );
                self.pending.push((peer, request));
                assert!(
                    self.pending.len() <= MAX_READS_IN_FLIGHT,
                    "{} reads in flight, budget {MAX_READS_IN_FLIGHT}",
                    self.pending.len()
                );
            }
            Event::Verify { piece, data } => {
                assert!(!self.have(piece), "verify of piece {piece}, which we have");
                assert_eq!(
                    Some(data.len()),
                    Self::piece_size(piece).map(|s| s as usize),
                    "verify of piece {piece} with the wrong size"
                );
                self.session
                    .piece_checked(self.now, piece, self.plan.pieces_pass);
                // A driver may hand the buffer back for the next piece: exercise that path.
                self.session.recycle(data);
            }
            Event::PieceVerified { piece } => {
                assert!(self.have(piece), "piece {piece} verified but not had");
            }
            Event::PieceFailed { piece } => {
                assert!(!self.have(piece), "piece {piece} failed but had");
            }
            Event::Finished => {
                assert!(
                    self.session.have().is_some_and(Bitfield::is_full),
                    "finished without every piece"
                );
            }
            Event::MetadataReceived(meta) => {
                assert_eq!(self.kind, Kind::Magnet, "metadata for a full torrent");
                assert_eq!(meta.info_hashes(), self.session.info_hashes());
                assert_eq!(meta.info_bytes(), sample_metainfo().info_bytes());
            }
            Event::PeerConnected { peer, peer_id } => {
                assert!(!self.connected, "connected twice");
                assert_eq!((peer, peer_id), (self.key, PEER_ID));
                self.connected = true;
            }
            Event::Disconnect { peer, reason } => {
                assert_eq!(peer, self.key, "an unknown peer was dropped");
                assert!(!self.gone, "dropped twice");
                let expected = match &reason {
                    DisconnectReason::ProtocolViolation(_)
                    | DisconnectReason::HandshakeTimeout
                    | DisconnectReason::Inactive
                    | DisconnectReason::TooMuchWaste
                    | DisconnectReason::BothSeeds => true,
                    DisconnectReason::BadMetadata => self.kind == Kind::Magnet,
                    _ => false,
                };
                assert!(expected, "{:?}: unexpected disconnect: {reason}", self.kind);
                self.gone = true;
                self.pending.clear();
            }
            Event::PeersDiscovered(addrs) => {
                assert!(addrs.len() <= fuzz_config().max_known_peers);
            }
        }
    }

    /// Hands every pending read back to the session. The reads it still holds all came from
    /// the requests it held at once: no more than the limit may be taken.
    fn answer_reads(&mut self) {
        let mut taken = 0usize;
        for (peer, request) in std::mem::take(&mut self.pending) {
            let before = self.session.send_queued(peer);
            let data = match self.plan.reads {
                Reads::Fail => None,
                _ => ZEROS.get(..request.length as usize).map(Bytes::from_static),
            };
            self.session.block_read(self.now, peer, request, data);
            if self.session.send_queued(peer) > before {
                taken += 1;
            }
        }
        assert!(
            taken <= MAX_INCOMING_REQUESTS,
            "{taken} requests held at once, more than {MAX_INCOMING_REQUESTS}"
        );
    }

    fn transmit(&mut self, key: PeerKey) {
        assert_eq!(key, self.key, "bytes for an unknown peer");
        let queued = self.session.send_queued(key);
        assert!(queued <= MAX_QUEUED, "{queued} bytes queued for the peer");
        let mut sent = 0usize;
        while let Some(b) = self.session.poll_transmit(key) {
            sent += b.len();
            self.sent.extend_from_slice(&b);
        }
        assert_eq!(sent, queued, "send_queued disagrees with what was sent");
        assert_eq!(self.session.send_queued(key), 0, "bytes left queued");
        self.check_sent();
    }

    /// What we sent must be our handshake, then whole messages that our decoder accepts.
    fn check_sent(&mut self) {
        if !self.sent_handshake {
            match Handshake::decode(&mut self.sent) {
                Ok(Some(hs)) => {
                    assert_eq!(hs.peer_id, OUR_PEER_ID);
                    assert_eq!(Some(hs.info_hash), self.session.info_hashes().wire_hash());
                    self.sent_handshake = true;
                }
                #[allow(clippy::panic)]
                other => panic!("we sent a bad handshake: {other:?}"),
            }
        }
        loop {
            match self.decoder.decode(&mut self.sent) {
                Ok(Some(msg)) => self.check_sent_message(&msg),
                Ok(None) => break,
                #[allow(clippy::panic)]
                Err(e) => panic!("we sent a message our decoder refuses: {e}"),
            }
        }
        assert!(self.sent.is_empty(), "we sent part of a message");
    }

    fn check_sent_message(&self, msg: &Message) {
        match msg {
            Message::Piece { index, .. } => {
                assert!(
                    self.have(*index),
                    "we sent a block of piece {index}, not had"
                );
            }
            Message::Request(_) | Message::Interested => {
                assert_ne!(self.kind, Kind::Seed, "a seed sent {msg:?}");
            }
            _ => {}
        }
    }
}
