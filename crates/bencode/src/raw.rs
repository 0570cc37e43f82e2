//! Reading bencode straight from its encoding, without a tape: for the values that
//! [`DecodeOptions::decode_folded`](crate::DecodeOptions::decode_folded) checks but leaves off
//! the tape ([`ValueRef::is_folded`]), or any bytes a decoder has already accepted.

use crate::decode::{Kind, ValueRef};

/// One bencode value read straight from its encoding.
///
/// Reading checks only what it needs to find where values start and end, so use it on bytes
/// a decoder has accepted (a [`ValueRef`] converts with `RawValue::from`). On anything else it
/// stays harmless: accessors answer `None` and iteration stops early; nothing panics, recurses
/// or allocates. Like the decoder in lenient mode it takes integers with leading zeros and
/// `-0`, and dictionaries keep their entries in input order (duplicates included).
///
/// ```
/// use tessera_bencode::{Kind, RawValue};
///
/// let (v, rest) = RawValue::read(b"d4:pathl1:a2:bcee3:end").unwrap();
/// assert_eq!(v.kind(), Kind::Dict);
/// assert_eq!(rest, b"3:end");
/// let path: Vec<&[u8]> = v
///     .get(b"path")
///     .and_then(|p| p.as_list())
///     .unwrap()
///     .filter_map(|c| c.as_bytes())
///     .collect();
/// assert_eq!(path, [&b"a"[..], b"bc"]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RawValue<'a> {
    /// The whole encoding, which starts with a byte that gives the kind (`i`, a digit, `l`,
    /// `d`): two words, as cheap to pass around as a slice.
    raw: &'a [u8],
}

impl<'a> RawValue<'a> {
    /// The value at the start of `input`, and the bytes after it; `None` if `input` does not
    /// start with a value as far as reading can tell. Takes time linear in the length of the
    /// value's encoding (constant for a byte string).
    #[inline]
    pub fn read(input: &'a [u8]) -> Option<(RawValue<'a>, &'a [u8])> {
        let (v, len) = read_at(input)?;
        Some((v, input.get(len..)?))
    }

    /// The type of this value.
    #[inline]
    pub fn kind(&self) -> Kind {
        match self.raw.first() {
            Some(b'i') => Kind::Int,
            Some(b'l') => Kind::List,
            Some(b'd') => Kind::Dict,
            _ => Kind::Bytes,
        }
    }

    /// The encoding of the value, exactly as found.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The integer, if this is one that fits an `i64`.
    #[inline]
    pub fn as_int(&self) -> Option<i64> {
        if self.raw.first() != Some(&b'i') {
            return None;
        }
        let digits = self.raw.get(1..self.raw.len().checked_sub(1)?)?;
        let (neg, digits) = match digits.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, digits),
        };
        if digits.is_empty() {
            return None;
        }
        let mut acc: i64 = 0;
        for &d in digits {
            let d = d.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            acc = acc.checked_mul(10)?;
            acc = if neg {
                acc.checked_sub(i64::from(d))?
            } else {
                acc.checked_add(i64::from(d))?
            };
        }
        Some(acc)
    }

    /// The byte string payload, if this is one.
    #[inline]
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        let (payload, _) = string_at(self.raw)?;
        self.raw.get(payload..)
    }

    /// The elements, if this is a list.
    #[inline]
    pub fn as_list(&self) -> Option<RawListIter<'a>> {
        (self.raw.first() == Some(&b'l')).then(|| RawListIter { rest: self.inner() })
    }

    /// The entries in input order, if this is a dictionary.
    #[inline]
    pub fn as_dict(&self) -> Option<RawDictIter<'a>> {
        (self.raw.first() == Some(&b'd')).then(|| RawDictIter { rest: self.inner() })
    }

    /// The value under `key`, if this is a dictionary that has it (the first one, if the key
    /// repeats). Linear in the size of the dictionary.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<RawValue<'a>> {
        self.as_dict()?.find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// A container's encoding without its first and last byte.
    #[inline]
    fn inner(&self) -> &'a [u8] {
        self.raw
            .get(1..self.raw.len().saturating_sub(1))
            .unwrap_or_default()
    }
}

impl<'a> From<ValueRef<'_, 'a>> for RawValue<'a> {
    /// The same value, read from its encoding from now on (in constant time).
    #[inline]
    fn from(v: ValueRef<'_, 'a>) -> Self {
        RawValue { raw: v.raw() }
    }
}

/// The elements of a list read by [`RawValue::as_list`].
#[derive(Clone, Debug)]
pub struct RawListIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawListIter<'a> {
    type Item = RawValue<'a>;

    #[inline]
    fn next(&mut self) -> Option<RawValue<'a>> {
        let Some((v, len)) = read_at(self.rest) else {
            self.rest = &[];
            return None;
        };
        self.rest = self.rest.get(len..).unwrap_or_default();
        Some(v)
    }
}

/// The entries of a dictionary read by [`RawValue::as_dict`], in input order.
#[derive(Clone, Debug)]
pub struct RawDictIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawDictIter<'a> {
    type Item = (&'a [u8], RawValue<'a>);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], RawValue<'a>)> {
        let entry = string_at(self.rest).and_then(|(payload, key_end)| {
            let key = self.rest.get(payload..key_end)?;
            let (v, len) = read_at(self.rest.get(key_end..)?)?;
            Some((key, v, key_end + len))
        });
        let Some((key, v, end)) = entry else {
            self.rest = &[];
            return None;
        };
        self.rest = self.rest.get(end..).unwrap_or_default();
        Some((key, v))
    }
}

/// The value at the start of `input` and the length of its encoding.
#[inline(always)]
fn read_at(input: &[u8]) -> Option<(RawValue<'_>, usize)> {
    let len = match *input.first()? {
        b'0'..=b'9' => string_at(input)?.1,
        b'i' => input.iter().position(|&b| b == b'e')? + 1,
        b'l' | b'd' => container_len(input)?,
        _ => return None,
    };
    let raw = input.get(..len)?;
    Some((RawValue { raw }, len))
}

/// The byte string at the start of `input`: where its payload starts and ends. Lengths of one
/// or two digits (nearly all keys and names) are read without a loop.
#[inline(always)]
fn string_at(input: &[u8]) -> Option<(usize, usize)> {
    let d0 = usize::from(input.first()?.wrapping_sub(b'0'));
    let d1 = input.get(1).copied();
    let (payload, len) = if d0 > 9 {
        return None;
    } else if d1 == Some(b':') {
        (2, d0)
    } else if let (Some(d1 @ b'0'..=b'9'), Some(b':')) = (d1, input.get(2).copied()) {
        (3, d0 * 10 + usize::from(d1 - b'0'))
    } else {
        let colon = input.iter().position(|&b| b == b':')?;
        let mut len = 0usize;
        for &d in input.get(..colon)? {
            if !d.is_ascii_digit() {
                return None;
            }
            len = len.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
        }
        (colon + 1, len)
    };
    let end = payload.checked_add(len)?;
    (end <= input.len()).then_some((payload, end))
}

/// The length of the list or dictionary at the start of `input`, found by skipping over what
/// it holds with a depth count (no recursion).
#[inline]
fn container_len(input: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut pos = 0usize;
    loop {
        match *input.get(pos)? {
            b'0'..=b'9' => pos += string_at(input.get(pos..)?)?.1,
            b'i' => {
                let digits = input.get(pos + 1..)?;
                pos += digits.iter().position(|&b| b == b'e')? + 2;
            }
            b'l' | b'd' => {
                depth += 1;
                pos += 1;
            }
            b'e' => {
                depth = depth.checked_sub(1)?;
                pos += 1;
                if depth == 0 {
                    return Some(pos);
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_kind() {
        let (v, rest) = RawValue::read(b"i-42eX").unwrap();
        assert_eq!(
            (v.kind(), v.as_int(), rest),
            (Kind::Int, Some(-42), &b"X"[..])
        );
        assert_eq!(RawValue::read(b"i007e").unwrap().0.as_int(), Some(7));
        assert_eq!(RawValue::read(b"i-0e").unwrap().0.as_int(), Some(0));
        let min = RawValue::read(b"i-9223372036854775808e").unwrap().0;
        assert_eq!(min.as_int(), Some(i64::MIN));
        let over = RawValue::read(b"i9223372036854775808e").unwrap().0;
        assert_eq!(over.as_int(), None);
        let (v, _) = RawValue::read(b"12:hello world!").unwrap();
        assert_eq!(v.as_bytes(), Some(&b"hello world!"[..]));
        assert_eq!(v.raw(), b"12:hello world!");
        let (v, _) = RawValue::read(b"0:").unwrap();
        assert_eq!(v.as_bytes(), Some(&b""[..]));
        let (v, rest) = RawValue::read(b"ld1:ai1eel1:xeee").unwrap();
        assert_eq!((v.kind(), rest), (Kind::List, &b"e"[..]));
        assert_eq!(v.as_list().unwrap().count(), 2);
        let (v, _) = RawValue::read(b"d1:bi1e1:ai2e1:bi3ee").unwrap();
        let keys: Vec<&[u8]> = v.as_dict().unwrap().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"b"[..], b"a", b"b"]);
        assert_eq!(v.get(b"b").and_then(|v| v.as_int()), Some(1));
        assert_eq!(v.get(b"c"), None);
    }

    #[test]
    fn malformed_input_is_harmless() {
        for bad in [
            &b""[..],
            b"x",
            b"i12",
            b"5:abc",
            b"l1:a",
            b"d1:ai1e",
            b"99999999999999999999999:a",
            b":a",
            b"ee",
        ] {
            assert!(RawValue::read(bad).is_none(), "{bad:?}");
        }
        let (v, _) = RawValue::read(b"ie").unwrap();
        assert_eq!(v.as_int(), None);
        // A container must skip cleanly to be read at all.
        assert!(RawValue::read(b"l1:ax1:be").is_none());
        // Iteration stops at the first thing that is not an entry.
        let (v, _) = RawValue::read(b"di1ei2ee").unwrap();
        assert_eq!(v.as_dict().unwrap().count(), 0);
    }

    #[test]
    fn agrees_with_the_tape() {
        let input = b"d1:ad1:bl1:xi-3ee1:ci7ee1:d3:xyze";
        let doc = crate::decode(input).unwrap();
        let tape = doc.root();
        let raw = RawValue::from(tape);
        assert_eq!(raw, RawValue::read(input).unwrap().0);
        let a = tape.as_dict().unwrap().get(b"a").unwrap();
        let ra = raw.get(b"a").unwrap();
        assert_eq!(RawValue::from(a), ra);
        let d = RawValue::from(tape.as_dict().unwrap().get(b"d").unwrap());
        assert_eq!(d.as_bytes(), Some(&b"xyz"[..]));
    }
}
