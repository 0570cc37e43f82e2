//! The incremental, allocation-bounded message decoder.

use bytes::{Buf, BytesMut};
use tessera_metainfo::Sha256Hash;

use crate::error::Error;
use crate::limits::Limits;
use crate::message::{message_id as id, BlockRequest, HashRequest, Hashes, Message, PREFIX_LEN};

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

    /// Decodes one message from the front of `src`.
    ///
    /// # Errors
    /// Malformed frames ([`Error::IncorrectLength`], [`Error::TooShort`],
    /// [`Error::HashesNotMultiple`]) and frames that break the limits or the torrent geometry
    /// ([`Error::MessageTooLong`], [`Error::PieceOutOfRange`], [`Error::InvalidBlockLength`],
    /// [`Error::BlockOutOfPiece`], [`Error::SpareBitsSet`]).
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Message>, Error> {
        let Some(len) = read_u32(src, 0) else {
            return Ok(None);
        };
        if len == 0 {
            src.advance(PREFIX_LEN);
            return Ok(Some(Message::KeepAlive));
        }
        if len > self.limits.max_message_len {
            return Err(Error::MessageTooLong {
                len,
                max: self.limits.max_message_len,
            });
        }
        let Some(&msg_id) = src.get(PREFIX_LEN) else {
            return Ok(None);
        };
        let frame_len = PREFIX_LEN + len as usize;
        if src.len() < frame_len {
            // Refuse a frame that cannot be right before waiting for (and buffering) its body.
            self.check_frame(msg_id, len)?;
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        self.parse(msg_id, len, src).map(Some)
    }

    /// Checks the length prefix against what the message id allows: the checks that
    /// [`parse`](Self::parse) makes first, before it looks at the body.
    fn check_frame(&self, msg_id: u8, len: u32) -> Result<(), Error> {
        match msg_id {
            id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => exact(msg_id, len, 1),
            id::HAVE_ALL | id::HAVE_NONE => exact(msg_id, len, 1),
            id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => exact(msg_id, len, 5),
            id::REQUEST | id::CANCEL | id::REJECT_REQUEST => exact(msg_id, len, 13),
            id::PORT => exact(msg_id, len, 3),
            id::BITFIELD => self.check_bitfield_len(len),
            id::PIECE => self.check_piece_len(len),
            id::EXTENDED => at_least(msg_id, len, 2),
            id::HASH_REQUEST | id::HASH_REJECT => exact(msg_id, len, 1 + 48),
            id::HASHES => check_hashes_len(len),
            _ => Ok(()),
        }
    }

    /// Decodes a whole buffered frame of `len` bytes (after the prefix) whose id is `msg_id`.
    ///
    /// One `match` both checks the length (exactly as [`check_frame`](Self::check_frame)
    /// does, and first) and reads the fields: on a stream of small messages of mixed types the
    /// branch on the id is the one that is hard to predict, so it is taken once.
    fn parse(&self, msg_id: u8, len: u32, src: &mut BytesMut) -> Result<Message, Error> {
        // Fixed-size fields start after the prefix and the id byte.
        let field = |i: usize| read_u32(src, 5 + 4 * i).unwrap_or_default();
        let body_len = len as usize - 1;
        let msg = match msg_id {
            id::CHOKE => exact(msg_id, len, 1).map(|()| Message::Choke)?,
            id::UNCHOKE => exact(msg_id, len, 1).map(|()| Message::Unchoke)?,
            id::INTERESTED => exact(msg_id, len, 1).map(|()| Message::Interested)?,
            id::NOT_INTERESTED => exact(msg_id, len, 1).map(|()| Message::NotInterested)?,
            id::HAVE_ALL => exact(msg_id, len, 1).map(|()| Message::HaveAll)?,
            id::HAVE_NONE => exact(msg_id, len, 1).map(|()| Message::HaveNone)?,
            id::HAVE => {
                exact(msg_id, len, 5)?;
                let piece = self.check_index(field(0))?;
                Message::Have { piece }
            }
            id::SUGGEST_PIECE => {
                exact(msg_id, len, 5)?;
                let piece = self.check_index(field(0))?;
                Message::SuggestPiece { piece }
            }
            id::ALLOWED_FAST => {
                exact(msg_id, len, 5)?;
                let piece = self.check_index(field(0))?;
                Message::AllowedFast { piece }
            }
            id::REQUEST => {
                exact(msg_id, len, 13)?;
                Message::Request(self.check_block(field(0), field(1), field(2))?)
            }
            id::CANCEL => {
                exact(msg_id, len, 13)?;
                Message::Cancel(self.check_block(field(0), field(1), field(2))?)
            }
            id::REJECT_REQUEST => {
                exact(msg_id, len, 13)?;
                Message::RejectRequest(self.check_block(field(0), field(1), field(2))?)
            }
            id::PORT => {
                exact(msg_id, len, 3)?;
                let hi = src.get(5).copied().unwrap_or_default();
                let lo = src.get(6).copied().unwrap_or_default();
                Message::Port(u16::from_be_bytes([hi, lo]))
            }
            id::PIECE => {
                self.check_piece_len(len)?;
                let (index, begin) = (field(0), field(1));
                self.check_block(index, begin, len - 9)?;
                src.advance(PREFIX_LEN + 9);
                let data = src.split_to(body_len - 8).freeze();
                return Ok(Message::Piece { index, begin, data });
            }
            id::BITFIELD => {
                self.check_bitfield_len(len)?;
                self.check_spare_bits(
                    src.get(PREFIX_LEN + 1..PREFIX_LEN + 1 + body_len)
                        .unwrap_or_default(),
                )?;
                src.advance(PREFIX_LEN + 1);
                return Ok(Message::Bitfield(src.split_to(body_len).freeze()));
            }
            id::EXTENDED => {
                at_least(msg_id, len, 2)?;
                let ext = src.get(5).copied().unwrap_or_default();
                src.advance(PREFIX_LEN + 2);
                let payload = src.split_to(body_len - 1).freeze();
                return Ok(Message::Extended { id: ext, payload });
            }
            id::HASH_REQUEST => {
                exact(msg_id, len, 1 + 48)?;
                Message::HashRequest(read_hash_request(src))
            }
            id::HASH_REJECT => {
                exact(msg_id, len, 1 + 48)?;
                Message::HashReject(read_hash_request(src))
            }
            id::HASHES => {
                check_hashes_len(len)?;
                let request = read_hash_request(src);
                src.advance(PREFIX_LEN + 49);
                let hashes = src.split_to(body_len - 48).freeze();
                return Ok(Message::Hashes(Hashes { request, hashes }));
            }
            _ => {
                src.advance(PREFIX_LEN + 1);
                let payload = src.split_to(body_len).freeze();
                return Ok(Message::Unknown {
                    id: msg_id,
                    payload,
                });
            }
        };
        src.advance(PREFIX_LEN + len as usize);
        Ok(msg)
    }

    fn check_bitfield_len(&self, len: u32) -> Result<(), Error> {
        match self.limits.bitfield_len() {
            Some(n) => exact(id::BITFIELD, len, n.saturating_add(1)),
            None => Ok(()),
        }
    }

    fn check_piece_len(&self, len: u32) -> Result<(), Error> {
        at_least(id::PIECE, len, 9)?;
        self.check_block_len(len - 9)
    }

    fn check_index(&self, index: u32) -> Result<u32, Error> {
        match self.limits.num_pieces {
            Some(num_pieces) if index >= num_pieces => {
                Err(Error::PieceOutOfRange { index, num_pieces })
            }
            _ => Ok(index),
        }
    }

    fn check_block_len(&self, length: u32) -> Result<(), Error> {
        let max = self.limits.max_request_len;
        if length == 0 || length > max {
            Err(Error::InvalidBlockLength { length, max })
        } else {
            Ok(())
        }
    }

    fn check_block(&self, index: u32, begin: u32, length: u32) -> Result<BlockRequest, Error> {
        self.check_block_len(length)?;
        self.check_index(index)?;
        if let Some(piece_size) = self.limits.piece_size(index) {
            if begin.checked_add(length).is_none_or(|end| end > piece_size) {
                return Err(Error::BlockOutOfPiece {
                    index,
                    begin,
                    length,
                    piece_size,
                });
            }
        }
        Ok(BlockRequest {
            index,
            begin,
            length,
        })
    }

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

/// `Ok` if the length prefix is exactly `expected`.
fn exact(msg_id: u8, len: u32, expected: u32) -> Result<(), Error> {
    if len == expected {
        Ok(())
    } else {
        Err(Error::IncorrectLength {
            id: msg_id,
            expected,
            got: len,
        })
    }
}

/// `Ok` if the length prefix is at least `min`.
fn at_least(msg_id: u8, len: u32, min: u32) -> Result<(), Error> {
    if len >= min {
        Ok(())
    } else {
        Err(Error::TooShort {
            id: msg_id,
            min,
            got: len,
        })
    }
}

/// `Ok` if a `hashes` frame holds a hash request and a whole number of hashes.
fn check_hashes_len(len: u32) -> Result<(), Error> {
    at_least(id::HASHES, len, 1 + 48)?;
    let hashes = len - 49;
    if hashes % 32 == 0 {
        Ok(())
    } else {
        Err(Error::HashesNotMultiple { len: hashes })
    }
}

/// Big-endian `u32` at `at`, if the bytes are there.
fn read_u32(src: &[u8], at: usize) -> Option<u32> {
    let b = src.get(at..at.checked_add(4)?)?;
    <[u8; 4]>::try_from(b).ok().map(u32::from_be_bytes)
}

/// The hash request that follows the id byte of a buffered frame.
fn read_hash_request(src: &[u8]) -> HashRequest {
    let start = PREFIX_LEN + 1;
    let root = src
        .get(start..start + 32)
        .and_then(Sha256Hash::from_slice)
        .unwrap_or_default();
    let field = |i: usize| read_u32(src, start + 32 + 4 * i).unwrap_or_default();
    HashRequest {
        pieces_root: root,
        base_layer: field(0),
        index: field(1),
        length: field(2),
        proof_layers: field(3),
    }
}
