//! Which BitTorrent protocol versions a torrent speaks.

use std::fmt;

/// The metainfo version of a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TorrentVersion {
    /// BEP 3: SHA-1 piece hashes, one info hash.
    V1,
    /// BEP 52: per-file SHA-256 merkle trees.
    V2,
    /// Both at once (BEP 52 with BEP 47 padding so that v1 pieces align to files).
    #[default]
    Hybrid,
}

impl TorrentVersion {
    /// True for v1 and hybrid torrents.
    pub fn has_v1(self) -> bool {
        matches!(self, TorrentVersion::V1 | TorrentVersion::Hybrid)
    }

    /// True for v2 and hybrid torrents.
    pub fn has_v2(self) -> bool {
        matches!(self, TorrentVersion::V2 | TorrentVersion::Hybrid)
    }

    /// `"v1"`, `"v2"` or `"hybrid"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TorrentVersion::V1 => "v1",
            TorrentVersion::V2 => "v2",
            TorrentVersion::Hybrid => "hybrid",
        }
    }
}

impl fmt::Display for TorrentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
