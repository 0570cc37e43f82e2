//! The BEP 10 extension protocol: the extended handshake, the registry that maps extension names
//! to the ids negotiated with one peer, and the [`ExtensionMessage`] trait that typed extensions
//! (ours and users') implement.
//!
//! ```text
//!  Message::Extended { id, payload }
//!        │ id == 0 ──▶ ExtendedHandshake::decode ──▶ registry.apply_peer_handshake (their ids)
//!        │ id  > 0 ──▶ registry.incoming_name(id) ──▶ E::decode(payload) for E::NAME == name
//!  E: ExtensionMessage ──▶ registry.encode(&msg) ──▶ (their id for E::NAME, payload)
//! ```
//!
//! Ids are per direction: the ids in our handshake's `m` are the ids the peer must use when it
//! sends to us; the ids in the peer's `m` are the ones we use when sending to it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};
use tessera_bencode::{put_bytes, put_int, DecodeOptions, DictBuilder, DictRef, Encode, Value};

use crate::ext_error::ExtError;

/// Extension message id of the extended handshake (BEP 10).
pub const HANDSHAKE_ID: u8 = 0;
/// Largest extended handshake payload accepted, in bytes.
pub const MAX_HANDSHAKE_LEN: usize = 64 * 1024;
/// Most entries accepted in an extended handshake's `m` dictionary.
pub const MAX_EXTENSIONS: usize = 128;
/// Longest extension name accepted, in bytes.
pub const MAX_EXTENSION_NAME_LEN: usize = 64;
/// Longest client version string (`v`) accepted, in bytes.
pub const MAX_VERSION_LEN: usize = 256;
/// Most bencode values accepted in an extended handshake (keys included).
const MAX_HANDSHAKE_TOKENS: usize = 4096;
/// Deepest nesting accepted in an extended handshake (the root dictionary is level 1).
const MAX_HANDSHAKE_DEPTH: usize = 8;

/// A typed extension message carried in `Message::Extended` under a negotiated id.
///
/// Implement it for your own extension and register it with an [`ExtensionRegistry`]; the core
/// codec never needs to know about it.
///
/// ```
/// use bytes::{BufMut, Bytes, BytesMut};
/// use tessera_wire::{ExtError, ExtendedHandshake, ExtensionMessage, ExtensionRegistry};
///
/// /// A toy cheque: an amount and a serial number.
/// #[derive(Debug, PartialEq)]
/// struct Cheque { amount: u64, serial: u32 }
///
/// impl ExtensionMessage for Cheque {
///     const NAME: &'static str = "tessera_cheque";
///     fn encode(&self, out: &mut BytesMut) {
///         out.put_u64(self.amount);
///         out.put_u32(self.serial);
///     }
///     fn decode(payload: Bytes) -> Result<Self, ExtError> {
///         let b: [u8; 12] = payload.as_ref().try_into().map_err(|_| ExtError::IncorrectLength {
///             what: Self::NAME, expected: 12, got: payload.len(),
///         })?;
///         let (amount, serial) = b.split_at(8);
///         Ok(Cheque {
///             amount: u64::from_be_bytes(amount.try_into().unwrap_or_default()),
///             serial: u32::from_be_bytes(serial.try_into().unwrap_or_default()),
///         })
///     }
/// }
///
/// // Each side registers the extension and advertises its ids in its extended handshake.
/// let mut alice = ExtensionRegistry::new();
/// let mut bob = ExtensionRegistry::new();
/// alice.register::<Cheque>()?;
/// bob.register_name("ut_pex")?;
/// bob.register::<Cheque>()?;
/// let alice_hs = ExtendedHandshake::decode(&alice.handshake().encode())?;
/// let bob_hs = ExtendedHandshake::decode(&bob.handshake().encode())?;
/// alice.apply_peer_handshake(&bob_hs);
/// bob.apply_peer_handshake(&alice_hs);
///
/// // Alice sends with Bob's id; Bob recognises it under his own.
/// let cheque = Cheque { amount: 1_000, serial: 7 };
/// let (id, payload) = alice.encode(&cheque)?;
/// assert_eq!(id, 2); // Bob registered ut_pex first
/// assert_eq!(bob.incoming_name(id), Some("tessera_cheque"));
/// assert_eq!(bob.decode::<Cheque>(id, payload), Some(Ok(cheque)));
/// # Ok::<(), ExtError>(())
/// ```
pub trait ExtensionMessage: Sized {
    /// The name advertised in the `m` dictionary of the extended handshake.
    const NAME: &'static str;

    /// Appends the payload (after the extension id byte) to `out`.
    fn encode(&self, out: &mut BytesMut);

    /// Decodes a payload (after the extension id byte). Must never panic, whatever the bytes.
    ///
    /// # Errors
    /// The payload is malformed or breaks a limit of the extension.
    fn decode(payload: Bytes) -> Result<Self, ExtError>;

    /// The encoded payload in a new buffer.
    fn to_payload(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// The BEP 10 extended handshake (extension message id 0).
///
/// Decoding is lenient like libtorrent: a known key with a value of the wrong type or out of
/// range is not an error, it is kept verbatim in [`unknown`](Self::unknown) (and written back
/// unchanged by [`encode`](Self::encode) while the typed field is `None`). Entries of `m` that are
/// not integers in `0..=255` or whose names are not UTF-8 are ignored. Sizes are bounded:
/// [`MAX_HANDSHAKE_LEN`], [`MAX_EXTENSIONS`], [`MAX_EXTENSION_NAME_LEN`], [`MAX_VERSION_LEN`].
///
/// ```
/// use tessera_wire::ExtendedHandshake;
///
/// let hs = ExtendedHandshake::decode(b"d1:md11:ut_metadatai3ee13:metadata_sizei31235ee")?;
/// assert_eq!(hs.m.get("ut_metadata"), Some(&3));
/// assert_eq!(hs.metadata_size, Some(31235));
/// assert_eq!(&hs.encode()[..], b"d1:md11:ut_metadatai3ee13:metadata_sizei31235ee");
/// # Ok::<(), tessera_wire::ExtError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// Extension names mapped to the ids the sender of this handshake wants to receive them
    /// under; 0 means disabled.
    pub m: BTreeMap<String, u8>,
    /// Client name and version (`v`).
    pub v: Option<String>,
    /// The sender's TCP listen port (`p`).
    pub p: Option<u16>,
    /// The receiver's address as the sender sees it (`yourip`, 4 or 16 bytes).
    pub yourip: Option<IpAddr>,
    /// The sender's IPv4 address (`ipv4`).
    pub ipv4: Option<Ipv4Addr>,
    /// The sender's IPv6 address (`ipv6`).
    pub ipv6: Option<Ipv6Addr>,
    /// Outstanding requests the sender accepts (`reqq`).
    pub reqq: Option<u32>,
    /// Size of the info dictionary in bytes (`metadata_size`, BEP 9).
    pub metadata_size: Option<u64>,
    /// The sender only uploads (`upload_only`, BEP 21).
    pub upload_only: Option<bool>,
    /// Seconds since the sender last had every piece (`complete_ago`, libtorrent), -1 never.
    pub complete_ago: Option<i64>,
    /// The sender is in share mode (`share_mode`, libtorrent).
    pub share_mode: Option<bool>,
    /// The sender prefers encrypted connections (`e`).
    pub encryption: Option<bool>,
    /// Every other key, and known keys whose value had the wrong type, verbatim.
    pub unknown: BTreeMap<Vec<u8>, Value>,
}

impl ExtendedHandshake {
    /// Decodes the payload of extension message 0.
    ///
    /// # Errors
    /// The payload is too large, not bencode, not a dictionary, or over a size limit.
    pub fn decode(payload: &[u8]) -> Result<Self, ExtError> {
        const WHAT: &str = "extended handshake";
        if payload.len() > MAX_HANDSHAKE_LEN {
            return Err(ExtError::PayloadTooLarge {
                what: WHAT,
                len: payload.len(),
                max: MAX_HANDSHAKE_LEN,
            });
        }
        let doc = DecodeOptions::lenient()
            .with_max_depth(MAX_HANDSHAKE_DEPTH)
            .with_max_tokens(MAX_HANDSHAKE_TOKENS)
            .decode(payload)
            .map_err(|source| ExtError::Bencode { what: WHAT, source })?;
        let root = doc
            .root()
            .as_dict()
            .ok_or(ExtError::NotADict { what: WHAT })?;
        let mut hs = ExtendedHandshake::default();
        for (key, value) in root.iter() {
            if hs.unknown.contains_key(key) || hs.has_field(key) {
                // A repeated key (lenient input): the first occurrence wins.
                continue;
            }
            let taken = match key {
                b"m" => match value.as_dict() {
                    Some(m) => {
                        hs.m = decode_m(m)?;
                        true
                    }
                    None => false,
                },
                b"v" => match value.as_bytes() {
                    Some(b) if b.len() > MAX_VERSION_LEN => {
                        return Err(ExtError::StringTooLong {
                            key: "v",
                            len: b.len(),
                            max: MAX_VERSION_LEN,
                        })
                    }
                    Some(b) => match std::str::from_utf8(b) {
                        Ok(s) => {
                            hs.v = Some(s.to_owned());
                            true
                        }
                        Err(_) => false,
                    },
                    None => false,
                },
                b"p" => set(
                    &mut hs.p,
                    value.as_int().and_then(|i| u16::try_from(i).ok()),
                ),
                b"reqq" => set(
                    &mut hs.reqq,
                    value.as_int().and_then(|i| u32::try_from(i).ok()),
                ),
                b"metadata_size" => set(
                    &mut hs.metadata_size,
                    value.as_int().and_then(|i| u64::try_from(i).ok()),
                ),
                b"complete_ago" => set(&mut hs.complete_ago, value.as_int()),
                b"upload_only" => set(&mut hs.upload_only, value.as_int().and_then(as_bool)),
                b"share_mode" => set(&mut hs.share_mode, value.as_int().and_then(as_bool)),
                b"e" => set(&mut hs.encryption, value.as_int().and_then(as_bool)),
                b"yourip" => set(&mut hs.yourip, value.as_bytes().and_then(ip_from_bytes)),
                b"ipv4" => set(
                    &mut hs.ipv4,
                    value
                        .as_bytes()
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(Ipv4Addr::from),
                ),
                b"ipv6" => set(
                    &mut hs.ipv6,
                    value
                        .as_bytes()
                        .and_then(|b| <[u8; 16]>::try_from(b).ok())
                        .map(Ipv6Addr::from),
                ),
                _ => false,
            };
            if !taken {
                hs.unknown.insert(key.to_vec(), value.to_owned());
            }
        }
        Ok(hs)
    }

    /// True if the typed field for `key` is set (so a later duplicate is ignored).
    fn has_field(&self, key: &[u8]) -> bool {
        match key {
            b"m" => !self.m.is_empty(),
            b"v" => self.v.is_some(),
            b"p" => self.p.is_some(),
            b"yourip" => self.yourip.is_some(),
            b"ipv4" => self.ipv4.is_some(),
            b"ipv6" => self.ipv6.is_some(),
            b"reqq" => self.reqq.is_some(),
            b"metadata_size" => self.metadata_size.is_some(),
            b"upload_only" => self.upload_only.is_some(),
            b"complete_ago" => self.complete_ago.is_some(),
            b"share_mode" => self.share_mode.is_some(),
            b"e" => self.encryption.is_some(),
            _ => false,
        }
    }

    /// The canonical bencoded payload (keys sorted). `m` is always written, empty or not.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        Bytes::from(out)
    }

    /// Appends the canonical bencoded payload to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut d = DictBuilder::new();
        // Unknown entries first: a typed field that is set replaces an entry with its key.
        for (k, v) in &self.unknown {
            if !self.has_field(k) {
                d.entry(k, v);
            }
        }
        if !self.m.is_empty() || !self.unknown.contains_key(&b"m"[..]) {
            d.entry_with(b"m", |out| {
                out.push(b'd');
                for (name, id) in &self.m {
                    put_bytes(out, name.as_bytes());
                    put_int(out, i64::from(*id));
                }
                out.push(b'e');
            });
        }
        if let Some(v) = &self.v {
            d.entry(b"v", v.as_str());
        }
        let ints = [
            (&b"p"[..], self.p.map(i64::from)),
            (b"reqq", self.reqq.map(i64::from)),
            (
                b"metadata_size",
                self.metadata_size
                    .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
            ),
            (b"complete_ago", self.complete_ago),
            (b"upload_only", self.upload_only.map(i64::from)),
            (b"share_mode", self.share_mode.map(i64::from)),
            (b"e", self.encryption.map(i64::from)),
        ];
        for (k, v) in ints {
            if let Some(v) = v {
                d.entry(k, &v);
            }
        }
        match self.yourip {
            Some(IpAddr::V4(ip)) => {
                d.entry(b"yourip", &ip.octets()[..]);
            }
            Some(IpAddr::V6(ip)) => {
                d.entry(b"yourip", &ip.octets()[..]);
            }
            None => {}
        }
        if let Some(ip) = self.ipv4 {
            d.entry(b"ipv4", &ip.octets()[..]);
        }
        if let Some(ip) = self.ipv6 {
            d.entry(b"ipv6", &ip.octets()[..]);
        }
        d.finish(out);
    }

    /// The id the sender of this handshake wants `name` sent under, if enabled (not 0).
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.m.get(name).copied().filter(|&id| id != 0)
    }
}

/// Stores `v` in `slot` and reports whether the key was understood.
fn set<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
    match v {
        Some(v) => {
            *slot = Some(v);
            true
        }
        None => false,
    }
}

fn as_bool(i: i64) -> Option<bool> {
    match i {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::from(a));
    }
    <[u8; 16]>::try_from(b).ok().map(IpAddr::from)
}

fn decode_m(m: DictRef<'_, '_>) -> Result<BTreeMap<String, u8>, ExtError> {
    if m.len() > MAX_EXTENSIONS {
        return Err(ExtError::TooManyExtensions {
            count: m.len(),
            max: MAX_EXTENSIONS,
        });
    }
    let mut out = BTreeMap::new();
    for (name, id) in m.iter() {
        if name.len() > MAX_EXTENSION_NAME_LEN {
            return Err(ExtError::StringTooLong {
                key: "m",
                len: name.len(),
                max: MAX_EXTENSION_NAME_LEN,
            });
        }
        let (Ok(name), Some(id)) = (
            std::str::from_utf8(name),
            id.as_int().and_then(|i| u8::try_from(i).ok()),
        ) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        out.entry(name.to_owned()).or_insert(id);
    }
    Ok(out)
}

/// Extension names and ids negotiated with one peer, in both directions.
///
/// * Ours: every registered name has a local id (1..=255) that goes into our handshake's `m`;
///   the peer sends that extension to us under that id ([`incoming_name`](Self::incoming_name)).
/// * Theirs: learnt from the peer's handshakes ([`apply_peer_handshake`](Self::apply_peer_handshake));
///   we send to the peer under its id ([`outgoing_id`](Self::outgoing_id)). As BEP 10 says, a
///   later handshake is additive: it changes the names it lists, an id of 0 disables one, and
///   names it does not list keep their ids.
///
/// See [`ExtensionMessage`] for a full example.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionRegistry {
    local: BTreeMap<String, u8>,
    local_by_id: BTreeMap<u8, String>,
    remote: BTreeMap<String, u8>,
}

/// What an incoming `Message::Extended` turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// An extended handshake; the registry has already applied it.
    Handshake(Box<ExtendedHandshake>),
    /// A message for one of our registered extensions.
    Message {
        /// Our name for the extension.
        name: String,
        /// The payload after the id byte.
        payload: Bytes,
    },
    /// An id we never advertised (BEP 10: a peer must not send it; callers usually ignore it).
    UnknownId {
        /// The id the peer used.
        id: u8,
        /// The payload after the id byte.
        payload: Bytes,
    },
}

impl Incoming {
    /// Decodes the payload as `E` if this is a message for `E::NAME`.
    pub fn decode_as<E: ExtensionMessage>(&self) -> Option<Result<E, ExtError>> {
        match self {
            Incoming::Message { name, payload } if name == E::NAME => {
                Some(E::decode(payload.clone()))
            }
            _ => None,
        }
    }
}

impl ExtensionRegistry {
    /// An empty registry: no extensions of ours, none known of the peer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with our built-in extensions registered, in this order (ids 1 to 4):
    /// `ut_metadata`, `ut_pex`, `upload_only`, `lt_donthave`.
    pub fn with_builtin() -> Self {
        let mut r = Self::new();
        for name in [
            crate::metadata::UtMetadata::NAME,
            crate::pex::UtPex::NAME,
            UploadOnly::NAME,
            crate::donthave::LtDonthave::NAME,
        ] {
            // Cannot fail: four distinct short names in an empty registry.
            let _ = r.register_name(name);
        }
        r
    }

    /// Registers extension `E` under the lowest free local id (or returns its existing id).
    ///
    /// # Errors
    /// [`ExtError::NoFreeId`] when all 255 ids are taken.
    pub fn register<E: ExtensionMessage>(&mut self) -> Result<u8, ExtError> {
        self.register_name(E::NAME)
    }

    /// Registers `name` under the lowest free local id (or returns its existing id).
    ///
    /// # Errors
    /// [`ExtError::InvalidName`] for an empty or too long name, [`ExtError::NoFreeId`] when all
    /// 255 ids are taken.
    pub fn register_name(&mut self, name: &str) -> Result<u8, ExtError> {
        check_name(name)?;
        if let Some(&id) = self.local.get(name) {
            return Ok(id);
        }
        let id = (1..=u8::MAX)
            .find(|id| !self.local_by_id.contains_key(id))
            .ok_or(ExtError::NoFreeId)?;
        self.local.insert(name.to_owned(), id);
        self.local_by_id.insert(id, name.to_owned());
        Ok(id)
    }

    /// Registers `name` under a chosen local id (re-registering moves it).
    ///
    /// # Errors
    /// [`ExtError::InvalidName`], or [`ExtError::IdTaken`] for id 0 or an id held by another name.
    pub fn register_with_id(&mut self, name: &str, id: u8) -> Result<(), ExtError> {
        check_name(name)?;
        if id == HANDSHAKE_ID {
            return Err(ExtError::IdTaken {
                id,
                taken_by: String::new(),
            });
        }
        if let Some(other) = self.local_by_id.get(&id) {
            if other != name {
                return Err(ExtError::IdTaken {
                    id,
                    taken_by: other.clone(),
                });
            }
            return Ok(());
        }
        self.unregister(name);
        self.local.insert(name.to_owned(), id);
        self.local_by_id.insert(id, name.to_owned());
        Ok(())
    }

    /// Removes one of our extensions; returns its id if it was registered. Send a new handshake
    /// (with [`disable_handshake`](Self::disable_handshake)) to tell the peer.
    pub fn unregister(&mut self, name: &str) -> Option<u8> {
        let id = self.local.remove(name)?;
        self.local_by_id.remove(&id);
        Some(id)
    }

    /// Our local id for `name` (the id the peer must use to send it to us).
    pub fn local_id(&self, name: &str) -> Option<u8> {
        self.local.get(name).copied()
    }

    /// Our name for an id the peer sent a message under; `None` for 0 and unknown ids.
    pub fn incoming_name(&self, id: u8) -> Option<&str> {
        self.local_by_id.get(&id).map(String::as_str)
    }

    /// The peer's id for `name`, if the peer has enabled it.
    pub fn outgoing_id(&self, name: &str) -> Option<u8> {
        self.remote.get(name).copied()
    }

    /// True if the peer has enabled `name`.
    pub fn peer_supports(&self, name: &str) -> bool {
        self.remote.contains_key(name)
    }

    /// The peer's enabled extensions and their ids.
    pub fn peer_extensions(&self) -> &BTreeMap<String, u8> {
        &self.remote
    }

    /// Our extensions and their local ids.
    pub fn local_extensions(&self) -> &BTreeMap<String, u8> {
        &self.local
    }

    /// An extended handshake advertising our extensions (other fields empty: fill them in).
    pub fn handshake(&self) -> ExtendedHandshake {
        ExtendedHandshake {
            m: self.local.clone(),
            ..ExtendedHandshake::default()
        }
    }

    /// A follow-up handshake that disables `names` (BEP 10: `m` lists changes, 0 disables).
    pub fn disable_handshake<'a>(names: impl IntoIterator<Item = &'a str>) -> ExtendedHandshake {
        ExtendedHandshake {
            m: names.into_iter().map(|n| (n.to_owned(), 0)).collect(),
            ..ExtendedHandshake::default()
        }
    }

    /// Learns the peer's ids from one of its handshakes: listed names are set, names listed
    /// with 0 are disabled, names not listed keep their ids.
    pub fn apply_peer_handshake(&mut self, hs: &ExtendedHandshake) {
        for (name, &id) in &hs.m {
            if id == 0 {
                self.remote.remove(name);
            } else {
                self.remote.insert(name.clone(), id);
            }
        }
    }

    /// Encodes `msg` for the peer: the peer's id for `E::NAME` and the payload.
    ///
    /// # Errors
    /// [`ExtError::NotNegotiated`] if the peer has not enabled `E::NAME`.
    pub fn encode<E: ExtensionMessage>(&self, msg: &E) -> Result<(u8, Bytes), ExtError> {
        let id = self
            .outgoing_id(E::NAME)
            .ok_or_else(|| ExtError::NotNegotiated {
                name: E::NAME.to_owned(),
            })?;
        Ok((id, msg.to_payload()))
    }

    /// Decodes a payload the peer sent under `id` as `E`, if `id` is our id for `E::NAME`.
    pub fn decode<E: ExtensionMessage>(
        &self,
        id: u8,
        payload: Bytes,
    ) -> Option<Result<E, ExtError>> {
        (id != HANDSHAKE_ID && self.local_id(E::NAME) == Some(id)).then(|| E::decode(payload))
    }

    /// Classifies an incoming extended message; a handshake is decoded and applied.
    ///
    /// # Errors
    /// Only for a handshake that fails to decode.
    pub fn handle_incoming(&mut self, id: u8, payload: Bytes) -> Result<Incoming, ExtError> {
        if id == HANDSHAKE_ID {
            let hs = ExtendedHandshake::decode(&payload)?;
            self.apply_peer_handshake(&hs);
            return Ok(Incoming::Handshake(Box::new(hs)));
        }
        Ok(match self.incoming_name(id) {
            Some(name) => Incoming::Message {
                name: name.to_owned(),
                payload,
            },
            None => Incoming::UnknownId { id, payload },
        })
    }
}

fn check_name(name: &str) -> Result<(), ExtError> {
    if name.is_empty() || name.len() > MAX_EXTENSION_NAME_LEN {
        return Err(ExtError::InvalidName {
            len: name.len(),
            max: MAX_EXTENSION_NAME_LEN,
        });
    }
    Ok(())
}

/// BEP 21 `upload_only` extension message: whether the sender only uploads from now on.
/// The payload is one byte, 0 or 1 (any non-zero byte reads as `true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOnly(pub bool);

impl ExtensionMessage for UploadOnly {
    const NAME: &'static str = "upload_only";

    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(u8::from(self.0));
    }

    fn decode(payload: Bytes) -> Result<Self, ExtError> {
        match payload.as_ref() {
            [b] => Ok(UploadOnly(*b != 0)),
            _ => Err(ExtError::IncorrectLength {
                what: Self::NAME,
                expected: 1,
                got: payload.len(),
            }),
        }
    }
}

/// Fuzz entry point for the extension payload decoders. The first byte selects the decoder
/// (handshake, `ut_metadata`, `ut_pex`, `upload_only`, `lt_donthave`), the rest is the payload.
///
/// Panics if a decoder panics, or if a successful decode does not re-encode to bytes that decode
/// to the same value (and, for the handshake, to the same bytes again).
#[allow(clippy::panic)]
pub fn extension_payloads(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let payload = Bytes::copy_from_slice(rest);
    match kind % 5 {
        0 => {
            if let Ok(hs) = ExtendedHandshake::decode(rest) {
                let enc = hs.encode();
                let again = ExtendedHandshake::decode(&enc)
                    .unwrap_or_else(|e| panic!("re-encoded handshake fails: {e}"));
                if again != hs {
                    panic!("handshake round trip: {hs:?} != {again:?}");
                }
                if again.encode() != enc {
                    panic!("handshake encoding not stable");
                }
            }
        }
        1 => roundtrip::<crate::metadata::UtMetadata>(payload),
        2 => roundtrip::<crate::pex::UtPex>(payload),
        3 => roundtrip::<UploadOnly>(payload),
        _ => roundtrip::<crate::donthave::LtDonthave>(payload),
    }
}

#[allow(clippy::panic)]
fn roundtrip<E: ExtensionMessage + PartialEq + std::fmt::Debug>(payload: Bytes) {
    if let Ok(msg) = E::decode(payload) {
        let enc = msg.to_payload();
        match E::decode(enc) {
            Ok(again) if again == msg => {}
            other => panic!("{} round trip: {msg:?} -> {other:?}", E::NAME),
        }
    }
}

impl Encode for ExtendedHandshake {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_into(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_are_kept_verbatim() {
        let raw = b"d1:md11:ut_metadatai3e6:ut_pex3:abc5:emptyi300ee1:p5:hello6:yourip3:abce";
        let hs = ExtendedHandshake::decode(raw).unwrap();
        assert_eq!(hs.m.len(), 1);
        assert_eq!(hs.p, None);
        assert_eq!(hs.yourip, None);
        assert_eq!(
            hs.unknown.get(&b"p"[..]),
            Some(&Value::Bytes(b"hello".to_vec()))
        );
        let again = ExtendedHandshake::decode(&hs.encode()).unwrap();
        assert_eq!(again, hs);
    }

    #[test]
    fn typed_field_replaces_unknown_entry() {
        let mut hs = ExtendedHandshake::decode(b"d1:p3:abce").unwrap();
        hs.p = Some(6881);
        assert_eq!(&hs.encode()[..], b"d1:mde1:pi6881ee");
    }

    #[test]
    fn registry_is_additive() {
        let mut r = ExtensionRegistry::with_builtin();
        assert_eq!(r.local_id("ut_metadata"), Some(1));
        assert_eq!(r.incoming_name(4), Some("lt_donthave"));
        assert_eq!(r.incoming_name(0), None);
        let hs = ExtendedHandshake::decode(b"d1:md11:ut_metadatai3e6:ut_pexi1eee").unwrap();
        r.apply_peer_handshake(&hs);
        assert_eq!(r.outgoing_id("ut_pex"), Some(1));
        let hs = ExtendedHandshake::decode(b"d1:md6:ut_pexi0eee").unwrap();
        r.apply_peer_handshake(&hs);
        assert_eq!(r.outgoing_id("ut_pex"), None);
        assert_eq!(r.outgoing_id("ut_metadata"), Some(3));
        assert!(matches!(
            r.encode(&UploadOnly(true)),
            Err(ExtError::NotNegotiated { .. })
        ));
    }
}
