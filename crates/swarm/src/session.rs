//! The swarm engine for one torrent: every peer connection, the picker and the choker, as a
//! state machine driven by bytes, storage completions and the caller's clock.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tessera_metainfo::{InfoHashes, Metainfo, Sha1Hash};
use tessera_store::{Bitfield, FilePriority, Layout, Priorities};
use tessera_wire::{
    allowed_fast_set, BlockRequest, ExtensionMessage, Handshake, Incoming, Limits, LtDonthave,
    Message, MessageDecoder, PexFlags, Reserved, UploadOnly, UtMetadata, UtPex, MAX_PEX_PEERS,
};

use crate::choker::{ChokeCandidate, Choker, UnchokeHook};
use crate::config::SessionConfig;
use crate::error::SwarmError;
use crate::event::{DisconnectReason, Event};
use crate::hashes::{AnswerCache, LayerFetch};
use crate::metadata::{MetadataFetch, MetadataProgress};
use crate::peer::{read_key, Counted, OutRequest, Peer};
use crate::picker::{BlockRef, PiecePicker, BLOCK_LEN};
use crate::PeerKey;

/// How often the session wants [`Session::handle_timeout`] called.
const TICK: Duration = Duration::from_secs(1);
/// Most allowed-fast pieces we remember a peer granting us.
const MAX_ALLOWED_FAST_IN: usize = 64;
/// Delay between the extension handshake and the first PEX message.
const FIRST_PEX_DELAY: Duration = Duration::from_secs(1);
/// What a read counts against the send budget: its length, but at least a block, so that
/// tiny requests cannot put unbounded numbers of reads in flight.
fn read_cost(r: &BlockRequest) -> u64 {
    u64::from(r.length.max(BLOCK_LEN))
}

/// Bytes of undigested input kept from a peer beyond the largest message it may send.
const RECV_MARGIN: usize = 1 << 20;
/// Most piece buffers kept for reuse.
const MAX_SPARE_BUFFERS: usize = 16;
/// Most metadata pieces requested from one peer at once.
const METADATA_REQUESTS_PER_PEER: usize = 4;

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// Running totals of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Payload bytes received in blocks we asked for and kept.
    pub downloaded: u64,
    /// Payload bytes sent in blocks.
    pub uploaded: u64,
    /// Payload bytes received that were of no use (duplicates, unrequested).
    pub wasted: u64,
    /// Pieces that failed their hash check.
    pub hash_failures: u32,
    /// Pieces verified since the session started.
    pub pieces_verified: u32,
    /// Peers that completed a handshake since the session started.
    pub peers_seen: u32,
}

/// What we know of the torrent once its info dictionary is known.
#[derive(Debug)]
struct Torrent {
    meta: Arc<Metainfo>,
    layout: Arc<Layout>,
    picker: PiecePicker,
    buffers: HashMap<u32, Vec<u8>>,
    buffered: usize,
    /// Piece buffers handed back by the driver, reused so that a download does not fault in
    /// fresh memory for every piece.
    spare: Vec<Vec<u8>>,
    /// Trees for answering hash requests, built on first use.
    answers: AnswerCache,
    verifying: BTreeSet<u32>,
    decoder: MessageDecoder,
}

impl Torrent {
    fn new(
        meta: Arc<Metainfo>,
        have: &Bitfield,
        config: &SessionConfig,
    ) -> Result<Self, SwarmError> {
        let layout = Layout::new(&meta)?;
        if have.len() != layout.num_pieces() {
            return Err(SwarmError::HaveMismatch {
                expected: layout.num_pieces(),
                got: have.len(),
            });
        }
        let picker = PiecePicker::new(&layout, have, config.picker.clone());
        let piece_length = u32::try_from(layout.piece_length()).unwrap_or(u32::MAX);
        let limits = Limits::default()
            .for_torrent(layout.total_length(), piece_length)
            .with_num_pieces(layout.num_pieces());
        Ok(Torrent {
            meta,
            layout: Arc::new(layout),
            picker,
            buffers: HashMap::new(),
            buffered: 0,
            spare: Vec::new(),
            answers: AnswerCache::default(),
            verifying: BTreeSet::new(),
            decoder: MessageDecoder::new(limits),
        })
    }

    fn num_pieces(&self) -> u32 {
        self.layout.num_pieces()
    }
}

/// The sans-IO engine for one torrent.
///
/// The driver feeds it what happens — connections ([`add_peer`](Self::add_peer)), bytes
/// ([`handle_recv`](Self::handle_recv)), closed sockets ([`peer_closed`](Self::peer_closed)),
/// completed reads and hash checks ([`block_read`](Self::block_read),
/// [`piece_checked`](Self::piece_checked)) and the passing of time
/// ([`handle_timeout`](Self::handle_timeout)) — and carries out what it asks for: bytes to send
/// ([`poll_transmit`](Self::poll_transmit)), storage work and notices
/// ([`poll_event`](Self::poll_event)), and when to call back
/// ([`poll_timeout`](Self::poll_timeout)). It never blocks, reads a clock or touches a socket
/// or file, so the same engine runs under tokio, threads, or a simulated network.
pub struct Session {
    config: SessionConfig,
    info_hashes: InfoHashes,
    torrent: Option<Torrent>,
    fetch: Option<MetadataFetch>,
    layers: Option<LayerFetch>,
    fallback_decoder: MessageDecoder,
    peers: BTreeMap<PeerKey, Peer>,
    next_key: u32,
    choker: Choker,
    next_rechoke: Instant,
    next_tick: Instant,
    events: VecDeque<Event>,
    dirty: BTreeSet<PeerKey>,
    discovered: BTreeSet<SocketAddr>,
    finished: bool,
    stats: SessionStats,
    /// The latest time the driver gave us, for work resumed from `poll_transmit`.
    now: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info_hashes", &self.info_hashes)
            .field("peers", &self.peers.len())
            .field("finished", &self.finished)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for a torrent whose info dictionary we have, with the pieces in `have`
    /// already verified in the store.
    ///
    /// # Errors
    /// The torrent cannot be mapped to files, or `have` has the wrong length.
    pub fn new(
        meta: Arc<Metainfo>,
        have: &Bitfield,
        config: SessionConfig,
        now: Instant,
    ) -> Result<Self, SwarmError> {
        let info_hashes = meta.info_hashes();
        let torrent = Torrent::new(meta, have, &config)?;
        let mut s = Session::empty(info_hashes, config, now)?;
        s.finished = torrent.picker.is_finished();
        s.torrent = Some(torrent);
        Ok(s)
    }

    /// A session for a magnet link: the info dictionary is fetched from peers (BEP 9), then
    /// [`Event::MetadataReceived`] is reported and the download starts with nothing verified.
    ///
    /// # Errors
    /// `info_hashes` holds no hash.
    pub fn from_magnet(
        info_hashes: InfoHashes,
        config: SessionConfig,
        now: Instant,
    ) -> Result<Self, SwarmError> {
        let mut s = Session::empty(info_hashes, config, now)?;
        s.fetch = Some(MetadataFetch::new(info_hashes));
        Ok(s)
    }

    fn empty(
        info_hashes: InfoHashes,
        config: SessionConfig,
        now: Instant,
    ) -> Result<Self, SwarmError> {
        if info_hashes.wire_hash().is_none() {
            return Err(SwarmError::NoInfoHash);
        }
        let choker = Choker::new(config.choker.clone());
        let first_rechoke = now + config.choker.rechoke_interval;
        Ok(Session {
            config,
            info_hashes,
            torrent: None,
            fetch: None,
            layers: None,
            fallback_decoder: MessageDecoder::new(Limits::default()),
            peers: BTreeMap::new(),
            next_key: 0,
            choker,
            next_rechoke: first_rechoke,
            next_tick: now + TICK,
            events: VecDeque::new(),
            dirty: BTreeSet::new(),
            discovered: BTreeSet::new(),
            finished: false,
            stats: SessionStats::default(),
            now,
        })
    }

    // ---- accessors ----

    /// The torrent's info hashes.
    pub fn info_hashes(&self) -> InfoHashes {
        self.info_hashes
    }

    /// The torrent, once its info dictionary is known.
    pub fn metainfo(&self) -> Option<&Arc<Metainfo>> {
        self.torrent.as_ref().map(|t| &t.meta)
    }

    /// The piece layout, once the info dictionary is known.
    pub fn layout(&self) -> Option<&Arc<Layout>> {
        self.torrent.as_ref().map(|t| &t.layout)
    }

    /// Verified pieces, once the info dictionary is known.
    pub fn have(&self) -> Option<&Bitfield> {
        self.torrent.as_ref().map(|t| t.picker.have_bitfield())
    }

    /// True once every wanted piece is verified.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Running totals.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Connected peers (handshake done or not).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The address of a connected peer.
    pub fn peer_addr(&self, peer: PeerKey) -> Option<SocketAddr> {
        self.peers.get(&peer).map(|p| p.addr)
    }

    /// Sets the download priority of a piece (0 skips it, 1–7, default 4).
    pub fn set_piece_priority(&mut self, piece: u32, priority: u8) {
        if let Some(t) = &mut self.torrent {
            t.picker.set_piece_priority(piece, priority);
            self.finished = t.picker.is_finished();
        }
    }

    /// Sets every piece's priority from per-file priorities: a piece gets the highest
    /// priority of the files it touches, and pieces only of skipped files are not downloaded.
    /// (Map the store's [`PartialBackend`](tessera_store::PartialBackend) over the same
    /// priorities so that pieces shared with skipped files stay out of them.)
    pub fn set_file_priorities(&mut self, priorities: &Priorities) {
        let Some(t) = &mut self.torrent else {
            return;
        };
        for piece in 0..t.num_pieces() {
            let prio = match priorities.piece_priority(piece) {
                FilePriority::Skip => 0,
                FilePriority::Low => 2,
                FilePriority::Normal => 4,
                FilePriority::High => 7,
            };
            t.picker.set_piece_priority(piece, prio);
        }
        self.finished = t.picker.is_finished();
    }

    /// Downloads pieces in order (for streaming) instead of rarest first.
    pub fn set_sequential(&mut self, on: bool) {
        if let Some(t) = &mut self.torrent {
            t.picker.set_sequential(on);
        }
    }

    /// Sets the port we accept connections on, announced to peers in the extension handshake
    /// (peers connected before this learn it only from later handshakes).
    pub fn set_listen_port(&mut self, port: Option<u16>) {
        self.config.listen_port = port;
    }

    /// Installs the incentive layer's hook on the choker.
    pub fn set_unchoke_hook(&mut self, hook: Option<Box<dyn UnchokeHook>>) {
        self.choker.set_hook(hook);
    }

    // ---- driver inputs ----

    /// A connection was opened; for outgoing ones our handshake is queued at once, for
    /// incoming ones after the peer's (so that we answer with the info hash it used).
    ///
    /// # Errors
    /// [`SwarmError::TooManyPeers`] at the connection limit.
    pub fn add_peer(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        direction: Direction,
    ) -> Result<PeerKey, SwarmError> {
        if self.peers.len() >= self.config.max_peers {
            return Err(SwarmError::TooManyPeers {
                limit: self.config.max_peers,
            });
        }
        let key = PeerKey(self.next_key);
        self.next_key = self.next_key.wrapping_add(1);
        let outgoing = direction == Direction::Outgoing;
        let mut peer = Peer::new(addr, outgoing, now);
        if outgoing {
            if let Some(hash) = self.info_hashes.wire_hash() {
                self.push_handshake(&mut peer, hash, now);
            }
            self.dirty.insert(key);
        }
        self.discovered.remove(&addr);
        self.peers.insert(key, peer);
        Ok(key)
    }

    /// The connection to `peer` closed (or failed). No event is reported for it.
    pub fn peer_closed(&mut self, peer: PeerKey) {
        self.forget_peer(peer);
    }

    /// Bytes arrived from `peer`.
    ///
    /// While the bytes queued to the peer are over [`SessionConfig::max_send_buffer`] (it
    /// does not read what we send) its input is kept but not digested, so that nothing it
    /// asks can grow our queue further; the driver should stop reading the socket meanwhile
    /// (see [`wants_recv`](Self::wants_recv)). A peer whose undigested input passes the
    /// largest message by more than a margin is dropped.
    pub fn handle_recv(&mut self, now: Instant, peer: PeerKey, data: BytesMut) {
        self.now = self.now.max(now);
        let cap = self.recv_cap();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.last_recv = now;
        if p.recv.is_empty() {
            p.recv = data;
        } else {
            p.recv.extend_from_slice(&data);
        }
        self.digest(now, peer);
        // What could not be digested (the peer does not read what we send) is bounded.
        if self.peers.get(&peer).is_some_and(|p| p.recv.len() > cap) {
            self.drop_peer(peer, DisconnectReason::Flooding);
        }
    }

    /// Most undigested bytes kept from one peer: the largest message and a margin.
    fn recv_cap(&self) -> usize {
        let max_message = match &self.torrent {
            Some(t) => t.decoder.limits().max_message_len,
            None => self.fallback_decoder.limits().max_message_len,
        };
        (max_message as usize).saturating_add(RECV_MARGIN)
    }

    /// True while the session digests what `peer` sends; when false the driver should pause
    /// reading its socket until bytes have been sent to it.
    pub fn wants_recv(&self, peer: PeerKey) -> bool {
        self.peers.get(&peer).is_some_and(|p| {
            p.send_queued <= self.config.max_send_buffer && p.recv.len() <= self.recv_cap()
        })
    }

    /// Handles the messages waiting in `peer`'s input, unless its send queue is over budget.
    fn digest(&mut self, now: Instant, peer: PeerKey) {
        let budget = self.config.max_send_buffer;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.handshake_done {
            match Handshake::decode(&mut p.recv) {
                Ok(None) => return,
                Ok(Some(hs)) => {
                    if let Err(reason) = self.on_handshake(now, peer, hs) {
                        self.drop_peer(peer, reason);
                        return;
                    }
                }
                Err(e) => {
                    self.drop_peer(peer, DisconnectReason::ProtocolViolation(e.to_string()));
                    return;
                }
            }
        }
        loop {
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            if p.send_queued > budget {
                break;
            }
            let decoder = match &self.torrent {
                Some(t) => &t.decoder,
                None => &self.fallback_decoder,
            };
            match decoder.decode(&mut p.recv) {
                Ok(None) => break,
                Ok(Some(msg)) => {
                    if let Err(reason) = self.on_message(now, peer, msg) {
                        self.drop_peer(peer, reason);
                        return;
                    }
                }
                Err(e) => {
                    self.drop_peer(peer, DisconnectReason::ProtocolViolation(e.to_string()));
                    return;
                }
            }
        }
        self.request_more(now, peer);
    }

    /// The driver read a block that `peer` asked for (see [`Event::Read`]); `data` is `None`
    /// if the read failed, and the request is then rejected.
    pub fn block_read(
        &mut self,
        now: Instant,
        peer: PeerKey,
        request: BlockRequest,
        data: Option<Bytes>,
    ) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.reads_issued = p.reads_issued.saturating_sub(read_cost(&request));
        if !p.reads.remove(&read_key(&request)) {
            // Cancelled, or we choked the peer meanwhile.
            self.issue_reads(peer);
            return;
        }
        match data {
            Some(data) if data.len() == request.length as usize => {
                let len = data.len() as u64;
                p.up.add(now, len);
                p.push_piece(request.index, request.begin, data, now);
                self.stats.uploaded = self.stats.uploaded.saturating_add(len);
            }
            _ => {
                if p.fast() {
                    p.push(&Message::RejectRequest(request), now);
                }
            }
        }
        self.dirty.insert(peer);
        self.issue_reads(peer);
    }

    /// Hands queued requests of `key` to the driver while the bytes read or waiting to be sent
    /// stay under [`SessionConfig::max_send_buffer`].
    fn issue_reads(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        while p.reads_issued.saturating_add(p.send_queued as u64)
            < self.config.max_send_buffer as u64
        {
            let Some(r) = p.read_queue.pop_front() else {
                break;
            };
            if p.reads.contains(&read_key(&r)) {
                p.reads_issued = p.reads_issued.saturating_add(read_cost(&r));
                self.events.push_back(Event::Read {
                    peer: key,
                    request: r,
                });
            }
        }
    }

    /// The driver checked `piece` (see [`Event::Verify`]) and, if `ok`, wrote it to the store.
    pub fn piece_checked(&mut self, now: Instant, piece: u32, ok: bool) {
        let Some(t) = &mut self.torrent else {
            return;
        };
        if !t.verifying.remove(&piece) {
            return;
        }
        if ok {
            t.picker.piece_passed(piece);
            self.stats.pieces_verified = self.stats.pieces_verified.saturating_add(1);
            self.events.push_back(Event::PieceVerified { piece });
            let have = Message::Have { piece };
            for (key, p) in &mut self.peers {
                if p.handshake_done && !p.has.get(piece) {
                    p.push(&have, now);
                    self.dirty.insert(*key);
                }
            }
            if !self.finished && t.picker.is_finished() {
                self.finished = true;
                self.events.push_back(Event::Finished);
                for (key, p) in &mut self.peers {
                    if p.am_interested {
                        p.am_interested = false;
                        p.push(&Message::NotInterested, now);
                        self.dirty.insert(*key);
                    }
                }
                if t.picker.is_seed() {
                    let seeds: Vec<PeerKey> = self
                        .peers
                        .iter()
                        .filter(|(_, p)| p.is_seed || p.upload_only)
                        .map(|(k, _)| *k)
                        .collect();
                    for k in seeds {
                        self.drop_peer(k, DisconnectReason::BothSeeds);
                    }
                }
            }
        } else {
            t.picker.piece_failed(piece);
            self.stats.hash_failures = self.stats.hash_failures.saturating_add(1);
            self.events.push_back(Event::PieceFailed { piece });
        }
        self.fill_all(now);
    }

    /// Gives back the data of an [`Event::Verify`] once the driver is done with it, so that
    /// its memory holds the next piece. Optional; data still shared elsewhere is dropped.
    pub fn recycle(&mut self, data: Bytes) {
        let Some(t) = &mut self.torrent else {
            return;
        };
        if t.spare.len() >= MAX_SPARE_BUFFERS {
            return;
        }
        if let Ok(buf) = data.try_into_mut() {
            let buf: Vec<u8> = buf.into();
            if buf.capacity() >= usize::try_from(t.layout.piece_length()).unwrap_or(usize::MAX) {
                t.spare.push(buf);
            }
        }
    }

    /// Time passed: timeouts, keep-alives, PEX, rechoking.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if now < self.next_tick && now < self.next_rechoke {
            return;
        }
        self.next_tick = now + TICK;
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            if let Some(reason) = self.check_peer_timers(now, key) {
                self.drop_peer(key, reason);
            }
        }
        if now >= self.next_rechoke {
            self.next_rechoke = now + self.config.choker.rechoke_interval;
            self.rechoke(now);
        }
        self.fill_all(now);
    }

    // ---- driver outputs ----

    /// The next bytes to send to `peer`.
    pub fn poll_transmit(&mut self, peer: PeerKey) -> Option<Bytes> {
        let budget = self.config.max_send_buffer;
        let p = self.peers.get_mut(&peer)?;
        let out = p.poll_transmit();
        let resume = !p.recv.is_empty() && p.send_queued <= budget;
        if !p.read_queue.is_empty() {
            self.issue_reads(peer);
        }
        if resume {
            // Input held back while the queue was over budget.
            self.digest(self.now, peer);
        }
        out
    }

    /// A peer that has had bytes queued since it was last returned here; the driver polls
    /// [`poll_transmit`](Self::poll_transmit) for it.
    pub fn poll_dirty(&mut self) -> Option<PeerKey> {
        while let Some(key) = self.dirty.pop_first() {
            if self.peers.get(&key).is_some_and(|p| p.wants_transmit()) {
                return Some(key);
            }
        }
        None
    }

    /// The next thing for the driver to do or know.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick.min(self.next_rechoke)
    }

    /// Bytes queued to `peer` and not yet handed to the driver.
    pub fn send_queued(&self, peer: PeerKey) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.send_queued)
    }

    // ---- internals ----

    fn push_handshake(&self, peer: &mut Peer, info_hash: Sha1Hash, now: Instant) {
        let mut reserved = Reserved::EMPTY;
        reserved.insert(Reserved::FAST);
        reserved.insert(Reserved::EXTENSION_PROTOCOL);
        let v2 = match &self.torrent {
            Some(t) => t.meta.version().has_v2(),
            None => self.info_hashes.v2.is_some(),
        };
        if v2 {
            reserved.insert(Reserved::V2_UPGRADE);
        }
        let hs = Handshake {
            reserved,
            info_hash,
            peer_id: self.config.peer_id,
        };
        let mut buf = BytesMut::new();
        hs.encode(&mut buf);
        peer.push_raw(&buf, now);
    }

    fn on_handshake(
        &mut self,
        now: Instant,
        key: PeerKey,
        hs: Handshake,
    ) -> Result<(), DisconnectReason> {
        let ours_v1 = self.info_hashes.v1;
        let ours_v2 = self.info_hashes.v2.map(|h| h.truncated());
        if Some(hs.info_hash) != ours_v1 && Some(hs.info_hash) != ours_v2 {
            return Err(DisconnectReason::WrongInfoHash);
        }
        if hs.peer_id == self.config.peer_id {
            return Err(DisconnectReason::SelfConnection);
        }
        let mut peer = self.peers.remove(&key).ok_or(DisconnectReason::Inactive)?;
        peer.peer_id = hs.peer_id;
        peer.reserved = hs.reserved;
        // A peer speaks v2 if it says it can upgrade (hybrids) or came in on the v2 hash.
        peer.v2 = hs.reserved.v2_upgrade() || Some(hs.info_hash) == ours_v2;
        peer.handshake_done = true;
        if !peer.outgoing {
            self.push_handshake(&mut peer, hs.info_hash, now);
        }
        self.peers.insert(key, peer);
        self.stats.peers_seen = self.stats.peers_seen.saturating_add(1);
        self.events.push_back(Event::PeerConnected {
            peer: key,
            peer_id: hs.peer_id,
        });
        self.send_initial(now, key);
        Ok(())
    }

    /// Our state after the handshake: what we have, our extensions, allowed-fast pieces.
    fn send_initial(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let fast = p.fast();
        match &self.torrent {
            Some(t) => {
                let have = t.picker.have_bitfield();
                if fast && have.count() == 0 {
                    p.push(&Message::HaveNone, now);
                } else if fast && have.is_full() {
                    p.push(&Message::HaveAll, now);
                } else {
                    p.push(&Message::Bitfield(Bytes::from(have.to_bytes())), now);
                }
                p.has = Bitfield::new(t.num_pieces());
                p.counted = Counted::Bitfield;
            }
            None => {
                if fast {
                    p.push(&Message::HaveNone, now);
                }
            }
        }
        if p.reserved.extension_protocol() {
            let mut hs = p.ext.handshake();
            hs.v = Some(self.config.client.clone());
            hs.p = self.config.listen_port;
            hs.reqq = u32::try_from(self.config.max_incoming_requests).ok();
            hs.metadata_size = self
                .torrent
                .as_ref()
                .map(|t| t.meta.info_bytes().len() as u64);
            hs.yourip = Some(p.addr.ip());
            p.push(
                &Message::Extended {
                    id: 0,
                    payload: hs.encode(),
                },
                now,
            );
        }
        if fast {
            if let (Some(t), Some(hash)) = (&self.torrent, self.info_hashes.wire_hash()) {
                let set =
                    allowed_fast_set(p.addr.ip(), &hash, t.num_pieces(), self.config.allowed_fast);
                for piece in &set {
                    if t.picker.have(*piece) {
                        p.push(&Message::AllowedFast { piece: *piece }, now);
                    }
                }
                p.allowed_out = set;
            }
        }
        self.dirty.insert(key);
    }

    fn violation(msg: impl Into<String>) -> DisconnectReason {
        DisconnectReason::ProtocolViolation(msg.into())
    }

    fn on_message(
        &mut self,
        now: Instant,
        key: PeerKey,
        msg: Message,
    ) -> Result<(), DisconnectReason> {
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        match msg {
            Message::KeepAlive | Message::Port(_) | Message::SuggestPiece { .. } => {}
            Message::Unknown { .. } => {}
            Message::Hashes(h) => {
                if let Some(lf) = &mut self.layers {
                    if !lf.on_hashes(&h) {
                        return Err(Self::violation("hashes that do not prove against the root"));
                    }
                    if let Some(torrent) = lf.finish() {
                        self.layers = None;
                        match Metainfo::from_bytes(torrent) {
                            Ok(meta) => self.start_torrent(now, Arc::new(meta)),
                            Err(_) => return Err(DisconnectReason::BadMetadata),
                        }
                    } else {
                        self.request_layers(now, key);
                    }
                }
            }
            Message::HashReject(_) => {
                if let Some(lf) = &mut self.layers {
                    lf.peer_gone(key);
                }
            }
            Message::Choke => {
                p.peer_choking = true;
                if !p.fast() {
                    // Without the fast extension a choke drops every request.
                    let out = std::mem::take(&mut p.out);
                    if let Some(t) = &mut self.torrent {
                        for r in out {
                            t.picker.cancel_request(r.block, key);
                        }
                    }
                }
            }
            Message::Unchoke => {
                p.peer_choking = false;
                p.last_block = now;
            }
            Message::Interested => {
                p.peer_interested = true;
                self.unchoke_if_free(now, key);
            }
            Message::NotInterested => {
                p.peer_interested = false;
            }
            Message::Have { piece } => self.on_have(now, key, piece)?,
            Message::Bitfield(bits) => self.on_bitfield(now, key, bits)?,
            Message::HaveAll => {
                if !p.fast() || p.got_bitfield {
                    return Err(Self::violation("unexpected have-all"));
                }
                p.got_bitfield = true;
                self.set_seed(now, key);
            }
            Message::HaveNone => {
                if !p.fast() || p.got_bitfield {
                    return Err(Self::violation("unexpected have-none"));
                }
                p.got_bitfield = true;
            }
            Message::Request(r) => self.on_request(now, key, r)?,
            Message::Piece { index, begin, data } => self.on_block(now, key, index, begin, data)?,
            Message::Cancel(r) => {
                let k = read_key(&r);
                if p.reads.contains(&k) {
                    p.read_queue.retain(|q| read_key(q) != k);
                }
                if p.reads.remove(&k) && p.fast() {
                    // BEP 6: every request gets an answer; a cancelled one a reject.
                    p.push(&Message::RejectRequest(r), now);
                    self.dirty.insert(key);
                }
            }
            Message::RejectRequest(r) => {
                if !p.fast() {
                    return Err(Self::violation("reject without the fast extension"));
                }
                let block = BlockRef {
                    piece: r.index,
                    block: r.begin / BLOCK_LEN,
                };
                if let Some(pos) = p.out.iter().position(|o| o.block == block) {
                    p.out.swap_remove(pos);
                    if let Some(t) = &mut self.torrent {
                        t.picker.cancel_request(block, key);
                    }
                }
            }
            Message::AllowedFast { piece } => {
                if !p.fast() {
                    return Err(Self::violation("allowed-fast without the fast extension"));
                }
                let in_range = self.torrent.as_ref().is_none_or(|t| piece < t.num_pieces());
                if in_range
                    && p.allowed_in.len() < MAX_ALLOWED_FAST_IN
                    && !p.allowed_in.contains(&piece)
                {
                    p.allowed_in.push(piece);
                }
            }
            Message::HashRequest(req) => {
                // Piece-layer hashes come from the torrent; leaf hashes would need the file's
                // whole tree, which we do not keep: those are rejected.
                let reply = match &mut self.torrent {
                    Some(t) => t.answers.answer(&t.meta, &req).map(Message::Hashes),
                    None => None,
                };
                p.push(&reply.unwrap_or(Message::HashReject(req)), now);
                self.dirty.insert(key);
            }
            Message::Extended { id, payload } => self.on_extended(now, key, id, payload)?,
        }
        Ok(())
    }

    fn set_seed(&mut self, now: Instant, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.is_seed = true;
        let Some(t) = &mut self.torrent else {
            p.early_have_all = true;
            return;
        };
        if p.counted == Counted::Bitfield {
            t.picker.remove_bitfield(&p.has);
        }
        if p.counted != Counted::Seed {
            t.picker.add_seed();
        }
        p.counted = Counted::Seed;
        p.has = Bitfield::full(t.num_pieces());
        if !p.am_interested && t.picker.is_interesting(&p.has, true) {
            p.am_interested = true;
            p.push(&Message::Interested, now);
            self.dirty.insert(key);
        }
    }

    fn on_have(&mut self, now: Instant, key: PeerKey, piece: u32) -> Result<(), DisconnectReason> {
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        let Some(t) = &mut self.torrent else {
            return Ok(());
        };
        if piece >= t.num_pieces() {
            return Err(Self::violation(format!("have {piece} out of range")));
        }
        if p.counted == Counted::Seed || p.has.get(piece) {
            return Ok(());
        }
        p.has.set(piece, true);
        t.picker.inc_availability(piece);
        if !p.am_interested && t.picker.wants(piece) {
            p.am_interested = true;
            p.push(&Message::Interested, now);
            self.dirty.insert(key);
        }
        if p.has.is_full() {
            self.set_seed(now, key);
        }
        Ok(())
    }

    fn on_bitfield(
        &mut self,
        now: Instant,
        key: PeerKey,
        bits: Bytes,
    ) -> Result<(), DisconnectReason> {
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        if p.got_bitfield || p.has.count() > 0 {
            return Err(Self::violation("bitfield after other piece information"));
        }
        p.got_bitfield = true;
        let Some(t) = &mut self.torrent else {
            // Bounded by the decoder's message limit.
            p.early_bitfield = Some(bits);
            return Ok(());
        };
        let bf = Bitfield::from_bytes(&bits, t.num_pieces())
            .map_err(|e| Self::violation(e.to_string()))?;
        if bf.is_full() {
            self.set_seed(now, key);
            return Ok(());
        }
        t.picker.add_bitfield(&bf);
        p.has = bf;
        p.counted = Counted::Bitfield;
        if !p.am_interested && t.picker.is_interesting(&p.has, false) {
            p.am_interested = true;
            p.push(&Message::Interested, now);
            self.dirty.insert(key);
        }
        Ok(())
    }

    fn on_request(
        &mut self,
        now: Instant,
        key: PeerKey,
        r: BlockRequest,
    ) -> Result<(), DisconnectReason> {
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        let ok_to_serve = match &self.torrent {
            Some(t) => {
                t.picker.have(r.index)
                    && (!p.am_choking || p.allowed_out.contains(&r.index))
                    && p.reads.len() < self.config.max_incoming_requests
            }
            None => false,
        };
        if !ok_to_serve {
            if p.fast() {
                p.push(&Message::RejectRequest(r), now);
                self.dirty.insert(key);
            }
            return Ok(());
        }
        if p.reads.insert(read_key(&r)) {
            p.read_queue.push_back(r);
            self.issue_reads(key);
        }
        Ok(())
    }

    fn on_block(
        &mut self,
        now: Instant,
        key: PeerKey,
        index: u32,
        begin: u32,
        data: Bytes,
    ) -> Result<(), DisconnectReason> {
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        let Some(t) = &mut self.torrent else {
            return Err(Self::violation("block before metadata"));
        };
        let len = data.len() as u64;
        let block = BlockRef {
            piece: index,
            block: begin / BLOCK_LEN,
        };
        let expected = t.layout.block_len(index, block.block);
        let aligned = begin % BLOCK_LEN == 0;
        if !aligned || expected != Some(data.len() as u32) {
            return self.waste(key, len);
        }
        if let Some(pos) = p.out.iter().position(|o| o.block == block) {
            p.out.swap_remove(pos);
        }
        let got = t.picker.block_received(block, key);
        if got.duplicate {
            return self.waste(key, len);
        }
        p.down.add(now, len);
        p.last_block = now;
        p.snubbed = false;
        self.stats.downloaded = self.stats.downloaded.saturating_add(len);
        let piece_size = usize::try_from(t.layout.piece_size(index)).unwrap_or(0);
        let buf = match t.buffers.entry(index) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                t.buffered = t.buffered.saturating_add(piece_size);
                let mut buf = t.spare.pop().unwrap_or_default();
                buf.clear();
                buf.resize(piece_size, 0);
                e.insert(buf)
            }
        };
        let start = begin as usize;
        if let Some(dst) = buf.get_mut(start..start + data.len()) {
            dst.copy_from_slice(&data);
        }
        let cancel = BlockRequest {
            index,
            begin,
            length: data.len() as u32,
        };
        for other in got.cancel {
            if let Some(op) = self.peers.get_mut(&other) {
                if let Some(pos) = op.out.iter().position(|o| o.block == block) {
                    op.out.swap_remove(pos);
                    op.push(&Message::Cancel(cancel), now);
                    self.dirty.insert(other);
                }
            }
        }
        if got.piece_complete {
            if let Some(data) = t.buffers.remove(&index) {
                t.buffered = t.buffered.saturating_sub(data.len());
                t.verifying.insert(index);
                self.events.push_back(Event::Verify {
                    piece: index,
                    data: Bytes::from(data),
                });
            }
        }
        Ok(())
    }

    fn waste(&mut self, key: PeerKey, len: u64) -> Result<(), DisconnectReason> {
        self.stats.wasted = self.stats.wasted.saturating_add(len);
        if let Some(p) = self.peers.get_mut(&key) {
            p.wasted = p.wasted.saturating_add(len);
            if p.wasted > self.config.max_wasted_bytes {
                return Err(DisconnectReason::TooMuchWaste);
            }
        }
        Ok(())
    }

    fn on_extended(
        &mut self,
        now: Instant,
        key: PeerKey,
        id: u8,
        payload: Bytes,
    ) -> Result<(), DisconnectReason> {
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        if !p.reserved.extension_protocol() {
            return Err(Self::violation(
                "extended message without the extension bit",
            ));
        }
        let incoming = p
            .ext
            .handle_incoming(id, payload)
            .map_err(|e| Self::violation(format!("extension handshake: {e}")))?;
        match incoming {
            Incoming::Handshake(hs) => {
                if let Some(reqq) = hs.reqq {
                    p.reqq = (reqq as usize).clamp(1, self.config.max_outgoing_requests);
                }
                if hs.p.is_some() {
                    p.listen_port = hs.p;
                }
                if let Some(size) = hs.metadata_size {
                    p.metadata_size = Some(size);
                }
                if let Some(u) = hs.upload_only {
                    p.upload_only = u;
                }
                if p.ext.peer_supports(UtPex::NAME) && p.pex_next.is_none() {
                    p.pex_next = Some(now + FIRST_PEX_DELAY);
                }
                if let (Some(fetch), Some(size)) = (&mut self.fetch, hs.metadata_size) {
                    if fetch.offer_size(size) {
                        self.request_metadata(now, key);
                    }
                }
            }
            Incoming::Message { name, payload } => match name.as_str() {
                UtMetadata::NAME => {
                    let msg =
                        UtMetadata::decode(payload).map_err(|e| Self::violation(e.to_string()))?;
                    self.on_metadata(now, key, msg)?;
                }
                UtPex::NAME => {
                    // A peer that sends garbage PEX is ignored rather than dropped.
                    if let Ok(pex) = UtPex::decode(payload) {
                        self.on_pex(pex);
                    }
                }
                UploadOnly::NAME => {
                    if let Ok(UploadOnly(u)) = UploadOnly::decode(payload) {
                        p.upload_only = u;
                    }
                }
                LtDonthave::NAME => {
                    if let (Ok(LtDonthave(piece)), Some(t)) =
                        (LtDonthave::decode(payload), &mut self.torrent)
                    {
                        if p.counted == Counted::Bitfield && p.has.get(piece) {
                            p.has.set(piece, false);
                            t.picker.dec_availability(piece);
                        }
                    }
                }
                _ => {}
            },
            Incoming::UnknownId { .. } => {}
            _ => {}
        }
        Ok(())
    }

    fn send_ext<E: ExtensionMessage>(&mut self, now: Instant, key: PeerKey, msg: &E) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if let Ok((id, payload)) = p.ext.encode(msg) {
            p.push(&Message::Extended { id, payload }, now);
            self.dirty.insert(key);
        }
    }

    fn request_metadata(&mut self, now: Instant, key: PeerKey) {
        let Some(fetch) = &mut self.fetch else {
            return;
        };
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        if !p.ext.peer_supports(UtMetadata::NAME) || p.metadata_size != fetch.size() {
            return;
        }
        let mut pieces = Vec::new();
        while fetch.outstanding(key) < METADATA_REQUESTS_PER_PEER {
            match fetch.next_request(key, now) {
                Some(piece) => pieces.push(piece),
                None => break,
            }
        }
        for piece in pieces {
            self.send_ext(now, key, &UtMetadata::Request { piece });
        }
    }

    fn on_metadata(
        &mut self,
        now: Instant,
        key: PeerKey,
        msg: UtMetadata,
    ) -> Result<(), DisconnectReason> {
        match msg {
            UtMetadata::Request { piece } => {
                let reply = match &self.torrent {
                    Some(t) => UtMetadata::data_for(&t.meta.info_bytes(), piece)
                        .unwrap_or(UtMetadata::Reject { piece }),
                    None => UtMetadata::Reject { piece },
                };
                self.send_ext(now, key, &reply);
            }
            UtMetadata::Reject { .. } => {
                if let Some(fetch) = &mut self.fetch {
                    fetch.peer_gone(key);
                }
            }
            UtMetadata::Data {
                piece,
                total_size,
                data,
            } => {
                let Some(fetch) = &mut self.fetch else {
                    return Ok(());
                };
                match fetch.on_data(piece, total_size, &data) {
                    MetadataProgress::Partial => self.request_metadata(now, key),
                    MetadataProgress::Invalid => {
                        return Err(Self::violation("metadata piece does not fit"))
                    }
                    MetadataProgress::HashMismatch => return Err(DisconnectReason::BadMetadata),
                    MetadataProgress::Complete(info) => self.metadata_complete(now, info),
                }
            }
        }
        Ok(())
    }

    fn metadata_complete(&mut self, now: Instant, info: Bytes) {
        let mut torrent = BytesMut::with_capacity(info.len() + 16);
        torrent.extend_from_slice(b"d4:info");
        torrent.extend_from_slice(&info);
        torrent.extend_from_slice(b"e");
        let meta = match Metainfo::from_bytes(torrent.freeze()) {
            Ok(m) => Arc::new(m),
            Err(_) => {
                // It hashes to the info hash yet is no torrent we can use: nothing to do but
                // keep the connections for others and stop asking.
                self.fetch = None;
                return;
            }
        };
        self.fetch = None;
        if let Some(lf) = LayerFetch::new(&meta, info) {
            // A v2 torrent: its piece layers come next, from peers that speak v2.
            self.layers = Some(lf);
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for key in keys {
                self.request_layers(now, key);
            }
            return;
        }
        self.start_torrent(now, meta);
    }

    fn request_layers(&mut self, now: Instant, key: PeerKey) {
        let Some(lf) = &mut self.layers else {
            return;
        };
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if !p.handshake_done || !p.v2 {
            return;
        }
        for req in lf.next_requests(key, now, 8) {
            p.push(&Message::HashRequest(req), now);
            self.dirty.insert(key);
        }
    }

    /// The torrent is known in full: set up picking and tell the driver.
    fn start_torrent(&mut self, now: Instant, meta: Arc<Metainfo>) {
        let n = u32::try_from(meta.num_pieces()).unwrap_or(0);
        let t = match Torrent::new(meta.clone(), &Bitfield::new(n), &self.config) {
            Ok(t) => t,
            Err(_) => {
                self.fetch = None;
                return;
            }
        };
        self.torrent = Some(t);
        self.finished = false;
        self.events.push_back(Event::MetadataReceived(meta));
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            if !p.handshake_done {
                continue;
            }
            p.has = Bitfield::new(n);
            p.counted = Counted::Bitfield;
            if p.early_have_all {
                self.set_seed(now, key);
            } else if let Some(bits) = p.early_bitfield.take() {
                p.got_bitfield = false;
                if let Err(reason) = self.on_bitfield(now, key, bits) {
                    self.drop_peer(key, reason);
                }
            }
        }
        self.fill_all(now);
    }

    fn on_pex(&mut self, pex: UtPex) {
        // A seed has no use for other seeds (the connection would be dropped at once).
        let seeding = self.torrent.as_ref().is_some_and(|t| t.picker.is_seed());
        let added = pex
            .added
            .iter()
            .map(|(a, f)| (SocketAddr::V4(*a), *f))
            .chain(pex.added6.iter().map(|(a, f)| (SocketAddr::V6(*a), *f)))
            .take(MAX_PEX_PEERS)
            .filter(|(_, f)| !(seeding && f.contains(PexFlags::SEED)))
            .map(|(a, _)| a);
        // Whom we are connected to, once per message rather than once per address.
        let mut connected: Option<std::collections::HashSet<SocketAddr>> = None;
        let mut fresh = Vec::new();
        for addr in added {
            if self.discovered.len() >= self.config.max_known_peers {
                break;
            }
            let connected = connected.get_or_insert_with(|| {
                self.peers
                    .values()
                    .flat_map(|p| [Some(p.addr), p.listen_addr()])
                    .flatten()
                    .collect()
            });
            if !connected.contains(&addr) && self.discovered.insert(addr) {
                fresh.push(addr);
            }
        }
        if !fresh.is_empty() {
            self.events.push_back(Event::PeersDiscovered(fresh));
        }
    }

    fn send_pex(&mut self, now: Instant, key: PeerKey) {
        // Each peer with the BEP 11 flags we know for it: a seed (or upload-only), and
        // reachable when we connected to it ourselves.
        let current: BTreeMap<SocketAddr, PexFlags> = self
            .peers
            .iter()
            .filter(|(k, p)| **k != key && p.handshake_done)
            .filter_map(|(_, p)| {
                let mut flags = PexFlags::default();
                if p.is_seed || p.upload_only {
                    flags = flags | PexFlags::SEED;
                }
                if p.outgoing {
                    flags = flags | PexFlags::REACHABLE;
                }
                p.listen_addr().map(|a| (a, flags))
            })
            .collect();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        // IPv4 and IPv6 peers alike (`added`/`added6`), at most MAX_PEX_PEERS of each kind of
        // change per message; the rest go in the next one.
        let mut pex = UtPex::default();
        let added: Vec<(SocketAddr, PexFlags)> = current
            .iter()
            .filter(|(a, _)| !p.pex_sent.contains(*a))
            .take(MAX_PEX_PEERS)
            .map(|(a, f)| (*a, *f))
            .collect();
        let dropped: Vec<SocketAddr> = p
            .pex_sent
            .iter()
            .filter(|a| !current.contains_key(*a))
            .take(MAX_PEX_PEERS)
            .copied()
            .collect();
        if added.is_empty() && dropped.is_empty() {
            return;
        }
        for (a, flags) in added {
            match a {
                SocketAddr::V4(v4) => pex.added.push((v4, flags)),
                SocketAddr::V6(v6) => pex.added6.push((v6, flags)),
            }
            p.pex_sent.insert(a);
        }
        for a in dropped {
            match a {
                SocketAddr::V4(v4) => pex.dropped.push(v4),
                SocketAddr::V6(v6) => pex.dropped6.push(v6),
            }
            p.pex_sent.remove(&a);
        }
        self.send_ext(now, key, &pex);
    }

    fn unchoke_if_free(&mut self, now: Instant, key: PeerKey) {
        let unchoked = self.peers.values().filter(|p| !p.am_choking).count();
        if unchoked >= self.config.choker.upload_slots || self.torrent.is_none() {
            return;
        }
        if let Some(p) = self.peers.get_mut(&key) {
            if p.am_choking && p.peer_interested {
                p.am_choking = false;
                p.push(&Message::Unchoke, now);
                self.dirty.insert(key);
            }
        }
    }

    fn rechoke(&mut self, now: Instant) {
        if self.torrent.is_none() {
            return;
        }
        let seeding = self.torrent.as_ref().is_some_and(|t| t.picker.is_seed());
        let candidates: Vec<ChokeCandidate> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.handshake_done)
            .map(|(k, p)| ChokeCandidate {
                peer: *k,
                interested: p.peer_interested,
                unchoked: !p.am_choking,
                download_rate: p.down.rate(now),
                upload_rate: p.up.rate(now),
                connected_for: now.saturating_duration_since(p.connected_at),
                is_seed: p.is_seed,
            })
            .collect();
        let mut unchoke = Vec::new();
        self.choker.rechoke(seeding, &candidates, &mut unchoke);
        let unchoke: BTreeSet<PeerKey> = unchoke.into_iter().collect();
        for (key, p) in &mut self.peers {
            if !p.handshake_done {
                continue;
            }
            let want = unchoke.contains(key);
            if want && p.am_choking {
                p.am_choking = false;
                p.push(&Message::Unchoke, now);
                self.dirty.insert(*key);
            } else if !want && !p.am_choking {
                p.am_choking = true;
                p.push(&Message::Choke, now);
                for (index, begin, length) in p.take_reads() {
                    if p.allowed_out.contains(&index) {
                        p.reads.insert((index, begin, length));
                    } else if p.fast() {
                        p.push(
                            &Message::RejectRequest(BlockRequest {
                                index,
                                begin,
                                length,
                            }),
                            now,
                        );
                    }
                }
                let reads = &p.reads;
                p.read_queue.retain(|q| reads.contains(&read_key(q)));
                self.dirty.insert(*key);
            }
        }
    }

    /// Timers of one peer; `Some` to drop it.
    fn check_peer_timers(&mut self, now: Instant, key: PeerKey) -> Option<DisconnectReason> {
        let cfg = &self.config;
        let p = self.peers.get_mut(&key)?;
        if !p.handshake_done {
            if now.saturating_duration_since(p.connected_at) > cfg.handshake_timeout {
                return Some(DisconnectReason::HandshakeTimeout);
            }
            return None;
        }
        if now.saturating_duration_since(p.last_recv) > cfg.inactivity_timeout {
            return Some(DisconnectReason::Inactive);
        }
        if now.saturating_duration_since(p.last_send) >= cfg.keepalive_interval {
            p.push(&Message::KeepAlive, now);
            self.dirty.insert(key);
        }
        // Snubbing: requests outstanding and no block for too long.
        let oldest = p.out.iter().map(|o| o.sent).min();
        let stalled =
            oldest.is_some_and(|at| now.saturating_duration_since(at) > cfg.request_timeout);
        if stalled && now.saturating_duration_since(p.last_block) > cfg.request_timeout {
            p.snubbed = true;
            let out = std::mem::take(&mut p.out);
            for r in &out {
                if let Some(t) = &self.torrent {
                    if let Some(length) = t.layout.block_len(r.block.piece, r.block.block) {
                        p.push(
                            &Message::Cancel(BlockRequest {
                                index: r.block.piece,
                                begin: r.block.begin(),
                                length,
                            }),
                            now,
                        );
                    }
                }
            }
            p.last_block = now;
            if let Some(t) = &mut self.torrent {
                for r in out {
                    t.picker.cancel_request(r.block, key);
                }
            }
            self.dirty.insert(key);
        }
        let pex_due = p.pex_next.is_some_and(|at| now >= at);
        if pex_due {
            p.pex_next = Some(now + self.config.pex_interval);
            self.send_pex(now, key);
        }
        if self.fetch.is_some() {
            self.request_metadata(now, key);
        }
        if self.layers.is_some() {
            self.request_layers(now, key);
        }
        None
    }

    fn fill_all(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.request_more(now, key);
        }
    }

    /// How many requests to keep outstanding to a peer.
    fn queue_target(cfg: &SessionConfig, p: &mut Peer, now: Instant) -> usize {
        if p.snubbed {
            return 1;
        }
        let rate = p.down.rate(now);
        let by_rate = (rate as u128 * cfg.request_queue_time.as_millis()
            / 1000
            / u128::from(BLOCK_LEN)) as usize;
        by_rate
            .max(cfg.initial_outgoing_requests)
            .min(p.reqq)
            .min(cfg.max_outgoing_requests)
            .max(1)
    }

    /// Tops up the requests outstanding to `key`.
    fn request_more(&mut self, now: Instant, key: PeerKey) {
        let Some(t) = &mut self.torrent else {
            return;
        };
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if !p.handshake_done || !p.am_interested || (p.peer_choking && p.allowed_in.is_empty()) {
            return;
        }
        if t.buffered >= self.config.max_piece_buffer && !t.picker.in_endgame() {
            return;
        }
        let target = Self::queue_target(&self.config, p, now);
        if p.out.len() >= target {
            return;
        }
        let mut blocks = Vec::new();
        let only = p.peer_choking.then_some(p.allowed_in.as_slice());
        t.picker.pick(
            key,
            &p.has,
            p.is_seed,
            only,
            target - p.out.len(),
            &mut blocks,
        );
        for b in &blocks {
            let Some(length) = t.layout.block_len(b.piece, b.block) else {
                continue;
            };
            p.push(
                &Message::Request(BlockRequest {
                    index: b.piece,
                    begin: b.begin(),
                    length,
                }),
                now,
            );
            p.out.push(OutRequest {
                block: *b,
                sent: now,
            });
        }
        if !blocks.is_empty() {
            self.dirty.insert(key);
        } else if p.out.is_empty() && !t.picker.is_interesting(&p.has, p.is_seed) {
            p.am_interested = false;
            p.push(&Message::NotInterested, now);
            self.dirty.insert(key);
        }
    }

    /// Removes a peer, giving back its requests and availability.
    fn forget_peer(&mut self, key: PeerKey) -> Option<Peer> {
        let p = self.peers.remove(&key)?;
        self.dirty.remove(&key);
        if let Some(t) = &mut self.torrent {
            t.picker.peer_gone(key);
            match p.counted {
                Counted::Seed => t.picker.remove_seed(),
                Counted::Bitfield => t.picker.remove_bitfield(&p.has),
                Counted::No => {}
            }
        }
        if let Some(f) = &mut self.fetch {
            f.peer_gone(key);
        }
        if let Some(l) = &mut self.layers {
            l.peer_gone(key);
        }
        Some(p)
    }

    fn drop_peer(&mut self, key: PeerKey, reason: DisconnectReason) {
        if self.forget_peer(key).is_some() {
            self.events
                .push_back(Event::Disconnect { peer: key, reason });
        }
    }
}

impl Peer {
    /// Where the peer accepts connections: the address we dialled, or its IP with the port
    /// from its extension handshake.
    pub(crate) fn listen_addr(&self) -> Option<SocketAddr> {
        if self.outgoing {
            return Some(self.addr);
        }
        self.listen_port
            .map(|port| SocketAddr::new(self.addr.ip(), port))
    }
}
