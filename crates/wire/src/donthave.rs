//! BEP 54 `lt_donthave`: the sender no longer has a piece.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ext_error::ExtError;
use crate::extension::ExtensionMessage;

/// A BEP 54 `lt_donthave` message: the payload is the piece index, 4 bytes big-endian.
///
/// ```
/// use bytes::Bytes;
/// use tessera_wire::{ExtensionMessage, LtDonthave};
///
/// assert_eq!(LtDonthave::decode(Bytes::from_static(&[0, 0, 1, 2]))?, LtDonthave(258));
/// assert!(LtDonthave::decode(Bytes::from_static(&[0, 1, 2])).is_err());
/// # Ok::<(), tessera_wire::ExtError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LtDonthave(pub u32);

impl ExtensionMessage for LtDonthave {
    const NAME: &'static str = "lt_donthave";

    fn encode(&self, out: &mut BytesMut) {
        out.put_u32(self.0);
    }

    /// # Errors
    /// [`ExtError::IncorrectLength`] unless the payload is exactly 4 bytes.
    fn decode(payload: Bytes) -> Result<Self, ExtError> {
        <[u8; 4]>::try_from(payload.as_ref())
            .map(|b| LtDonthave(u32::from_be_bytes(b)))
            .map_err(|_| ExtError::IncorrectLength {
                what: Self::NAME,
                expected: 4,
                got: payload.len(),
            })
    }
}
