//! A real exchange with libtorrent (Debian's python3-libtorrent): libtorrent seeds a hybrid
//! torrent made by `TorrentBuilder`, and this test talks to it over TCP on 127.0.0.1 with the
//! core codec and the extension layer, decoding everything libtorrent sends.
//!
//! Skipped (with a message) when `/usr/bin/python3` cannot import libtorrent, unless
//! `TESSERA_REQUIRE_LIBTORRENT=1`. libtorrent runs with DHT, LSD, UPnP, NAT-PMP and uTP off,
//! listening on 127.0.0.1 only; the script exits by itself after 60 seconds and the test kills it
//! when done.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tessera_metainfo::merkle::{block_count, piece_layer_height, MerkleTree};
use tessera_metainfo::{Sha1Hash, TorrentBuilder, TorrentVersion};
use tessera_wire::{
    verify_hashes, BlockRequest, ExtendedHandshake, ExtensionMessage, ExtensionRegistry, Handshake,
    HashRequest, Incoming, Limits, LtDonthave, Message, MessageDecoder, Reserved, UploadOnly,
    UtMetadata, UtPex,
};

const PYTHON: &str = "/usr/bin/python3";
const PIECE_LENGTH: u64 = 32 * 1024;
/// 5 full pieces and a short one: 11 blocks, 16 leaves, root at layer 4, piece layer at 1.
const FILE_LEN: usize = 5 * 32 * 1024 + 5000;

const SEEDER: &str = r#"
import sys, time, select
import libtorrent as lt

torrent, save_path = sys.argv[1], sys.argv[2]
start = time.time()
s = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_dht': False,
    'enable_lsd': False,
    'enable_upnp': False,
    'enable_natpmp': False,
    'enable_incoming_utp': False,
    'enable_outgoing_utp': False,
    'enable_incoming_tcp': True,
    'enable_outgoing_tcp': False,
    'allow_multiple_connections_per_ip': True,
})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(torrent)
p.save_path = save_path
h = s.add_torrent(p)
while not h.status().is_seeding:
    if time.time() - start > 50:
        print('ERROR not seeding: %s' % h.status().state, flush=True)
        sys.exit(2)
    time.sleep(0.05)
print('PORT %d' % s.listen_port(), flush=True)
# Stay up until the test closes stdin, at most 60 seconds in all.
while time.time() - start < 60:
    r, _, _ = select.select([sys.stdin], [], [], 0.5)
    if r and not sys.stdin.read(1):
        break
"#;

/// Kills the seeder when the test ends, however it ends.
struct Seeder(Child);

impl Drop for Seeder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory removed at the end.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn libtorrent_available() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The connection: a socket, a receive buffer, every received byte, and the decoder.
struct Peer {
    sock: TcpStream,
    rx: BytesMut,
    raw: Vec<u8>,
    decoder: MessageDecoder,
    received: Vec<Message>,
}

impl Peer {
    fn fill(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        // Read timeouts bound every wait; a handful of them in a row means libtorrent went quiet.
        for _ in 0..6 {
            match self.sock.read(&mut buf) {
                Ok(0) => panic!("libtorrent closed the connection"),
                Ok(n) => {
                    self.rx.extend_from_slice(&buf[..n]);
                    self.raw.extend_from_slice(&buf[..n]);
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        panic!("libtorrent sent nothing for too long");
    }

    fn handshake(&mut self) -> Handshake {
        loop {
            if let Some(hs) = Handshake::decode(&mut self.rx).unwrap() {
                return hs;
            }
            self.fill();
        }
    }

    fn next(&mut self) -> Message {
        loop {
            if let Some(m) = self.decoder.decode(&mut self.rx).unwrap() {
                self.received.push(m.clone());
                return m;
            }
            self.fill();
        }
    }

    /// Reads until `want` picks a message, handing every message to `seen` on the way.
    fn until<T>(
        &mut self,
        mut seen: impl FnMut(&Message),
        mut want: impl FnMut(&Message) -> Option<T>,
    ) -> T {
        for _ in 0..200 {
            let m = self.next();
            seen(&m);
            if let Some(t) = want(&m) {
                return t;
            }
        }
        panic!("expected message never came");
    }

    fn send(&mut self, msgs: &[Message]) {
        let mut out = BytesMut::new();
        for m in msgs {
            m.encode(&mut out);
        }
        self.sock.write_all(&out).unwrap();
    }
}

fn write_data(dir: &Path) -> (PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..FILE_LEN).map(|i| (i * 7 % 253) as u8).collect();
    let path = dir.join("capture.bin");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

#[test]
fn libtorrent_exchange() {
    if !libtorrent_available() {
        if std::env::var("TESSERA_REQUIRE_LIBTORRENT").as_deref() == Ok("1") {
            panic!("TESSERA_REQUIRE_LIBTORRENT=1 but {PYTHON} cannot import libtorrent");
        }
        eprintln!("skipping: {PYTHON} cannot import libtorrent (install python3-libtorrent)");
        return;
    }

    // ---- a hybrid torrent over one file, seeded by libtorrent
    let dir = std::env::temp_dir().join(format!(
        "tessera-lt-capture-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());
    let (file, data) = write_data(&dir);
    let torrent = TorrentBuilder::new(&file)
        .version(TorrentVersion::Hybrid)
        .piece_length(PIECE_LENGTH)
        .build()
        .unwrap();
    let torrent_path = dir.join("capture.torrent");
    std::fs::write(&torrent_path, &torrent.bytes).unwrap();
    let v1 = torrent.info_hashes.v1.unwrap();
    let v2 = torrent.info_hashes.v2.unwrap();
    let doc = tessera_bencode::decode(&torrent.bytes).unwrap();
    let info = doc.root().as_dict().unwrap().get(b"info").unwrap().raw();
    let tree = MerkleTree::from_data(&data);

    let mut child = Command::new(PYTHON)
        .args(["-c", SEEDER])
        .arg(&torrent_path)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _seeder = Seeder(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let port: u16 = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("libtorrent did not report its port");
        if let Some(p) = line.strip_prefix("PORT ") {
            break p.trim().parse().unwrap();
        }
        assert!(!line.starts_with("ERROR"), "seeder: {line}");
    };
    assert_ne!(port, 0);

    // ---- connect and introduce ourselves
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut peer = Peer {
        sock,
        rx: BytesMut::new(),
        raw: Vec::new(),
        decoder: MessageDecoder::new(
            Limits::default().for_torrent(FILE_LEN as u64, PIECE_LENGTH as u32),
        ),
        received: Vec::new(),
    };
    let mut registry = ExtensionRegistry::with_builtin();
    let mut ours = registry.handshake();
    ours.v = Some("tessera-wire capture test".into());
    ours.reqq = Some(16);
    let mut out = BytesMut::new();
    Handshake {
        reserved: Reserved::EXTENSION_PROTOCOL | Reserved::FAST | Reserved::V2_UPGRADE,
        info_hash: v1,
        peer_id: *b"-TS0001-capturetest1",
    }
    .encode(&mut out);
    peer.sock.write_all(&out).unwrap();
    peer.send(&[
        Message::HaveNone,
        Message::Extended {
            id: 0,
            payload: ours.encode(),
        },
        Message::Interested,
    ]);

    // ---- libtorrent's handshake: the v2 bit upgrades the connection to the v2 info hash
    let theirs = peer.handshake();
    assert!(theirs.reserved.extension_protocol());
    assert!(theirs.reserved.fast());
    assert!(
        theirs.info_hash == v2.truncated() || theirs.info_hash == v1,
        "unexpected info hash {:?}",
        theirs.info_hash
    );
    let upgraded = theirs.info_hash == v2.truncated();
    assert!(
        upgraded,
        "libtorrent did not upgrade the hybrid connection to v2"
    );

    // ---- everything up to the unchoke: extended handshake, have_all/bitfield, unchoke
    let mut their_hs: Option<ExtendedHandshake> = None;
    let mut have_everything = false;
    let mut extension_msgs = Vec::new();
    for _ in 0..100 {
        match peer.next() {
            Message::Extended { id, payload } => {
                match registry.handle_incoming(id, payload).unwrap() {
                    Incoming::Handshake(hs) => their_hs = Some(*hs),
                    other => extension_msgs.push(other),
                }
            }
            Message::HaveAll => have_everything = true,
            Message::Bitfield(bits) => {
                // 6 pieces: the first byte has the top six bits set.
                assert_eq!(&bits[..], &[0b1111_1100]);
                have_everything = true;
            }
            _ => {}
        }
        if their_hs.is_some() && have_everything && peer.received.contains(&Message::Unchoke) {
            break;
        }
    }
    let their_hs = their_hs.expect("no extended handshake");
    assert!(have_everything, "no have_all or bitfield");
    assert!(peer.received.contains(&Message::Unchoke), "never unchoked");
    assert!(their_hs.id_of("ut_metadata").is_some(), "{their_hs:?}");
    assert_eq!(their_hs.metadata_size, Some(info.len() as u64));
    assert!(
        their_hs
            .v
            .as_deref()
            .is_some_and(|v| v.starts_with("libtorrent/")),
        "client version {:?}",
        their_hs.v
    );
    assert_eq!(
        registry.outgoing_id("ut_metadata"),
        their_hs.id_of("ut_metadata")
    );

    // ---- the metadata: one 16 KiB piece at most for this torrent
    let (id, payload) = registry.encode(&UtMetadata::Request { piece: 0 }).unwrap();
    peer.send(&[Message::Extended { id, payload }]);
    let our_metadata_id = registry.local_id(UtMetadata::NAME).unwrap();
    let metadata = peer.until(
        |_| {},
        |m| match m {
            Message::Extended { id, payload } if *id == our_metadata_id => {
                Some(UtMetadata::decode(payload.clone()).unwrap())
            }
            _ => None,
        },
    );
    let UtMetadata::Data {
        piece,
        total_size,
        data: info_bytes,
    } = metadata
    else {
        panic!("metadata request answered with {metadata:?}");
    };
    assert_eq!((piece, total_size), (0, info.len() as u64));
    assert_eq!(&info_bytes[..], info);
    assert_eq!(Sha1Hash(Sha1::digest(&info_bytes).into()), v1);

    // ---- a block of piece 0
    peer.send(&[Message::Request(BlockRequest {
        index: 0,
        begin: 0,
        length: 16384,
    })]);
    let block = peer.until(
        |_| {},
        |m| match m {
            Message::Piece {
                index: 0,
                begin: 0,
                data,
            } => Some(data.clone()),
            Message::RejectRequest(r) => panic!("block request rejected: {r:?}"),
            _ => None,
        },
    );
    assert_eq!(&block[..], &data[..16384]);

    // ---- BEP 52 hashes: the whole piece layer, then two pieces with their uncle hashes
    let blocks = block_count(FILE_LEN as u64);
    let piece_layer = piece_layer_height(PIECE_LENGTH);
    let root = tree.root();
    let requests = [
        // 8 piece-layer nodes (6 pieces, 2 padding): no uncles needed.
        HashRequest {
            pieces_root: root,
            base_layer: piece_layer,
            index: 0,
            length: 8,
            proof_layers: 2,
        },
        // Pieces 2 and 3 with the two uncle hashes that tie them to the root.
        HashRequest {
            pieces_root: root,
            base_layer: piece_layer,
            index: 2,
            length: 2,
            proof_layers: 2,
        },
    ];
    for req in requests {
        tessera_wire::validate_hash_request(&req, blocks, piece_layer).unwrap();
        peer.send(&[Message::HashRequest(req)]);
        let reply = peer.until(
            |_| {},
            |m| match m {
                Message::Hashes(h) if h.request == req => Some(h.clone()),
                Message::HashReject(r) if *r == req => panic!("hash request rejected: {r:?}"),
                _ => None,
            },
        );
        assert_eq!(
            reply.len() as u32,
            req.length + tessera_wire::uncle_count(&req)
        );
        let got = verify_hashes(&reply, &root, blocks).unwrap();
        let layer = tree.layer(piece_layer).unwrap();
        assert_eq!(
            got,
            layer[req.index as usize..(req.index + req.length) as usize]
        );
        // The same reply with one uncle or base hash altered must not verify.
        let mut bent = reply.hashes.to_vec();
        let last = bent.len() - 1;
        bent[last] ^= 1;
        let bent = tessera_wire::Hashes {
            request: req,
            hashes: Bytes::from(bent),
        };
        assert!(verify_hashes(&bent, &root, blocks).is_err());
    }

    // ---- every byte libtorrent sent decodes again, from scratch, without any error
    let mut replay = BytesMut::from(&peer.raw[..]);
    let hs = Handshake::decode(&mut replay).unwrap().unwrap();
    assert_eq!(hs, theirs);
    let decoder =
        MessageDecoder::new(Limits::default().for_torrent(FILE_LEN as u64, PIECE_LENGTH as u32));
    let mut replayed = Vec::new();
    while let Some(m) = decoder.decode(&mut replay).unwrap() {
        replayed.push(m);
    }
    assert!(replay.is_empty(), "{} bytes left over", replay.len());
    assert_eq!(replayed, peer.received);
    let mut check = ExtensionRegistry::with_builtin();
    for m in &replayed {
        if let Message::Extended { id, payload } = m {
            match check.handle_incoming(*id, payload.clone()).unwrap() {
                Incoming::Handshake(_) => {}
                incoming => {
                    if let Some(r) = incoming.decode_as::<UtMetadata>() {
                        r.unwrap();
                    } else if let Some(r) = incoming.decode_as::<UtPex>() {
                        r.unwrap();
                    } else if let Some(r) = incoming.decode_as::<UploadOnly>() {
                        r.unwrap();
                    } else if let Some(r) = incoming.decode_as::<LtDonthave>() {
                        r.unwrap();
                    } else {
                        panic!("extension message for no known extension: {incoming:?}");
                    }
                }
            }
        }
    }
    let kinds: Vec<String> = replayed
        .iter()
        .map(|m| format!("{:?}", m).chars().take(40).collect())
        .collect();
    eprintln!(
        "libtorrent capture: {} bytes, handshake {:?}, {} messages: {:#?}\nextended handshake: {:?}",
        peer.raw.len(),
        theirs.reserved,
        replayed.len(),
        kinds,
        their_hs
    );
    eprintln!("extension messages before the unchoke: {extension_msgs:?}");
}
