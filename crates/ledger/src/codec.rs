//! The one canonical encoding: bencode, decoded strictly, and re-encoded on decode to prove that
//! the input was the only encoding of its value.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;

/// Encodes `value` as canonical bencode.
///
/// # Errors
/// [`DecodeError::Invalid`] if a field cannot be encoded (an integer above `i64::MAX`).
pub(crate) fn encode<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, DecodeError> {
    tessera_bencode::to_bytes(value).map_err(|_| DecodeError::Invalid {
        what,
        reason: "a field cannot be encoded (integers must be at most 2^63 - 1)",
    })
}

/// Decodes `bytes` (at most `max` long) as a `T` and checks that re-encoding gives the same
/// bytes back.
///
/// # Errors
/// [`DecodeError::TooLarge`], [`DecodeError::Malformed`] or [`DecodeError::NotCanonical`].
pub(crate) fn decode_canonical<'a, T: Deserialize<'a> + Serialize>(
    what: &'static str,
    bytes: &'a [u8],
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    let options = tessera_bencode::DecodeOptions::strict()
        .with_max_depth(16)
        .with_max_tokens(max / 2 + 16);
    let value: T =
        tessera_bencode::from_bytes_with(bytes, &options).map_err(|e| DecodeError::Malformed {
            what,
            reason: e.to_string(),
        })?;
    let again = encode(what, &value)?;
    if again != bytes {
        return Err(DecodeError::NotCanonical { what });
    }
    Ok(value)
}
