//! The incremental, allocation-bounded message decoder.

use bytes::{Buf, Bytes, BytesMut};
use tessera_metainfo::Sha256Hash;

use crate::error::Error;
use crate::limits::Limits;
use crate::message::{
    message_id as id, BlockRequest, HashRequest, Hashes, Message, MessageRef, HASH_REQUEST_LEN,
    PREFIX_LEN,
};

/// Decodes framed messages from a receive buffer, checking each against [`Limits`].
///
/// The decoder keeps no state between calls but its limits; it is the caller's buffer that
/// accumulates partial frames.
///
/// * `Ok(None)`: the buffer holds no whole message yet; nothing was consumed. Once the length
///   prefix is known the decoder reserves room for the rest of the frame (never more than
///   [`Limits::max_message_len`]).
/// * A length prefix over the limit, or one that cannot be right for the message id, is an
///   error as soon as the prefix (and id) are buffered, before the body is waited for.
/// * Payloads (`bitfield`, `piece`, `extended`, `hashes`, unknown) are split off the buffer
///   as [`Bytes`](bytes::Bytes) without copying.
/// * [`decode_slice`](Self::decode_slice) is the borrowed path: the same checks on a plain
///   slice, giving a [`MessageRef`] that borrows its payload. [`decode`](Self::decode) is built
///   on it, so the two cannot disagree.
/// * After an error the stream is out of step and the connection should be closed; how much
///   of the buffer was consumed is unspecified.
///
/// ```
/// use bytes::BytesMut;
/// use tessera_wire::{BlockRequest, Limits, Message, MessageDecoder};
///
/// let dec = MessageDecoder::new(Limits::default().for_torrent(1 << 20, 1 << 18));
/// let mut buf = BytesMut::from(&[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0][..]);
/// let msg = dec.decode(&mut buf).unwrap();
/// assert_eq!(msg, Some(Message::Request(BlockRequest { index: 1, begin: 16384, length: 16384 })));
///
/// // A request for a block past the end of its piece is refused.
/// let mut buf = BytesMut::from(&[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 4, 0, 0, 0, 0, 0x40, 0][..]);
/// assert!(dec.decode(&mut buf).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct MessageDecoder {
    limits: Limits,
}

impl MessageDecoder {
    /// A decoder with the given limits.
    pub fn new(limits: Limits) -> Self {
        MessageDecoder { limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits, e.g. once the metadata of a magnet link has arrived.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Decodes one message from the front of `src`, splitting it off the buffer.
    ///
    /// The frame is parsed and checked in place by the same code as
    /// [`decode_slice`](Self::decode_slice), then split off `src` once; a payload is the tail of
    /// that frame, shared without copying.
    ///
    /// # Errors
    /// Malformed frames ([`Error::IncorrectLength`], [`Error::TooShort`],
    /// [`Error::HashesNotMultiple`]) and frames that break the limits or the torrent geometry
    /// ([`Error::MessageTooLong`], [`Error::PieceOutOfRange`], [`Error::InvalidBlockLength`],
    /// [`Error::BlockOutOfPiece`], [`Error::SpareBitsSet`]).
    #[inline(always)]
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Message>, Error> {
        let Some((msg, used)) = self.decode_slice(src)? else {
            self.reserve_frame(src);
            return Ok(None);
        };
        // Each arm consumes the frame itself, so that with everything inlined the caller's
        // `match` on the message can be merged with the one on the id.
        Ok(Some(match msg {
            MessageRef::KeepAlive => consumed(src, used, Message::KeepAlive),
            MessageRef::Choke => consumed(src, used, Message::Choke),
            MessageRef::Unchoke => consumed(src, used, Message::Unchoke),
            MessageRef::Interested => consumed(src, used, Message::Interested),
            MessageRef::NotInterested => consumed(src, used, Message::NotInterested),
            MessageRef::Have { piece } => consumed(src, used, Message::Have { piece }),
            MessageRef::Request(r) => consumed(src, used, Message::Request(r)),
            MessageRef::Cancel(r) => consumed(src, used, Message::Cancel(r)),
            MessageRef::Port(p) => consumed(src, used, Message::Port(p)),
            MessageRef::SuggestPiece { piece } => {
                consumed(src, used, Message::SuggestPiece { piece })
            }
            MessageRef::HaveAll => consumed(src, used, Message::HaveAll),
            MessageRef::HaveNone => consumed(src, used, Message::HaveNone),
            MessageRef::RejectRequest(r) => consumed(src, used, Message::RejectRequest(r)),
            MessageRef::AllowedFast { piece } => {
                consumed(src, used, Message::AllowedFast { piece })
            }
            MessageRef::HashRequest(r) => consumed(src, used, Message::HashRequest(r)),
            MessageRef::HashReject(r) => consumed(src, used, Message::HashReject(r)),
            MessageRef::Bitfield(b) => Message::Bitfield(split_payload(src, used, b.len())),
            MessageRef::Piece { index, begin, data } => Message::Piece {
                index,
                begin,
                data: split_payload(src, used, data.len()),
            },
            MessageRef::Extended { id, payload } => Message::Extended {
                id,
                payload: split_payload(src, used, payload.len()),
            },
            MessageRef::Hashes { request, hashes } => Message::Hashes(Hashes {
                request,
                hashes: split_payload(src, used, hashes.len()),
            }),
            MessageRef::Unknown { id, payload } => Message::Unknown {
                id,
                payload: split_payload(src, used, payload.len()),
            },
        }))
    }

    /// Decodes one message from the front of `src` without copying or taking ownership: the
    /// borrowed path, for a driver that handles each message in place (hashes a block and writes
    /// it out, say) before it drops the bytes.
    ///
    /// Returns the message, whose payload borrows from `src`, and the number of bytes of `src`
    /// it was decoded from (the frame, length prefix included); the next message starts there.
    /// `Ok(None)` means `src` does not hold a whole message yet. It makes exactly the checks of
    /// [`decode`](Self::decode), which calls it: the two accept the same frames and refuse the
    /// others with the same error.
    ///
    /// ```
    /// use tessera_wire::{MessageDecoder, MessageRef};
    ///
    /// let dec = MessageDecoder::default();
    /// let stream = [0, 0, 0, 5, 4, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3, 20, 1, b'a', 0, 0, 0, 5, 4, 0];
    /// let mut at = 0;
    /// let mut got = Vec::new();
    /// while let Some((msg, used)) = dec.decode_slice(&stream[at..]).unwrap() {
    ///     got.push(msg);
    ///     at += used;
    /// }
    /// assert_eq!(got, [
    ///     MessageRef::Have { piece: 7 },
    ///     MessageRef::KeepAlive,
    ///     MessageRef::Extended { id: 1, payload: b"a" },
    /// ]);
    /// // The last frame is cut short: more bytes are needed.
    /// assert_eq!(at, 20);
    /// ```
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    // Inlined into the caller's loop, the `match` on the message that follows can be merged with
    // the one on the id here: one hard-to-predict branch per message instead of two.
    #[inline(always)]
    pub fn decode_slice<'a>(
        &self,
        src: &'a [u8],
    ) -> Result<Option<(MessageRef<'a>, usize)>, Error> {
        let Some(len) = read_u32(src, 0) else {
            return Ok(None);
        };
        if len == 0 {
            return Ok(Some((MessageRef::KeepAlive, PREFIX_LEN)));
        }
        if len > self.limits.max_message_len {
            return Err(too_long(len, self.limits.max_message_len));
        }
        let frame_len = PREFIX_LEN + len as usize;
        let Some(frame) = src.get(..frame_len) else {
            // Refuse a frame that cannot be right before waiting for (and buffering) its body.
            if let Some(&msg_id) = src.get(PREFIX_LEN) {
                self.check_frame(msg_id, len)?;
            }
            return Ok(None);
        };
        let Some((&msg_id, body)) = frame.get(PREFIX_LEN..).and_then(<[u8]>::split_first) else {
            return Ok(None);
        };
        let msg = self.parse(msg_id, len, body)?;
        Ok(Some((msg, frame_len)))
    }

    /// After `Ok(None)`: once the length prefix and id are buffered, makes room for the rest of
    /// the frame (bounded by the limit, which the prefix has been checked against).
    #[cold]
    #[inline(never)]
    fn reserve_frame(&self, src: &mut BytesMut) {
        if src.len() > PREFIX_LEN {
            if let Some(len) = read_u32(src, 0) {
                let frame_len = PREFIX_LEN + len as usize;
                src.reserve(frame_len.saturating_sub(src.len()));
            }
        }
    }

    /// Checks the length prefix against what the message id allows: the checks that
    /// [`parse`](Self::parse) makes first, before it looks at the body.
    #[cold]
    #[inline(never)]
    fn check_frame(&self, msg_id: u8, len: u32) -> Result<(), Error> {
        match msg_id {
            id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => {
                exact(msg_id, len, EMPTY_LEN)
            }
            id::HAVE_ALL | id::HAVE_NONE => exact(msg_id, len, EMPTY_LEN),
            id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => exact(msg_id, len, INDEX_LEN),
            id::REQUEST | id::CANCEL | id::REJECT_REQUEST => exact(msg_id, len, BLOCK_LEN),
            id::PORT => exact(msg_id, len, PORT_LEN),
            id::BITFIELD => self.check_bitfield_len(len),
            id::PIECE => self.check_piece_len(len),
            id::EXTENDED => at_least(msg_id, len, EXTENDED_MIN_LEN),
            id::HASH_REQUEST | id::HASH_REJECT => exact(msg_id, len, HASH_REQUEST_FRAME_LEN),
            id::HASHES => check_hashes_len(len),
            _ => Ok(()),
        }
    }

    /// Decodes the `body` (after the id byte) of a whole buffered frame whose length prefix is
    /// `len` and whose id is `msg_id`.
    ///
    /// One `match` on the id and the length both checks the length (exactly as
    /// [`check_frame`](Self::check_frame) does, and first) and reads the fields: on a stream of
    /// small messages of mixed types the branch on the id is the one that is hard to predict, so
    /// it is taken once. A fixed-size message with any other length falls through to the cold
    /// arm, which asks `check_frame` for the error.
    #[inline(always)]
    fn parse<'a>(&self, msg_id: u8, len: u32, body: &'a [u8]) -> Result<MessageRef<'a>, Error> {
        Ok(match (msg_id, len) {
            (id::CHOKE, EMPTY_LEN) => MessageRef::Choke,
            (id::UNCHOKE, EMPTY_LEN) => MessageRef::Unchoke,
            (id::INTERESTED, EMPTY_LEN) => MessageRef::Interested,
            (id::NOT_INTERESTED, EMPTY_LEN) => MessageRef::NotInterested,
            (id::HAVE_ALL, EMPTY_LEN) => MessageRef::HaveAll,
            (id::HAVE_NONE, EMPTY_LEN) => MessageRef::HaveNone,
            (id::HAVE, INDEX_LEN) => MessageRef::Have {
                piece: self.check_index(field(body, 0))?,
            },
            (id::SUGGEST_PIECE, INDEX_LEN) => MessageRef::SuggestPiece {
                piece: self.check_index(field(body, 0))?,
            },
            (id::ALLOWED_FAST, INDEX_LEN) => MessageRef::AllowedFast {
                piece: self.check_index(field(body, 0))?,
            },
            (id::REQUEST, BLOCK_LEN) => MessageRef::Request(self.read_block(body)?),
            (id::CANCEL, BLOCK_LEN) => MessageRef::Cancel(self.read_block(body)?),
            (id::REJECT_REQUEST, BLOCK_LEN) => MessageRef::RejectRequest(self.read_block(body)?),
            (id::PORT, PORT_LEN) => {
                let port = body.first_chunk::<2>().copied().unwrap_or_default();
                MessageRef::Port(u16::from_be_bytes(port))
            }
            (id::PIECE, _) => {
                self.check_piece_len(len)?;
                let (index, begin) = (field(body, 0), field(body, 1));
                self.check_block(index, begin, len - 9)?;
                let data = body.get(8..).unwrap_or_default();
                MessageRef::Piece { index, begin, data }
            }
            (id::BITFIELD, _) => {
                self.check_bitfield_len(len)?;
                self.check_spare_bits(body)?;
                MessageRef::Bitfield(body)
            }
            (id::EXTENDED, _) => {
                at_least(msg_id, len, EXTENDED_MIN_LEN)?;
                let (&ext, payload) = body.split_first().unwrap_or((&0, &[]));
                MessageRef::Extended { id: ext, payload }
            }
            (id::HASH_REQUEST, HASH_REQUEST_FRAME_LEN) => {
                MessageRef::HashRequest(read_hash_request(body))
            }
            (id::HASH_REJECT, HASH_REQUEST_FRAME_LEN) => {
                MessageRef::HashReject(read_hash_request(body))
            }
            (id::HASHES, _) => {
                check_hashes_len(len)?;
                MessageRef::Hashes {
                    request: read_hash_request(body),
                    hashes: body.get(HASH_REQUEST_LEN..).unwrap_or_default(),
                }
            }
            (
                id::CHOKE
                | id::UNCHOKE
                | id::INTERESTED
                | id::NOT_INTERESTED
                | id::HAVE_ALL
                | id::HAVE_NONE
                | id::HAVE
                | id::SUGGEST_PIECE
                | id::ALLOWED_FAST
                | id::REQUEST
                | id::CANCEL
                | id::REJECT_REQUEST
                | id::PORT
                | id::HASH_REQUEST
                | id::HASH_REJECT,
                _,
            ) => return Err(self.frame_error(msg_id, len)),
            (_, _) => MessageRef::Unknown {
                id: msg_id,
                payload: body,
            },
        })
    }

    /// The error for a fixed-size message whose length prefix is wrong.
    #[cold]
    #[inline(never)]
    fn frame_error(&self, msg_id: u8, len: u32) -> Error {
        match self.check_frame(msg_id, len) {
            Err(e) => e,
            // Unreachable for the ids that `parse` sends here; the error is still the right one.
            Ok(()) => incorrect_length(msg_id, len, EMPTY_LEN),
        }
    }

    /// The block of a `request`, `cancel` or `reject request` body, checked.
    #[inline]
    fn read_block(&self, body: &[u8]) -> Result<BlockRequest, Error> {
        self.check_block(field(body, 0), field(body, 1), field(body, 2))
    }

    #[inline]
    fn check_bitfield_len(&self, len: u32) -> Result<(), Error> {
        match self.limits.bitfield_len() {
            Some(n) => exact(id::BITFIELD, len, n.saturating_add(1)),
            None => Ok(()),
        }
    }

    #[inline]
    fn check_piece_len(&self, len: u32) -> Result<(), Error> {
        at_least(id::PIECE, len, 9)?;
        self.check_block_len(len - 9)
    }

    #[inline]
    fn check_index(&self, index: u32) -> Result<u32, Error> {
        match self.limits.num_pieces {
            Some(num_pieces) if index >= num_pieces => Err(out_of_range(index, num_pieces)),
            _ => Ok(index),
        }
    }

    #[inline]
    fn check_block_len(&self, length: u32) -> Result<(), Error> {
        let max = self.limits.max_request_len;
        if length.wrapping_sub(1) >= max {
            Err(invalid_block_length(length, max))
        } else {
            Ok(())
        }
    }

    #[inline]
    fn check_block(&self, index: u32, begin: u32, length: u32) -> Result<BlockRequest, Error> {
        self.check_block_len(length)?;
        self.check_index(index)?;
        if self.limits.piece_length.is_some() {
            self.check_block_in_piece(index, begin, length)?;
        }
        Ok(BlockRequest {
            index,
            begin,
            length,
        })
    }

    /// `Ok` if the block lies inside its piece (or the geometry is unknown).
    fn check_block_in_piece(&self, index: u32, begin: u32, length: u32) -> Result<(), Error> {
        match self.limits.piece_size(index) {
            Some(piece_size) if begin.checked_add(length).is_none_or(|end| end > piece_size) => {
                Err(block_out_of_piece(index, begin, length, piece_size))
            }
            _ => Ok(()),
        }
    }

    #[inline]
    fn check_spare_bits(&self, bits: &[u8]) -> Result<(), Error> {
        let Some(num_pieces) = self.limits.num_pieces else {
            return Ok(());
        };
        let used = num_pieces % 8;
        if used == 0 {
            return Ok(());
        }
        let mask = 0xFFu8 >> used;
        match bits.last() {
            Some(last) if last & mask != 0 => Err(Error::SpareBitsSet { num_pieces }),
            _ => Ok(()),
        }
    }
}

/// Length prefix of a message with no payload (the id byte alone).
const EMPTY_LEN: u32 = 1;
/// Length prefix of `have`, `suggest piece` and `allowed fast`: id and a piece index.
const INDEX_LEN: u32 = 5;
/// Length prefix of `request`, `cancel` and `reject request`: id and three `u32`s.
const BLOCK_LEN: u32 = 13;
/// Length prefix of `port`: id and a `u16`.
const PORT_LEN: u32 = 3;
/// Smallest length prefix of `extended`: id and the extended message id.
const EXTENDED_MIN_LEN: u32 = 2;
/// Length prefix of `hash request` and `hash reject`, and the smallest of `hashes`.
const HASH_REQUEST_FRAME_LEN: u32 = 1 + HASH_REQUEST_LEN as u32;

/// `Ok` if the length prefix is exactly `expected`.
#[inline]
fn exact(msg_id: u8, len: u32, expected: u32) -> Result<(), Error> {
    if len == expected {
        Ok(())
    } else {
        Err(incorrect_length(msg_id, len, expected))
    }
}

/// `Ok` if the length prefix is at least `min`.
#[inline]
fn at_least(msg_id: u8, len: u32, min: u32) -> Result<(), Error> {
    if len >= min {
        Ok(())
    } else {
        Err(too_short(msg_id, len, min))
    }
}

/// `Ok` if a `hashes` frame holds a hash request and a whole number of hashes.
#[inline]
fn check_hashes_len(len: u32) -> Result<(), Error> {
    at_least(id::HASHES, len, HASH_REQUEST_FRAME_LEN)?;
    let hashes = len - HASH_REQUEST_FRAME_LEN;
    if hashes % 32 == 0 {
        Ok(())
    } else {
        Err(Error::HashesNotMultiple { len: hashes })
    }
}

// Errors are built out of line: the hot path only tests and branches.

#[cold]
#[inline(never)]
fn incorrect_length(msg_id: u8, len: u32, expected: u32) -> Error {
    Error::IncorrectLength {
        id: msg_id,
        expected,
        got: len,
    }
}

#[cold]
#[inline(never)]
fn too_short(msg_id: u8, len: u32, min: u32) -> Error {
    Error::TooShort {
        id: msg_id,
        min,
        got: len,
    }
}

#[cold]
#[inline(never)]
fn too_long(len: u32, max: u32) -> Error {
    Error::MessageTooLong { len, max }
}

#[cold]
#[inline(never)]
fn out_of_range(index: u32, num_pieces: u32) -> Error {
    Error::PieceOutOfRange { index, num_pieces }
}

#[cold]
#[inline(never)]
fn invalid_block_length(length: u32, max: u32) -> Error {
    Error::InvalidBlockLength { length, max }
}

#[cold]
#[inline(never)]
fn block_out_of_piece(index: u32, begin: u32, length: u32, piece_size: u32) -> Error {
    Error::BlockOutOfPiece {
        index,
        begin,
        length,
        piece_size,
    }
}

/// `msg`, after dropping its frame of `used` bytes from the front of `src`.
#[inline(always)]
fn consumed(src: &mut BytesMut, used: usize, msg: Message) -> Message {
    src.advance(used);
    msg
}

/// Splits the frame of `used` bytes off the front of `src` (one split for the whole frame) and
/// returns its tail of `payload_len` bytes, without copying.
#[inline(always)]
fn split_payload(src: &mut BytesMut, used: usize, payload_len: usize) -> Bytes {
    let mut frame = src.split_to(used).freeze();
    frame.advance(used.saturating_sub(payload_len));
    frame
}

/// Big-endian `u32` at `at`, if the bytes are there.
#[inline]
fn read_u32(src: &[u8], at: usize) -> Option<u32> {
    let b = src.get(at..at.checked_add(4)?)?;
    <[u8; 4]>::try_from(b).ok().map(u32::from_be_bytes)
}

/// The `i`th big-endian `u32` field of a body whose length has been checked (zero if absent,
/// which the checks rule out).
#[inline]
fn field(body: &[u8], i: usize) -> u32 {
    read_u32(body, 4 * i).unwrap_or_default()
}

/// The hash request at the start of a `hash request`, `hash reject` or `hashes` body.
#[inline]
fn read_hash_request(body: &[u8]) -> HashRequest {
    let root = body
        .get(..32)
        .and_then(Sha256Hash::from_slice)
        .unwrap_or_default();
    let field = |i: usize| read_u32(body, 32 + 4 * i).unwrap_or_default();
    HashRequest {
        pieces_root: root,
        base_layer: field(0),
        index: field(1),
        length: field(2),
        proof_layers: field(3),
    }
}
