//! BEP 9 `ut_metadata`: fetching the info dictionary from peers in 16 KiB pieces.

use bytes::{BufMut, Bytes, BytesMut};
use tessera_bencode::{DecodeOptions, DictBuilder};

use crate::ext_error::ExtError;
use crate::extension::ExtensionMessage;

/// Size of a metadata piece: 16 KiB (the last piece may be shorter).
pub const METADATA_PIECE_SIZE: usize = 16 * 1024;
/// Largest metadata (info dictionary) accepted: 32 MiB, a little above libtorrent's default
/// `max_metadata_size` of 30 MiB.
pub const MAX_METADATA_SIZE: u64 = 32 * 1024 * 1024;
/// Most pieces metadata of [`MAX_METADATA_SIZE`] bytes has.
pub const MAX_METADATA_PIECES: u64 = MAX_METADATA_SIZE / METADATA_PIECE_SIZE as u64;
/// Most bencode values accepted in the dictionary of a `ut_metadata` message.
const MAX_TOKENS: usize = 256;

/// A BEP 9 `ut_metadata` message.
///
/// ```
/// use bytes::Bytes;
/// use tessera_wire::{ExtensionMessage, UtMetadata};
///
/// let msg = UtMetadata::decode(Bytes::from_static(b"d8:msg_typei0e5:piecei0ee"))?;
/// assert_eq!(msg, UtMetadata::Request { piece: 0 });
///
/// // A data message: the dictionary, then the raw piece (sliced, not copied).
/// let data = UtMetadata::decode(Bytes::from_static(
///     b"d8:msg_typei1e5:piecei0e10:total_sizei5eehello",
/// ))?;
/// assert_eq!(
///     data,
///     UtMetadata::Data { piece: 0, total_size: 5, data: Bytes::from_static(b"hello") }
/// );
/// # Ok::<(), tessera_wire::ExtError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UtMetadata {
    /// `msg_type` 0: asks for one piece of the metadata.
    Request {
        /// The piece index.
        piece: u32,
    },
    /// `msg_type` 1: one piece of the metadata.
    Data {
        /// The piece index.
        piece: u32,
        /// Size of the whole metadata in bytes.
        total_size: u64,
        /// The piece: 16 KiB, or what is left for the last piece.
        data: Bytes,
    },
    /// `msg_type` 2: the sender will not send that piece.
    Reject {
        /// The piece index.
        piece: u32,
    },
}

impl UtMetadata {
    /// The piece index this message refers to.
    pub fn piece(&self) -> u32 {
        match self {
            UtMetadata::Request { piece }
            | UtMetadata::Data { piece, .. }
            | UtMetadata::Reject { piece } => *piece,
        }
    }

    /// Number of pieces in metadata of `total_size` bytes.
    pub fn piece_count(total_size: u64) -> u64 {
        total_size.div_ceil(METADATA_PIECE_SIZE as u64)
    }

    /// Size of piece `piece` of metadata of `total_size` bytes (`None` past the end).
    pub fn piece_len(total_size: u64, piece: u32) -> Option<usize> {
        let start = u64::from(piece).checked_mul(METADATA_PIECE_SIZE as u64)?;
        let left = total_size.checked_sub(start).filter(|&l| l > 0)?;
        usize::try_from(left.min(METADATA_PIECE_SIZE as u64)).ok()
    }

    /// The data message for piece `piece` of `metadata` (a slice of it, not a copy), or `None`
    /// past the end.
    pub fn data_for(metadata: &Bytes, piece: u32) -> Option<UtMetadata> {
        let total_size = metadata.len() as u64;
        let len = Self::piece_len(total_size, piece)?;
        let start = usize::try_from(piece)
            .ok()?
            .checked_mul(METADATA_PIECE_SIZE)?;
        let end = start.checked_add(len)?;
        (end <= metadata.len()).then(|| UtMetadata::Data {
            piece,
            total_size,
            data: metadata.slice(start..end),
        })
    }
}

impl ExtensionMessage for UtMetadata {
    const NAME: &'static str = "ut_metadata";

    fn encode(&self, out: &mut BytesMut) {
        let mut d = DictBuilder::new();
        let (msg_type, piece) = match self {
            UtMetadata::Request { piece } => (0, piece),
            UtMetadata::Data {
                piece, total_size, ..
            } => {
                d.entry(
                    b"total_size",
                    &i64::try_from(*total_size).unwrap_or(i64::MAX),
                );
                (1, piece)
            }
            UtMetadata::Reject { piece } => (2, piece),
        };
        d.entry(b"msg_type", &msg_type);
        d.entry(b"piece", &i64::from(*piece));
        let mut dict = Vec::new();
        d.finish(&mut dict);
        out.put_slice(&dict);
        if let UtMetadata::Data { data, .. } = self {
            out.put_slice(data);
        }
    }

    /// Decodes a message. The dictionary is decoded leniently; for a `data` message the piece
    /// starts right where the dictionary ends (found from the decoded dictionary's span) and is
    /// returned as a slice of `payload`.
    ///
    /// # Errors
    /// Malformed bencode, a missing or mistyped `msg_type` or `piece`, an unknown `msg_type`
    /// ([`ExtError::UnknownMetadataMessage`], to be ignored per BEP 9), a `total_size` of 0 or
    /// above [`MAX_METADATA_SIZE`], a piece past the end, or piece data of the wrong size.
    fn decode(payload: Bytes) -> Result<Self, ExtError> {
        const WHAT: &str = "ut_metadata";
        let max_len = METADATA_PIECE_SIZE + 1024;
        if payload.len() > max_len {
            return Err(ExtError::PayloadTooLarge {
                what: WHAT,
                len: payload.len(),
                max: max_len,
            });
        }
        let doc = DecodeOptions::lenient()
            .with_max_depth(4)
            .with_max_tokens(MAX_TOKENS)
            .decode(&payload)
            .map_err(|source| ExtError::Bencode { what: WHAT, source })?;
        let root = doc.root();
        let dict = root.as_dict().ok_or(ExtError::NotADict { what: WHAT })?;
        let dict_end = root.span().end;
        let int = |key: &'static str| -> Result<i64, ExtError> {
            let v = dict
                .get(key.as_bytes())
                .ok_or(ExtError::MissingKey { what: WHAT, key })?;
            v.as_int().ok_or(ExtError::InvalidValue {
                what: WHAT,
                key,
                expected: "an integer",
            })
        };
        let msg_type = int("msg_type")?;
        let raw_piece = int("piece")?;
        let piece = u32::try_from(raw_piece)
            .ok()
            .filter(|&p| u64::from(p) < MAX_METADATA_PIECES)
            .ok_or(ExtError::MetadataPieceOutOfRange {
                piece: raw_piece,
                pieces: MAX_METADATA_PIECES,
            })?;
        match msg_type {
            0 => Ok(UtMetadata::Request { piece }),
            2 => Ok(UtMetadata::Reject { piece }),
            1 => {
                let raw_total = int("total_size")?;
                let total_size = u64::try_from(raw_total)
                    .ok()
                    .filter(|&s| s > 0 && s <= MAX_METADATA_SIZE)
                    .ok_or(ExtError::MetadataSizeOutOfRange {
                        size: raw_total,
                        max: MAX_METADATA_SIZE,
                    })?;
                let expected = Self::piece_len(total_size, piece).ok_or(
                    ExtError::MetadataPieceOutOfRange {
                        piece: raw_piece,
                        pieces: Self::piece_count(total_size),
                    },
                )?;
                let data = payload.slice(dict_end.min(payload.len())..);
                if data.len() != expected {
                    return Err(ExtError::MetadataPieceLength {
                        piece,
                        expected,
                        got: data.len(),
                    });
                }
                Ok(UtMetadata::Data {
                    piece,
                    total_size,
                    data,
                })
            }
            other => Err(ExtError::UnknownMetadataMessage { msg_type: other }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_lengths() {
        assert_eq!(UtMetadata::piece_len(34256, 0), Some(16384));
        assert_eq!(UtMetadata::piece_len(34256, 2), Some(34256 - 32768));
        assert_eq!(UtMetadata::piece_len(34256, 3), None);
        assert_eq!(UtMetadata::piece_len(32768, 2), None);
        assert_eq!(UtMetadata::piece_count(34256), 3);
        assert_eq!(UtMetadata::piece_len(5, u32::MAX), None);
    }

    #[test]
    fn data_is_zero_copy() {
        let payload = Bytes::from_static(b"d8:msg_typei1e5:piecei0e10:total_sizei3eeabc");
        let Ok(UtMetadata::Data { data, .. }) = UtMetadata::decode(payload.clone()) else {
            panic!("not data");
        };
        assert_eq!(data.as_ptr(), payload[payload.len() - 3..].as_ptr());
    }
}
