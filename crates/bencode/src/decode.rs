//! The zero-copy decoder: one pass over the input builds a flat "tape" of tokens that borrowed
//! views ([`ValueRef`], [`ListRef`], [`DictRef`]) walk without further allocation.

use std::ops::Range;

use crate::error::{Error, ErrorKind, Irregularity, Path, PathSegment, Warning};
use crate::value::Value;

/// How tolerant the decoder is of non-canonical encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Reject anything that is not canonical bencode (unsorted or duplicate keys, `i-0e`,
    /// leading zeros, trailing data) with [`ErrorKind::NonCanonical`].
    #[default]
    Strict,
    /// Accept what real-world torrents contain and report it in [`Document::warnings`].
    Lenient,
}

/// Decoder settings. The defaults are safe for untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Strict or lenient handling of non-canonical encodings.
    pub mode: Mode,
    /// Deepest nesting of lists and dictionaries accepted (the root container is level 1).
    ///
    /// Decoding itself never recurses, but [`ValueRef::to_owned`], the [`Encode`](crate::Encode)
    /// impls, dropping a [`Value`] and serde all recurse once per level: raise this far past the
    /// default only for input you trust or on a thread with a large stack.
    pub max_depth: usize,
    /// Most values (integers, strings, lists, dictionaries, keys included) accepted.
    pub max_tokens: usize,
}

/// Default nesting limit.
pub const DEFAULT_MAX_DEPTH: usize = 128;
/// Default limit on the number of values in one document.
pub const DEFAULT_MAX_TOKENS: usize = 1 << 26;
/// Hard ceiling on `max_tokens` (the tape packs counts into 30 bits).
const TOKEN_CEILING: usize = (1 << 30) - 1;

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            mode: Mode::Strict,
            max_depth: DEFAULT_MAX_DEPTH,
            max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

impl DecodeOptions {
    /// Strict defaults.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Lenient defaults.
    pub fn lenient() -> Self {
        DecodeOptions {
            mode: Mode::Lenient,
            ..Self::default()
        }
    }

    /// Sets the nesting limit.
    pub fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Sets the value-count limit.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Decodes `input` with these options.
    ///
    /// # Errors
    /// Any malformed input, exceeded limit, or (in strict mode) non-canonical encoding.
    pub fn decode<'a>(&self, input: &'a [u8]) -> Result<Document<'a>, Error> {
        Decoder::new(input, *self, &[], None).run::<false>()
    }

    /// Decodes `input` like [`decode`](Self::decode), checking all of it just as thoroughly
    /// (syntax, limits, canonical form, warnings), but leaves off the tape what the elements
    /// of one container hold: the list or dictionary found under the dictionary keys `path`
    /// from the root (`&[b"info", b"files"]` is `root["info"]["files"]`; every such container
    /// if keys repeat).
    ///
    /// Its elements are on the tape; those that are lists or dictionaries are *folded*
    /// ([`ValueRef::is_folded`]): they keep their kind, span and element count, but iterating
    /// them through [`ListRef`] or [`DictRef`] yields nothing. Read them with
    /// [`RawValue`](crate::RawValue), which walks the encoding itself. `to_owned` and
    /// [`Encode`](crate::Encode) still see the whole value.
    ///
    /// What this buys is a much shorter tape when that container holds most of the input (the
    /// file list of a torrent with many files): less memory to fill and read back, for a
    /// caller that reads each element once anyway.
    ///
    /// # Errors
    /// The same as [`decode`](Self::decode).
    ///
    /// ```
    /// use tessera_bencode::{DecodeOptions, RawValue};
    ///
    /// let input = b"d4:infod5:filesld6:lengthi1eed6:lengthi2eeeee";
    /// let doc = DecodeOptions::strict().decode_folded(input, &[b"info", b"files"]).unwrap();
    /// let files = doc.root().as_dict().unwrap().get_dict(b"info").unwrap().get_list(b"files");
    /// let lengths: Vec<i64> = files
    ///     .unwrap()
    ///     .iter()
    ///     .map(|f| RawValue::from(f).get(b"length").and_then(|v| v.as_int()).unwrap())
    ///     .collect();
    /// assert_eq!(lengths, [1, 2]);
    /// assert!(doc.token_count() < decode_count(input));
    /// # fn decode_count(i: &[u8]) -> usize { tessera_bencode::decode(i).unwrap().token_count() }
    /// ```
    pub fn decode_folded<'a>(
        &self,
        input: &'a [u8],
        path: &[&[u8]],
    ) -> Result<Document<'a>, Error> {
        Decoder::new(input, *self, path, None).run::<true>()
    }

    /// [`decode_folded`](Self::decode_folded), except that the first list or dictionary found
    /// at `path` is first offered to `claim`, which may check it itself (say, with a parser made
    /// for what that container holds, reading it once for both jobs).
    ///
    /// `claim` is called at most once, with the offset of the container's first byte and the
    /// limits that are left there. It returns `None` to leave the container to the decoder, or
    /// a [`Claimed`] that vouches for the bytes from that offset to [`Claimed::end`]: one
    /// well-formed, *canonical* bencoded value of the kind its first byte says, within the
    /// limits given. The decoder then skips those bytes: the container is on the tape as a
    /// [folded](ValueRef::is_folded) value with the span and element count claimed, and
    /// its values count towards the token limit. A claim that cannot be right (an end outside
    /// the input or not on an `e`, more values than allowed, fewer values than elements) is
    /// ignored and the decoder reads the container itself.
    ///
    /// A caller that claims must be as strict as the decoder: anything it lets through is not
    /// looked at again. Nothing inside a claimed container is reported as a warning, so it
    /// should decline non-canonical bytes rather than accept them.
    ///
    /// # Errors
    /// The same as [`decode`](Self::decode).
    ///
    /// ```
    /// use tessera_bencode::{Claimed, DecodeOptions};
    ///
    /// let input = b"d4:infod5:filesli1ei2eeee";
    /// let mut offered = None;
    /// let doc = DecodeOptions::strict()
    ///     .decode_claiming(input, &[b"info", b"files"], &mut |start, _limits| {
    ///         offered = Some(start);
    ///         Some(Claimed { end: start + 8, elements: 2, values: 3 })
    ///     })
    ///     .unwrap();
    /// assert_eq!(offered, Some(15));
    /// let info = doc.root().as_dict().unwrap().get_dict(b"info").unwrap();
    /// let files = info.get(b"files").unwrap();
    /// assert!(files.is_folded());
    /// assert_eq!(files.raw(), b"li1ei2ee");
    /// assert_eq!(files.as_list().unwrap().len(), 2);
    /// ```
    pub fn decode_claiming<'a>(
        &self,
        input: &'a [u8],
        path: &[&[u8]],
        claim: &mut dyn FnMut(usize, ClaimLimits) -> Option<Claimed>,
    ) -> Result<Document<'a>, Error> {
        Decoder::new(input, *self, path, Some(claim)).run::<true>()
    }
}

/// What a claim of [`DecodeOptions::decode_claiming`] must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimits {
    /// Most values the claimed container may hold, itself included.
    pub values: usize,
    /// Most levels of nesting it may have, itself included: 1 allows a container of
    /// integers and strings only.
    pub depth: usize,
}

/// A container checked by the caller of [`DecodeOptions::decode_claiming`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    /// Offset one past its last byte (its closing `e`).
    pub end: usize,
    /// Number of its elements (a list) or entries (a dictionary).
    pub elements: usize,
    /// Number of values in it, itself included, counted as the decoder counts them (a
    /// dictionary entry is two: its key and its value).
    pub values: usize,
}

/// Decodes `input` in strict mode with default limits.
///
/// # Errors
/// Malformed or non-canonical input, or input past the default limits.
pub fn decode(input: &[u8]) -> Result<Document<'_>, Error> {
    DecodeOptions::strict().decode(input)
}

/// Decodes `input` in lenient mode with default limits; irregularities become warnings.
///
/// # Errors
/// Malformed input, or input past the default limits.
pub fn decode_lenient(input: &[u8]) -> Result<Document<'_>, Error> {
    DecodeOptions::lenient().decode(input)
}

/// The type of a bencode value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `i…e`
    Int,
    /// `N:…`
    Bytes,
    /// `l…e`
    List,
    /// `d…e`
    Dict,
}

const KIND_SHIFT: u32 = 30;
const COUNT_MASK: u32 = (1 << KIND_SHIFT) - 1;

/// One value on the tape. 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Token {
    /// Offset of the first byte of the encoded value.
    start: u32,
    /// Offset one past the last byte of the encoded value.
    end: u32,
    /// Bytes: payload start. Containers: index of the token after the subtree. Int: unused.
    aux: u32,
    /// Kind in the top two bits; containers keep their element (or entry) count below.
    meta: u32,
}

impl Token {
    fn kind(self) -> Kind {
        match self.meta >> KIND_SHIFT {
            0 => Kind::Int,
            1 => Kind::Bytes,
            2 => Kind::List,
            _ => Kind::Dict,
        }
    }
    fn count(self) -> usize {
        (self.meta & COUNT_MASK) as usize
    }
    /// A container (at tape index `idx`) whose elements were not taped: it counts some, yet
    /// the next token is its first.
    fn is_folded(self, idx: usize) -> bool {
        matches!(self.kind(), Kind::List | Kind::Dict)
            && self.count() > 0
            && self.aux as usize == idx + 1
    }
    /// Index of the token that follows this value's subtree.
    fn next(self, idx: usize) -> usize {
        match self.kind() {
            Kind::Int | Kind::Bytes => idx + 1,
            Kind::List | Kind::Dict => self.aux as usize,
        }
    }
}

const fn meta(kind: Kind, count: u32) -> u32 {
    let k = match kind {
        Kind::Int => 0,
        Kind::Bytes => 1,
        Kind::List => 2,
        Kind::Dict => 3,
    };
    (k << KIND_SHIFT) | (count & COUNT_MASK)
}

/// `meta` of every byte string token.
const BYTES_META: u32 = meta(Kind::Bytes, 0);
/// `meta` of every integer token.
const INT_META: u32 = meta(Kind::Int, 0);

/// A decoded document: the input it borrows, the tape, and any warnings (lenient mode).
#[derive(Debug, Clone)]
pub struct Document<'a> {
    input: &'a [u8],
    tokens: Vec<Token>,
    warnings: Vec<Warning>,
}

impl<'a> Document<'a> {
    /// The root value.
    pub fn root(&self) -> ValueRef<'_, 'a> {
        ValueRef { doc: self, idx: 0 }
    }

    /// Irregularities accepted in lenient mode (always empty in strict mode).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The input the document was decoded from.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// Number of values (keys included) in the document.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    fn token(&self, idx: usize) -> Token {
        // Every index handed out by the views is in range by construction; a miss is a bug, but
        // still answered with a harmless empty string rather than a panic.
        self.tokens.get(idx).copied().unwrap_or(Token {
            start: 0,
            end: 0,
            aux: 0,
            meta: meta(Kind::Bytes, 0),
        })
    }

    fn slice(&self, r: Range<usize>) -> &'a [u8] {
        self.input.get(r).unwrap_or_default()
    }
}

/// A borrowed view of one value in a [`Document`].
#[derive(Clone, Copy)]
pub struct ValueRef<'d, 'a> {
    doc: &'d Document<'a>,
    idx: usize,
}

impl std::fmt::Debug for ValueRef<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_owned(), f)
    }
}

impl PartialEq for ValueRef<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        self.to_owned() == other.to_owned()
    }
}

impl<'d, 'a> ValueRef<'d, 'a> {
    fn tok(&self) -> Token {
        self.doc.token(self.idx)
    }

    /// The type of this value.
    pub fn kind(&self) -> Kind {
        self.tok().kind()
    }

    /// Byte range of the whole encoded value in the input.
    pub fn span(&self) -> Range<usize> {
        let t = self.tok();
        t.start as usize..t.end as usize
    }

    /// The exact encoded bytes of this value as found in the input (e.g. to hash an info dictionary).
    pub fn raw(&self) -> &'a [u8] {
        self.doc.slice(self.span())
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        let t = self.tok();
        if t.kind() != Kind::Int {
            return None;
        }
        let digits = self.doc.slice(t.start as usize + 1..t.end as usize - 1);
        parse_validated_int(digits)
    }

    /// The byte string payload, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        let t = self.tok();
        (t.kind() == Kind::Bytes).then(|| self.doc.slice(t.aux as usize..t.end as usize))
    }

    /// The byte string payload as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<ListRef<'d, 'a>> {
        (self.kind() == Kind::List).then_some(ListRef { v: *self })
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<DictRef<'d, 'a>> {
        (self.kind() == Kind::Dict).then_some(DictRef { v: *self })
    }

    /// True for a list or dictionary whose elements were left off the tape by
    /// [`DecodeOptions::decode_folded`]: iterating it yields nothing; read it with
    /// [`RawValue`](crate::RawValue).
    pub fn is_folded(&self) -> bool {
        self.tok().is_folded(self.idx)
    }

    /// A deep owned copy. Duplicate dictionary keys keep their first value.
    pub fn to_owned(&self) -> Value {
        if self.is_folded() {
            return self.unfolded();
        }
        match self.kind() {
            Kind::Int => Value::Int(self.as_int().unwrap_or(0)),
            Kind::Bytes => Value::Bytes(self.as_bytes().unwrap_or_default().to_vec()),
            Kind::List => Value::List(
                self.as_list()
                    .map(|l| l.iter().map(|v| v.to_owned()).collect())
                    .unwrap_or_default(),
            ),
            Kind::Dict => {
                let mut map = std::collections::BTreeMap::new();
                if let Some(d) = self.as_dict() {
                    for (k, v) in d.iter() {
                        map.entry(k.to_vec()).or_insert_with(|| v.to_owned());
                    }
                }
                Value::Dict(map)
            }
        }
    }

    /// A folded value, decoded again on its own to own it. The decoder checked it already, so
    /// only its kind can make this fail (never in practice); nesting and size were bounded then.
    #[cold]
    fn unfolded(&self) -> Value {
        let opts = DecodeOptions {
            mode: Mode::Lenient,
            max_depth: usize::MAX,
            max_tokens: TOKEN_CEILING,
        };
        match opts.decode(self.raw()) {
            Ok(doc) => doc.root().to_owned(),
            Err(_) if self.kind() == Kind::Dict => Value::Dict(Default::default()),
            Err(_) => Value::List(Vec::new()),
        }
    }

    /// The document this value belongs to.
    pub fn document(&self) -> &'d Document<'a> {
        self.doc
    }

    /// Zero-copy: the part of `owner` holding this value's payload (for a byte string) or its
    /// whole encoding (otherwise). `owner` must be the buffer the document was decoded from.
    pub fn slice_of(&self, owner: &bytes::Bytes) -> Option<bytes::Bytes> {
        if owner.as_ptr() != self.doc.input.as_ptr() || owner.len() != self.doc.input.len() {
            return None;
        }
        let r = match self.kind() {
            Kind::Bytes => self.tok().aux as usize..self.tok().end as usize,
            _ => self.span(),
        };
        Some(owner.slice(r))
    }
}

/// A borrowed list.
#[derive(Clone, Copy, Debug)]
pub struct ListRef<'d, 'a> {
    v: ValueRef<'d, 'a>,
}

impl<'d, 'a> ListRef<'d, 'a> {
    /// Number of elements (a [folded](ValueRef::is_folded) list counts them too).
    pub fn len(&self) -> usize {
        self.v.tok().count()
    }

    /// True if the list has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements in order (none if the list [is folded](ValueRef::is_folded)).
    pub fn iter(&self) -> ListIter<'d, 'a> {
        let t = self.v.tok();
        ListIter {
            doc: self.v.doc,
            next: self.v.idx + 1,
            remaining: if t.is_folded(self.v.idx) {
                0
            } else {
                t.count()
            },
        }
    }

    /// The element at `index` (linear time).
    pub fn get(&self, index: usize) -> Option<ValueRef<'d, 'a>> {
        self.iter().nth(index)
    }

    /// This list as a value.
    pub fn as_value(&self) -> ValueRef<'d, 'a> {
        self.v
    }
}

impl<'d, 'a> IntoIterator for ListRef<'d, 'a> {
    type Item = ValueRef<'d, 'a>;
    type IntoIter = ListIter<'d, 'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a list's elements.
#[derive(Clone, Debug)]
pub struct ListIter<'d, 'a> {
    doc: &'d Document<'a>,
    next: usize,
    remaining: usize,
}

impl<'d, 'a> Iterator for ListIter<'d, 'a> {
    type Item = ValueRef<'d, 'a>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let idx = self.next;
        self.next = self.doc.token(idx).next(idx);
        Some(ValueRef { doc: self.doc, idx })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for ListIter<'_, '_> {}

/// A borrowed dictionary. Entries keep their order in the input.
#[derive(Clone, Copy, Debug)]
pub struct DictRef<'d, 'a> {
    v: ValueRef<'d, 'a>,
}

impl<'d, 'a> DictRef<'d, 'a> {
    /// Number of entries (a [folded](ValueRef::is_folded) dictionary counts them too).
    pub fn len(&self) -> usize {
        self.v.tok().count()
    }

    /// True if the dictionary has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries in input order (none if the dictionary [is folded](ValueRef::is_folded)).
    pub fn iter(&self) -> DictIter<'d, 'a> {
        let t = self.v.tok();
        DictIter {
            doc: self.v.doc,
            next: self.v.idx + 1,
            remaining: if t.is_folded(self.v.idx) {
                0
            } else {
                t.count()
            },
        }
    }

    /// The value under `key` (the first one, if the key is duplicated). Linear in the entry count.
    pub fn get(&self, key: &[u8]) -> Option<ValueRef<'d, 'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The integer under `key`.
    pub fn get_int(&self, key: &[u8]) -> Option<i64> {
        self.get(key).and_then(|v| v.as_int())
    }

    /// The byte string under `key`.
    pub fn get_bytes(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.get(key).and_then(|v| v.as_bytes())
    }

    /// The UTF-8 string under `key`.
    pub fn get_str(&self, key: &[u8]) -> Option<&'a str> {
        self.get(key).and_then(|v| v.as_str())
    }

    /// The list under `key`.
    pub fn get_list(&self, key: &[u8]) -> Option<ListRef<'d, 'a>> {
        self.get(key).and_then(|v| v.as_list())
    }

    /// The dictionary under `key`.
    pub fn get_dict(&self, key: &[u8]) -> Option<DictRef<'d, 'a>> {
        self.get(key).and_then(|v| v.as_dict())
    }

    /// This dictionary as a value.
    pub fn as_value(&self) -> ValueRef<'d, 'a> {
        self.v
    }
}

impl<'d, 'a> IntoIterator for DictRef<'d, 'a> {
    type Item = (&'a [u8], ValueRef<'d, 'a>);
    type IntoIter = DictIter<'d, 'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a dictionary's entries in input order.
#[derive(Clone, Debug)]
pub struct DictIter<'d, 'a> {
    doc: &'d Document<'a>,
    next: usize,
    remaining: usize,
}

impl<'d, 'a> Iterator for DictIter<'d, 'a> {
    type Item = (&'a [u8], ValueRef<'d, 'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let key_idx = self.next;
        let kt = self.doc.token(key_idx);
        let key = self.doc.slice(kt.aux as usize..kt.end as usize);
        let val_idx = key_idx + 1;
        self.next = self.doc.token(val_idx).next(val_idx);
        Some((
            key,
            ValueRef {
                doc: self.doc,
                idx: val_idx,
            },
        ))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for DictIter<'_, '_> {}

impl<'d, 'a> DictIter<'d, 'a> {
    /// The next entry with its key as a value (so its offset is known).
    pub(crate) fn next_entry(&mut self) -> Option<(ValueRef<'d, 'a>, ValueRef<'d, 'a>)> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let key_idx = self.next;
        let val_idx = key_idx + 1;
        self.next = self.doc.token(val_idx).next(val_idx);
        Some((
            ValueRef {
                doc: self.doc,
                idx: key_idx,
            },
            ValueRef {
                doc: self.doc,
                idx: val_idx,
            },
        ))
    }
}

/// Parses the digits of an integer the decoder has already validated.
fn parse_validated_int(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    let mut acc: i64 = 0;
    for &d in digits {
        let d = i64::from(d.wrapping_sub(b'0'));
        acc = acc.checked_mul(10)?;
        acc = if neg {
            acc.checked_sub(d)?
        } else {
            acc.checked_add(d)?
        };
    }
    Some(acc)
}

/// What an open frame of the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    /// The bottom of the stack: accepts exactly one value, the root.
    Root,
    /// An open list.
    List,
    /// An open dictionary.
    Dict,
}

/// An open list or dictionary (or the root slot) while decoding.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Tape index of the container's token (unused for the root slot).
    tok: u32,
    kind: FrameKind,
    /// Dictionaries: the next value read is a key.
    want_key: bool,
    /// Children completed (list elements or dictionary entries).
    count: u32,
    /// Dictionaries: payload range of the last key, for the order check.
    last_key: (u32, u32),
    /// Where the frame stands as to folding ([`DecodeOptions::decode_folded`]).
    fold: Fold,
}

/// A frame's relation to the folded container of [`DecodeOptions::decode_folded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    /// Taped as usual.
    No,
    /// The container at the folding path: its elements are taped, those that are containers
    /// folded.
    Parent,
    /// Inside a folded container: its values are checked and counted, not taped.
    Inside,
}

/// The `tok` of a frame that has no token (inside a folded container).
const UNTAPED: u32 = u32::MAX;

impl Frame {
    const ROOT: Frame = Frame {
        tok: 0,
        kind: FrameKind::Root,
        want_key: false,
        count: 0,
        last_key: (0, 0),
        fold: Fold::No,
    };
}

/// Tape slots reserved up front: one per 8 input bytes (typical torrents average 8–12 bytes per
/// value, so this rarely regrows), capped so a huge input does not reserve a huge tape before
/// anything is known about it. Untouched capacity costs address space, not memory.
const fn initial_capacity(input_len: usize, max_tokens: usize) -> usize {
    let estimate = input_len / 8 + 8;
    let cap = if max_tokens < (1 << 22) {
        max_tokens
    } else {
        1 << 22
    };
    if estimate < cap {
        estimate
    } else {
        cap
    }
}

/// Where a byte string length being read stops growing: past any input the decoder accepts, and
/// small enough that `10 * LENGTH_CLAMP + 9` fits in a `u64`.
const LENGTH_CLAMP: u64 = 1 << 40;

/// Reads the length of the byte string at `start` (which holds a digit): the length (clamped
/// at [`LENGTH_CLAMP`]) and the offset of the ':' after it, or what is wrong and where.
fn string_length(input: &[u8], start: usize) -> Result<(u64, usize), (ErrorKind, usize)> {
    let mut i = start;
    let mut len = 0u64;
    loop {
        let Some(&d) = input.get(i) else {
            return Err((ErrorKind::UnexpectedEof, i));
        };
        let v = d.wrapping_sub(b'0');
        if v < 10 {
            // Clamped rather than overflowing: anything past the input (which is below 4 GiB)
            // is rejected by the caller.
            len = (len * 10 + u64::from(v)).min(LENGTH_CLAMP);
            i += 1;
        } else if d == b':' && i > start {
            return Ok((len, i));
        } else {
            return Err((ErrorKind::BadStringLength, i));
        }
    }
}

/// Raw byte order of two keys, deciding on the first byte without a call when it differs (the
/// usual case for sorted keys).
#[inline]
fn cmp_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => cmp_keys_slow(a, b),
    }
}

/// The whole comparison, kept out of line so that the first-byte test stays a test.
#[inline(never)]
fn cmp_keys_slow(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.cmp(b)
}

/// The decoder's state outside its hot loop: settings, the frames below the innermost one, and
/// warnings. The tape, the position and the innermost frame live in locals of [`Decoder::run`].
struct Decoder<'a, 'p> {
    input: &'a [u8],
    opts: DecodeOptions,
    /// The keys to the container whose elements are folded (`decode_folded`).
    fold_path: &'p [&'p [u8]],
    /// Who may claim that container (`decode_claiming`), until it has been offered once.
    claim: Option<&'p mut dyn FnMut(usize, ClaimLimits) -> Option<Claimed>>,
    /// `opts.max_tokens`, capped at what the tape can count.
    max_tokens: usize,
    /// The frames enclosing the innermost one, outermost (the root slot) first.
    stack: Vec<Frame>,
    warnings: Vec<Warning>,
}

/// Appends `t` to the tape (or, when `FOLD` and not `tape`, only counts it in `folded`) unless
/// the document already holds `max` values; then returns false. Without `FOLD` this is a plain
/// bounded push: `folded` and `tape` are not looked at.
#[inline(always)]
fn record<const FOLD: bool>(
    tokens: &mut Vec<Token>,
    folded: &mut usize,
    max: usize,
    t: Token,
    tape: bool,
) -> bool {
    let held = if FOLD {
        tokens.len() + *folded
    } else {
        tokens.len()
    };
    if held >= max {
        return false;
    }
    if FOLD && !tape {
        *folded += 1;
    } else {
        tokens.push(t);
    }
    true
}

impl<'a, 'p> Decoder<'a, 'p> {
    fn new(
        input: &'a [u8],
        opts: DecodeOptions,
        fold_path: &'p [&'p [u8]],
        claim: Option<&'p mut dyn FnMut(usize, ClaimLimits) -> Option<Claimed>>,
    ) -> Self {
        let max_tokens = opts.max_tokens.min(TOKEN_CEILING);
        Decoder {
            input,
            opts,
            fold_path,
            claim,
            max_tokens,
            stack: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The key path to the value being read, `top` being the innermost frame.
    #[cold]
    #[inline(never)]
    fn path(&self, top: Frame) -> Path {
        let mut segs = Vec::with_capacity(self.stack.len() + 1);
        for f in self.stack.iter().chain(std::iter::once(&top)) {
            match f.kind {
                FrameKind::Root => {}
                FrameKind::Dict => {
                    if f.want_key {
                        break;
                    }
                    let key = self
                        .input
                        .get(f.last_key.0 as usize..f.last_key.1 as usize)
                        .unwrap_or_default();
                    segs.push(PathSegment::Key(key.to_vec()));
                }
                FrameKind::List => segs.push(PathSegment::Index(f.count as usize)),
            }
        }
        Path(segs)
    }

    #[cold]
    #[inline(never)]
    fn err(&self, top: Frame, kind: ErrorKind, offset: usize) -> Error {
        Error {
            kind,
            offset,
            path: self.path(top),
        }
    }

    #[cold]
    #[inline(never)]
    fn too_many_tokens(&self, top: Frame, offset: usize) -> Error {
        let limit = self.max_tokens;
        self.err(top, ErrorKind::TooManyTokens { limit }, offset)
    }

    /// A non-canonical encoding: an error in strict mode, a warning in lenient mode.
    #[cold]
    #[inline(never)]
    fn irregular(&mut self, top: Frame, kind: Irregularity, offset: usize) -> Result<(), Error> {
        match self.opts.mode {
            Mode::Strict => Err(self.err(top, ErrorKind::NonCanonical(kind), offset)),
            Mode::Lenient => {
                let path = self.path(top);
                self.warnings.push(Warning { kind, offset, path });
                Ok(())
            }
        }
    }

    /// Decodes the whole input in one pass without recursion.
    ///
    /// One `match` on the byte that starts each value; byte strings and integers are read
    /// inline; everything that builds an error or a warning is out of line. With `FOLD`, the
    /// values inside folded containers are counted instead of taped (`decode_folded`); without
    /// it, the folding tests compile away.
    fn run<const FOLD: bool>(mut self) -> Result<Document<'a>, Error> {
        let input = self.input;
        if u32::try_from(input.len()).is_err() {
            let len = input.len();
            return Err(self.err(Frame::ROOT, ErrorKind::InputTooLarge { len }, 0));
        }
        let max_tokens = self.max_tokens;
        let max_depth = self.opts.max_depth;
        let mut tokens: Vec<Token> = Vec::with_capacity(initial_capacity(input.len(), max_tokens));
        let mut top = Frame::ROOT;
        let mut pos = 0usize;
        // Values counted but not taped (inside folded containers).
        let mut folded = 0usize;
        loop {
            let start = pos;
            let Some(&c) = input.get(start) else {
                return Err(self.err(top, ErrorKind::UnexpectedEof, start));
            };
            match c {
                b'0'..=b'9' => {
                    // `<len>:<payload>`; `i` ends on the ':'. Lengths of one or two digits
                    // (nearly all keys and names) are read without a loop.
                    let d1 = input.get(start + 1).copied().unwrap_or(0);
                    let d2 = input.get(start + 2).copied().unwrap_or(0);
                    let (len, i) = if d1 == b':' {
                        (u64::from(c - b'0'), start + 1)
                    } else if d1.is_ascii_digit() && d2 == b':' {
                        (u64::from(c - b'0') * 10 + u64::from(d1 - b'0'), start + 2)
                    } else {
                        match string_length(input, start) {
                            Ok(found) => found,
                            Err((kind, at)) => return Err(self.err(top, kind, at)),
                        }
                    };
                    if c == b'0' && i > start + 1 {
                        self.irregular(top, Irregularity::LeadingZeros, start)?;
                    }
                    let payload = i + 1;
                    // `payload <= input.len()`: the ':' at `i` is in the input.
                    if len > (input.len() - payload) as u64 {
                        return Err(self.err(top, ErrorKind::BadStringLength, start));
                    }
                    let end = payload + len as usize;
                    let t = Token {
                        start: start as u32,
                        end: end as u32,
                        aux: payload as u32,
                        meta: BYTES_META,
                    };
                    let tape = top.fold != Fold::Inside;
                    if !record::<FOLD>(&mut tokens, &mut folded, max_tokens, t, tape) {
                        return Err(self.too_many_tokens(top, start));
                    }
                    pos = end;
                    if top.want_key {
                        let prev = top.last_key;
                        top.last_key = (payload as u32, end as u32);
                        top.want_key = false;
                        if top.count > 0 {
                            let key = input.get(payload..end).unwrap_or_default();
                            let prev = input
                                .get(prev.0 as usize..prev.1 as usize)
                                .unwrap_or_default();
                            match cmp_keys(key, prev) {
                                std::cmp::Ordering::Greater => {}
                                std::cmp::Ordering::Equal => {
                                    self.irregular(top, Irregularity::DuplicateKey, start)?;
                                }
                                std::cmp::Ordering::Less => {
                                    self.irregular(top, Irregularity::UnsortedKeys, start)?;
                                }
                            }
                        }
                        // A key is not a value of its own: read the value next.
                        continue;
                    }
                }
                _ if top.want_key => {
                    if c != b'e' {
                        return Err(self.err(top, ErrorKind::KeyNotString, start));
                    }
                    top = self.close(&mut tokens, top, start);
                    pos = start + 1;
                }
                b'i' => {
                    pos = self.int::<FOLD>(&mut tokens, &mut folded, top, start)?;
                }
                b'l' | b'd' => {
                    if self.stack.len() >= max_depth {
                        let limit = max_depth;
                        return Err(self.err(top, ErrorKind::DepthExceeded { limit }, start));
                    }
                    let tape = top.fold != Fold::Inside;
                    let tok = if FOLD && !tape {
                        UNTAPED
                    } else {
                        tokens.len() as u32
                    };
                    let fold = if FOLD { self.child_fold(top) } else { Fold::No };
                    if FOLD && fold == Fold::Parent && self.claim.is_some() {
                        let held = tokens.len() + folded;
                        if let Some((t, values)) = self.offer(start, held, tokens.len()) {
                            // `offer` checked that the values fit under the limit.
                            tokens.push(t);
                            folded += values - 1;
                            pos = t.end as usize;
                            if top.kind == FrameKind::Root {
                                break;
                            }
                            top.count += 1;
                            top.want_key = top.kind == FrameKind::Dict;
                            continue;
                        }
                    }
                    let t = Token {
                        start: start as u32,
                        end: 0,
                        aux: 0,
                        meta: 0,
                    };
                    if !record::<FOLD>(&mut tokens, &mut folded, max_tokens, t, tape) {
                        return Err(self.too_many_tokens(top, start));
                    }
                    self.stack.push(top);
                    let dict = c == b'd';
                    top = Frame {
                        tok,
                        kind: if dict {
                            FrameKind::Dict
                        } else {
                            FrameKind::List
                        },
                        want_key: dict,
                        count: 0,
                        last_key: (0, 0),
                        fold,
                    };
                    pos = start + 1;
                    continue;
                }
                b'e' => {
                    match top.kind {
                        FrameKind::List => {}
                        FrameKind::Dict => {
                            return Err(self.err(top, ErrorKind::MissingValue, start));
                        }
                        FrameKind::Root => {
                            return Err(self.err(top, ErrorKind::UnexpectedByte(b'e'), start));
                        }
                    }
                    top = self.close(&mut tokens, top, start);
                    pos = start + 1;
                }
                _ => return Err(self.err(top, ErrorKind::UnexpectedByte(c), start)),
            }
            // A value just ended: count it in its container, or stop after the root.
            if top.kind == FrameKind::Root {
                break;
            }
            top.count += 1;
            top.want_key = top.kind == FrameKind::Dict;
        }
        if pos != input.len() {
            self.irregular(top, Irregularity::TrailingData, pos)?;
        }
        Ok(Document {
            input,
            tokens,
            warnings: self.warnings,
        })
    }

    /// Offers the container at `start` (which would be tape index `idx`, with `held` values
    /// already counted) to the claimer, once. Returns its folded token and its number of
    /// values if the claim is taken.
    #[cold]
    #[inline(never)]
    fn offer(&mut self, start: usize, held: usize, idx: usize) -> Option<(Token, usize)> {
        let claim = self.claim.take()?;
        let limits = ClaimLimits {
            values: self.max_tokens.saturating_sub(held),
            depth: self.opts.max_depth.saturating_sub(self.stack.len()),
        };
        let c = claim(start, limits)?;
        let kind = match self.input.get(start) {
            Some(b'l') => Kind::List,
            Some(b'd') => Kind::Dict,
            _ => return None,
        };
        let plausible = c.end > start + 1
            && c.end <= self.input.len()
            && self.input.get(c.end - 1) == Some(&b'e')
            && c.values >= 1
            && c.values <= limits.values
            && c.elements < c.values
            && (kind == Kind::List || c.elements.checked_mul(2)? < c.values)
            && c.elements <= COUNT_MASK as usize
            && idx < TOKEN_CEILING;
        if !plausible {
            return None;
        }
        let t = Token {
            start: start as u32,
            end: c.end as u32,
            aux: (idx + 1) as u32,
            meta: meta(kind, c.elements as u32),
        };
        Some((t, c.values))
    }

    /// How a container opened inside `top` stands as to folding.
    #[inline]
    fn child_fold(&self, top: Frame) -> Fold {
        match top.fold {
            Fold::Parent | Fold::Inside => Fold::Inside,
            Fold::No if self.stack.len() == self.fold_path.len() && self.at_fold_path(top) => {
                Fold::Parent
            }
            Fold::No => Fold::No,
        }
    }

    /// Whether the value about to be read inside `top` is at `fold_path`, given that there are
    /// as many enclosing frames (below the root slot, `top` included) as keys in it: each is a
    /// dictionary whose current key is the matching key of the path. (An empty path is the
    /// root value itself.)
    #[cold]
    #[inline(never)]
    fn at_fold_path(&self, top: Frame) -> bool {
        let frames = self.stack.iter().skip(1).chain(std::iter::once(&top));
        frames.zip(self.fold_path).all(|(f, key)| {
            f.kind == FrameKind::Dict
                && !f.want_key
                && self
                    .input
                    .get(f.last_key.0 as usize..f.last_key.1 as usize)
                    .is_some_and(|k| k == *key)
        })
    }

    /// An `e` that closes the innermost container `top`: fills in its token (if it has one)
    /// and returns the frame that encloses it.
    #[inline]
    fn close(&mut self, tokens: &mut [Token], top: Frame, start: usize) -> Frame {
        let next = tokens.len() as u32;
        let kind = if top.kind == FrameKind::Dict {
            Kind::Dict
        } else {
            Kind::List
        };
        if let Some(t) = tokens.get_mut(top.tok as usize) {
            t.end = (start + 1) as u32;
            t.aux = next;
            t.meta = meta(kind, top.count);
        }
        self.stack.pop().unwrap_or(Frame::ROOT)
    }

    /// `i<digits>e` at `start`, in one pass; returns the offset after it. Malformed integers are
    /// reported at the `i`.
    #[inline]
    fn int<const FOLD: bool>(
        &mut self,
        tokens: &mut Vec<Token>,
        folded: &mut usize,
        top: Frame,
        start: usize,
    ) -> Result<usize, Error> {
        let input = self.input;
        let mut i = start + 1;
        let neg = input.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let digits = i;
        let mut magnitude: u64 = 0;
        loop {
            let Some(&d) = input.get(i) else {
                return Err(self.err(top, ErrorKind::UnexpectedEof, i));
            };
            let v = d.wrapping_sub(b'0');
            if v < 10 {
                // Saturates: anything past `i64` is rejected below.
                magnitude = magnitude.saturating_mul(10).saturating_add(u64::from(v));
                i += 1;
            } else if d == b'e' {
                break;
            } else {
                return Err(self.err(top, ErrorKind::MalformedInteger, start));
            }
        }
        let ndigits = i - digits;
        if ndigits == 0 {
            return Err(self.err(top, ErrorKind::MalformedInteger, start));
        }
        let limit = if neg {
            i64::MIN.unsigned_abs()
        } else {
            i64::MAX.unsigned_abs()
        };
        if magnitude > limit {
            return Err(self.err(top, ErrorKind::IntegerOverflow, start));
        }
        if ndigits > 1 && input.get(digits) == Some(&b'0') {
            self.irregular(top, Irregularity::LeadingZeros, start)?;
        }
        if neg && magnitude == 0 {
            self.irregular(top, Irregularity::NegativeZero, start)?;
        }
        let end = i + 1;
        let t = Token {
            start: start as u32,
            end: end as u32,
            aux: 0,
            meta: INT_META,
        };
        let tape = top.fold != Fold::Inside;
        if !record::<FOLD>(tokens, folded, self.max_tokens, t, tape) {
            return Err(self.too_many_tokens(top, start));
        }
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn key_order_is_raw_byte_order() {
        assert_eq!(cmp_keys(b"a", b"b"), Ordering::Less);
        assert_eq!(cmp_keys(b"ab", b"a"), Ordering::Greater);
        assert_eq!(cmp_keys(b"", b"a"), Ordering::Less);
        assert_eq!(cmp_keys(b"", b""), Ordering::Equal);
        assert_eq!(cmp_keys(b"\xff", b"z"), Ordering::Greater);
        assert_eq!(cmp_keys(b"abc", b"abd"), Ordering::Less);
    }

    #[test]
    fn tape_reservation_is_bounded() {
        assert_eq!(initial_capacity(0, DEFAULT_MAX_TOKENS), 8);
        assert_eq!(initial_capacity(800, DEFAULT_MAX_TOKENS), 108);
        assert_eq!(initial_capacity(800, 5), 5);
        assert_eq!(
            initial_capacity(u32::MAX as usize, DEFAULT_MAX_TOKENS),
            1 << 22
        );
    }

    #[test]
    fn token_packing() {
        let t = Token {
            start: 0,
            end: 2,
            aux: 7,
            meta: meta(Kind::Dict, COUNT_MASK),
        };
        assert_eq!(t.kind(), Kind::Dict);
        assert_eq!(t.count(), COUNT_MASK as usize);
        assert_eq!(t.next(3), 7);
        let b = Token {
            meta: meta(Kind::Bytes, 0),
            ..t
        };
        assert_eq!(b.next(3), 4);
    }
}
