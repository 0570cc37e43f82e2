//! BEP 52 hash requests: answering them from the piece layers we hold, and fetching the piece
//! layers of a v2 torrent that came from a magnet link (its info dictionary has only the roots).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tessera_metainfo::merkle::{block_count, hash_pair, pad_hash, piece_layer_height};
use tessera_metainfo::{Metainfo, Sha256Hash};
use tessera_wire::{uncle_count, validate_hash_request, verify_hashes, HashRequest, Hashes};

use crate::PeerKey;

/// Most piece-layer hashes asked for in one request.
const REQUEST_HASHES: u32 = 512;
/// A hash request unanswered for this long goes to another peer.
const HASH_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The layers of a file's merkle tree from its piece layer (height `h`) up to the root, each
/// padded to a power of two.
fn layers_above(piece_layer: &[Sha256Hash], h: u32, file_blocks: u64) -> Vec<Vec<Sha256Hash>> {
    let width = (file_blocks.next_power_of_two() >> h).max(1) as usize;
    let mut cur = piece_layer.to_vec();
    cur.resize(width.max(cur.len()), pad_hash(h));
    let mut layers = vec![cur];
    while let Some(last) = layers.last() {
        if last.len() <= 1 {
            break;
        }
        let next: Vec<Sha256Hash> = last
            .chunks(2)
            .map(|p| match p {
                [l, r] => hash_pair(l, r),
                [l] => *l,
                _ => Sha256Hash::default(),
            })
            .collect();
        layers.push(next);
    }
    layers
}

/// The merkle trees above each file's piece layer, built once per file on first request so
/// that answering a hash request costs its size, not a tree rebuild (a peer could otherwise
/// make us hash a whole piece layer per 49-byte request).
#[derive(Debug, Default)]
pub(crate) struct AnswerCache {
    /// Pieces root → (file blocks, layers from the piece layer up).
    trees: std::collections::HashMap<Sha256Hash, (u64, Vec<Vec<Sha256Hash>>)>,
}

impl AnswerCache {
    /// Answers a request for piece-layer hashes of one of `meta`'s files, with the uncles
    /// that prove them. `None` if we cannot (an unknown root, a request below the piece
    /// layer, or a malformed request): the caller sends a hash reject.
    pub(crate) fn answer(&mut self, meta: &Metainfo, req: &HashRequest) -> Option<Hashes> {
        let h = piece_layer_height(meta.piece_length());
        if req.base_layer != h {
            return None;
        }
        let (blocks, layers) = match self.trees.entry(req.pieces_root) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let (index, file) = meta
                    .files()
                    .iter()
                    .enumerate()
                    .find(|(_, f)| f.pieces_root == Some(req.pieces_root))?;
                let layer = meta.piece_layer(index)?;
                let blocks = block_count(file.length);
                e.insert((blocks, layers_above(layer, h, blocks)))
            }
        };
        validate_hash_request(req, *blocks, h).ok()?;
        let start = req.index as usize;
        let base = layers
            .first()?
            .get(start..start.checked_add(req.length as usize)?)?;
        let sub = req.length.ilog2() as usize;
        let mut node = start >> sub;
        let mut proof = Vec::new();
        for l in layers.iter().skip(sub) {
            if l.len() <= 1 {
                break;
            }
            proof.push(*l.get(node ^ 1)?);
            node >>= 1;
        }
        let uncles = uncle_count(req) as usize;
        let mut all = base.to_vec();
        all.extend(proof.into_iter().take(uncles));
        Some(Hashes::from_hashes(*req, &all))
    }
}

/// One file whose piece layer we still need.
#[derive(Debug)]
struct NeededLayer {
    root: Sha256Hash,
    blocks: u64,
    pieces: usize,
    hashes: Vec<Option<Sha256Hash>>,
    /// Requests out: range start → (peer, when).
    requested: BTreeMap<u32, (PeerKey, Instant)>,
}

/// Fetches the piece layers of a v2 torrent from peers.
#[derive(Debug)]
pub(crate) struct LayerFetch {
    info: Bytes,
    height: u32,
    files: Vec<NeededLayer>,
}

impl LayerFetch {
    /// What `meta` (parsed from the info dictionary `info` alone) still lacks; `None` if it
    /// needs nothing (v1 hashes, or every file fits in one piece).
    pub(crate) fn new(meta: &Metainfo, info: Bytes) -> Option<Self> {
        if meta.version().has_v1() {
            return None;
        }
        let piece_length = meta.piece_length();
        let files: Vec<NeededLayer> = meta
            .files()
            .iter()
            .enumerate()
            .filter(|(i, f)| f.length > piece_length && meta.piece_layer(*i).is_none())
            .filter_map(|(_, f)| {
                let pieces = usize::try_from(f.length.div_ceil(piece_length)).ok()?;
                Some(NeededLayer {
                    root: f.pieces_root?,
                    blocks: block_count(f.length),
                    pieces,
                    hashes: vec![None; pieces],
                    requested: BTreeMap::new(),
                })
            })
            .collect();
        (!files.is_empty()).then(|| LayerFetch {
            info,
            height: piece_layer_height(piece_length),
            files,
        })
    }

    /// Requests to send `peer` now (nothing outstanding elsewhere, or timed out).
    pub(crate) fn next_requests(
        &mut self,
        peer: PeerKey,
        now: Instant,
        max: usize,
    ) -> Vec<HashRequest> {
        let mut out = Vec::new();
        for f in &mut self.files {
            let width = (f.blocks.next_power_of_two() >> self.height).max(1);
            let len = u32::try_from(width.min(u64::from(REQUEST_HASHES))).unwrap_or(REQUEST_HASHES);
            let root_height = f.blocks.next_power_of_two().trailing_zeros();
            let proof_layers = root_height.saturating_sub(self.height).saturating_sub(1);
            let mut start = 0u32;
            while (start as usize) < f.pieces && out.len() < max {
                let have = f
                    .hashes
                    .get(start as usize..(start as usize + len as usize).min(f.pieces))
                    .is_some_and(|s| s.iter().all(Option::is_some));
                let busy = f.requested.get(&start).is_some_and(|(p, at)| {
                    *p == peer || now.saturating_duration_since(*at) < HASH_REQUEST_TIMEOUT
                });
                if !have && !busy {
                    f.requested.insert(start, (peer, now));
                    out.push(HashRequest {
                        pieces_root: f.root,
                        base_layer: self.height,
                        index: start,
                        length: len,
                        proof_layers,
                    });
                }
                start = start.saturating_add(len);
            }
        }
        out
    }

    /// Forgets what `peer` was asked (it left or refused).
    pub(crate) fn peer_gone(&mut self, peer: PeerKey) {
        for f in &mut self.files {
            f.requested.retain(|_, (p, _)| *p != peer);
        }
    }

    /// Takes in hashes; false if they do not prove against the file's root (the peer lies).
    pub(crate) fn on_hashes(&mut self, hashes: &Hashes) -> bool {
        let req = &hashes.request;
        let Some(f) = self.files.iter_mut().find(|f| f.root == req.pieces_root) else {
            return true; // Not something we need (any more).
        };
        if req.base_layer != self.height {
            return true;
        }
        let Ok(base) = verify_hashes(hashes, &f.root, f.blocks) else {
            return false;
        };
        f.requested.remove(&req.index);
        for (i, h) in base.into_iter().enumerate() {
            if let Some(slot) = f.hashes.get_mut(req.index as usize + i) {
                *slot = Some(h);
            }
        }
        true
    }

    /// The complete torrent (info dictionary and piece layers) once every layer is in.
    pub(crate) fn finish(&self) -> Option<Bytes> {
        let mut layers: Vec<(Sha256Hash, Vec<u8>)> = Vec::new();
        for f in &self.files {
            let mut bytes = Vec::with_capacity(f.pieces * 32);
            for h in &f.hashes {
                bytes.extend_from_slice(h.as_ref()?.as_bytes());
            }
            layers.push((f.root, bytes));
        }
        layers.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        layers.dedup_by(|a, b| a.0 == b.0);
        let mut t = BytesMut::with_capacity(self.info.len() + layers.len() * 64 + 32);
        t.extend_from_slice(b"d4:info");
        t.extend_from_slice(&self.info);
        t.extend_from_slice(b"12:piece layersd");
        for (root, bytes) in &layers {
            t.extend_from_slice(b"32:");
            t.extend_from_slice(root.as_bytes());
            t.extend_from_slice(format!("{}:", bytes.len()).as_bytes());
            t.extend_from_slice(bytes);
        }
        t.extend_from_slice(b"ee");
        Some(t.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_metainfo::{TorrentBuilder, TorrentVersion};

    fn v2_torrent(len: usize, piece_length: u64) -> Metainfo {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("f.bin");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("{e}"));
        let t = TorrentBuilder::new(&path)
            .version(TorrentVersion::V2)
            .piece_length(piece_length)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        Metainfo::from_bytes(t.bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn layers_fetched_through_answers_rebuild_the_torrent() {
        // 37 pieces of 32 KiB: a layer that is not a power of two, fetched in 4 requests of 16.
        let full = v2_torrent(37 * 32 * 1024 - 100, 32 * 1024);
        let info = full.info_bytes();
        let mut t = BytesMut::new();
        t.extend_from_slice(b"d4:info");
        t.extend_from_slice(&info);
        t.extend_from_slice(b"e");
        let bare = Metainfo::from_bytes(t.freeze()).unwrap_or_else(|e| panic!("{e}"));
        assert!(bare.piece_layer(0).is_none());
        let mut fetch = LayerFetch::new(&bare, info).unwrap_or_else(|| panic!("needs layers"));
        let now = Instant::now();
        let reqs = fetch.next_requests(PeerKey(1), now, 100);
        assert!(!reqs.is_empty());
        assert!(
            fetch.next_requests(PeerKey(2), now, 100).is_empty(),
            "all outstanding"
        );
        for req in &reqs {
            let hashes = AnswerCache::default()
                .answer(&full, req)
                .unwrap_or_else(|| panic!("no answer for {req:?}"));
            assert!(fetch.on_hashes(&hashes), "{req:?}");
        }
        let rebuilt = Metainfo::from_bytes(fetch.finish().unwrap_or_else(|| panic!("incomplete")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rebuilt.info_hashes(), full.info_hashes());
        assert_eq!(rebuilt.piece_layer(0), full.piece_layer(0));
    }

    #[test]
    fn forged_hashes_are_refused() {
        let full = v2_torrent(8 * 16 * 1024, 16 * 1024);
        let info = full.info_bytes();
        let mut t = BytesMut::new();
        t.extend_from_slice(b"d4:info");
        t.extend_from_slice(&info);
        t.extend_from_slice(b"e");
        let bare = Metainfo::from_bytes(t.freeze()).unwrap_or_else(|e| panic!("{e}"));
        let mut fetch = LayerFetch::new(&bare, info).unwrap_or_else(|| panic!("needs layers"));
        let req = fetch.next_requests(PeerKey(1), Instant::now(), 1)[0];
        let good = AnswerCache::default()
            .answer(&full, &req)
            .unwrap_or_else(|| panic!("no answer"));
        let mut forged: Vec<Sha256Hash> = good.iter().collect();
        forged[0] = Sha256Hash([1; 32]);
        assert!(!fetch.on_hashes(&Hashes::from_hashes(req, &forged)));
        assert!(fetch.finish().is_none());
    }

    #[test]
    fn leaf_layer_requests_are_not_answered() {
        let full = v2_torrent(8 * 16 * 1024, 32 * 1024);
        let root = full.files().get(0).unwrap().pieces_root.unwrap_or_default();
        let req = HashRequest {
            pieces_root: root,
            base_layer: 0,
            index: 0,
            length: 8,
            proof_layers: 0,
        };
        assert!(AnswerCache::default().answer(&full, &req).is_none());
    }
}
