//! Magnet links: BEP 9 (`xt=urn:btih:`), BEP 52 (`xt=urn:btmh:`), BEP 53 (`so=`).
//!
//! [`Magnet::parse`] reads a magnet URI from anyone: its length and parameter count are bounded,
//! every percent escape is checked, and any malformed part gives a [`MagnetError`] naming it.
//! [`Magnet::to_uri`] writes the canonical form: the info hashes first (hex `btih`, then `btmh`),
//! then `dn`, `tr`, `ws`, `x.pe`, `so` and the parameters it does not interpret, in that order,
//! with every byte outside the URI unreserved set percent-encoded.

use std::fmt;
use std::ops::RangeInclusive;

use crate::hash::{decode_hex, hex_val, InfoHashes, Sha1Hash, Sha256Hash};

/// Most characters of a hostile value quoted back in an error message.
const QUOTE_MAX: usize = 64;

/// Why a magnet URI was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MagnetError {
    /// The URI is longer than [`Magnet::MAX_URI_LEN`].
    #[error("magnet URI is {len} bytes long, more than the {max} allowed")]
    TooLong {
        /// Length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The URI has more than [`Magnet::MAX_PARAMS`] parameters.
    #[error("magnet URI has more than {max} parameters")]
    TooManyParams {
        /// The limit.
        max: usize,
    },
    /// The input does not start with `magnet:?`.
    #[error("not a magnet URI: it must start with `magnet:?`")]
    NotMagnet,
    /// A `%` is not followed by two hex digits.
    #[error("invalid percent escape in parameter `{param}`")]
    InvalidPercentEncoding {
        /// The parameter key (as far as it could be read).
        param: String,
    },
    /// A key or value is not UTF-8 once percent-decoded.
    #[error("parameter `{param}` is not UTF-8 once percent-decoded")]
    InvalidUtf8 {
        /// The parameter key (as far as it could be read).
        param: String,
    },
    /// A `urn:btih:` hash is neither 40 hex digits nor 32 base32 characters.
    #[error(
        "invalid urn:btih info hash `{value}`: expected 40 hex digits or 32 base32 characters"
    )]
    InvalidBtih {
        /// The hash as given (shortened if long).
        value: String,
    },
    /// A `urn:btmh:` hash is not a hex multihash.
    #[error("invalid urn:btmh info hash `{value}`: expected `1220` and 64 hex digits")]
    InvalidBtmh {
        /// The hash as given (shortened if long).
        value: String,
    },
    /// A `urn:btmh:` multihash uses a function other than SHA2-256 (code 0x12, 32 bytes).
    #[error("unsupported multihash: function code {code:#x}, digest length {len}")]
    UnsupportedMultihash {
        /// The multihash function code.
        code: u8,
        /// The digest length it announces.
        len: u8,
    },
    /// Two `xt` parameters of the same kind carry different hashes.
    #[error("two different {kind} info hashes")]
    ConflictingInfoHash {
        /// `"btih"` or `"btmh"`.
        kind: &'static str,
    },
    /// No `xt=urn:btih:` or `xt=urn:btmh:` parameter.
    #[error("magnet URI has no urn:btih or urn:btmh info hash")]
    MissingInfoHash,
    /// An `x.pe` peer is not `host:port`.
    #[error("invalid peer address `{value}`: expected host:port")]
    InvalidPeer {
        /// The peer as given (shortened if long).
        value: String,
    },
    /// An `so` value is not a comma-separated list of indices and `first-last` ranges.
    #[error("invalid select-only list `{value}`")]
    InvalidSelectOnly {
        /// The value as given (shortened if long).
        value: String,
    },
}

/// A parsed magnet link.
///
/// ```
/// use tessera_metainfo::Magnet;
///
/// let m = Magnet::parse(
///     "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=Big+Buck+Bunny&so=0,2-4",
/// )
/// .unwrap();
/// assert_eq!(m.name.as_deref(), Some("Big Buck Bunny"));
/// assert_eq!(m.select_only, vec![0..=0, 2..=4]);
/// assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Magnet {
    /// The v1 (`urn:btih`) and v2 (`urn:btmh`) info hashes; at least one is present after
    /// [`Magnet::parse`].
    pub info_hashes: InfoHashes,
    /// The display name (`dn`).
    pub name: Option<String>,
    /// Tracker URLs (`tr`), in order, without repeats.
    pub trackers: Vec<String>,
    /// Web seed URLs (`ws`), in order, without repeats.
    pub web_seeds: Vec<String>,
    /// Peer addresses (`x.pe`) as `host:port`, in order, without repeats.
    pub peers: Vec<String>,
    /// File indices to download (`so`, BEP 53), as written.
    pub select_only: Vec<RangeInclusive<usize>>,
    /// Every other parameter, key and value percent-decoded, in order.
    pub other: Vec<(String, String)>,
}

impl Magnet {
    /// Longest magnet URI [`Magnet::parse`] accepts, in bytes.
    pub const MAX_URI_LEN: usize = 64 * 1024;

    /// Most `&`-separated parameters [`Magnet::parse`] accepts.
    pub const MAX_PARAMS: usize = 1024;

    /// A magnet link with these info hashes and nothing else.
    pub fn new(info_hashes: InfoHashes) -> Self {
        Magnet {
            info_hashes,
            ..Magnet::default()
        }
    }

    /// Parses a magnet URI.
    ///
    /// Keys are matched without regard to case, and `xt`, `dn`, `tr`, `ws` may carry a numeric
    /// suffix (`tr.1`). In values `+` stands for a space. A repeated `dn` keeps the first name.
    ///
    /// # Errors
    /// [`MagnetError`] for an input longer than [`Magnet::MAX_URI_LEN`], with more than [`Magnet::MAX_PARAMS`]
    /// parameters, a bad percent escape, an invalid or conflicting info hash, no info hash, a
    /// malformed `x.pe` or `so`.
    pub fn parse(uri: &str) -> Result<Magnet, MagnetError> {
        if uri.len() > Magnet::MAX_URI_LEN {
            return Err(MagnetError::TooLong {
                len: uri.len(),
                max: Magnet::MAX_URI_LEN,
            });
        }
        let query = strip_prefix_ignore_case(uri, "magnet:?").ok_or(MagnetError::NotMagnet)?;
        // A fragment is not part of the query.
        let query = query.split('#').next().unwrap_or_default();

        let mut m = Magnet::default();
        let mut count = 0usize;
        for param in query.split('&').filter(|p| !p.is_empty()) {
            count += 1;
            if count > Magnet::MAX_PARAMS {
                return Err(MagnetError::TooManyParams {
                    max: Magnet::MAX_PARAMS,
                });
            }
            let (raw_key, raw_value) = param.split_once('=').unwrap_or((param, ""));
            let key = decode_component(raw_key, raw_key)?;
            let value = decode_component(raw_value, &key)?;
            m.apply(key, value)?;
        }
        if m.info_hashes.v1.is_none() && m.info_hashes.v2.is_none() {
            return Err(MagnetError::MissingInfoHash);
        }
        Ok(m)
    }

    fn apply(&mut self, key: String, value: String) -> Result<(), MagnetError> {
        let lower = key.to_ascii_lowercase();
        match base_key(&lower) {
            "xt" => {
                if let Some(h) = strip_prefix_ignore_case(&value, "urn:btih:") {
                    let hash = parse_btih(h)?;
                    set_once(&mut self.info_hashes.v1, hash, "btih")?;
                } else if let Some(h) = strip_prefix_ignore_case(&value, "urn:btmh:") {
                    let hash = parse_btmh(h)?;
                    set_once(&mut self.info_hashes.v2, hash, "btmh")?;
                } else {
                    // Another kind of URN (urn:sha1:, urn:ed2k:…): not ours to judge.
                    self.other.push((key, value));
                }
            }
            "dn" => {
                if self.name.is_none() {
                    self.name = Some(value);
                }
            }
            "tr" => push_unique(&mut self.trackers, value),
            "ws" => push_unique(&mut self.web_seeds, value),
            "x.pe" => {
                if !is_peer_address(&value) {
                    return Err(MagnetError::InvalidPeer {
                        value: quote(&value),
                    });
                }
                push_unique(&mut self.peers, value);
            }
            "so" => {
                let ranges =
                    parse_select_only(&value).ok_or_else(|| MagnetError::InvalidSelectOnly {
                        value: quote(&value),
                    })?;
                self.select_only.extend(ranges);
            }
            _ => self.other.push((key, value)),
        }
        Ok(())
    }

    /// The canonical magnet URI: `xt` (hex `urn:btih`, then `urn:btmh`), `dn`, `tr`, `ws`,
    /// `x.pe`, `so`, then the other parameters in order. Every byte outside `A-Z a-z 0-9 - . _ ~`
    /// is percent-encoded, so [`Magnet::parse`] gives back an equal value.
    pub fn to_uri(&self) -> String {
        let mut out = String::from("magnet:?");
        let mut first = true;
        let mut param = |out: &mut String, key: &str, value: &str, encode_value: bool| {
            if !first {
                out.push('&');
            }
            first = false;
            percent_encode_into(out, key);
            out.push('=');
            if encode_value {
                percent_encode_into(out, value);
            } else {
                out.push_str(value);
            }
        };
        if let Some(v1) = &self.info_hashes.v1 {
            param(&mut out, "xt", &format!("urn:btih:{}", v1.to_hex()), false);
        }
        if let Some(v2) = &self.info_hashes.v2 {
            param(
                &mut out,
                "xt",
                &format!("urn:btmh:1220{}", v2.to_hex()),
                false,
            );
        }
        if let Some(name) = &self.name {
            param(&mut out, "dn", name, true);
        }
        for tr in &self.trackers {
            param(&mut out, "tr", tr, true);
        }
        for ws in &self.web_seeds {
            param(&mut out, "ws", ws, true);
        }
        for pe in &self.peers {
            param(&mut out, "x.pe", pe, true);
        }
        if !self.select_only.is_empty() {
            let list: Vec<String> = self
                .select_only
                .iter()
                .map(|r| {
                    if r.start() == r.end() {
                        r.start().to_string()
                    } else {
                        format!("{}-{}", r.start(), r.end())
                    }
                })
                .collect();
            param(&mut out, "so", &list.join(","), false);
        }
        for (k, v) in &self.other {
            param(&mut out, k, v, true);
        }
        out
    }
}

impl Magnet {
    /// A magnet link for a parsed torrent: its info hashes, name, every tracker URL (tiers
    /// flattened in order, repeats dropped) and its web seeds.
    pub fn from_metainfo(meta: &crate::Metainfo) -> Self {
        let mut m = Magnet::new(meta.info_hashes());
        m.name = Some(meta.name().to_owned());
        for url in meta.trackers().iter().flatten() {
            push_unique(&mut m.trackers, url.clone());
        }
        for url in meta.web_seeds() {
            push_unique(&mut m.web_seeds, url.clone());
        }
        m
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

impl std::str::FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Self, MagnetError> {
        Magnet::parse(s)
    }
}

/// `xt.1` → `xt`: the numbered forms BEP 9 allows for repeated keys.
fn base_key(lower: &str) -> &str {
    match lower.rsplit_once('.') {
        Some((base @ ("xt" | "dn" | "tr" | "ws"), n))
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => lower,
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn set_once<T: PartialEq>(
    slot: &mut Option<T>,
    value: T,
    kind: &'static str,
) -> Result<(), MagnetError> {
    match slot {
        Some(old) if *old != value => Err(MagnetError::ConflictingInfoHash { kind }),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// At most [`QUOTE_MAX`] characters of a hostile value, for an error message.
fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(QUOTE_MAX).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn parse_btih(s: &str) -> Result<Sha1Hash, MagnetError> {
    let mut out = [0u8; 20];
    let ok = match s.len() {
        40 => decode_hex(s.as_bytes(), &mut out),
        32 => decode_base32(s.as_bytes(), &mut out),
        _ => false,
    };
    if ok {
        Ok(Sha1Hash(out))
    } else {
        Err(MagnetError::InvalidBtih { value: quote(s) })
    }
}

fn parse_btmh(s: &str) -> Result<Sha256Hash, MagnetError> {
    let invalid = || MagnetError::InvalidBtmh { value: quote(s) };
    let mut head = [0u8; 2];
    let (code_len, digest) = (s.get(..4).ok_or_else(invalid)?, s.get(4..).unwrap_or(""));
    if !decode_hex(code_len.as_bytes(), &mut head) {
        return Err(invalid());
    }
    let [code, len] = head;
    if code != 0x12 || len != 0x20 {
        return Err(MagnetError::UnsupportedMultihash { code, len });
    }
    let mut out = [0u8; 32];
    if decode_hex(digest.as_bytes(), &mut out) {
        Ok(Sha256Hash(out))
    } else {
        Err(invalid())
    }
}

/// RFC 4648 base32 without padding, either case, into `out`, which it must fill exactly.
fn decode_base32(s: &[u8], out: &mut [u8]) -> bool {
    if s.len() * 5 != out.len() * 8 {
        return false;
    }
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    let mut written = 0usize;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return false,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            match out.get_mut(written) {
                Some(slot) => *slot = (acc >> bits) as u8,
                None => return false,
            }
            written += 1;
            acc &= (1u64 << bits) - 1;
        }
    }
    written == out.len()
}

/// True for `host:port` with a non-empty host (an IPv6 host in brackets) and a port in 1..=65535.
fn is_peer_address(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    port_ok && host_ok
}

/// `0,2,4-6` → `[0..=0, 2..=2, 4..=6]`; `None` if malformed or a range runs backwards.
fn parse_select_only(s: &str) -> Option<Vec<RangeInclusive<usize>>> {
    let num = |t: &str| -> Option<usize> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    s.split(',')
        .map(|item| match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                (a <= b).then_some(a..=b)
            }
            None => num(item).map(|i| i..=i),
        })
        .collect()
}

/// Percent-decodes one key or value (`+` is a space) and checks that the result is UTF-8.
/// `param` names the parameter in errors.
fn decode_component(raw: &str, param: &str) -> Result<String, MagnetError> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push((h << 4) | l),
                    _ => {
                        return Err(MagnetError::InvalidPercentEncoding {
                            param: quote(param),
                        })
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| MagnetError::InvalidUtf8 {
        param: quote(param),
    })
}

fn percent_encode_into(out: &mut String, s: &str) {
    let digit = |n: u8| {
        char::from_digit(u32::from(n), 16)
            .unwrap_or('0')
            .to_ascii_uppercase()
    };
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(digit(b >> 4));
            out.push(digit(b & 15));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn base32_and_hex_agree() {
        let hex = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}")).unwrap();
        let b32 = Magnet::parse("magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK").unwrap();
        let b32_lower =
            Magnet::parse("magnet:?xt=urn:btih:yex6dqdlxisuvhoj6um3gnnkpqjwpkek").unwrap();
        assert_eq!(hex.info_hashes.v1, b32.info_hashes.v1);
        assert_eq!(b32, b32_lower);
    }

    #[test]
    fn base32_rejects_bad_alphabet() {
        let mut out = [0u8; 20];
        assert!(!decode_base32(
            b"YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKE1",
            &mut out
        ));
        assert!(!decode_base32(b"YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKE", &mut out));
    }

    #[test]
    fn numbered_keys_and_case() {
        let m = Magnet::parse(&format!(
            "MAGNET:?XT.1=URN:BTIH:{HEX}&TR.1=http%3A%2F%2Fa&tr.2=http://b&DN=x"
        ))
        .unwrap();
        assert_eq!(m.trackers, vec!["http://a", "http://b"]);
        assert_eq!(m.name.as_deref(), Some("x"));
    }

    #[test]
    fn peers_are_checked() {
        assert!(is_peer_address("1.2.3.4:6881"));
        assert!(is_peer_address("[::1]:6881"));
        assert!(is_peer_address("host.example:1"));
        assert!(!is_peer_address("1.2.3.4"));
        assert!(!is_peer_address("1.2.3.4:0"));
        assert!(!is_peer_address("1.2.3.4:65536"));
        assert!(!is_peer_address(":80"));
        assert!(!is_peer_address("[zz]:80"));
    }

    #[test]
    fn select_only_forms() {
        assert_eq!(
            parse_select_only("0,2,4-6").unwrap(),
            vec![0..=0, 2..=2, 4..=6]
        );
        assert!(parse_select_only("").is_none());
        assert!(parse_select_only("6-4").is_none());
        assert!(parse_select_only("1,,2").is_none());
        assert!(parse_select_only("-1").is_none());
        assert!(parse_select_only("99999999999999999999999").is_none());
    }
}
