//! Sessions wired together in one process with a fake clock: no sockets, no threads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tessera_metainfo::{Metainfo, TorrentBuilder, TorrentVersion};
use tessera_store::{
    read_block, read_piece, write_block, Backend, Bitfield, FileBackend, FileBackendOptions,
    Layout, MemoryBackend, Verifier,
};
use tessera_swarm::{Direction, DisconnectReason, Event, PeerKey, Session, SessionConfig};

#[allow(unreachable_pub)]
#[path = "../../store/tests/support/mod.rs"]
mod support;
use support::bytes as sample;

/// A multi-file torrent over files in `dir`.
fn make_torrent(dir: &Path, version: TorrentVersion, piece_length: u64) -> Arc<Metainfo> {
    let root = dir.join("content");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.bin"), sample(1, 300_001)).unwrap();
    std::fs::write(root.join("sub/b.bin"), sample(2, 70_000)).unwrap();
    std::fs::write(root.join("sub/empty"), b"").unwrap();
    std::fs::write(root.join("z.bin"), sample(3, 5)).unwrap();
    let t = TorrentBuilder::new(&root)
        .version(version)
        .piece_length(piece_length)
        .build()
        .unwrap();
    Arc::new(Metainfo::from_bytes(t.bytes).unwrap())
}

struct Node {
    session: Session,
    backend: Arc<dyn Backend>,
    meta: Option<Arc<Metainfo>>,
    layout: Option<Arc<Layout>>,
    events: Vec<Event>,
    /// Corrupt this piece when serving it.
    corrupt: Option<u32>,
}

impl Node {
    fn seeder(meta: &Arc<Metainfo>, dir: &Path) -> Node {
        Node::seeder_with(meta, dir, config())
    }

    fn seeder_with(meta: &Arc<Metainfo>, dir: &Path, config: SessionConfig) -> Node {
        let layout = Layout::new(meta).unwrap();
        let backend = FileBackend::new(dir, &layout, FileBackendOptions::default()).unwrap();
        let have = Bitfield::full(layout.num_pieces());
        Node {
            session: Session::new(meta.clone(), &have, config, t0()).unwrap(),
            backend: Arc::new(backend),
            meta: Some(meta.clone()),
            layout: Some(Arc::new(layout)),
            events: Vec::new(),
            corrupt: None,
        }
    }

    fn leecher(meta: &Arc<Metainfo>) -> Node {
        Node::leecher_with(meta, config())
    }

    fn leecher_with(meta: &Arc<Metainfo>, config: SessionConfig) -> Node {
        let layout = Layout::new(meta).unwrap();
        let backend = MemoryBackend::new(&layout);
        let have = Bitfield::new(layout.num_pieces());
        Node {
            session: Session::new(meta.clone(), &have, config, t0()).unwrap(),
            backend: Arc::new(backend),
            meta: Some(meta.clone()),
            layout: Some(Arc::new(layout)),
            events: Vec::new(),
            corrupt: None,
        }
    }

    /// Carries out the session's storage work synchronously.
    fn run_events(&mut self, now: Instant) {
        while let Some(ev) = self.session.poll_event() {
            match &ev {
                Event::Read { peer, request } => {
                    let layout = self.layout.as_ref().unwrap();
                    let mut buf = vec![0u8; request.length as usize];
                    let ok = read_block(
                        &*self.backend,
                        layout,
                        request.index,
                        request.begin,
                        request.length,
                        &mut buf,
                    )
                    .is_ok();
                    if self.corrupt == Some(request.index) {
                        buf[0] ^= 0xff;
                    }
                    self.session
                        .block_read(now, *peer, *request, ok.then(|| Bytes::from(buf)));
                }
                Event::Verify { piece, data } => {
                    let (meta, layout) =
                        (self.meta.as_ref().unwrap(), self.layout.as_ref().unwrap());
                    let ok = Verifier::new(meta, layout)
                        .verify_piece(*piece, data)
                        .is_ok();
                    if ok {
                        write_block(&*self.backend, layout, *piece, 0, data).unwrap();
                    }
                    self.session.piece_checked(now, *piece, ok);
                }
                Event::MetadataReceived(meta) => {
                    let layout = Layout::new(meta).unwrap();
                    self.backend = Arc::new(MemoryBackend::new(&layout));
                    self.layout = Some(Arc::new(layout));
                    self.meta = Some(meta.clone());
                }
                _ => {}
            }
            self.events.push(ev);
        }
    }
}

fn t0() -> Instant {
    use std::sync::OnceLock;
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fn config() -> SessionConfig {
    SessionConfig::default()
}

/// A network of nodes with in-memory links between peer keys.
struct Net {
    nodes: Vec<Node>,
    /// (node, key) → (node, key) of the other end.
    links: BTreeMap<(usize, PeerKey), (usize, PeerKey)>,
    now: Instant,
}

impl Net {
    fn new(nodes: Vec<Node>) -> Net {
        Net {
            nodes,
            links: BTreeMap::new(),
            now: t0(),
        }
    }

    fn connect(&mut self, from: usize, to: usize) {
        let a: SocketAddr = format!("127.0.0.{}:6881", from + 1).parse().unwrap();
        let b: SocketAddr = format!("127.0.0.{}:6881", to + 1).parse().unwrap();
        self.connect_as(from, to, a, b);
    }

    /// Connects `from` (seen by `to` at `a`) to `to` (at `b`).
    fn connect_as(&mut self, from: usize, to: usize, a: SocketAddr, b: SocketAddr) {
        let ka = self.nodes[from]
            .session
            .add_peer(self.now, b, Direction::Outgoing)
            .unwrap();
        let kb = self.nodes[to]
            .session
            .add_peer(self.now, a, Direction::Incoming)
            .unwrap();
        self.links.insert((from, ka), (to, kb));
        self.links.insert((to, kb), (from, ka));
    }

    /// Moves bytes and runs storage work until nothing moves, then advances the clock.
    fn step(&mut self, dt: Duration) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                self.nodes[i].run_events(self.now);
                while let Some(key) = self.nodes[i].session.poll_dirty() {
                    let mut out = BytesMut::new();
                    while let Some(b) = self.nodes[i].session.poll_transmit(key) {
                        out.extend_from_slice(&b);
                    }
                    if let Some(&(j, kj)) = self.links.get(&(i, key)) {
                        if !out.is_empty() {
                            moved = true;
                            self.nodes[j].session.handle_recv(self.now, kj, out);
                        }
                    }
                }
                // Disconnects close the other end too.
                let drops: Vec<PeerKey> = self.nodes[i]
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Disconnect { peer, .. } => Some(*peer),
                        _ => None,
                    })
                    .collect();
                for k in drops {
                    if let Some((j, kj)) = self.links.remove(&(i, k)) {
                        self.links.remove(&(j, kj));
                        self.nodes[j].session.peer_closed(kj);
                    }
                }
            }
            if !moved {
                break;
            }
        }
        self.now += dt;
        for n in &mut self.nodes {
            if n.session.poll_timeout() <= self.now {
                n.session.handle_timeout(self.now);
            }
        }
    }

    fn run_until(&mut self, max: Duration, done: impl Fn(&Net) -> bool) -> bool {
        let end = self.now + max;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step(Duration::from_millis(100));
        }
        done(self)
    }
}

fn all_files_equal(meta: &Metainfo, a: &dyn Backend, b: &dyn Backend) {
    let layout = Layout::new(meta).unwrap();
    for piece in 0..layout.num_pieces() {
        assert_eq!(
            read_piece(a, &layout, piece).unwrap(),
            read_piece(b, &layout, piece).unwrap(),
            "piece {piece}"
        );
    }
}

fn download_from_one_seed(version: TorrentVersion) {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), version, 32 * 1024);
    let mut net = Net::new(vec![Node::seeder(&meta, dir.path()), Node::leecher(&meta)]);
    net.connect(1, 0);
    assert!(net.run_until(Duration::from_secs(60), |n| n.nodes[1]
        .session
        .is_finished()));
    let leech = &net.nodes[1];
    assert!(leech.session.have().unwrap().is_full());
    assert!(leech.events.iter().any(|e| matches!(e, Event::Finished)));
    let stats = leech.session.stats();
    assert_eq!(stats.hash_failures, 0);
    assert_eq!(stats.wasted, 0);
    // Padding is never sent: only the files' bytes cross the wire.
    let content: u64 = meta
        .files()
        .iter()
        .filter(|f| !f.attributes.padding)
        .map(|f| f.length)
        .sum();
    assert_eq!(stats.downloaded, net.nodes[0].session.stats().uploaded);
    assert!(
        stats.downloaded >= content,
        "{} < {content}",
        stats.downloaded
    );
    all_files_equal(&meta, &*net.nodes[0].backend, &*leech.backend);
}

#[test]
fn v1_download_from_one_seed() {
    download_from_one_seed(TorrentVersion::V1);
}

#[test]
fn v2_download_from_one_seed() {
    download_from_one_seed(TorrentVersion::V2);
}

#[test]
fn hybrid_download_from_one_seed() {
    download_from_one_seed(TorrentVersion::Hybrid);
}

#[test]
fn three_leechers_share_pieces_and_finish() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), TorrentVersion::Hybrid, 16 * 1024);
    // The seed unchokes one peer at a time: the others must trade among themselves.
    let mut seed_config = config();
    seed_config.choker.upload_slots = 1;
    let mut net = Net::new(vec![
        Node::seeder_with(&meta, dir.path(), seed_config),
        Node::leecher(&meta),
        Node::leecher(&meta),
        Node::leecher(&meta),
    ]);
    for i in 1..4 {
        net.connect(i, 0);
        for j in 1..i {
            net.connect(i, j);
        }
    }
    assert!(net.run_until(Duration::from_secs(120), |n| {
        n.nodes[1..].iter().all(|x| x.session.is_finished())
    }));
    // Leechers served each other: some of what they downloaded came from other leechers.
    let from_leechers: u64 = net.nodes[1..]
        .iter()
        .map(|n| n.session.stats().uploaded)
        .sum();
    assert!(from_leechers > 0, "no leecher uploaded anything");
    for n in &net.nodes[1..] {
        all_files_equal(&meta, &*net.nodes[0].backend, &*n.backend);
    }
}

/// PEX (BEP 11): two leechers that know only the seed learn each other's listen addresses
/// through it, an IPv4 one (`added`) and an IPv6 one (`added6`) alike, and never their own.
#[test]
fn pex_tells_leechers_about_each_other_over_ipv4_and_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), TorrentVersion::V1, 16 * 1024);
    let mut listening = config();
    listening.listen_port = Some(6881);
    // Both leechers skip a file, so that neither becomes a seed (seeds drop each other).
    let layout = Layout::new(&meta).unwrap();
    let mut prio = tessera_store::Priorities::new(&layout);
    prio.set(0, tessera_store::FilePriority::Skip);
    let leechers = [listening.clone(), listening].map(|c| {
        let mut n = Node::leecher_with(&meta, c);
        n.session.set_file_priorities(&prio);
        n
    });
    let [l1, l2] = leechers;
    let mut net = Net::new(vec![Node::seeder(&meta, dir.path()), l1, l2]);
    let seed: SocketAddr = "198.51.100.1:6881".parse().unwrap();
    // The leechers connect out from ephemeral ports; PEX must carry their listen ports.
    let v4: SocketAddr = "192.0.2.7:40001".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::7]:40002".parse().unwrap();
    let (v4_listen, v6_listen): (SocketAddr, SocketAddr) = (
        "192.0.2.7:6881".parse().unwrap(),
        "[2001:db8::7]:6881".parse().unwrap(),
    );
    net.connect_as(1, 0, v4, seed);
    net.connect_as(2, 0, v6, seed);
    let done = net.run_until(Duration::from_secs(10), |n| {
        learnt(n, 1).contains(&v6_listen) && learnt(n, 2).contains(&v4_listen)
    });
    assert!(
        done,
        "leecher 1 learnt {:?}, leecher 2 learnt {:?}; the seed has {} peers",
        learnt(&net, 1),
        learnt(&net, 2),
        net.nodes[0].session.peer_count()
    );
    assert_eq!(
        learnt(&net, 1),
        [v6_listen],
        "leecher 1 learnt only leecher 2"
    );
    assert_eq!(
        learnt(&net, 2),
        [v4_listen],
        "leecher 2 learnt only leecher 1"
    );
}

/// What node `i` learnt through PEX, in order.
fn learnt(n: &Net, i: usize) -> Vec<SocketAddr> {
    n.nodes[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::PeersDiscovered(a) => Some(a.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// PEX flags: a leecher between two seeds and a second leecher tells everyone about the
/// others, flagging the seeds as such; the seeds take the leecher's address but not each
/// other's (two seeds have nothing to trade), while the second leecher takes both seeds.
#[test]
fn pex_flags_seeds_and_seeds_skip_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), TorrentVersion::V1, 16 * 1024);
    let layout = Layout::new(&meta).unwrap();
    let mut prio = tessera_store::Priorities::new(&layout);
    prio.set(0, tessera_store::FilePriority::Skip);
    let leecher = || {
        // A fresh config each: its peer id is random.
        let mut listening = config();
        listening.listen_port = Some(6881);
        let mut n = Node::leecher_with(&meta, listening);
        n.session.set_file_priorities(&prio);
        n
    };
    let mut net = Net::new(vec![
        Node::seeder(&meta, dir.path()),
        leecher(),
        Node::seeder(&meta, dir.path()),
        leecher(),
    ]);
    let addr = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let (s1, s2, l2) = (
        addr("198.51.100.1:6881"),
        addr("198.51.100.2:6881"),
        addr("192.0.2.8:6881"),
    );
    net.connect_as(1, 0, addr("192.0.2.7:40001"), s1);
    net.connect_as(1, 2, addr("192.0.2.7:40002"), s2);
    net.connect_as(3, 1, addr("192.0.2.8:40003"), addr("192.0.2.7:6881"));
    net.run_until(Duration::from_secs(5), |_| false);
    assert_eq!(learnt(&net, 0), [l2], "the first seed");
    assert_eq!(learnt(&net, 2), [l2], "the second seed");
    let mut second = learnt(&net, 3);
    second.sort();
    assert_eq!(second, [s1, s2], "the second leecher");
    assert!(
        learnt(&net, 1).is_empty(),
        "the middle leecher knows everyone"
    );
}

#[test]
fn corrupt_piece_fails_and_comes_from_another_seed() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), TorrentVersion::V1, 16 * 1024);
    let mut bad = Node::seeder(&meta, dir.path());
    bad.corrupt = Some(3);
    let mut net = Net::new(vec![bad, Node::leecher(&meta)]);
    net.connect(1, 0);
    // Only the corrupting seed: everything but piece 3 completes, piece 3 fails.
    net.run_until(Duration::from_secs(30), |n| {
        n.nodes[1].session.stats().hash_failures > 0
            && n.nodes[1].session.have().unwrap().count() + 1
                == n.nodes[1].session.have().unwrap().len()
    });
    let leech = &net.nodes[1];
    assert!(leech.session.stats().hash_failures > 0);
    assert!(!leech.session.have().unwrap().get(3));
    assert!(leech
        .events
        .iter()
        .any(|e| matches!(e, Event::PieceFailed { piece: 3 })));
    assert!(!leech.session.is_finished());
    // A good seed joins: the download completes.
    net.nodes.push(Node::seeder(&meta, dir.path()));
    net.connect(1, 2);
    assert!(net.run_until(Duration::from_secs(60), |n| n.nodes[1]
        .session
        .is_finished()));
    all_files_equal(&meta, &*net.nodes[2].backend, &*net.nodes[1].backend);
}

#[test]
fn magnet_download_fetches_metadata_from_the_peer() {
    magnet_download(TorrentVersion::Hybrid);
}

/// A v2 magnet needs the piece layers too: they come through BEP 52 hash requests.
#[test]
fn v2_magnet_download_fetches_piece_layers_from_the_peer() {
    magnet_download(TorrentVersion::V2);
}

fn magnet_download(version: TorrentVersion) {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), version, 16 * 1024);
    let layout = Layout::new(&meta).unwrap();
    let leech = Node {
        session: Session::from_magnet(meta.info_hashes(), config(), t0()).unwrap(),
        backend: Arc::new(MemoryBackend::new(&layout)),
        meta: None,
        layout: None,
        events: Vec::new(),
        corrupt: None,
    };
    let mut net = Net::new(vec![Node::seeder(&meta, dir.path()), leech]);
    net.connect(1, 0);
    assert!(net.run_until(Duration::from_secs(60), |n| n.nodes[1]
        .session
        .is_finished()));
    let got = net.nodes[1].session.metainfo().unwrap();
    assert_eq!(got.info_hashes(), meta.info_hashes());
    assert!(net.nodes[1]
        .events
        .iter()
        .any(|e| matches!(e, Event::MetadataReceived(_))));
    all_files_equal(&meta, &*net.nodes[0].backend, &*net.nodes[1].backend);
}

#[test]
fn garbage_after_handshake_is_a_protocol_violation() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), TorrentVersion::V1, 16 * 1024);
    let mut seed = Node::seeder(&meta, dir.path());
    let now = t0();
    let key = seed
        .session
        .add_peer(now, "127.0.0.9:1".parse().unwrap(), Direction::Incoming)
        .unwrap();
    let mut hs = BytesMut::new();
    tessera_wire::Handshake {
        reserved: tessera_wire::Reserved::EMPTY,
        info_hash: meta.info_hashes().v1.unwrap(),
        peer_id: [7; 20],
    }
    .encode(&mut hs);
    seed.session.handle_recv(now, key, hs);
    // A bitfield of the wrong length for this torrent.
    seed.session
        .handle_recv(now, key, BytesMut::from(&[0u8, 0, 0, 3, 5, 0xff, 0xff][..]));
    seed.run_events(now);
    assert!(seed.events.iter().any(|e| matches!(
        e,
        Event::Disconnect { peer, reason: DisconnectReason::ProtocolViolation(_) } if *peer == key
    )), "{:?}", seed.events);
    assert_eq!(seed.session.peer_count(), 0);
}

#[test]
fn wrong_info_hash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), TorrentVersion::V1, 16 * 1024);
    let mut seed = Node::seeder(&meta, dir.path());
    let now = t0();
    let key = seed
        .session
        .add_peer(now, "127.0.0.9:1".parse().unwrap(), Direction::Incoming)
        .unwrap();
    let mut hs = BytesMut::new();
    tessera_wire::Handshake {
        reserved: tessera_wire::Reserved::EMPTY,
        info_hash: tessera_metainfo::Sha1Hash([9; 20]),
        peer_id: [7; 20],
    }
    .encode(&mut hs);
    seed.session.handle_recv(now, key, hs);
    seed.run_events(now);
    assert!(seed.events.iter().any(|e| matches!(
        e,
        Event::Disconnect {
            reason: DisconnectReason::WrongInfoHash,
            ..
        }
    )));
}

#[test]
fn silent_peer_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), TorrentVersion::V1, 16 * 1024);
    let mut seed = Node::seeder(&meta, dir.path());
    let now = t0();
    seed.session
        .add_peer(now, "127.0.0.9:1".parse().unwrap(), Direction::Incoming)
        .unwrap();
    seed.session.handle_timeout(now + Duration::from_secs(30));
    seed.run_events(now);
    assert!(seed.events.iter().any(|e| matches!(
        e,
        Event::Disconnect {
            reason: DisconnectReason::HandshakeTimeout,
            ..
        }
    )));
}

#[test]
fn skipped_files_are_not_downloaded() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), TorrentVersion::Hybrid, 16 * 1024);
    let mut leech = Node::leecher(&meta);
    let layout = Layout::new(&meta).unwrap();
    // Skip the biggest file (a.bin, the first one).
    let mut prio = tessera_store::Priorities::new(&layout);
    let big = layout
        .files()
        .iter()
        .position(|f| f.length == 300_001)
        .unwrap();
    prio.set(big, tessera_store::FilePriority::Skip);
    leech.session.set_file_priorities(&prio);
    let mut net = Net::new(vec![Node::seeder(&meta, dir.path()), leech]);
    net.connect(1, 0);
    assert!(net.run_until(Duration::from_secs(60), |n| n.nodes[1]
        .session
        .is_finished()));
    let have = net.nodes[1].session.have().unwrap();
    for piece in 0..layout.num_pieces() {
        assert_eq!(
            have.get(piece),
            prio.piece_priority(piece) != tessera_store::FilePriority::Skip,
            "piece {piece}"
        );
    }
    assert!(!have.is_full());
}

#[test]
fn send_budget_bounds_reads_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(dir.path(), TorrentVersion::V1, 16 * 1024);
    let mut cfg = config();
    cfg.max_send_buffer = 64 * 1024;
    let mut seed = Node::seeder_with(&meta, dir.path(), cfg);
    let now = t0();
    let key = seed
        .session
        .add_peer(now, "127.0.0.9:1".parse().unwrap(), Direction::Incoming)
        .unwrap();
    let mut input = BytesMut::new();
    tessera_wire::Handshake {
        reserved: tessera_wire::Reserved::FAST,
        info_hash: meta.info_hashes().v1.unwrap(),
        peer_id: [7; 20],
    }
    .encode(&mut input);
    tessera_wire::Message::Interested.encode(&mut input);
    seed.session.handle_recv(now, key, input);
    // Unchoked at once (a free slot); now 20 requests.
    let mut reqs = BytesMut::new();
    for piece in 0..20u32 {
        tessera_wire::Message::Request(tessera_wire::BlockRequest {
            index: piece,
            begin: 0,
            length: 16384,
        })
        .encode(&mut reqs);
    }
    seed.session.handle_recv(now, key, reqs);
    let mut reads = Vec::new();
    while let Some(ev) = seed.session.poll_event() {
        if let Event::Read { request, .. } = ev {
            reads.push(request);
        }
    }
    // 64 KiB of budget: at most 4 blocks in flight, the rest waits.
    assert!(!reads.is_empty() && reads.len() <= 4, "{}", reads.len());
    // Answer them and drain what is queued to send: more reads are issued.
    for r in &reads {
        seed.session
            .block_read(now, key, *r, Some(Bytes::from(vec![0u8; 16384])));
    }
    while seed.session.poll_transmit(key).is_some() {}
    let more = std::iter::from_fn(|| seed.session.poll_event())
        .filter(|e| matches!(e, Event::Read { .. }))
        .count();
    assert!(more > 0 && more <= 4, "{more}");
}
