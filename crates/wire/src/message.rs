//! Peer wire messages (BEP 3, 5, 6, 10, 52) and their encoding.
//!
//! Every message but keep-alive is framed as a 4-byte big-endian length, a 1-byte id and a
//! payload; the length counts the id and the payload. Decoding lives in
//! [`MessageDecoder`](crate::MessageDecoder), which checks the frame against [`Limits`](crate::Limits).

use bytes::{BufMut, Bytes, BytesMut};
use tessera_metainfo::Sha256Hash;

use crate::error::Error;

/// Message ids, as the BEPs number them.
pub mod message_id {
    /// BEP 3: `choke`.
    pub const CHOKE: u8 = 0;
    /// BEP 3: `unchoke`.
    pub const UNCHOKE: u8 = 1;
    /// BEP 3: `interested`.
    pub const INTERESTED: u8 = 2;
    /// BEP 3: `not interested`.
    pub const NOT_INTERESTED: u8 = 3;
    /// BEP 3: `have`.
    pub const HAVE: u8 = 4;
    /// BEP 3: `bitfield`.
    pub const BITFIELD: u8 = 5;
    /// BEP 3: `request`.
    pub const REQUEST: u8 = 6;
    /// BEP 3: `piece`.
    pub const PIECE: u8 = 7;
    /// BEP 3: `cancel`.
    pub const CANCEL: u8 = 8;
    /// BEP 5: `port` (the sender's DHT port).
    pub const PORT: u8 = 9;
    /// BEP 6: `suggest piece`.
    pub const SUGGEST_PIECE: u8 = 0x0D;
    /// BEP 6: `have all`.
    pub const HAVE_ALL: u8 = 0x0E;
    /// BEP 6: `have none`.
    pub const HAVE_NONE: u8 = 0x0F;
    /// BEP 6: `reject request`.
    pub const REJECT_REQUEST: u8 = 0x10;
    /// BEP 6: `allowed fast`.
    pub const ALLOWED_FAST: u8 = 0x11;
    /// BEP 10: an extended message; the payload starts with the extended message id.
    pub const EXTENDED: u8 = 20;
    /// BEP 52: `hash request`.
    pub const HASH_REQUEST: u8 = 21;
    /// BEP 52: `hashes`.
    pub const HASHES: u8 = 22;
    /// BEP 52: `hash reject`.
    pub const HASH_REJECT: u8 = 23;
}

use message_id as id;

/// Bytes of a length prefix.
pub(crate) const PREFIX_LEN: usize = 4;
/// Bytes of a piece message before its data: prefix, id, index, begin.
pub const PIECE_HEADER_LEN: usize = 13;
/// Bytes of a hash request payload: pieces root and four `u32`s.
pub(crate) const HASH_REQUEST_LEN: usize = 32 + 16;

/// A block of a piece: the payload of `request`, `cancel` and `reject request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRequest {
    /// Piece index.
    pub index: u32,
    /// Byte offset of the block in the piece.
    pub begin: u32,
    /// Length of the block in bytes.
    pub length: u32,
}

/// A BEP 52 request for merkle hashes of one file: the payload of `hash request` and
/// `hash reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// Root of the file's merkle tree (its `pieces root`).
    pub pieces_root: Sha256Hash,
    /// Height of the layer the hashes are taken from (0: 16 KiB block hashes).
    pub base_layer: u32,
    /// Index of the first hash in that layer.
    pub index: u32,
    /// Number of hashes from the base layer.
    pub length: u32,
    /// Number of layers of uncle hashes (the proof) to add above the base layer hashes.
    pub proof_layers: u32,
}

/// A BEP 52 `hashes` message: the request it answers and the hashes themselves.
///
/// ```
/// use bytes::Bytes;
/// use tessera_metainfo::Sha256Hash;
/// use tessera_wire::{HashRequest, Hashes};
///
/// let request = HashRequest {
///     pieces_root: Sha256Hash([1; 32]),
///     base_layer: 0,
///     index: 0,
///     length: 2,
///     proof_layers: 1,
/// };
/// let h = Hashes::from_hashes(request, &[Sha256Hash([2; 32]), Sha256Hash([3; 32]), Sha256Hash([4; 32])]);
/// assert_eq!(h.len(), 3);
/// assert_eq!(h.base().collect::<Vec<_>>(), [Sha256Hash([2; 32]), Sha256Hash([3; 32])]);
/// assert_eq!(h.proof().collect::<Vec<_>>(), [Sha256Hash([4; 32])]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hashes {
    /// The request this answers.
    pub request: HashRequest,
    /// Concatenated 32-byte hashes: the base layer hashes, then the uncle hashes of the proof
    /// from the lowest layer up. The decoder guarantees a multiple of 32 bytes; any trailing
    /// partial hash is ignored by the accessors.
    pub hashes: Bytes,
}

impl Hashes {
    /// Builds the message from a list of hashes.
    pub fn from_hashes(request: HashRequest, hashes: &[Sha256Hash]) -> Self {
        let mut b = BytesMut::with_capacity(hashes.len().saturating_mul(32));
        for h in hashes {
            b.put_slice(&h.0);
        }
        Hashes {
            request,
            hashes: b.freeze(),
        }
    }

    /// Number of whole hashes carried.
    pub fn len(&self) -> usize {
        self.hashes.len() / 32
    }

    /// True if no hash is carried.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every hash, base layer then proof.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Sha256Hash> + '_ {
        self.hashes
            .chunks_exact(32)
            .map(|c| Sha256Hash::from_slice(c).unwrap_or_default())
    }

    /// The hashes of the base layer: the first `request.length` hashes.
    pub fn base(&self) -> impl Iterator<Item = Sha256Hash> + '_ {
        self.iter().take(self.request.length as usize)
    }

    /// The uncle hashes of the proof: every hash after the base layer ones.
    pub fn proof(&self) -> impl Iterator<Item = Sha256Hash> + '_ {
        self.iter().skip(self.request.length as usize)
    }
}

/// One peer wire message.
///
/// Payloads are [`Bytes`]: the decoder splits them off the receive buffer without copying.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// A zero-length frame that keeps the connection open.
    KeepAlive,
    /// BEP 3: the sender will not serve requests.
    Choke,
    /// BEP 3: the sender will serve requests.
    Unchoke,
    /// BEP 3: the sender wants pieces the receiver has.
    Interested,
    /// BEP 3: the sender wants nothing from the receiver.
    NotInterested,
    /// BEP 3: the sender has completed and verified a piece.
    Have {
        /// Piece index.
        piece: u32,
    },
    /// BEP 3: the pieces the sender has, one bit per piece, high bit of the first byte first.
    Bitfield(Bytes),
    /// BEP 3: asks for a block.
    Request(BlockRequest),
    /// BEP 3: a block of data.
    Piece {
        /// Piece index.
        index: u32,
        /// Byte offset of the block in the piece.
        begin: u32,
        /// The block.
        data: Bytes,
    },
    /// BEP 3: withdraws a request.
    Cancel(BlockRequest),
    /// BEP 5: the sender's DHT port.
    Port(u16),
    /// BEP 6: the sender suggests downloading this piece.
    SuggestPiece {
        /// Piece index.
        piece: u32,
    },
    /// BEP 6: the sender has every piece (instead of a bitfield).
    HaveAll,
    /// BEP 6: the sender has no piece (instead of a bitfield).
    HaveNone,
    /// BEP 6: the sender will not serve this request.
    RejectRequest(BlockRequest),
    /// BEP 6: the receiver may request this piece even while choked.
    AllowedFast {
        /// Piece index.
        piece: u32,
    },
    /// BEP 10: an extended message. Id 0 is the extension handshake; other ids are the ones
    /// the receiver assigned in its handshake.
    Extended {
        /// Extended message id.
        id: u8,
        /// The payload after the id (bencoded for most extensions).
        payload: Bytes,
    },
    /// BEP 52: asks for merkle hashes.
    HashRequest(HashRequest),
    /// BEP 52: merkle hashes answering a hash request.
    Hashes(Hashes),
    /// BEP 52: the sender will not answer this hash request.
    HashReject(HashRequest),
    /// A message with an id this codec does not know, kept whole so that the caller can
    /// ignore it (BEP 3 asks peers to ignore unknown messages) or handle it.
    Unknown {
        /// The message id.
        id: u8,
        /// The payload after the id.
        payload: Bytes,
    },
}

impl Message {
    /// The message id, or `None` for keep-alive.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have { .. } => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::SuggestPiece { .. } => id::SUGGEST_PIECE,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::RejectRequest(_) => id::REJECT_REQUEST,
            Message::AllowedFast { .. } => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
            Message::HashRequest(_) => id::HASH_REQUEST,
            Message::Hashes(_) => id::HASHES,
            Message::HashReject(_) => id::HASH_REJECT,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// Length of the frame body: the value of the length prefix (id byte and payload).
    fn body_len(&self) -> usize {
        match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have { .. } | Message::SuggestPiece { .. } | Message::AllowedFast { .. } => 5,
            Message::Port(_) => 3,
            Message::Request(_) | Message::Cancel(_) | Message::RejectRequest(_) => 13,
            Message::Bitfield(b) => 1usize.saturating_add(b.len()),
            Message::Piece { data, .. } => 9usize.saturating_add(data.len()),
            Message::Extended { payload, .. } => 2usize.saturating_add(payload.len()),
            Message::HashRequest(_) | Message::HashReject(_) => 1 + HASH_REQUEST_LEN,
            Message::Hashes(h) => (1 + HASH_REQUEST_LEN).saturating_add(h.hashes.len()),
            Message::Unknown { payload, .. } => 1usize.saturating_add(payload.len()),
        }
    }

    /// Length of the whole encoded frame, length prefix included.
    pub fn encoded_len(&self) -> usize {
        self.body_len().saturating_add(PREFIX_LEN)
    }

    /// Appends the framed message to `dst`. Payloads are copied once, into `dst`; to send a
    /// piece without copying its data, write [`encode_piece_header`] and send the data
    /// `Bytes` after it (vectored I/O).
    ///
    /// A message too large for the 32-bit length prefix (a payload of 4 GiB) cannot be framed:
    /// nothing is written then; [`Message::try_encode`] reports it.
    pub fn encode(&self, dst: &mut BytesMut) {
        let written = self.try_encode(dst);
        debug_assert!(written.is_ok(), "unframeable message: {written:?}");
    }

    /// Appends the framed message to `dst`.
    ///
    /// # Errors
    /// [`Error::Unframeable`] (nothing written) if the message's length does not fit the
    /// 32-bit length prefix.
    pub fn try_encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        let body = self.body_len();
        let len = u32::try_from(body).map_err(|_| Error::Unframeable { len: body })?;
        dst.reserve(body + PREFIX_LEN);
        dst.put_u32(len);
        let Some(msg_id) = self.id() else {
            return Ok(());
        };
        dst.put_u8(msg_id);
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have { piece }
            | Message::SuggestPiece { piece }
            | Message::AllowedFast { piece } => dst.put_u32(*piece),
            Message::Bitfield(b) => dst.put_slice(b),
            Message::Request(r) | Message::Cancel(r) | Message::RejectRequest(r) => {
                put_block(dst, r);
            }
            Message::Piece { index, begin, data } => {
                dst.put_u32(*index);
                dst.put_u32(*begin);
                dst.put_slice(data);
            }
            Message::Port(port) => dst.put_u16(*port),
            Message::Extended { id, payload } => {
                dst.put_u8(*id);
                dst.put_slice(payload);
            }
            Message::HashRequest(r) | Message::HashReject(r) => put_hash_request(dst, r),
            Message::Hashes(h) => {
                put_hash_request(dst, &h.request);
                dst.put_slice(&h.hashes);
            }
            Message::Unknown { payload, .. } => dst.put_slice(payload),
        }
        Ok(())
    }

    /// The framed message as new `Bytes`.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut b);
        b.freeze()
    }

    /// A view of this message with its payload borrowed: what
    /// [`MessageDecoder::decode_slice`](crate::MessageDecoder::decode_slice) gives for the same
    /// bytes.
    #[inline]
    pub fn as_ref(&self) -> MessageRef<'_> {
        match self {
            Message::KeepAlive => MessageRef::KeepAlive,
            Message::Choke => MessageRef::Choke,
            Message::Unchoke => MessageRef::Unchoke,
            Message::Interested => MessageRef::Interested,
            Message::NotInterested => MessageRef::NotInterested,
            Message::Have { piece } => MessageRef::Have { piece: *piece },
            Message::Bitfield(b) => MessageRef::Bitfield(b),
            Message::Request(r) => MessageRef::Request(*r),
            Message::Piece { index, begin, data } => MessageRef::Piece {
                index: *index,
                begin: *begin,
                data,
            },
            Message::Cancel(r) => MessageRef::Cancel(*r),
            Message::Port(p) => MessageRef::Port(*p),
            Message::SuggestPiece { piece } => MessageRef::SuggestPiece { piece: *piece },
            Message::HaveAll => MessageRef::HaveAll,
            Message::HaveNone => MessageRef::HaveNone,
            Message::RejectRequest(r) => MessageRef::RejectRequest(*r),
            Message::AllowedFast { piece } => MessageRef::AllowedFast { piece: *piece },
            Message::Extended { id, payload } => MessageRef::Extended { id: *id, payload },
            Message::HashRequest(r) => MessageRef::HashRequest(*r),
            Message::Hashes(h) => MessageRef::Hashes {
                request: h.request,
                hashes: &h.hashes,
            },
            Message::HashReject(r) => MessageRef::HashReject(*r),
            Message::Unknown { id, payload } => MessageRef::Unknown { id: *id, payload },
        }
    }
}

/// One peer wire message with its payload borrowed from the receive buffer: the same variants
/// as [`Message`], for the borrowed decode path
/// ([`MessageDecoder::decode_slice`](crate::MessageDecoder::decode_slice)), which neither
/// allocates nor touches a reference count.
///
/// [`MessageRef::to_message`] turns it into an owned [`Message`]; [`Message::as_ref`] goes the
/// other way.
///
/// ```
/// use bytes::Bytes;
/// use tessera_wire::{Message, MessageDecoder, MessageRef};
///
/// let rx = Bytes::from_static(&[0, 0, 0, 13, 7, 0, 0, 0, 2, 0, 0, 0, 0, b'd', b'a', b't', b'a']);
/// let (msg, used) = MessageDecoder::default().decode_slice(&rx).unwrap().unwrap();
/// assert_eq!(used, rx.len());
/// assert_eq!(msg, MessageRef::Piece { index: 2, begin: 0, data: b"data" });
///
/// // Owned, sharing the block with `rx` rather than copying it.
/// let owned = msg.to_message(&rx);
/// assert!(matches!(&owned, Message::Piece { data, .. } if data.as_ptr() == rx[13..].as_ptr()));
/// assert_eq!(owned.as_ref(), msg);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageRef<'a> {
    /// A zero-length frame that keeps the connection open.
    KeepAlive,
    /// BEP 3: the sender will not serve requests.
    Choke,
    /// BEP 3: the sender will serve requests.
    Unchoke,
    /// BEP 3: the sender wants pieces the receiver has.
    Interested,
    /// BEP 3: the sender wants nothing from the receiver.
    NotInterested,
    /// BEP 3: the sender has completed and verified a piece.
    Have {
        /// Piece index.
        piece: u32,
    },
    /// BEP 3: the pieces the sender has, one bit per piece, high bit of the first byte first.
    Bitfield(&'a [u8]),
    /// BEP 3: asks for a block.
    Request(BlockRequest),
    /// BEP 3: a block of data.
    Piece {
        /// Piece index.
        index: u32,
        /// Byte offset of the block in the piece.
        begin: u32,
        /// The block.
        data: &'a [u8],
    },
    /// BEP 3: withdraws a request.
    Cancel(BlockRequest),
    /// BEP 5: the sender's DHT port.
    Port(u16),
    /// BEP 6: the sender suggests downloading this piece.
    SuggestPiece {
        /// Piece index.
        piece: u32,
    },
    /// BEP 6: the sender has every piece (instead of a bitfield).
    HaveAll,
    /// BEP 6: the sender has no piece (instead of a bitfield).
    HaveNone,
    /// BEP 6: the sender will not serve this request.
    RejectRequest(BlockRequest),
    /// BEP 6: the receiver may request this piece even while choked.
    AllowedFast {
        /// Piece index.
        piece: u32,
    },
    /// BEP 10: an extended message (see [`Message::Extended`]).
    Extended {
        /// Extended message id.
        id: u8,
        /// The payload after the id.
        payload: &'a [u8],
    },
    /// BEP 52: asks for merkle hashes.
    HashRequest(HashRequest),
    /// BEP 52: merkle hashes answering a hash request (see [`Hashes`]).
    Hashes {
        /// The request this answers.
        request: HashRequest,
        /// Concatenated 32-byte hashes: base layer, then the proof.
        hashes: &'a [u8],
    },
    /// BEP 52: the sender will not answer this hash request.
    HashReject(HashRequest),
    /// A message with an id this codec does not know, kept whole.
    Unknown {
        /// The message id.
        id: u8,
        /// The payload after the id.
        payload: &'a [u8],
    },
}

impl<'a> MessageRef<'a> {
    /// The message id, or `None` for keep-alive.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            MessageRef::KeepAlive => return None,
            MessageRef::Choke => id::CHOKE,
            MessageRef::Unchoke => id::UNCHOKE,
            MessageRef::Interested => id::INTERESTED,
            MessageRef::NotInterested => id::NOT_INTERESTED,
            MessageRef::Have { .. } => id::HAVE,
            MessageRef::Bitfield(_) => id::BITFIELD,
            MessageRef::Request(_) => id::REQUEST,
            MessageRef::Piece { .. } => id::PIECE,
            MessageRef::Cancel(_) => id::CANCEL,
            MessageRef::Port(_) => id::PORT,
            MessageRef::SuggestPiece { .. } => id::SUGGEST_PIECE,
            MessageRef::HaveAll => id::HAVE_ALL,
            MessageRef::HaveNone => id::HAVE_NONE,
            MessageRef::RejectRequest(_) => id::REJECT_REQUEST,
            MessageRef::AllowedFast { .. } => id::ALLOWED_FAST,
            MessageRef::Extended { .. } => id::EXTENDED,
            MessageRef::HashRequest(_) => id::HASH_REQUEST,
            MessageRef::Hashes { .. } => id::HASHES,
            MessageRef::HashReject(_) => id::HASH_REJECT,
            MessageRef::Unknown { id, .. } => *id,
        })
    }

    /// The payload, for the messages that carry one (`bitfield`, `piece`, `extended`,
    /// `hashes`, unknown).
    pub fn payload(&self) -> Option<&'a [u8]> {
        match *self {
            MessageRef::Bitfield(p)
            | MessageRef::Piece { data: p, .. }
            | MessageRef::Extended { payload: p, .. }
            | MessageRef::Hashes { hashes: p, .. }
            | MessageRef::Unknown { payload: p, .. } => Some(p),
            _ => None,
        }
    }

    /// The owned message. A payload that lies inside `backing` (the buffer the message was
    /// decoded from, as `Bytes`) is shared with it without copying; any other payload is
    /// copied. Pass `&Bytes::new()` to copy.
    pub fn to_message(&self, backing: &Bytes) -> Message {
        let share = |part: &[u8]| share(backing, part);
        match *self {
            MessageRef::KeepAlive => Message::KeepAlive,
            MessageRef::Choke => Message::Choke,
            MessageRef::Unchoke => Message::Unchoke,
            MessageRef::Interested => Message::Interested,
            MessageRef::NotInterested => Message::NotInterested,
            MessageRef::Have { piece } => Message::Have { piece },
            MessageRef::Bitfield(b) => Message::Bitfield(share(b)),
            MessageRef::Request(r) => Message::Request(r),
            MessageRef::Piece { index, begin, data } => Message::Piece {
                index,
                begin,
                data: share(data),
            },
            MessageRef::Cancel(r) => Message::Cancel(r),
            MessageRef::Port(p) => Message::Port(p),
            MessageRef::SuggestPiece { piece } => Message::SuggestPiece { piece },
            MessageRef::HaveAll => Message::HaveAll,
            MessageRef::HaveNone => Message::HaveNone,
            MessageRef::RejectRequest(r) => Message::RejectRequest(r),
            MessageRef::AllowedFast { piece } => Message::AllowedFast { piece },
            MessageRef::Extended { id, payload } => Message::Extended {
                id,
                payload: share(payload),
            },
            MessageRef::HashRequest(r) => Message::HashRequest(r),
            MessageRef::Hashes { request, hashes } => Message::Hashes(Hashes {
                request,
                hashes: share(hashes),
            }),
            MessageRef::HashReject(r) => Message::HashReject(r),
            MessageRef::Unknown { id, payload } => Message::Unknown {
                id,
                payload: share(payload),
            },
        }
    }
}

/// `part` as `Bytes`: shared with `backing` if it lies inside it, else copied.
fn share(backing: &Bytes, part: &[u8]) -> Bytes {
    let base = backing.as_ptr() as usize;
    let start = (part.as_ptr() as usize).wrapping_sub(base);
    match start.checked_add(part.len()) {
        Some(end) if start <= backing.len() && end <= backing.len() && !part.is_empty() => {
            backing.slice(start..end)
        }
        _ => Bytes::copy_from_slice(part),
    }
}

/// Appends the 13-byte header of a piece message carrying `data_len` bytes of block data:
/// length prefix, id, index and begin. The caller sends the data right after it.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use tessera_wire::{encode_piece_header, Message};
///
/// let data = Bytes::from_static(b"block");
/// let mut head = BytesMut::new();
/// encode_piece_header(3, 16384, data.len(), &mut head).unwrap();
/// let whole = Message::Piece { index: 3, begin: 16384, data: data.clone() }.to_bytes();
/// assert_eq!([&head[..], &data[..]].concat(), &whole[..]);
/// ```
///
/// # Errors
/// [`Error::Unframeable`] (nothing written) if `data_len + 9` does not fit the 32-bit length
/// prefix.
pub fn encode_piece_header(
    index: u32,
    begin: u32,
    data_len: usize,
    dst: &mut BytesMut,
) -> Result<(), Error> {
    let body = data_len.saturating_add(9);
    let len = u32::try_from(body).map_err(|_| Error::Unframeable { len: body })?;
    dst.reserve(PIECE_HEADER_LEN);
    dst.put_u32(len);
    dst.put_u8(id::PIECE);
    dst.put_u32(index);
    dst.put_u32(begin);
    Ok(())
}

fn put_block(dst: &mut BytesMut, r: &BlockRequest) {
    dst.put_u32(r.index);
    dst.put_u32(r.begin);
    dst.put_u32(r.length);
}

fn put_hash_request(dst: &mut BytesMut, r: &HashRequest) {
    dst.put_slice(&r.pieces_root.0);
    dst.put_u32(r.base_layer);
    dst.put_u32(r.index);
    dst.put_u32(r.length);
    dst.put_u32(r.proof_layers);
}
