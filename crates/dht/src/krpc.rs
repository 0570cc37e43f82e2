//! The KRPC message codec: BEP 5 queries, responses and errors, with the extensions of BEP 32
//! (IPv6: `want`, `nodes6`), BEP 33 (scrapes: `scrape`, `noseed`, `BFsd`, `BFpe`), BEP 42
//! (`ip`), BEP 43 (read-only nodes: `ro`), BEP 44 (`get`/`put` of arbitrary data) and BEP 51
//! (`sample_infohashes`).
//!
//! ```
//! use tessera_dht::krpc::{decode, Body, Message, Query};
//! use tessera_dht::Id;
//!
//! let wire = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
//! let msg = decode(wire).unwrap();
//! assert_eq!(msg.tid, b"aa");
//! assert_eq!(msg.body, Body::Query(Query::Ping { id: Id(*b"abcdefghij0123456789") }));
//! assert_eq!(msg.encode(), wire);
//! ```
//!
//! # Decoding
//!
//! [`decode`] reads one datagram of at most [`MAX_DATAGRAM`] bytes in a single pass, with a
//! bencode reader of its own that allocates nothing and accepts exactly what
//! [`tessera_bencode`] accepts in lenient mode: unsorted or duplicate keys (of duplicates the
//! first counts), leading zeros, `-0` and bytes after the message are tolerated; nesting is
//! limited to [`MAX_DEPTH`] levels; anything else that is not bencode, even under a key that is
//! otherwise ignored, is an error. Then:
//!
//! * the message type is taken from `y`; unknown keys are ignored everywhere;
//! * a response is decoded without knowing which query it answers: every field but `id` is
//!   optional, and all that are present are read;
//! * a query whose method is unknown decodes to [`Query::Other`] (BEP 5: answer it like
//!   `find_node` if it has a `target`), unless its name is longer than [`MAX_METHOD_LEN`];
//! * a field the message cannot do without (`t`, `y`, `id`, `target`, `info_hash`, `port`,
//!   `token`, BEP 44 `v`) that is missing or malformed is an error, and so is a *present* field
//!   of the wrong type or length when it carries data (`nodes`, `nodes6`, `values`, `token`,
//!   `samples`, `k`, `sig`, `seq`, `cas`, `salt`, `interval`, `num`, `BFsd`, `BFpe`, and
//!   `target`/`info_hash` of known methods);
//! * where real clients are sloppy, a bad value is ignored instead: the flags (`ro`,
//!   `implied_port`, `seed`, `noseed`, `scrape`: any non-zero integer is true, anything else
//!   false), `want` (unknown entries ignored; no `n4` nor `n6` is the same as no `want`), the
//!   client version `v` (dropped unless a string of at most [`MAX_VERSION_LEN`] bytes), BEP 42
//!   `ip` (dropped unless a 6- or 18-byte string), `values` entries that are not 6- or 18-byte
//!   strings (skipped), a `port` out of range when `implied_port` is set (read as 0), and the
//!   `target`/`info_hash` of an unknown method (dropped);
//! * an error's message need not be UTF-8 (invalid sequences are replaced) and is cut to
//!   [`MAX_ERROR_MESSAGE`] bytes; a missing message reads as empty.
//!
//! Failures are [`KrpcError`]s, which keep the transaction id when it could be read and know
//! which KRPC error to answer a bad query with ([`KrpcError::reply`]).
//!
//! # Encoding
//!
//! [`Message::encode`] writes canonical bencode (keys sorted, no optional field that is
//! absent, flags as `1`), so `decode(&m.encode()) == Ok(m)` for every message within the limits
//! below. What the format cannot represent is not written: an IPv6 contact in
//! [`Response::nodes`] or an IPv4 one in [`Response::nodes6`] is skipped, IPv6 flow info and
//! scope ids are dropped. [`Query::Put::value`](Query::Put) and [`Response::value`] are written
//! verbatim and must hold exactly one bencoded value.
//!
//! # Limits
//!
//! | what | limit | beyond it |
//! | --- | --- | --- |
//! | datagram | [`MAX_DATAGRAM`] bytes | error |
//! | nesting | [`MAX_DEPTH`] levels | error |
//! | `t` | [`MAX_TID_LEN`] bytes | error (no transaction id kept) |
//! | `v` (client version) | [`MAX_VERSION_LEN`] bytes | ignored |
//! | `q` of an unknown method | [`MAX_METHOD_LEN`] bytes | error 204 |
//! | `token` | [`MAX_TOKEN_LEN`] bytes | error |
//! | `nodes`, `nodes6` | [`MAX_NODES`] contacts each | error |
//! | `values` | [`MAX_VALUES`] peers | error |
//! | `samples` | [`MAX_SAMPLES`] ids | error |
//! | BEP 44 `v` | [`MAX_VALUE_LEN`] bytes encoded | error 205 |
//! | BEP 44 `salt` | [`MAX_SALT_LEN`] bytes | error 207 |
//! | error message | [`MAX_ERROR_MESSAGE`] bytes | cut |

use std::net::SocketAddr;

use tessera_bencode::{put_bytes, put_int};

use crate::compact;
use crate::id::{Contact, Id};
use scan::{Dict, Item};

/// Longest datagram accepted. Ethernet frames carry 1472 bytes of UDP payload; this leaves
/// room for peers that send a little more (fragmented) and is still small enough that nothing
/// decoded from it can be large.
pub const MAX_DATAGRAM: usize = 2048;
/// Deepest nesting of lists and dictionaries accepted (the message itself is level 1, `a`/`r`
/// level 2): enough for any BEP 44 value in practice.
pub const MAX_DEPTH: usize = 16;
/// Longest transaction id (`t`) accepted. BEP 5 suggests 2 bytes; libtorrent sends 2, others 4.
pub const MAX_TID_LEN: usize = 16;
/// Longest client version (`v`) kept; BEP 5 suggests 4 bytes.
pub const MAX_VERSION_LEN: usize = 16;
/// Longest method name kept in [`Query::Other`].
pub const MAX_METHOD_LEN: usize = 32;
/// Longest `token` accepted.
pub const MAX_TOKEN_LEN: usize = 64;
/// Most contacts in one `nodes` or `nodes6` string.
pub const MAX_NODES: usize = 64;
/// Most peers in `values`.
pub const MAX_VALUES: usize = 256;
/// Most info hashes in BEP 51 `samples`.
pub const MAX_SAMPLES: usize = 256;
/// Longest BEP 44 value (`v`, bencoded), as BEP 44 specifies.
pub const MAX_VALUE_LEN: usize = 1000;
/// Longest BEP 44 salt, as BEP 44 specifies.
pub const MAX_SALT_LEN: usize = 64;
/// Longest error message kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_ERROR_MESSAGE: usize = 256;

/// Length of the BEP 33 bloom filters `BFsd` and `BFpe`.
pub const BLOOM_LEN: usize = 256;

/// KRPC error code 201: generic error.
pub const ERROR_GENERIC: i64 = 201;
/// KRPC error code 202: server error.
pub const ERROR_SERVER: i64 = 202;
/// KRPC error code 203: protocol error (malformed packet, invalid arguments, bad token).
pub const ERROR_PROTOCOL: i64 = 203;
/// KRPC error code 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;
/// BEP 44 error code 205: message (`v` field) too big.
pub const ERROR_VALUE_TOO_BIG: i64 = 205;
/// BEP 44 error code 206: invalid signature.
pub const ERROR_INVALID_SIGNATURE: i64 = 206;
/// BEP 44 error code 207: salt (`salt` field) too big.
pub const ERROR_SALT_TOO_BIG: i64 = 207;
/// BEP 44 error code 301: the CAS hash mismatched, re-read value and try again.
pub const ERROR_CAS_MISMATCH: i64 = 301;
/// BEP 44 error code 302: sequence number less than current.
pub const ERROR_SEQ_TOO_LOW: i64 = 302;

/// One KRPC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Transaction id (`t`), echoed in the reply; at most [`MAX_TID_LEN`] bytes.
    pub tid: Vec<u8>,
    /// Client version (`v`): a BEP 20 client code and two version bytes; at most
    /// [`MAX_VERSION_LEN`] bytes.
    pub version: Option<Vec<u8>>,
    /// BEP 42: the address the sender sees the recipient at (`ip`).
    pub ip: Option<SocketAddr>,
    /// BEP 43: the sender is a read-only node (`ro`), not to be put in routing tables.
    pub read_only: bool,
    /// Query, response or error.
    pub body: Body,
}

/// What a [`Message`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `y` = `q`.
    Query(Query),
    /// `y` = `r`.
    Response(Response),
    /// `y` = `e`: `e` = `[code, message]`.
    Error {
        /// Error code (see the `ERROR_*` constants).
        code: i64,
        /// Human-readable message.
        message: String,
    },
}

/// BEP 32 `want`: which address families the querier wants nodes of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Want {
    /// `["n4"]`: IPv4 nodes (`nodes`).
    V4,
    /// `["n6"]`: IPv6 nodes (`nodes6`).
    V6,
    /// `["n4", "n6"]`: both.
    Both,
}

impl Want {
    /// True if IPv4 nodes are wanted.
    pub fn v4(self) -> bool {
        matches!(self, Want::V4 | Want::Both)
    }

    /// True if IPv6 nodes are wanted.
    pub fn v6(self) -> bool {
        matches!(self, Want::V6 | Want::Both)
    }
}

/// A query (`q` names the method, `a` holds the arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `ping`.
    Ping {
        /// Querying node.
        id: Id,
    },
    /// `find_node`.
    FindNode {
        /// Querying node.
        id: Id,
        /// Node sought.
        target: Id,
        /// BEP 32 address families wanted.
        want: Option<Want>,
    },
    /// `get_peers`.
    GetPeers {
        /// Querying node.
        id: Id,
        /// Torrent whose peers are sought.
        info_hash: Id,
        /// BEP 32 address families wanted.
        want: Option<Want>,
        /// BEP 33 `noseed`: leave seeds out of `values`.
        noseed: bool,
        /// BEP 33 `scrape`: send the bloom filters `BFsd` and `BFpe`.
        scrape: bool,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// Querying node.
        id: Id,
        /// Torrent announced.
        info_hash: Id,
        /// TCP (or uTP) port of the peer.
        port: u16,
        /// Use the UDP source port instead of `port`.
        implied_port: bool,
        /// Token from an earlier `get_peers` response.
        token: Vec<u8>,
        /// The peer is a seed.
        seed: bool,
    },
    /// BEP 44 `get`.
    Get {
        /// Querying node.
        id: Id,
        /// SHA-1 of the value (immutable) or of the key and salt (mutable).
        target: Id,
        /// Send the value only if its sequence number is greater than this.
        seq: Option<i64>,
        /// BEP 32 address families wanted.
        want: Option<Want>,
    },
    /// BEP 44 `put`.
    Put {
        /// Querying node.
        id: Id,
        /// Token from an earlier `get` response.
        token: Vec<u8>,
        /// The value `v`, bencoded, exactly as received (at most [`MAX_VALUE_LEN`] bytes).
        value: Vec<u8>,
        /// Mutable items: the ed25519 public key `k`.
        key: Option<[u8; 32]>,
        /// Mutable items: the ed25519 signature `sig`.
        signature: Option<[u8; 64]>,
        /// Mutable items: the salt (at most [`MAX_SALT_LEN`] bytes).
        salt: Option<Vec<u8>>,
        /// Mutable items: the sequence number.
        seq: Option<i64>,
        /// Compare-and-swap: the sequence number the stored item must have.
        cas: Option<i64>,
    },
    /// BEP 51 `sample_infohashes`.
    SampleInfohashes {
        /// Querying node.
        id: Id,
        /// Where in the key space to sample (also answered like `find_node`).
        target: Id,
        /// BEP 32 address families wanted.
        want: Option<Want>,
    },
    /// A method this codec does not know. BEP 5: answer it like `find_node` if it has a
    /// `target` (or `info_hash`), with error 204 otherwise.
    Other {
        /// Method name (at most [`MAX_METHOD_LEN`] bytes; never one of the methods above).
        method: Vec<u8>,
        /// Querying node.
        id: Id,
        /// `target`, if present and 20 bytes long.
        target: Option<Id>,
        /// `info_hash`, if present and 20 bytes long.
        info_hash: Option<Id>,
    },
}

impl Query {
    /// The querying node's id.
    pub fn id(&self) -> Id {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. }
            | Query::Get { id, .. }
            | Query::Put { id, .. }
            | Query::SampleInfohashes { id, .. }
            | Query::Other { id, .. } => *id,
        }
    }

    /// The method name (`q`).
    pub fn method(&self) -> &[u8] {
        match self {
            Query::Ping { .. } => b"ping",
            Query::FindNode { .. } => b"find_node",
            Query::GetPeers { .. } => b"get_peers",
            Query::AnnouncePeer { .. } => b"announce_peer",
            Query::Get { .. } => b"get",
            Query::Put { .. } => b"put",
            Query::SampleInfohashes { .. } => b"sample_infohashes",
            Query::Other { method, .. } => method,
        }
    }
}

/// A response (`r`). Its fields depend on the query it answers, which the codec does not know:
/// all but `id` are optional, and empty lists are not written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// Responding node.
    pub id: Id,
    /// `nodes`: IPv4 contacts (26 bytes each).
    pub nodes: Vec<Contact>,
    /// BEP 32 `nodes6`: IPv6 contacts (38 bytes each).
    pub nodes6: Vec<Contact>,
    /// `get_peers`: peers (`values`, a list of 6- or 18-byte strings).
    pub values: Vec<SocketAddr>,
    /// `get_peers`, BEP 44 `get`: write token for a later `announce_peer` or `put`.
    pub token: Option<Vec<u8>>,
    /// BEP 44 `get`: the value `v`, bencoded, exactly as received.
    pub value: Option<Vec<u8>>,
    /// BEP 44 `get`: the public key `k` of a mutable item.
    pub key: Option<[u8; 32]>,
    /// BEP 44 `get`: the signature `sig` of a mutable item.
    pub signature: Option<[u8; 64]>,
    /// BEP 44 `get`: the sequence number of a mutable item.
    pub seq: Option<i64>,
    /// BEP 51: sampled info hashes (`samples`).
    pub samples: Vec<Id>,
    /// BEP 51: seconds before the node should be sampled again.
    pub interval: Option<i64>,
    /// BEP 51: number of info hashes the node stores.
    pub num: Option<i64>,
    /// BEP 33 `BFsd`: bloom filter of the seeds.
    pub bloom_seeds: Option<Box<[u8; BLOOM_LEN]>>,
    /// BEP 33 `BFpe`: bloom filter of all peers.
    pub bloom_peers: Option<Box<[u8; BLOOM_LEN]>>,
}

impl Response {
    /// A response carrying only the responder's id (the answer to `ping` and
    /// `announce_peer`).
    pub fn new(id: Id) -> Response {
        Response {
            id,
            ..Response::default()
        }
    }
}

/// Why a datagram is not a KRPC message this codec accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KrpcError {
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram of {len} bytes is longer than {MAX_DATAGRAM}")]
    Oversized {
        /// Its length.
        len: usize,
    },
    /// Not bencode: truncated, malformed, or nested deeper than [`MAX_DEPTH`].
    #[error("not bencode: {reason} at byte {offset}")]
    NotBencode {
        /// Where the fault was found.
        offset: usize,
        /// What it is.
        reason: &'static str,
    },
    /// Bencode, but not a valid KRPC message: a required key missing, or a value of the wrong
    /// type, length or range.
    #[error("malformed KRPC message: {reason}")]
    Malformed {
        /// The transaction id, if it could be read.
        tid: Option<Vec<u8>>,
        /// True if the message is a query (`y` = `q`), so the sender expects an answer.
        query: bool,
        /// What is wrong.
        reason: &'static str,
    },
    /// A query of an unknown method whose name is too long to keep ([`MAX_METHOD_LEN`]).
    #[error("unknown method")]
    UnknownMethod {
        /// The transaction id.
        tid: Vec<u8>,
    },
    /// A BEP 44 value longer than [`MAX_VALUE_LEN`] bytes.
    #[error("BEP 44 value longer than {MAX_VALUE_LEN} bytes")]
    ValueTooBig {
        /// The transaction id.
        tid: Vec<u8>,
        /// True if the message is a query.
        query: bool,
    },
    /// A BEP 44 salt longer than [`MAX_SALT_LEN`] bytes (in a `put` query).
    #[error("BEP 44 salt longer than {MAX_SALT_LEN} bytes")]
    SaltTooBig {
        /// The transaction id.
        tid: Vec<u8>,
    },
}

impl KrpcError {
    /// The transaction id of the offending message, if it could be read.
    pub fn tid(&self) -> Option<&[u8]> {
        match self {
            KrpcError::Oversized { .. } | KrpcError::NotBencode { .. } => None,
            KrpcError::Malformed { tid, .. } => tid.as_deref(),
            KrpcError::UnknownMethod { tid }
            | KrpcError::ValueTooBig { tid, .. }
            | KrpcError::SaltTooBig { tid } => Some(tid),
        }
    }

    /// True if the offending message is known to be a query, which its sender expects an
    /// answer to.
    pub fn is_query(&self) -> bool {
        match self {
            KrpcError::Oversized { .. } | KrpcError::NotBencode { .. } => false,
            KrpcError::Malformed { query, .. } | KrpcError::ValueTooBig { query, .. } => *query,
            KrpcError::UnknownMethod { .. } | KrpcError::SaltTooBig { .. } => true,
        }
    }

    /// The KRPC error code and message to answer with: 203 "protocol error", 204 "method
    /// unknown", or BEP 44's 205 and 207.
    pub fn reply_code(&self) -> (i64, &'static str) {
        match self {
            KrpcError::Oversized { .. }
            | KrpcError::NotBencode { .. }
            | KrpcError::Malformed { .. } => (ERROR_PROTOCOL, "protocol error"),
            KrpcError::UnknownMethod { .. } => (ERROR_METHOD_UNKNOWN, "method unknown"),
            KrpcError::ValueTooBig { .. } => (ERROR_VALUE_TOO_BIG, "message (v field) too big"),
            KrpcError::SaltTooBig { .. } => (ERROR_SALT_TOO_BIG, "salt (salt field) too big"),
        }
    }

    /// The error message to send back, if one should be sent: only for a query whose
    /// transaction id is known (never answer a bad response or error, or a datagram that is
    /// not even a message).
    pub fn reply(&self) -> Option<Message> {
        if !self.is_query() {
            return None;
        }
        let (code, message) = self.reply_code();
        Some(Message::error(self.tid()?.to_vec(), code, message))
    }
}

impl Message {
    /// A query with no version, `ip` or `ro`.
    pub fn query(tid: Vec<u8>, query: Query) -> Message {
        Message::with_body(tid, Body::Query(query))
    }

    /// A response with no version, `ip` or `ro`.
    pub fn response(tid: Vec<u8>, response: Response) -> Message {
        Message::with_body(tid, Body::Response(response))
    }

    /// An error with no version, `ip` or `ro`.
    pub fn error(tid: Vec<u8>, code: i64, message: impl Into<String>) -> Message {
        Message::with_body(
            tid,
            Body::Error {
                code,
                message: message.into(),
            },
        )
    }

    fn with_body(tid: Vec<u8>, body: Body) -> Message {
        Message {
            tid,
            version: None,
            ip: None,
            read_only: false,
            body,
        }
    }

    /// The canonical encoding (see the [module documentation](self)).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(b'd');
        match &self.body {
            Body::Query(q) => {
                out.extend_from_slice(b"1:a");
                encode_args(q, out);
            }
            Body::Error { code, message } => {
                out.extend_from_slice(b"1:el");
                put_int(out, *code);
                put_bytes(out, message.as_bytes());
                out.push(b'e');
            }
            Body::Response(_) => {}
        }
        if let Some(ip) = &self.ip {
            out.extend_from_slice(b"2:ip");
            put_compact_peer(out, ip);
        }
        match &self.body {
            Body::Query(q) => {
                out.extend_from_slice(b"1:q");
                put_bytes(out, q.method());
            }
            Body::Response(r) => {
                out.extend_from_slice(b"1:r");
                encode_response(r, out);
            }
            Body::Error { .. } => {}
        }
        if self.read_only {
            out.extend_from_slice(b"2:roi1e");
        }
        out.extend_from_slice(b"1:t");
        put_bytes(out, &self.tid);
        if let Some(v) = &self.version {
            out.extend_from_slice(b"1:v");
            put_bytes(out, v);
        }
        out.extend_from_slice(match self.body {
            Body::Query(_) => b"1:y1:qe",
            Body::Response(_) => b"1:y1:re",
            Body::Error { .. } => b"1:y1:ee",
        });
    }

    /// An upper bound on the encoded length, close enough to size the buffer once.
    fn size_hint(&self) -> usize {
        let body = match &self.body {
            Body::Query(Query::Put {
                token, value, salt, ..
            }) => 300 + token.len() + value.len() + salt.as_ref().map_or(0, Vec::len),
            Body::Query(Query::AnnouncePeer { token, .. }) => 150 + token.len(),
            Body::Query(_) => 150,
            Body::Response(r) => {
                200 + r.nodes.len() * compact::NODE_V4_LEN
                    + r.nodes6.len() * compact::NODE_V6_LEN
                    + r.values.len() * (compact::PEER_V6_LEN + 3)
                    + r.samples.len() * 20
                    + r.token.as_ref().map_or(0, Vec::len)
                    + r.value.as_ref().map_or(0, Vec::len)
                    + 2 * (BLOOM_LEN + 10)
            }
            Body::Error { message, .. } => 40 + message.len(),
        };
        body + 60 + self.tid.len() + self.version.as_ref().map_or(0, Vec::len)
    }
}

/// Why the body of a message was refused (the message's `t` and `y` are added later).
enum Fault {
    Malformed(&'static str),
    UnknownMethod,
    ValueTooBig,
    SaltTooBig,
}

/// Decodes one datagram (see the [module documentation](self) for what is accepted).
///
/// # Errors
/// [`KrpcError::Oversized`] for more than [`MAX_DATAGRAM`] bytes, [`KrpcError::NotBencode`] for
/// anything that is not bencode (a truncated datagram included), and otherwise an error
/// carrying the transaction id when it could be read.
pub fn decode(bytes: &[u8]) -> Result<Message, KrpcError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(KrpcError::Oversized { len: bytes.len() });
    }
    let mut top = Top::default();
    Top::read(&mut top, bytes).map_err(|e| match scan::item(bytes, 0, 1) {
        // Bencode, but not a dictionary.
        Ok(_) => KrpcError::Malformed {
            tid: None,
            query: false,
            reason: "not a dictionary",
        },
        Err(_) => KrpcError::NotBencode {
            offset: e.offset,
            reason: e.reason,
        },
    })?;
    let y = top.y.and_then(|y| y.as_bytes());
    let query = y == Some(b"q");
    let tid = match top.t.and_then(|t| t.as_bytes()) {
        Some(t) if t.len() <= MAX_TID_LEN => t,
        _ => {
            return Err(KrpcError::Malformed {
                tid: None,
                query,
                reason: "missing or invalid transaction id",
            })
        }
    };
    let body = match y {
        Some(b"q") => decode_query(top.q, top.a.as_ref()).map(Body::Query),
        Some(b"r") => decode_response(top.r.as_ref()).map(Body::Response),
        Some(b"e") => decode_error(top.e),
        _ => Err(Fault::Malformed("missing or unknown message type")),
    };
    let body = body.map_err(|fault| {
        let tid = tid.to_vec();
        match fault {
            Fault::Malformed(reason) => KrpcError::Malformed {
                tid: Some(tid),
                query,
                reason,
            },
            Fault::UnknownMethod => KrpcError::UnknownMethod { tid },
            Fault::ValueTooBig => KrpcError::ValueTooBig { tid, query },
            Fault::SaltTooBig => KrpcError::SaltTooBig { tid },
        }
    })?;
    Ok(Message {
        tid: tid.to_vec(),
        version: top
            .v
            .and_then(|v| v.as_bytes())
            .filter(|v| v.len() <= MAX_VERSION_LEN)
            .map(<[u8]>::to_vec),
        ip: top.ip.and_then(|ip| ip.as_bytes()).and_then(compact::peer),
        read_only: flag(top.ro),
        body,
    })
}

type Slot<'a> = Option<Item<'a>>;

/// Stores `value` in `slot` unless it holds one already: of duplicate keys, the first counts.
fn keep<'a>(slot: &mut Slot<'a>, value: Item<'a>) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// What the message dictionary holds, read in one pass: `a` and `r` are read as they come
/// (so nothing is scanned twice), the rest is kept as checked values.
#[derive(Default)]
struct Top<'a> {
    t: Slot<'a>,
    y: Slot<'a>,
    q: Slot<'a>,
    e: Slot<'a>,
    v: Slot<'a>,
    ip: Slot<'a>,
    ro: Slot<'a>,
    /// `a`, if it is a dictionary.
    a: Option<Args<'a>>,
    /// `r`, if it is a dictionary.
    r: Option<Fields<'a>>,
}

impl<'a> Top<'a> {
    fn read(top: &mut Self, bytes: &'a [u8]) -> Result<(), scan::Syntax> {
        let mut root = Dict::root(bytes)?;
        while let Some(key) = root.next_key()? {
            match key {
                b"a" if top.a.is_none() && root.dict_next() => {
                    let mut d = root.enter()?;
                    let args = top.a.insert(Args::default());
                    args.read(&mut d)?;
                    root.resume(d);
                }
                b"r" if top.r.is_none() && root.dict_next() => {
                    let mut d = root.enter()?;
                    let fields = top.r.insert(Fields::default());
                    fields.read(&mut d)?;
                    root.resume(d);
                }
                _ => {
                    let value = root.value()?;
                    let slot = match key {
                        b"t" => &mut top.t,
                        b"y" => &mut top.y,
                        b"q" => &mut top.q,
                        b"e" => &mut top.e,
                        b"v" => &mut top.v,
                        b"ip" => &mut top.ip,
                        b"ro" => &mut top.ro,
                        _ => continue,
                    };
                    keep(slot, value);
                }
            }
        }
        Ok(())
    }
}

/// The arguments of a query that this codec reads, whatever the method.
#[derive(Default)]
struct Args<'a> {
    id: Slot<'a>,
    target: Slot<'a>,
    info_hash: Slot<'a>,
    want: Slot<'a>,
    noseed: Slot<'a>,
    scrape: Slot<'a>,
    port: Slot<'a>,
    implied_port: Slot<'a>,
    token: Slot<'a>,
    seed: Slot<'a>,
    seq: Slot<'a>,
    v: Slot<'a>,
    k: Slot<'a>,
    sig: Slot<'a>,
    salt: Slot<'a>,
    cas: Slot<'a>,
}

impl<'a> Args<'a> {
    fn read(&mut self, dict: &mut Dict<'a>) -> Result<(), scan::Syntax> {
        let args = self;
        while let Some(key) = dict.next_key()? {
            let value = dict.value()?;
            let slot = match key {
                b"id" => &mut args.id,
                b"target" => &mut args.target,
                b"info_hash" => &mut args.info_hash,
                b"want" => &mut args.want,
                b"noseed" => &mut args.noseed,
                b"scrape" => &mut args.scrape,
                b"port" => &mut args.port,
                b"implied_port" => &mut args.implied_port,
                b"token" => &mut args.token,
                b"seed" => &mut args.seed,
                b"seq" => &mut args.seq,
                b"v" => &mut args.v,
                b"k" => &mut args.k,
                b"sig" => &mut args.sig,
                b"salt" => &mut args.salt,
                b"cas" => &mut args.cas,
                _ => continue,
            };
            keep(slot, value);
        }
        Ok(())
    }
}

/// The fields of a response that this codec reads.
#[derive(Default)]
struct Fields<'a> {
    id: Slot<'a>,
    nodes: Slot<'a>,
    nodes6: Slot<'a>,
    values: Slot<'a>,
    token: Slot<'a>,
    v: Slot<'a>,
    k: Slot<'a>,
    sig: Slot<'a>,
    seq: Slot<'a>,
    samples: Slot<'a>,
    interval: Slot<'a>,
    num: Slot<'a>,
    bf_seeds: Slot<'a>,
    bf_peers: Slot<'a>,
}

impl<'a> Fields<'a> {
    fn read(&mut self, dict: &mut Dict<'a>) -> Result<(), scan::Syntax> {
        let f = self;
        while let Some(key) = dict.next_key()? {
            let value = dict.value()?;
            let slot = match key {
                b"id" => &mut f.id,
                b"nodes" => &mut f.nodes,
                b"nodes6" => &mut f.nodes6,
                b"values" => &mut f.values,
                b"token" => &mut f.token,
                b"v" => &mut f.v,
                b"k" => &mut f.k,
                b"sig" => &mut f.sig,
                b"seq" => &mut f.seq,
                b"samples" => &mut f.samples,
                b"interval" => &mut f.interval,
                b"num" => &mut f.num,
                b"BFsd" => &mut f.bf_seeds,
                b"BFpe" => &mut f.bf_peers,
                _ => continue,
            };
            keep(slot, value);
        }
        Ok(())
    }
}

fn decode_query(q: Slot<'_>, args: Option<&Args<'_>>) -> Result<Query, Fault> {
    let method = q
        .and_then(|q| q.as_bytes())
        .ok_or(Fault::Malformed("missing method name"))?;
    let args = args.ok_or(Fault::Malformed("missing arguments"))?;
    let id = required_id(args.id, "missing or invalid id")?;
    let target = || required_id(args.target, "missing or invalid target");
    let info_hash = || required_id(args.info_hash, "missing or invalid info_hash");
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: target()?,
            want: want(args.want),
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: info_hash()?,
            want: want(args.want),
            noseed: flag(args.noseed),
            scrape: flag(args.scrape),
        },
        b"announce_peer" => {
            let implied_port = flag(args.implied_port);
            let port = match args.port.and_then(|p| p.as_int()) {
                Some(p) => u16::try_from(p).ok(),
                None => None,
            };
            let port = match (port, args.port.is_some(), implied_port) {
                (Some(p), _, _) => p,
                (None, true, true) => 0,
                _ => return Err(Fault::Malformed("missing or invalid port")),
            };
            Query::AnnouncePeer {
                id,
                info_hash: info_hash()?,
                port,
                implied_port,
                token: token(args.token)?.ok_or(Fault::Malformed("missing token"))?,
                seed: flag(args.seed),
            }
        }
        b"get" => Query::Get {
            id,
            target: target()?,
            seq: int(args.seq, "invalid seq")?,
            want: want(args.want),
        },
        b"put" => Query::Put {
            id,
            token: token(args.token)?.ok_or(Fault::Malformed("missing token"))?,
            value: bep44_value(args.v)?.ok_or(Fault::Malformed("missing v"))?,
            key: fixed(args.k, "invalid k")?,
            signature: fixed(args.sig, "invalid sig")?,
            salt: match args.salt {
                None => None,
                Some(s) => {
                    let s = s.as_bytes().ok_or(Fault::Malformed("invalid salt"))?;
                    if s.len() > MAX_SALT_LEN {
                        return Err(Fault::SaltTooBig);
                    }
                    Some(s.to_vec())
                }
            },
            seq: int(args.seq, "invalid seq")?,
            cas: int(args.cas, "invalid cas")?,
        },
        b"sample_infohashes" => Query::SampleInfohashes {
            id,
            target: target()?,
            want: want(args.want),
        },
        _ if method.len() > MAX_METHOD_LEN => return Err(Fault::UnknownMethod),
        _ => Query::Other {
            method: method.to_vec(),
            id,
            target: args
                .target
                .and_then(|t| t.as_bytes())
                .and_then(Id::from_slice),
            info_hash: args
                .info_hash
                .and_then(|t| t.as_bytes())
                .and_then(Id::from_slice),
        },
    })
}

fn decode_response(fields: Option<&Fields<'_>>) -> Result<Response, Fault> {
    let Fields {
        id,
        nodes,
        nodes6,
        values,
        token: token_,
        v,
        k,
        sig,
        seq,
        samples,
        interval,
        num,
        bf_seeds,
        bf_peers,
    } = *fields.ok_or(Fault::Malformed("missing response dictionary"))?;
    Ok(Response {
        id: required_id(id, "missing or invalid id")?,
        nodes: node_list(nodes, compact::NODE_V4_LEN, "invalid nodes")?,
        nodes6: node_list(nodes6, compact::NODE_V6_LEN, "invalid nodes6")?,
        values: peer_list(values)?,
        token: token(token_)?,
        value: bep44_value(v)?,
        key: fixed(k, "invalid k")?,
        signature: fixed(sig, "invalid sig")?,
        seq: int(seq, "invalid seq")?,
        samples: match samples {
            None => Vec::new(),
            Some(s) => {
                let s = s.as_bytes().ok_or(Fault::Malformed("invalid samples"))?;
                if s.len() % 20 != 0 || s.len() / 20 > MAX_SAMPLES {
                    return Err(Fault::Malformed("invalid samples"));
                }
                s.chunks_exact(20).filter_map(Id::from_slice).collect()
            }
        },
        interval: int(interval, "invalid interval")?,
        num: int(num, "invalid num")?,
        bloom_seeds: fixed(bf_seeds, "invalid BFsd")?.map(Box::new),
        bloom_peers: fixed(bf_peers, "invalid BFpe")?.map(Box::new),
    })
}

fn decode_error(e: Slot<'_>) -> Result<Body, Fault> {
    let list = e
        .and_then(|e| e.as_list())
        .ok_or(Fault::Malformed("missing error list"))?;
    let mut items = list;
    let code = items
        .next()
        .and_then(|c| c.as_int())
        .ok_or(Fault::Malformed("invalid error code"))?;
    let raw = items.next().and_then(|m| m.as_bytes()).unwrap_or_default();
    let mut message = String::from_utf8_lossy(raw.get(..MAX_ERROR_MESSAGE).unwrap_or(raw));
    if message.len() > MAX_ERROR_MESSAGE {
        // Replacement characters made it longer: cut again, at a character boundary.
        let mut end = MAX_ERROR_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.to_mut().truncate(end);
    }
    Ok(Body::Error {
        code,
        message: message.into_owned(),
    })
}

fn required_id(v: Slot<'_>, reason: &'static str) -> Result<Id, Fault> {
    v.and_then(|v| v.as_bytes())
        .and_then(Id::from_slice)
        .ok_or(Fault::Malformed(reason))
}

/// A flag: any non-zero integer is true; absent or anything else is false.
fn flag(v: Slot<'_>) -> bool {
    v.and_then(|v| v.as_int()).is_some_and(|i| i != 0)
}

/// BEP 32 `want`: a list of `n4`/`n6`; anything else reads as absent.
fn want(v: Slot<'_>) -> Option<Want> {
    let (mut v4, mut v6) = (false, false);
    for item in v?.as_list()? {
        match item.as_bytes() {
            Some(b"n4") => v4 = true,
            Some(b"n6") => v6 = true,
            _ => {}
        }
    }
    match (v4, v6) {
        (true, true) => Some(Want::Both),
        (true, false) => Some(Want::V4),
        (false, true) => Some(Want::V6),
        (false, false) => None,
    }
}

fn int(v: Slot<'_>, reason: &'static str) -> Result<Option<i64>, Fault> {
    v.map(|v| v.as_int().ok_or(Fault::Malformed(reason)))
        .transpose()
}

fn fixed<const N: usize>(v: Slot<'_>, reason: &'static str) -> Result<Option<[u8; N]>, Fault> {
    v.map(|v| {
        v.as_bytes()
            .and_then(|b| <[u8; N]>::try_from(b).ok())
            .ok_or(Fault::Malformed(reason))
    })
    .transpose()
}

fn token(v: Slot<'_>) -> Result<Option<Vec<u8>>, Fault> {
    v.map(|v| match v.as_bytes() {
        Some(t) if t.len() <= MAX_TOKEN_LEN => Ok(t.to_vec()),
        _ => Err(Fault::Malformed("invalid token")),
    })
    .transpose()
}

/// BEP 44 `v`: any value, kept exactly as encoded.
fn bep44_value(v: Slot<'_>) -> Result<Option<Vec<u8>>, Fault> {
    v.map(|v| {
        let raw = v.raw;
        if raw.len() > MAX_VALUE_LEN {
            Err(Fault::ValueTooBig)
        } else {
            Ok(raw.to_vec())
        }
    })
    .transpose()
}

fn node_list(v: Slot<'_>, len: usize, reason: &'static str) -> Result<Vec<Contact>, Fault> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let bytes = v.as_bytes().ok_or(Fault::Malformed(reason))?;
    if bytes.len() % len != 0 || bytes.len() / len > MAX_NODES {
        return Err(Fault::Malformed(reason));
    }
    let mut out = Vec::with_capacity(bytes.len() / len);
    for chunk in bytes.chunks_exact(len) {
        out.push(compact::node(chunk).ok_or(Fault::Malformed(reason))?);
    }
    Ok(out)
}

/// `values`: a list of compact peers; entries that are not 6- or 18-byte strings are skipped.
fn peer_list(v: Slot<'_>) -> Result<Vec<SocketAddr>, Fault> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let list = v.as_list().ok_or(Fault::Malformed("invalid values"))?;
    let mut out = Vec::with_capacity(list.max_len().min(MAX_VALUES));
    for peer in list.filter_map(|p| p.as_bytes().and_then(compact::peer)) {
        if out.len() == MAX_VALUES {
            return Err(Fault::Malformed("too many values"));
        }
        out.push(peer);
    }
    Ok(out)
}

fn put_compact_peer(out: &mut Vec<u8>, addr: &SocketAddr) {
    out.extend_from_slice(if addr.is_ipv4() { b"6:" } else { b"18:" });
    compact::put_peer(out, addr);
}

fn put_id(out: &mut Vec<u8>, key: &[u8], id: &Id) {
    out.extend_from_slice(key);
    out.extend_from_slice(b"20:");
    out.extend_from_slice(id.as_bytes());
}

fn put_want(out: &mut Vec<u8>, want: Option<Want>) {
    out.extend_from_slice(match want {
        None => return,
        Some(Want::V4) => b"4:wantl2:n4e",
        Some(Want::V6) => b"4:wantl2:n6e",
        Some(Want::Both) => b"4:wantl2:n42:n6e",
    });
}

fn put_flag(out: &mut Vec<u8>, key: &[u8], set: bool) {
    if set {
        out.extend_from_slice(key);
        out.extend_from_slice(b"i1e");
    }
}

fn put_opt_int(out: &mut Vec<u8>, key: &[u8], v: Option<i64>) {
    if let Some(v) = v {
        out.extend_from_slice(key);
        put_int(out, v);
    }
}

fn put_opt_bytes(out: &mut Vec<u8>, key: &[u8], v: Option<&[u8]>) {
    if let Some(v) = v {
        out.extend_from_slice(key);
        put_bytes(out, v);
    }
}

/// The `a` dictionary; keys in sorted order by construction.
fn encode_args(q: &Query, out: &mut Vec<u8>) {
    out.push(b'd');
    match q {
        Query::Ping { id } => put_id(out, b"2:id", id),
        Query::FindNode { id, target, want } | Query::SampleInfohashes { id, target, want } => {
            put_id(out, b"2:id", id);
            put_id(out, b"6:target", target);
            put_want(out, *want);
        }
        Query::GetPeers {
            id,
            info_hash,
            want,
            noseed,
            scrape,
        } => {
            put_id(out, b"2:id", id);
            put_id(out, b"9:info_hash", info_hash);
            put_flag(out, b"6:noseed", *noseed);
            put_flag(out, b"6:scrape", *scrape);
            put_want(out, *want);
        }
        Query::AnnouncePeer {
            id,
            info_hash,
            port,
            implied_port,
            token,
            seed,
        } => {
            put_id(out, b"2:id", id);
            put_flag(out, b"12:implied_port", *implied_port);
            put_id(out, b"9:info_hash", info_hash);
            out.extend_from_slice(b"4:port");
            put_int(out, i64::from(*port));
            put_flag(out, b"4:seed", *seed);
            out.extend_from_slice(b"5:token");
            put_bytes(out, token);
        }
        Query::Get {
            id,
            target,
            seq,
            want,
        } => {
            put_id(out, b"2:id", id);
            put_opt_int(out, b"3:seq", *seq);
            put_id(out, b"6:target", target);
            put_want(out, *want);
        }
        Query::Put {
            id,
            token,
            value,
            key,
            signature,
            salt,
            seq,
            cas,
        } => {
            put_opt_int(out, b"3:cas", *cas);
            put_id(out, b"2:id", id);
            put_opt_bytes(out, b"1:k", key.as_ref().map(|k| &k[..]));
            put_opt_bytes(out, b"4:salt", salt.as_deref());
            put_opt_int(out, b"3:seq", *seq);
            put_opt_bytes(out, b"3:sig", signature.as_ref().map(|s| &s[..]));
            out.extend_from_slice(b"5:token");
            put_bytes(out, token);
            out.extend_from_slice(b"1:v");
            out.extend_from_slice(value);
        }
        Query::Other {
            id,
            target,
            info_hash,
            ..
        } => {
            put_id(out, b"2:id", id);
            if let Some(h) = info_hash {
                put_id(out, b"9:info_hash", h);
            }
            if let Some(t) = target {
                put_id(out, b"6:target", t);
            }
        }
    }
    out.push(b'e');
}

/// Appends a compact node string of the contacts of one family.
fn put_nodes(out: &mut Vec<u8>, key: &[u8], nodes: &[Contact], v4: bool, node_len: usize) {
    let n = nodes.iter().filter(|c| c.addr.is_ipv4() == v4).count();
    if n == 0 {
        return;
    }
    out.extend_from_slice(key);
    let len = n * node_len;
    put_len(out, len);
    out.reserve(len);
    for c in nodes.iter().filter(|c| c.addr.is_ipv4() == v4) {
        compact::put_node(out, c);
    }
}

/// Appends `<len>:`.
fn put_len(out: &mut Vec<u8>, len: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = len;
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
    out.push(b':');
}

/// The `r` dictionary; keys in sorted order by construction.
fn encode_response(r: &Response, out: &mut Vec<u8>) {
    out.push(b'd');
    if let Some(bf) = &r.bloom_peers {
        out.extend_from_slice(b"4:BFpe");
        put_bytes(out, &bf[..]);
    }
    if let Some(bf) = &r.bloom_seeds {
        out.extend_from_slice(b"4:BFsd");
        put_bytes(out, &bf[..]);
    }
    put_id(out, b"2:id", &r.id);
    put_opt_int(out, b"8:interval", r.interval);
    put_opt_bytes(out, b"1:k", r.key.as_ref().map(|k| &k[..]));
    put_nodes(out, b"5:nodes", &r.nodes, true, compact::NODE_V4_LEN);
    put_nodes(out, b"6:nodes6", &r.nodes6, false, compact::NODE_V6_LEN);
    put_opt_int(out, b"3:num", r.num);
    if !r.samples.is_empty() {
        out.extend_from_slice(b"7:samples");
        put_len(out, r.samples.len() * 20);
        for s in &r.samples {
            out.extend_from_slice(s.as_bytes());
        }
    }
    put_opt_int(out, b"3:seq", r.seq);
    put_opt_bytes(out, b"3:sig", r.signature.as_ref().map(|s| &s[..]));
    put_opt_bytes(out, b"5:token", r.token.as_deref());
    if let Some(v) = &r.value {
        out.extend_from_slice(b"1:v");
        out.extend_from_slice(v);
    }
    if !r.values.is_empty() {
        out.extend_from_slice(b"6:valuesl");
        for p in &r.values {
            put_compact_peer(out, p);
        }
        out.push(b'e');
    }
    out.push(b'e');
}

/// A validating bencode reader specialised for datagrams: no tape and no allocation, so
/// decoding a query costs a few passes over its ~100 bytes. It accepts exactly what
/// `tessera_bencode` accepts in lenient mode with [`MAX_DEPTH`] (unsorted and duplicate keys,
/// leading zeros, `-0`, trailing bytes after the root value).
mod scan {
    use super::MAX_DEPTH;

    /// A syntax error: where, and what.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Syntax {
        pub(super) offset: usize,
        pub(super) reason: &'static str,
    }

    fn err<T>(offset: usize, reason: &'static str) -> Result<T, Syntax> {
        Err(Syntax { offset, reason })
    }

    /// One value, checked: its whole encoding, whose first byte tells its kind. Two words, so
    /// the slots that hold them are cheap to fill and move; the accessors read the (short)
    /// encoding again.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Item<'a> {
        pub(super) raw: &'a [u8],
    }

    impl<'a> Item<'a> {
        pub(super) fn as_int(&self) -> Option<i64> {
            if self.raw.first() != Some(&b'i') {
                return None;
            }
            int(self.raw, 0).ok().map(|(i, _)| i)
        }

        pub(super) fn as_bytes(&self) -> Option<&'a [u8]> {
            if !self.raw.first().is_some_and(u8::is_ascii_digit) {
                return None;
            }
            string(self.raw, 0).ok().map(|(b, _)| b)
        }

        pub(super) fn as_list(&self) -> Option<Elements<'a>> {
            (self.raw.first() == Some(&b'l')).then(|| {
                Elements(Cursor {
                    buf: self
                        .raw
                        .get(1..self.raw.len().saturating_sub(1))
                        .unwrap_or_default(),
                    pos: 0,
                })
            })
        }
    }

    /// A position in checked input.
    #[derive(Clone, Copy, Debug)]
    struct Cursor<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Cursor<'a> {
        fn next_item(&mut self) -> Option<Item<'a>> {
            // Checked already, nesting included: read as if at the top.
            let (item, end) = item(self.buf, self.pos, 1).ok()?;
            self.pos = end;
            Some(item)
        }
    }

    /// The elements of a checked list.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Elements<'a>(Cursor<'a>);

    impl<'a> Iterator for Elements<'a> {
        type Item = Item<'a>;
        fn next(&mut self) -> Option<Item<'a>> {
            self.0.next_item()
        }
    }

    impl Elements<'_> {
        /// An upper bound on how many elements are left: each takes at least 2 bytes.
        pub(super) fn max_len(&self) -> usize {
            self.0.buf.len().saturating_sub(self.0.pos) / 2
        }
    }

    /// A dictionary read entry by entry, checking as it goes: [`Dict::next_key`], then either
    /// [`Dict::value`] or (for a dictionary value) [`Dict::enter`], reading the child to its end
    /// and [`Dict::resume`].
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Dict<'a> {
        buf: &'a [u8],
        pos: usize,
        /// Level of the values (the dictionary's own level plus one).
        level: usize,
    }

    impl<'a> Dict<'a> {
        /// The dictionary that `buf` starts with (the message: level 1). Bytes after it are
        /// ignored.
        pub(super) fn root(buf: &'a [u8]) -> Result<Self, Syntax> {
            match buf.first() {
                Some(b'd') => Ok(Dict {
                    buf,
                    pos: 1,
                    level: 2,
                }),
                Some(_) => err(0, "not a dictionary"),
                None => err(0, "unexpected end of input"),
            }
        }

        /// The next key, or `None` at the end of the dictionary (which is then consumed).
        pub(super) fn next_key(&mut self) -> Result<Option<&'a [u8]>, Syntax> {
            match self.buf.get(self.pos) {
                Some(b'e') => {
                    self.pos += 1;
                    Ok(None)
                }
                Some(b'0'..=b'9') => {
                    let (key, end) = string(self.buf, self.pos)?;
                    self.pos = end;
                    Ok(Some(key))
                }
                Some(_) => err(self.pos, "dictionary key is not a string"),
                None => err(self.pos, "unexpected end of input"),
            }
        }

        /// The value after a key, checked through.
        pub(super) fn value(&mut self) -> Result<Item<'a>, Syntax> {
            if self.buf.get(self.pos) == Some(&b'e') {
                return err(self.pos, "dictionary key without a value");
            }
            let (item, end) = item(self.buf, self.pos, self.level)?;
            self.pos = end;
            Ok(item)
        }

        /// True if the value after the key just read is a dictionary.
        pub(super) fn dict_next(&self) -> bool {
            self.buf.get(self.pos) == Some(&b'd')
        }

        /// The dictionary value after the key just read ([`Dict::dict_next`]), to be read to
        /// its end and handed back to [`Dict::resume`].
        pub(super) fn enter(&self) -> Result<Dict<'a>, Syntax> {
            if self.level > MAX_DEPTH {
                return err(self.pos, "nested too deeply");
            }
            Ok(Dict {
                buf: self.buf,
                pos: self.pos + 1,
                level: self.level + 1,
            })
        }

        /// Continues after a child dictionary read to its end.
        pub(super) fn resume(&mut self, child: Dict<'a>) {
            self.pos = child.pos;
        }
    }

    /// The value at `pos` (at nesting `level`), checked through, and the offset after it.
    #[inline]
    pub(super) fn item(buf: &[u8], pos: usize, level: usize) -> Result<(Item<'_>, usize), Syntax> {
        let end = match buf.get(pos) {
            None => return err(pos, "unexpected end of input"),
            Some(b'i') => int(buf, pos)?.1,
            Some(b'0'..=b'9') => string(buf, pos)?.1,
            Some(b'l' | b'd') => container(buf, pos, level)?,
            Some(_) => return err(pos, "unexpected byte"),
        };
        let raw = buf.get(pos..end).unwrap_or_default();
        Ok((Item { raw }, end))
    }

    /// `i<digits>e` at `pos`: its value and the offset after it. Leading zeros and `-0` are
    /// accepted; values past `i64` are not.
    #[inline]
    fn int(buf: &[u8], pos: usize) -> Result<(i64, usize), Syntax> {
        let mut i = pos + 1;
        let neg = buf.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let first = i;
        let mut acc: i64 = 0;
        loop {
            match buf.get(i) {
                None => return err(i, "unexpected end of input"),
                Some(&d @ b'0'..=b'9') => {
                    let d = i64::from(d - b'0');
                    let next = acc.checked_mul(10).and_then(|a| {
                        if neg {
                            a.checked_sub(d)
                        } else {
                            a.checked_add(d)
                        }
                    });
                    match next {
                        Some(n) => acc = n,
                        None => return err(pos, "integer out of range"),
                    }
                    i += 1;
                }
                Some(b'e') if i > first => return Ok((acc, i + 1)),
                Some(_) => return err(pos, "malformed integer"),
            }
        }
    }

    /// `<len>:<bytes>` at `pos`: the payload and the offset after it.
    #[inline]
    fn string(buf: &[u8], pos: usize) -> Result<(&[u8], usize), Syntax> {
        // Lengths of one or two digits (all keys, ids, most values) without a loop.
        let (len, colon) = match (buf.get(pos), buf.get(pos + 1), buf.get(pos + 2)) {
            (Some(&d0 @ b'0'..=b'9'), Some(b':'), _) => (usize::from(d0 - b'0'), pos + 1),
            (Some(&d0 @ b'0'..=b'9'), Some(&d1 @ b'0'..=b'9'), Some(b':')) => (
                usize::from(d0 - b'0') * 10 + usize::from(d1 - b'0'),
                pos + 2,
            ),
            _ => string_length(buf, pos)?,
        };
        let start = colon + 1;
        let end = start.saturating_add(len);
        match buf.get(start..end) {
            Some(payload) => Ok((payload, end)),
            None => err(pos, "string past the end of input"),
        }
    }

    /// The length of the string at `pos` and the offset of its colon, digit by digit.
    #[cold]
    fn string_length(buf: &[u8], pos: usize) -> Result<(usize, usize), Syntax> {
        let mut i = pos;
        let mut len: usize = 0;
        loop {
            match buf.get(i) {
                None => return err(i, "unexpected end of input"),
                Some(&d @ b'0'..=b'9') => {
                    // Saturates far past any input: the payload check below refuses it.
                    len = len.saturating_mul(10).saturating_add(usize::from(d - b'0'));
                    i += 1;
                }
                Some(b':') if i > pos => return Ok((len, i)),
                Some(_) => return err(pos, "malformed string length"),
            }
        }
    }

    /// The list or dictionary at `pos` (at nesting `level`), checked through without
    /// recursion: the offset after it.
    fn container(buf: &[u8], pos: usize, level: usize) -> Result<usize, Syntax> {
        // Bit `d` of `dicts`: the container at relative depth `d` is a dictionary; of `keys`:
        // its next value is a key. Depths stay below MAX_DEPTH < 64.
        let (mut dicts, mut keys) = (0u64, 0u64);
        let mut depth = 0usize;
        let mut i = pos;
        loop {
            let Some(&c) = buf.get(i) else {
                return err(i, "unexpected end of input");
            };
            let bit = 1u64 << (depth & 63);
            if keys & bit != 0 {
                if c != b'e' {
                    if !c.is_ascii_digit() {
                        return err(i, "dictionary key is not a string");
                    }
                    i = string(buf, i)?.1;
                    keys &= !bit;
                    continue;
                }
            } else if c == b'e' && dicts & bit != 0 {
                return err(i, "dictionary key without a value");
            }
            match c {
                b'e' => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                    if depth == 0 {
                        return Ok(i);
                    }
                }
                b'i' => i = int(buf, i)?.1,
                b'0'..=b'9' => i = string(buf, i)?.1,
                b'l' | b'd' => {
                    if level + depth > MAX_DEPTH {
                        return err(i, "nested too deeply");
                    }
                    depth += 1;
                    let bit = 1u64 << (depth & 63);
                    if c == b'd' {
                        dicts |= bit;
                        keys |= bit;
                    } else {
                        dicts &= !bit;
                        keys &= !bit;
                    }
                    i += 1;
                    continue;
                }
                _ => return err(i, "unexpected byte"),
            }
            // A value ended inside the container at `depth`: a dictionary wants a key next.
            let bit = 1u64 << (depth & 63);
            if dicts & bit != 0 {
                keys |= bit;
            }
        }
    }
}
