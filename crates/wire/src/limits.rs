//! What the message decoder accepts: size limits and, when known, the torrent's geometry.

/// The largest bitfield of the largest torrent `tessera-metainfo` accepts by default
/// (`ParseOptions::max_pieces`, 2^21 pieces): 2^21 / 8 bytes plus the id byte. It also holds a
/// 16 KiB block with its 9-byte header, and a piece message of [`DEFAULT_MAX_REQUEST_LEN`].
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = (1 << 21) / 8 + 1;

/// Largest block a peer may request by default: 128 KiB, as libtorrent allows. Clients ask
/// for 16 KiB blocks.
pub const DEFAULT_MAX_REQUEST_LEN: u32 = 128 * 1024;

// The default frame limit holds a piece message carrying the largest block allowed by default.
const _: () = assert!(DEFAULT_MAX_MESSAGE_LEN >= DEFAULT_MAX_REQUEST_LEN + 9);

/// Limits and torrent facts that [`MessageDecoder`](crate::MessageDecoder) checks messages
/// against.
///
/// Before the metadata is known (a magnet link) only the sizes apply; once it is, set the
/// geometry with [`Limits::for_torrent`] so that piece indices, bitfields and blocks are
/// checked too.
///
/// ```
/// use tessera_wire::Limits;
///
/// let limits = Limits::default().for_torrent(10 * 1024 * 1024 + 5, 256 * 1024);
/// assert_eq!(limits.num_pieces, Some(41));
/// assert_eq!(limits.piece_size(40), Some(5));
/// assert_eq!(limits.piece_size(41), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest length prefix accepted (bytes after the prefix, id byte included).
    /// Default: [`DEFAULT_MAX_MESSAGE_LEN`].
    pub max_message_len: u32,
    /// Largest block length accepted in a request, cancel, reject or piece message.
    /// Default: [`DEFAULT_MAX_REQUEST_LEN`].
    pub max_request_len: u32,
    /// Number of pieces in the torrent, once known: bounds piece indices and fixes the size of
    /// the bitfield.
    pub num_pieces: Option<u32>,
    /// The torrent's piece length, once known: blocks must lie inside their piece.
    pub piece_length: Option<u32>,
    /// The torrent's total length in bytes, once known: gives the size of the last piece.
    pub total_length: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_request_len: DEFAULT_MAX_REQUEST_LEN,
            num_pieces: None,
            piece_length: None,
            total_length: None,
        }
    }
}

impl Limits {
    /// Sets the torrent geometry: total length and piece length (the number of pieces follows).
    /// A piece length of zero, or a piece count that does not fit `u32`, leaves the geometry
    /// unknown.
    #[must_use]
    pub fn for_torrent(mut self, total_length: u64, piece_length: u32) -> Self {
        let pieces = total_length
            .checked_div(u64::from(piece_length))
            .map(|full| full + u64::from(total_length % u64::from(piece_length.max(1)) != 0))
            .and_then(|n| u32::try_from(n).ok());
        match pieces {
            Some(n) => {
                self.num_pieces = Some(n);
                self.piece_length = Some(piece_length);
                self.total_length = Some(total_length);
            }
            None => {
                self.num_pieces = None;
                self.piece_length = None;
                self.total_length = None;
            }
        }
        self
    }

    /// Sets only the number of pieces (bitfield size and index checks, no block checks).
    #[must_use]
    pub fn with_num_pieces(mut self, num_pieces: u32) -> Self {
        self.num_pieces = Some(num_pieces);
        self
    }

    /// Size in bytes of piece `index`, when the geometry is known and the index in range.
    /// Every piece is `piece_length` long except the last, which holds the rest.
    pub fn piece_size(&self, index: u32) -> Option<u32> {
        let piece_length = self.piece_length?;
        let total = self.total_length?;
        let num_pieces = self.num_pieces?;
        if index >= num_pieces {
            return None;
        }
        let start = u64::from(index).checked_mul(u64::from(piece_length))?;
        let size = total.checked_sub(start)?.min(u64::from(piece_length));
        u32::try_from(size).ok()
    }

    /// Bytes of a bitfield for the known number of pieces.
    pub fn bitfield_len(&self) -> Option<u32> {
        self.num_pieces.map(|n| n.div_ceil(8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fits_largest_bitfield() {
        let max_pieces = tessera_metainfo::ParseOptions::default().max_pieces;
        assert_eq!(
            u64::from(DEFAULT_MAX_MESSAGE_LEN),
            max_pieces.div_ceil(8) + 1
        );
    }

    #[test]
    fn geometry() {
        let l = Limits::default().for_torrent(100, 30);
        assert_eq!(l.num_pieces, Some(4));
        assert_eq!(l.piece_size(0), Some(30));
        assert_eq!(l.piece_size(3), Some(10));
        assert_eq!(l.piece_size(4), None);
        let l = Limits::default().for_torrent(90, 30);
        assert_eq!(l.num_pieces, Some(3));
        assert_eq!(l.piece_size(2), Some(30));
        let l = Limits::default().for_torrent(90, 0);
        assert_eq!(l.num_pieces, None);
        let l = Limits::default().for_torrent(u64::MAX, 1);
        assert_eq!(l.num_pieces, None);
        assert_eq!(Limits::default().with_num_pieces(9).bitfield_len(), Some(2));
    }
}
