//! Fixed-size hash values: SHA-1 (v1 pieces and info hash) and SHA-256 (v2).

use std::fmt;

/// Error for a hex or base32 string that is not a hash of the expected size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} hex digits")]
pub struct HexError {
    /// Number of hex digits expected.
    pub expected: usize,
}

macro_rules! hash_type {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// From a slice of exactly the right length.
            pub fn from_slice(s: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(s).ok().map(Self)
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }

            /// Parses hex (either case).
            ///
            /// # Errors
            /// Wrong length or a non-hex digit.
            pub fn from_hex(s: &str) -> Result<Self, HexError> {
                let mut out = [0u8; $len];
                if decode_hex(s.as_bytes(), &mut out) {
                    Ok(Self(out))
                } else {
                    Err(HexError { expected: 2 * $len })
                }
            }

            /// True if every byte is zero.
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|&b| b == 0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = HexError;
            fn from_str(s: &str) -> Result<Self, HexError> {
                Self::from_hex(s)
            }
        }
    };
}

hash_type!(
    /// A SHA-1 digest: a v1 piece hash or a v1 info hash.
    Sha1Hash,
    20
);
hash_type!(
    /// A SHA-256 digest: a v2 merkle node or a v2 info hash.
    Sha256Hash,
    32
);

impl Sha256Hash {
    /// The first 20 bytes: the form a v2 info hash takes in the peer handshake, the DHT and
    /// trackers (BEP 52).
    pub fn truncated(&self) -> Sha1Hash {
        let mut out = [0u8; 20];
        out.copy_from_slice(self.0.get(..20).unwrap_or(&[0u8; 20]));
        Sha1Hash(out)
    }
}

/// The info hashes of a torrent: v1 (SHA-1 of the info dictionary), v2 (SHA-256 of it), or both
/// for a hybrid torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InfoHashes {
    /// The v1 info hash, for v1 and hybrid torrents.
    pub v1: Option<Sha1Hash>,
    /// The v2 info hash, for v2 and hybrid torrents.
    pub v2: Option<Sha256Hash>,
}

impl InfoHashes {
    /// True if both hashes are present.
    pub fn is_hybrid(&self) -> bool {
        self.v1.is_some() && self.v2.is_some()
    }

    /// The 20-byte hash used on the wire: the v1 hash if there is one, else the truncated v2 hash.
    pub fn wire_hash(&self) -> Option<Sha1Hash> {
        self.v1.or_else(|| self.v2.map(|h| h.truncated()))
    }

    /// Every 20-byte hash the torrent's swarm is known by, in the DHT and elsewhere: the v1
    /// hash, then the truncated v2 hash (BEP 52). Two for a hybrid torrent.
    pub fn swarm_hashes(&self) -> impl Iterator<Item = Sha1Hash> {
        self.v1.into_iter().chain(self.v2.map(|h| h.truncated()))
    }

    /// The lowercase hex of the torrent's main hash (v1 if it has one, else v2), for naming
    /// files that belong to it.
    pub fn file_stem(&self) -> Option<String> {
        match (self.v1, self.v2) {
            (Some(v1), _) => Some(v1.to_hex()),
            (None, Some(v2)) => Some(v2.to_hex()),
            (None, None) => None,
        }
    }
}

/// Lowercase hex of any bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 15));
    }
    s
}

/// The value of one hex digit (either case).
pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex into `out`, which it must fill exactly. Returns false on any error.
pub(crate) fn decode_hex(s: &[u8], out: &mut [u8]) -> bool {
    if s.len() != out.len() * 2 {
        return false;
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        match (
            pair.first().copied().and_then(hex_val),
            pair.get(1).copied().and_then(hex_val),
        ) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = Sha1Hash::from_hex("C0FDA1EDAFDBDBB96443424E0B3899AF7159D10E").unwrap();
        assert_eq!(h.to_hex(), "c0fda1edafdbdbb96443424e0b3899af7159d10e");
        assert!(Sha1Hash::from_hex("c0fd").is_err());
        assert!(Sha1Hash::from_hex("g0fda1edafdbdbb96443424e0b3899af7159d10e").is_err());
    }

    #[test]
    fn truncation_keeps_prefix() {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        assert_eq!(Sha256Hash(b).truncated().0[..], b[..20]);
    }

    #[test]
    fn swarm_hashes_and_file_stem() {
        let v1 = Sha1Hash([1; 20]);
        let v2 = Sha256Hash([2; 32]);
        let hybrid = InfoHashes {
            v1: Some(v1),
            v2: Some(v2),
        };
        let only_v2 = InfoHashes {
            v1: None,
            v2: Some(v2),
        };
        assert_eq!(
            hybrid.swarm_hashes().collect::<Vec<_>>(),
            [v1, v2.truncated()]
        );
        assert_eq!(only_v2.swarm_hashes().collect::<Vec<_>>(), [v2.truncated()]);
        assert_eq!(hybrid.file_stem(), Some(v1.to_hex()));
        assert_eq!(only_v2.file_stem(), Some(v2.to_hex()));
        assert_eq!(InfoHashes::default().file_stem(), None);
        assert_eq!(InfoHashes::default().swarm_hashes().count(), 0);
    }
}
