//! serde deserialization, driven from a decoded [`Document`](crate::Document).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::decode::{DecodeOptions, DictIter, Kind, ListIter, ValueRef};
use crate::error::{Error, Irregularity, Path, PathSegment};

/// Why a value could not be deserialized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeError {
    /// The input is not valid bencode (or, in strict mode, not canonical bencode). Carries the
    /// decoder's byte offset and key path.
    #[error(transparent)]
    Decode(#[from] Error),
    /// The bencode is well formed but does not fit the target type: a wrong type, a missing
    /// field, an unknown variant, an integer out of range, a float, ...
    #[error("{}", DisplayInvalid { message, offset: *offset, path })]
    Invalid {
        /// What did not fit, in serde's words.
        message: String,
        /// Byte offset of the offending value in the input; `None` only for an error that was
        /// raised outside of any value (never by this crate's own entry points).
        offset: Option<usize>,
        /// Keys and indices from the root to the offending value.
        path: Path,
    },
}

struct DisplayInvalid<'e> {
    message: &'e str,
    offset: Option<usize>,
    path: &'e Path,
}

impl fmt::Display for DisplayInvalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(offset) => write!(f, "{} at byte {offset} ({})", self.message, self.path),
            None => write!(f, "{} ({})", self.message, self.path),
        }
    }
}

impl DeError {
    /// Byte offset of the fault in the input, when known.
    pub fn offset(&self) -> Option<usize> {
        match self {
            DeError::Decode(e) => Some(e.offset),
            DeError::Invalid { offset, .. } => *offset,
        }
    }

    /// Keys and indices from the root to the fault.
    pub fn path(&self) -> &Path {
        match self {
            DeError::Decode(e) => &e.path,
            DeError::Invalid { path, .. } => path,
        }
    }

    /// Ties a fresh error to the value it is about (the innermost value wins).
    fn at(mut self, v: &ValueRef<'_, '_>) -> Self {
        if let DeError::Invalid { offset, .. } = &mut self {
            if offset.is_none() {
                *offset = Some(v.span().start);
            }
        }
        self
    }

    /// Records that the error happened below `seg` (called on the way out, innermost first).
    fn within(mut self, seg: impl FnOnce() -> PathSegment) -> Self {
        if let DeError::Invalid { path, .. } = &mut self {
            path.0.insert(0, seg());
        }
        self
    }
}

/// The error for a value whose elements are not on the tape.
fn folded_error() -> DeError {
    de::Error::custom(
        "a folded value (decode_folded) cannot be deserialized; decode it without folding",
    )
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::Invalid {
            message: msg.to_string(),
            offset: None,
            path: Path::default(),
        }
    }
}

/// Deserializes a `T` from `input`, decoded in strict mode with default limits.
///
/// # Errors
/// [`DeError::Decode`] if the input is not canonical bencode, [`DeError::Invalid`] if it does not
/// fit `T`.
pub fn from_bytes<'de, T: de::Deserialize<'de>>(input: &'de [u8]) -> Result<T, DeError> {
    from_bytes_with(input, &DecodeOptions::strict())
}

/// Deserializes a `T` from `input`, decoded with `options` (e.g. [`DecodeOptions::lenient`]).
///
/// In lenient mode a duplicated dictionary key keeps its first value, as
/// [`DictRef::get`](crate::DictRef::get) does.
///
/// # Errors
/// [`DeError::Decode`] if decoding fails, [`DeError::Invalid`] if the value does not fit `T`.
pub fn from_bytes_with<'de, T: de::Deserialize<'de>>(
    input: &'de [u8],
    options: &DecodeOptions,
) -> Result<T, DeError> {
    let doc = options.decode(input)?;
    from_value_ref(doc.root())
}

/// Deserializes a `T` from one value of an already decoded document, e.g. the `info` dictionary
/// of a torrent. Byte strings borrow from the document's input.
///
/// # Errors
/// [`DeError::Invalid`] if the value does not fit `T`; its path is relative to `value`.
pub fn from_value_ref<'de, T: de::Deserialize<'de>>(
    value: ValueRef<'_, 'de>,
) -> Result<T, DeError> {
    T::deserialize(Deserializer::new(value))
}

/// A serde [`Deserializer`](serde::Deserializer) over one value of a decoded document.
///
/// The input is decoded first (strictly by default), so malformed bencode is reported with the
/// decoder's byte offset and key path before any user type is involved. The [`Deserializer`] then
/// walks the tape: byte strings are handed out borrowed from the input (`&'de [u8]`, `&'de str`),
/// and values the target type ignores are skipped without being visited at all.
///
/// Data model:
///
/// | bencode | serde |
/// |---|---|
/// | integer | `i64` (narrower and unsigned integers are range-checked); `bool` from `0`/`1` |
/// | byte string | bytes, or a string when the target asks for one and the bytes are UTF-8 |
/// | list | sequence, tuple; a byte string also reads as a sequence of `u8` (so `Vec<u8>` works) |
/// | dictionary | map, struct; a single-entry dictionary is an enum variant with data |
/// | byte string (as enum) | unit variant |
///
/// Bencode has no null: an `Option` is `Some` when the value is present, and a struct's `Option`
/// field is `None` when its key is absent. Floats do not exist in bencode and are rejected.
/// Map keys are byte strings; a key type that asks for an integer gets the key parsed as decimal.
#[derive(Clone, Copy, Debug)]
pub struct Deserializer<'d, 'de> {
    v: ValueRef<'d, 'de>,
    /// The document may hold duplicate keys (lenient mode, some dictionary not strictly sorted):
    /// maps must skip repeats.
    dedupe: bool,
}

impl<'d, 'de> Deserializer<'d, 'de> {
    /// A deserializer for `value`.
    pub fn new(value: ValueRef<'d, 'de>) -> Self {
        let dedupe = value.document().warnings().iter().any(|w| {
            matches!(
                w.kind,
                Irregularity::DuplicateKey | Irregularity::UnsortedKeys
            )
        });
        Deserializer { v: value, dedupe }
    }

    fn child(&self, v: ValueRef<'d, 'de>) -> Self {
        Deserializer {
            v,
            dedupe: self.dedupe,
        }
    }

    fn invalid_type<V: Visitor<'de>>(&self, visitor: &V) -> DeError {
        let unexpected = match self.v.kind() {
            Kind::Int => de::Unexpected::Signed(self.v.as_int().unwrap_or(0)),
            Kind::Bytes => de::Unexpected::Bytes(self.v.as_bytes().unwrap_or_default()),
            Kind::List => de::Unexpected::Seq,
            Kind::Dict => de::Unexpected::Map,
        };
        de::Error::invalid_type(unexpected, visitor)
    }

    fn seq_access(&self) -> SeqAccess<'d, 'de> {
        SeqAccess {
            iter: self.v.as_list().map(|l| l.iter()),
            index: 0,
            dedupe: self.dedupe,
        }
    }

    /// Refuses a container whose elements are not on the tape
    /// ([`DecodeOptions::decode_folded`]): serde would see it empty.
    fn check_unfolded(&self) -> Result<(), DeError> {
        if self.v.is_folded() {
            return Err(folded_error());
        }
        Ok(())
    }

    /// Visits a dictionary.
    fn visit_map<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        self.check_unfolded()?;
        visitor.visit_map(self.map_access())
    }

    /// Visits a list and checks the visitor took every element (a tuple must match exactly).
    fn visit_list<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        self.check_unfolded()?;
        let mut access = self.seq_access();
        let value = visitor.visit_seq(&mut access)?;
        let left = access.iter.as_ref().map_or(0, ExactSizeIterator::len);
        if left > 0 {
            return Err(de::Error::invalid_length(
                access.index + left,
                &format!("a list of {} elements", access.index).as_str(),
            ));
        }
        Ok(value)
    }

    fn map_access(&self) -> MapAccess<'d, 'de> {
        let iter = self.v.as_dict().map(|d| d.iter());
        MapAccess {
            iter,
            value: None,
            seen: self.dedupe.then(HashSet::new),
            dedupe: self.dedupe,
        }
    }

    fn float<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let _ = visitor;
        Err(<DeError as de::Error>::custom(
            "floating-point numbers cannot be represented in bencode",
        )
        .at(&self.v))
    }

    fn signed<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v.as_int() {
            Some(i) => visitor.visit_i64(i),
            None => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(&self.v))
    }
}

macro_rules! forward_ints {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.signed(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Deserializer<'_, 'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let v = self.v;
        match v.kind() {
            Kind::Int => visitor.visit_i64(v.as_int().unwrap_or(0)),
            Kind::Bytes => visitor.visit_borrowed_bytes(v.as_bytes().unwrap_or_default()),
            Kind::List => self.visit_list(visitor),
            Kind::Dict => self.visit_map(visitor),
        }
        .map_err(|e| e.at(&v))
    }

    forward_ints! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v.as_int() {
            Some(0) => visitor.visit_bool(false),
            Some(1) => visitor.visit_bool(true),
            Some(i) => Err(de::Error::invalid_value(
                de::Unexpected::Signed(i),
                &"0 or 1 for a boolean",
            )),
            None => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(&self.v))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.float(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v.as_bytes() {
            // Non-UTF-8 bytes go to the visitor as bytes; a string visitor rejects them with
            // serde's usual "invalid value" message.
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(b),
            },
            None => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(&self.v))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // A present value is always `Some`: bencode has no null.
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // The serializer writes nothing for `()`; whatever stands in its place is ignored.
        visitor.visit_unit().map_err(|e: DeError| e.at(&self.v))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v.kind() {
            Kind::List => self.visit_list(visitor),
            // Lets a plain `Vec<u8>` or `[u8; N]` read a byte string.
            Kind::Bytes => {
                let mut seq = de::value::SeqDeserializer::new(
                    self.v.as_bytes().unwrap_or_default().iter().copied(),
                );
                visitor
                    .visit_seq(&mut seq)
                    .and_then(|value| seq.end().map(|()| value))
            }
            Kind::Int | Kind::Dict => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(&self.v))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v.kind() {
            Kind::Dict => self.visit_map(visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(&self.v))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let v = self.v;
        let result = match v.kind() {
            Kind::Bytes => visitor.visit_enum(EnumAccess {
                variant: v,
                content: None,
                de: self,
            }),
            Kind::Dict if v.is_folded() => Err(folded_error()),
            Kind::Dict => {
                let mut entries = v.as_dict().map(|d| d.iter());
                let first = entries.as_mut().and_then(DictIter::next_entry);
                let second = entries.as_mut().and_then(DictIter::next_entry);
                match (first, second) {
                    (Some((variant, content)), None) => visitor.visit_enum(EnumAccess {
                        variant,
                        content: Some(content),
                        de: self,
                    }),
                    _ => Err(de::Error::invalid_length(
                        v.as_dict().map_or(0, |d| d.len()),
                        &"a dictionary with exactly one entry for an enum variant",
                    )),
                }
            }
            Kind::Int | Kind::List => Err(self.invalid_type(&visitor)),
        };
        result.map_err(|e| e.at(&v))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // The tape already knows where the value ends: nothing to walk.
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl<'de> IntoDeserializer<'de, DeError> for Deserializer<'_, 'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// Elements of a list.
struct SeqAccess<'d, 'de> {
    iter: Option<ListIter<'d, 'de>>,
    index: usize,
    dedupe: bool,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, 'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(v) = self.iter.as_mut().and_then(Iterator::next) else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        let de = Deserializer {
            v,
            dedupe: self.dedupe,
        };
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| e.at(&v).within(|| PathSegment::Index(index)))
    }

    fn size_hint(&self) -> Option<usize> {
        self.iter.as_ref().map(ExactSizeIterator::len)
    }
}

/// Entries of a dictionary, in input order.
struct MapAccess<'d, 'de> {
    iter: Option<DictIter<'d, 'de>>,
    /// The value after the key just handed out, with that key.
    value: Option<(&'de [u8], ValueRef<'d, 'de>)>,
    /// Keys seen so far, when the document has duplicate keys (the first occurrence wins).
    seen: Option<HashSet<&'de [u8]>>,
    dedupe: bool,
}

impl<'d, 'de> MapAccess<'d, 'de> {
    fn next_fresh(&mut self) -> Option<(ValueRef<'d, 'de>, ValueRef<'d, 'de>)> {
        loop {
            let (k, v) = self.iter.as_mut()?.next_entry()?;
            match &mut self.seen {
                Some(seen) => {
                    if seen.insert(k.as_bytes().unwrap_or_default()) {
                        return Some((k, v));
                    }
                }
                None => return Some((k, v)),
            }
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, 'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((k, v)) = self.next_fresh() else {
            return Ok(None);
        };
        let key = k.as_bytes().unwrap_or_default();
        self.value = Some((key, v));
        seed.deserialize(KeyDeserializer { key })
            .map(Some)
            .map_err(|e| e.at(&k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, v)) = self.value.take() else {
            return Err(de::Error::custom("map value requested before its key"));
        };
        let de = Deserializer {
            v,
            dedupe: self.dedupe,
        };
        seed.deserialize(de)
            .map_err(|e| e.at(&v).within(|| PathSegment::Key(key.to_vec())))
    }

    fn size_hint(&self) -> Option<usize> {
        self.iter.as_ref().map(ExactSizeIterator::len)
    }
}

/// A dictionary key: a byte string that can also be read as a string, an integer (decimal) or a
/// unit enum variant.
struct KeyDeserializer<'de> {
    key: &'de [u8],
}

impl KeyDeserializer<'_> {
    fn parse<N: std::str::FromStr>(&self, what: &'static str) -> Result<N, DeError> {
        std::str::from_utf8(self.key)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| de::Error::invalid_value(de::Unexpected::Bytes(self.key), &what))
    }
}

macro_rules! key_ints {
    ($($method:ident => $ty:ty, $visit:ident;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n: $ty = self.parse(concat!("a decimal ", stringify!($ty), " as dictionary key"))?;
            visitor.$visit(n)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for KeyDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_bytes(self.key)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match std::str::from_utf8(self.key) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(_) => visitor.visit_borrowed_bytes(self.key),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    key_ints! {
        deserialize_i8 => i8, visit_i8;
        deserialize_i16 => i16, visit_i16;
        deserialize_i32 => i32, visit_i32;
        deserialize_i64 => i64, visit_i64;
        deserialize_i128 => i128, visit_i128;
        deserialize_u8 => u8, visit_u8;
        deserialize_u16 => u16, visit_u16;
        deserialize_u32 => u32, visit_u32;
        deserialize_u64 => u64, visit_u64;
        deserialize_u128 => u128, visit_u128;
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_enum(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool f32 f64 bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
    }
}

/// A key read as an enum: always a unit variant.
impl<'de> de::EnumAccess<'de> for KeyDeserializer<'de> {
    type Error = DeError;
    type Variant = VariantAccess<'de, 'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let value = seed.deserialize(self)?;
        Ok((value, VariantAccess { content: None }))
    }
}

/// An enum: a unit variant (`content` is `None`) or a single-entry dictionary.
struct EnumAccess<'d, 'de> {
    variant: ValueRef<'d, 'de>,
    content: Option<ValueRef<'d, 'de>>,
    de: Deserializer<'d, 'de>,
}

impl<'d, 'de> de::EnumAccess<'de> for EnumAccess<'d, 'de> {
    type Error = DeError;
    type Variant = VariantAccess<'d, 'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let key = self.variant.as_bytes().unwrap_or_default();
        let value = seed
            .deserialize(KeyDeserializer { key })
            .map_err(|e| e.at(&self.variant))?;
        let access = VariantAccess {
            content: self.content.map(|c| (key, self.de.child(c))),
        };
        Ok((value, access))
    }
}

/// The data of an enum variant, if any.
struct VariantAccess<'d, 'de> {
    content: Option<(&'de [u8], Deserializer<'d, 'de>)>,
}

impl<'d, 'de> VariantAccess<'d, 'de> {
    fn content(self) -> Result<(&'de [u8], Deserializer<'d, 'de>), DeError> {
        self.content.ok_or_else(|| {
            de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"a single-entry dictionary for a variant with data",
            )
        })
    }
}

fn under<T>(key: &[u8], r: Result<T, DeError>) -> Result<T, DeError> {
    r.map_err(|e| e.within(|| PathSegment::Key(key.to_vec())))
}

impl<'de> de::VariantAccess<'de> for VariantAccess<'_, 'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.content {
            None => Ok(()),
            Some((key, de)) => under(key, de::Deserialize::deserialize(de)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let (key, de) = self.content()?;
        under(key, seed.deserialize(de))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        let (key, de) = self.content()?;
        under(key, de::Deserializer::deserialize_seq(de, visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (key, de) = self.content()?;
        under(key, de::Deserializer::deserialize_map(de, visitor))
    }
}
