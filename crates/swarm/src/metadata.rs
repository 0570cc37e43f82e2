//! Fetching the info dictionary from peers (BEP 9) when all we have is a magnet link.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tessera_metainfo::InfoHashes;
use tessera_wire::{MAX_METADATA_SIZE, METADATA_PIECE_SIZE};

use crate::PeerKey;

/// How long a metadata piece may stay requested from one peer before another is asked.
const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a metadata message did to the fetch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MetadataProgress {
    /// Stored (or ignored as a duplicate); more pieces are needed.
    Partial,
    /// The last piece arrived and the whole matches the info hash: the info dictionary.
    Complete(Bytes),
    /// The pieces were complete but did not hash to the info hash; everything was dropped.
    HashMismatch,
    /// The message does not fit the metadata being fetched (size or piece out of range):
    /// the peer misbehaved.
    Invalid,
}

/// Assembles the info dictionary from 16 KiB pieces sent by several peers.
#[derive(Debug)]
pub(crate) struct MetadataFetch {
    info_hashes: InfoHashes,
    size: Option<u64>,
    buf: Vec<u8>,
    have: Vec<bool>,
    requested: Vec<Option<(PeerKey, Instant)>>,
}

impl MetadataFetch {
    pub(crate) fn new(info_hashes: InfoHashes) -> Self {
        MetadataFetch {
            info_hashes,
            size: None,
            buf: Vec::new(),
            have: Vec::new(),
            requested: Vec::new(),
        }
    }

    /// Learns the size from a peer's extension handshake. The first plausible size wins; a
    /// peer announcing another size is not asked (returns false).
    pub(crate) fn offer_size(&mut self, size: u64) -> bool {
        if size == 0 || size > MAX_METADATA_SIZE {
            return false;
        }
        match self.size {
            Some(s) => s == size,
            None => {
                let pieces = size.div_ceil(METADATA_PIECE_SIZE as u64) as usize;
                self.size = Some(size);
                // Bounded by MAX_METADATA_SIZE (32 MiB).
                self.buf = vec![0; size as usize];
                self.have = vec![false; pieces];
                self.requested = vec![None; pieces];
                true
            }
        }
    }

    /// The metadata size, once known.
    pub(crate) fn size(&self) -> Option<u64> {
        self.size
    }

    /// A piece to ask `peer` for: one nobody has been asked for recently.
    pub(crate) fn next_request(&mut self, peer: PeerKey, now: Instant) -> Option<u32> {
        let idx = self
            .have
            .iter()
            .zip(&self.requested)
            .position(|(have, req)| {
                !have
                    && match req {
                        None => true,
                        Some((p, at)) => {
                            *p != peer
                                && now.saturating_duration_since(*at) >= METADATA_REQUEST_TIMEOUT
                        }
                    }
            })?;
        if let Some(slot) = self.requested.get_mut(idx) {
            *slot = Some((peer, now));
        }
        u32::try_from(idx).ok()
    }

    /// Pieces outstanding from `peer`.
    pub(crate) fn outstanding(&self, peer: PeerKey) -> usize {
        self.requested
            .iter()
            .zip(&self.have)
            .filter(|(r, have)| !**have && matches!(r, Some((p, _)) if *p == peer))
            .count()
    }

    /// Forgets the requests sent to `peer` (it left or rejected them).
    pub(crate) fn peer_gone(&mut self, peer: PeerKey) {
        for r in &mut self.requested {
            if matches!(r, Some((p, _)) if *p == peer) {
                *r = None;
            }
        }
    }

    /// A piece arrived.
    pub(crate) fn on_data(&mut self, piece: u32, total_size: u64, data: &[u8]) -> MetadataProgress {
        let Some(size) = self.size else {
            return MetadataProgress::Invalid;
        };
        if total_size != size {
            return MetadataProgress::Invalid;
        }
        let idx = piece as usize;
        let start = idx.saturating_mul(METADATA_PIECE_SIZE);
        let expected = (size as usize)
            .saturating_sub(start)
            .min(METADATA_PIECE_SIZE);
        if idx >= self.have.len() || data.len() != expected {
            return MetadataProgress::Invalid;
        }
        if self.have.get(idx).copied().unwrap_or(true) {
            return MetadataProgress::Partial;
        }
        if let Some(dst) = self.buf.get_mut(start..start + expected) {
            dst.copy_from_slice(data);
        }
        if let Some(h) = self.have.get_mut(idx) {
            *h = true;
        }
        if !self.have.iter().all(|h| *h) {
            return MetadataProgress::Partial;
        }
        if self.matches() {
            MetadataProgress::Complete(Bytes::from(std::mem::take(&mut self.buf)))
        } else {
            self.have.iter_mut().for_each(|h| *h = false);
            self.requested.iter_mut().for_each(|r| *r = None);
            MetadataProgress::HashMismatch
        }
    }

    fn matches(&self) -> bool {
        if let Some(v1) = &self.info_hashes.v1 {
            return Sha1::digest(&self.buf).as_slice() == v1.as_bytes();
        }
        if let Some(v2) = &self.info_hashes.v2 {
            return Sha256::digest(&self.buf).as_slice() == v2.as_bytes();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_metainfo::Sha1Hash;

    fn fetch_for(info: &[u8]) -> MetadataFetch {
        let mut h = [0u8; 20];
        h.copy_from_slice(&Sha1::digest(info));
        MetadataFetch::new(InfoHashes {
            v1: Some(Sha1Hash(h)),
            v2: None,
        })
    }

    #[test]
    fn assembles_and_checks_the_hash() {
        let info: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let mut f = fetch_for(&info);
        assert!(f.offer_size(info.len() as u64));
        assert!(!f.offer_size(5), "a different size is refused");
        let now = Instant::now();
        let a = PeerKey(1);
        let mut pieces = Vec::new();
        while let Some(p) = f.next_request(a, now) {
            pieces.push(p);
        }
        assert_eq!(pieces, vec![0, 1, 2]);
        assert_eq!(f.outstanding(a), 3);
        let chunk = |p: usize| &info[p * 16384..((p + 1) * 16384).min(info.len())];
        assert_eq!(f.on_data(0, 40_000, chunk(0)), MetadataProgress::Partial);
        assert_eq!(f.on_data(9, 40_000, chunk(0)), MetadataProgress::Invalid);
        assert_eq!(f.on_data(1, 40_000, chunk(2)), MetadataProgress::Invalid);
        assert_eq!(f.on_data(2, 40_000, chunk(2)), MetadataProgress::Partial);
        match f.on_data(1, 40_000, chunk(1)) {
            MetadataProgress::Complete(b) => assert_eq!(&b[..], &info[..]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupt_metadata_is_dropped_and_refetched() {
        let info = vec![7u8; 20_000];
        let mut f = fetch_for(&info);
        assert!(f.offer_size(20_000));
        let now = Instant::now();
        let p = PeerKey(3);
        assert_eq!(f.next_request(p, now), Some(0));
        assert_eq!(f.next_request(p, now), Some(1));
        assert_eq!(
            f.on_data(0, 20_000, &info[..16384]),
            MetadataProgress::Partial
        );
        let bad = vec![8u8; 20_000 - 16384];
        assert_eq!(f.on_data(1, 20_000, &bad), MetadataProgress::HashMismatch);
        // Everything can be asked for again.
        assert_eq!(f.next_request(PeerKey(4), now), Some(0));
    }

    #[test]
    fn timed_out_requests_go_to_another_peer() {
        let info = vec![1u8; 100];
        let mut f = fetch_for(&info);
        assert!(f.offer_size(100));
        let t0 = Instant::now();
        assert_eq!(f.next_request(PeerKey(1), t0), Some(0));
        assert_eq!(f.next_request(PeerKey(2), t0), None);
        let later = t0 + METADATA_REQUEST_TIMEOUT;
        assert_eq!(f.next_request(PeerKey(2), later), Some(0));
        f.peer_gone(PeerKey(2));
        assert_eq!(f.outstanding(PeerKey(2)), 0);
    }
}
