//! tokio-util [`Decoder`]/[`Encoder`] adapters over the sans-IO codec (feature `tokio`).
//!
//! A connection starts with [`HandshakeCodec`] and switches to [`MessageCodec`] once the
//! handshakes are exchanged, keeping the buffered bytes:
//!
//! ```
//! use tokio_util::codec::{Decoder, Encoder};
//! use bytes::BytesMut;
//! use tessera_metainfo::Sha1Hash;
//! use tessera_wire::{Handshake, HandshakeCodec, Limits, Message, MessageCodec, Reserved};
//!
//! let hs = Handshake { reserved: Reserved::FAST, info_hash: Sha1Hash([1; 20]), peer_id: [2; 20] };
//! let mut wire = BytesMut::new();
//! HandshakeCodec.encode(hs, &mut wire).unwrap();
//! MessageCodec::default().encode(Message::HaveAll, &mut wire).unwrap();
//!
//! assert_eq!(HandshakeCodec.decode(&mut wire).unwrap(), Some(hs));
//! let mut codec = MessageCodec::new(Limits::default());
//! assert_eq!(codec.decode(&mut wire).unwrap(), Some(Message::HaveAll));
//! ```
//!
//! With `tokio_util::codec::Framed`, `framed.map_codec(|_| MessageCodec::new(limits))` makes
//! the switch.

use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::decoder::MessageDecoder;
use crate::error::Error;
use crate::handshake::Handshake;
use crate::limits::Limits;
use crate::message::Message;

/// The error of the tokio adapters: the transport failed, or the bytes did.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Reading from or writing to the transport failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The peer's bytes (or a message to send) broke the protocol.
    #[error(transparent)]
    Wire(#[from] Error),
}

/// Decodes and encodes a [`Handshake`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HandshakeCodec;

impl Decoder for HandshakeCodec {
    type Item = Handshake;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Handshake>, CodecError> {
        Ok(Handshake::decode(src)?)
    }
}

impl Encoder<Handshake> for HandshakeCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Handshake, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst);
        Ok(())
    }
}

/// Decodes and encodes [`Message`]s with a [`MessageDecoder`].
#[derive(Debug, Clone, Default)]
pub struct MessageCodec {
    decoder: MessageDecoder,
}

impl MessageCodec {
    /// A codec that checks incoming messages against `limits`.
    pub fn new(limits: Limits) -> Self {
        MessageCodec {
            decoder: MessageDecoder::new(limits),
        }
    }

    /// The underlying decoder, e.g. to change its limits once the metadata is known.
    pub fn decoder_mut(&mut self) -> &mut MessageDecoder {
        &mut self.decoder
    }
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(item.try_encode(dst)?)
    }
}

impl Encoder<&Message> for MessageCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(item.try_encode(dst)?)
    }
}
