//! The error type of the extension layer: BEP 10 handshakes, the typed extension messages
//! (BEP 9, 11, 21, 54) and BEP 52 hash verification.

/// Why an extension payload could not be decoded or encoded, or why hashes failed to verify.
///
/// Variants are grouped by who is at fault: the bytes are malformed, the peer broke a limit or
/// a rule, the peer's hashes do not prove what they claim, or the caller misused the API. Each
/// variant carries the amounts that explain it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtError {
    // ----- Malformed input -----
    /// The bencoded part of a payload is not valid bencode.
    #[error("{what}: invalid bencode: {source}")]
    Bencode {
        /// Which payload was being decoded.
        what: &'static str,
        /// The decoder's error, with its byte offset.
        source: tessera_bencode::Error,
    },
    /// The bencoded part of a payload is not a dictionary.
    #[error("{what}: payload is not a bencoded dictionary")]
    NotADict {
        /// Which payload was being decoded.
        what: &'static str,
    },
    /// A required key is missing.
    #[error("{what}: missing key {key:?}")]
    MissingKey {
        /// Which payload was being decoded.
        what: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A key holds a value of the wrong type or out of its range.
    #[error("{what}: key {key:?} is not {expected}")]
    InvalidValue {
        /// Which payload was being decoded.
        what: &'static str,
        /// The offending key.
        key: &'static str,
        /// What the value should have been.
        expected: &'static str,
    },
    /// A fixed-size payload of the wrong size.
    #[error("{what}: payload of {got} bytes, expected {expected}")]
    IncorrectLength {
        /// Which payload was being decoded.
        what: &'static str,
        /// The size the payload must have.
        expected: usize,
        /// The size it had.
        got: usize,
    },
    /// A compact peer list whose length is not a multiple of the size of one entry.
    #[error("{key}: {len} bytes is not a multiple of {stride}")]
    CompactLength {
        /// The key holding the list.
        key: &'static str,
        /// Length of the string in bytes.
        len: usize,
        /// Size of one entry (6 for IPv4, 18 for IPv6).
        stride: usize,
    },

    // ----- The peer broke a limit or a rule -----
    /// A payload larger than this codec accepts for its kind.
    #[error("{what}: payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Which payload was being decoded.
        what: &'static str,
        /// Size of the payload.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More entries in an extended handshake's `m` dictionary than accepted.
    #[error("extended handshake lists {count} extensions, limit {max}")]
    TooManyExtensions {
        /// Number of entries the peer sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A string longer than accepted (an extension name, a client version).
    #[error("{key}: string of {len} bytes exceeds the limit of {max}")]
    StringTooLong {
        /// The key (or `m` for an extension name).
        key: &'static str,
        /// Length of the string.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A peer list with more entries than accepted.
    #[error("{key}: {count} peers exceeds the limit of {max}")]
    TooManyPeers {
        /// The key holding the list.
        key: &'static str,
        /// Number of peers in the list.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A `ut_metadata` message type this codec does not know. BEP 9 says such messages must be
    /// ignored, so a caller should drop the message rather than the connection.
    #[error("ut_metadata: unknown msg_type {msg_type}")]
    UnknownMetadataMessage {
        /// The `msg_type` the peer sent.
        msg_type: i64,
    },
    /// A metadata size (`total_size`, `metadata_size`) of zero or above the limit.
    #[error("metadata size {size} not in 1..={max}")]
    MetadataSizeOutOfRange {
        /// The size the peer announced.
        size: i64,
        /// The limit.
        max: u64,
    },
    /// A metadata piece index past the end of the metadata.
    #[error("metadata piece {piece} out of range: {pieces} pieces")]
    MetadataPieceOutOfRange {
        /// The piece index the peer sent.
        piece: i64,
        /// Number of pieces in metadata of the announced size.
        pieces: u64,
    },
    /// A metadata `data` message carrying the wrong number of bytes for its piece.
    #[error("metadata piece {piece}: {got} bytes of data, expected {expected}")]
    MetadataPieceLength {
        /// The piece index.
        piece: u32,
        /// The size that piece has (16 KiB except for the last piece).
        expected: usize,
        /// The number of bytes the peer sent.
        got: usize,
    },

    // ----- BEP 52 hash requests and replies -----
    /// The file has no merkle tree to request hashes from (it is empty or one block long).
    #[error("a file of {num_blocks} blocks has no hashes to request")]
    NoHashTree {
        /// Number of 16 KiB blocks in the file.
        num_blocks: u64,
    },
    /// A hash request's length is zero, not a power of two, or above the limit.
    #[error("hash request length {length} is not a power of two in 1..={max}")]
    HashRequestLength {
        /// The requested number of hashes.
        length: u32,
        /// The limit.
        max: u32,
    },
    /// A hash request's index is not a multiple of its length.
    #[error("hash request index {index} is not a multiple of length {length}")]
    HashRequestMisaligned {
        /// The requested index.
        index: u32,
        /// The requested length.
        length: u32,
    },
    /// A base layer at or above the root of the file's tree.
    #[error("base layer {base_layer} out of range: the tree's root is at layer {root_layer}")]
    BaseLayerOutOfRange {
        /// The requested base layer.
        base_layer: u32,
        /// Height of the root (number of layers above the leaves).
        root_layer: u32,
    },
    /// A base layer other than the leaf layer or the piece layer.
    #[error("base layer {base_layer} is neither 0 nor the piece layer {piece_layer}")]
    UnsupportedBaseLayer {
        /// The requested base layer.
        base_layer: u32,
        /// Height of the piece layer.
        piece_layer: u32,
    },
    /// A range of hashes that does not lie inside its layer.
    #[error("hashes {index}+{length} outside a layer of {layer_size}")]
    HashRangeOutOfLayer {
        /// The requested index.
        index: u32,
        /// The requested length.
        length: u32,
        /// Number of nodes in that layer, padding included.
        layer_size: u64,
    },
    /// More proof layers than there are layers between the base layer and the root.
    #[error("{proof_layers} proof layers requested, at most {max} possible")]
    ProofLayersOutOfRange {
        /// The requested number of proof layers.
        proof_layers: u32,
        /// The largest number allowed for this base layer.
        max: u32,
    },
    /// A `hashes` reply with the wrong number of hashes for its request.
    #[error("hashes reply carries {got} hashes, expected {expected}")]
    HashCount {
        /// Base-layer hashes plus uncle hashes the request calls for.
        expected: u64,
        /// Number of whole hashes received.
        got: u64,
    },
    /// A `hashes` reply whose proof stops below the file's root, so it cannot be checked
    /// against the root alone.
    #[error("proof reaches layer {reached}, the root is at layer {root_layer}")]
    ProofTooShort {
        /// Highest layer the hashes and proof reach.
        reached: u32,
        /// Height of the root.
        root_layer: u32,
    },
    /// The hashes and their proof do not reduce to the file's `pieces root`.
    #[error("hashes do not verify against the pieces root")]
    HashMismatch,
    /// The reply is for another file than the one it was checked against.
    #[error("hashes reply for another pieces root")]
    WrongPiecesRoot,

    // ----- Misuse of the API -----
    /// An extension name that is empty or too long to advertise.
    #[error("invalid extension name of {len} bytes (1..={max} allowed)")]
    InvalidName {
        /// Length of the name.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An extension id already taken by another name, or id 0 (reserved for the handshake).
    #[error("extension id {id} is reserved or already registered to {taken_by:?}")]
    IdTaken {
        /// The id.
        id: u8,
        /// The name holding it (empty for id 0).
        taken_by: String,
    },
    /// Every id from 1 to 255 is in use.
    #[error("all 255 extension ids are in use")]
    NoFreeId,
    /// Sending an extension the peer has not enabled in its handshake.
    #[error("the peer has not enabled extension {name:?}")]
    NotNegotiated {
        /// The extension's name.
        name: String,
    },
}
