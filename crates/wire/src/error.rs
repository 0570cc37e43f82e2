//! The error type of the wire codec.

/// Why a handshake or message could not be decoded or encoded.
///
/// Variants are grouped by who is at fault: the bytes are malformed, the peer broke a limit or
/// a rule that needs knowledge of the torrent, the peer speaks something this codec does not,
/// or the caller misused the API. Each variant carries the amounts that explain it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- Malformed input -----
    /// A message's length prefix does not match the exact size its type requires.
    ///
    /// `expected` and `got` count the bytes after the length prefix, the id byte included.
    #[error("message id {id}: length {got}, expected {expected}")]
    IncorrectLength {
        /// The message id.
        id: u8,
        /// The length the message type requires.
        expected: u32,
        /// The length prefix the peer sent.
        got: u32,
    },
    /// A variable-size message is shorter than its fixed header.
    #[error("message id {id}: length {got}, at least {min} needed")]
    TooShort {
        /// The message id.
        id: u8,
        /// Smallest length the message type allows (id byte included).
        min: u32,
        /// The length prefix the peer sent.
        got: u32,
    },
    /// A `hashes` message (BEP 52) whose hash list is not a whole number of 32-byte hashes.
    #[error("hashes message: {len} bytes of hashes is not a multiple of 32")]
    HashesNotMultiple {
        /// Length of the hash list in bytes.
        len: u32,
    },

    // ----- The peer misbehaved or broke a limit -----
    /// A length prefix above [`Limits::max_message_len`](crate::Limits::max_message_len).
    /// Detected from the four-byte prefix alone, before the body is buffered.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong {
        /// The length prefix the peer sent.
        len: u32,
        /// The configured limit.
        max: u32,
    },
    /// A piece index at or past the number of pieces of the torrent.
    #[error("piece {index} out of range: the torrent has {num_pieces} pieces")]
    PieceOutOfRange {
        /// The piece index the peer sent.
        index: u32,
        /// Number of pieces in the torrent.
        num_pieces: u32,
    },
    /// A block length of zero or above [`Limits::max_request_len`](crate::Limits::max_request_len)
    /// in a request, cancel, reject or piece message.
    #[error("block length {length} not in 1..={max}")]
    InvalidBlockLength {
        /// The block length the peer sent.
        length: u32,
        /// The configured limit.
        max: u32,
    },
    /// A block that does not lie inside its piece.
    #[error("block {begin}+{length} does not fit in piece {index} of {piece_size} bytes")]
    BlockOutOfPiece {
        /// The piece index.
        index: u32,
        /// Offset of the block in the piece.
        begin: u32,
        /// Length of the block.
        length: u32,
        /// Size of that piece.
        piece_size: u32,
    },
    /// A bitfield with bits set past the last piece.
    #[error("bitfield has spare bits set past piece {num_pieces}")]
    SpareBitsSet {
        /// Number of pieces in the torrent.
        num_pieces: u32,
    },

    // ----- Unsupported -----
    /// The handshake does not start with `\x13BitTorrent protocol`: the peer speaks another
    /// protocol (or an encrypted stream, BEP 8 / MSE, which this codec does not handle).
    #[error("not a BitTorrent handshake: byte {offset} is {byte:#04x}")]
    NotBitTorrent {
        /// Offset of the first byte that differs from the protocol string.
        offset: usize,
        /// The byte found there.
        byte: u8,
    },

    // ----- Misuse by the caller -----
    /// A message too large to frame: its length does not fit the 32-bit length prefix.
    #[error("message of {len} bytes cannot be framed")]
    Unframeable {
        /// Length of the message body in bytes.
        len: usize,
    },
}

/// Who is at fault for an [`Error`]: what a session needs to decide between dropping the
/// connection, banning the peer, or fixing its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The bytes do not follow the wire format.
    Malformed,
    /// The bytes are well formed but break a limit or the torrent's geometry.
    Misbehaved,
    /// The peer speaks something this codec does not.
    Unsupported,
    /// The caller asked for something the protocol cannot express.
    Misuse,
}

impl Error {
    /// The group this error belongs to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::IncorrectLength { .. }
            | Error::TooShort { .. }
            | Error::HashesNotMultiple { .. } => ErrorKind::Malformed,
            Error::MessageTooLong { .. }
            | Error::PieceOutOfRange { .. }
            | Error::InvalidBlockLength { .. }
            | Error::BlockOutOfPiece { .. }
            | Error::SpareBitsSet { .. } => ErrorKind::Misbehaved,
            Error::NotBitTorrent { .. } => ErrorKind::Unsupported,
            Error::Unframeable { .. } => ErrorKind::Misuse,
        }
    }
}
