//! serde serialization that always writes canonical bencode.

use std::fmt;
use std::ops::Range;

use serde::ser::{self, Serialize};

use crate::encode::{put_bytes, put_int};

/// Why a value could not be serialized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerError {
    /// A floating-point number: bencode has none.
    #[error("floating-point numbers cannot be represented in bencode")]
    Float,
    /// An unsigned integer above `i64::MAX`.
    #[error("unsigned integer {0} does not fit in a bencode integer (i64)")]
    UnsignedOutOfRange(u128),
    /// A 128-bit signed integer outside the `i64` range.
    #[error("integer {0} does not fit in a bencode integer (i64)")]
    SignedOutOfRange(i128),
    /// A map key that is not a string, byte string, integer or unit variant.
    #[error("dictionary key must be a string, bytes, an integer or a unit variant")]
    KeyNotString,
    /// Two entries of one dictionary have the same key (canonical bencode forbids it).
    #[error("duplicate dictionary key {:?}", .0.escape_ascii().to_string())]
    DuplicateKey(Vec<u8>),
    /// A `None` or unit value where bencode needs a value: at the top level, as a list element or
    /// as the data of an enum variant. (In a struct or map the entry is simply left out.)
    #[error("None or unit value outside a struct field or map entry")]
    MissingValue,
    /// An error raised by a `Serialize` implementation.
    #[error("{0}")]
    Custom(String),
}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError::Custom(msg.to_string())
    }
}

/// Serializes `value` to canonical bencode.
///
/// # Errors
/// See [`SerError`]: floats, integers past `i64`, bad map keys, duplicate keys, a `None` outside
/// a struct or map.
pub fn to_bytes<T: ?Sized + Serialize>(value: &T) -> Result<Vec<u8>, SerError> {
    let mut out = Vec::new();
    to_writer(value, &mut out)?;
    Ok(out)
}

/// Appends the canonical bencode of `value` to `out`. On error `out` is left as it was.
///
/// # Errors
/// As [`to_bytes`].
pub fn to_writer<T: ?Sized + Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), SerError> {
    let start = out.len();
    let result = match value.serialize(Serializer::new(out)) {
        Ok(()) if out.len() == start => Err(SerError::MissingValue),
        other => other,
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// A serde [`Serializer`](serde::Serializer) appending canonical bencode to a `Vec<u8>`.
///
/// Dictionaries (maps and structs) are written with their keys sorted by raw bytes whatever
/// order the fields or map entries arrive in, so `to_bytes` of any value decodes in strict mode,
/// and equal values always give equal bytes (which is what info-hashes and signatures need).
///
/// Data model:
///
/// | serde | bencode |
/// |---|---|
/// | `bool` | integer `0` or `1` |
/// | integers | integer; an unsigned value above `i64::MAX` is an error |
/// | `f32`, `f64` | error: bencode has no floating-point numbers |
/// | `char`, string, bytes | byte string (use `serde_bytes` so `Vec<u8>` is a byte string, not a list) |
/// | `None`, `()`, unit struct | nothing: the entry is left out of its struct or map; an error elsewhere |
/// | `Some(v)`, newtype struct | `v` |
/// | sequence, tuple | list |
/// | map, struct | dictionary, keys sorted; map keys must be strings, bytes, integers (written in decimal) or unit variants |
/// | unit variant | byte string of the variant name |
/// | newtype, tuple or struct variant | single-entry dictionary `{ variant: data }` |
///
/// A `None` or unit value writes nothing; [`to_bytes`] and [`to_writer`] turn that into
/// [`SerError::MissingValue`] at the top level.
#[derive(Debug)]
pub struct Serializer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Serializer<'a> {
    /// A serializer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Serializer { out }
    }
}

fn i64_from_u128(v: u128) -> Result<i64, SerError> {
    i64::try_from(v).map_err(|_| SerError::UnsignedOutOfRange(v))
}

impl<'a> ser::Serializer for Serializer<'a> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = SeqSerializer<'a>;
    type SerializeTuple = SeqSerializer<'a>;
    type SerializeTupleStruct = SeqSerializer<'a>;
    type SerializeTupleVariant = SeqSerializer<'a>;
    type SerializeMap = DictSerializer<'a>;
    type SerializeStruct = DictSerializer<'a>;
    type SerializeStructVariant = DictSerializer<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), SerError> {
        put_int(self.out, i64::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), SerError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), SerError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), SerError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), SerError> {
        put_int(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), SerError> {
        let v = i64::try_from(v).map_err(|_| SerError::SignedOutOfRange(v))?;
        self.serialize_i64(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), SerError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), SerError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), SerError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), SerError> {
        self.serialize_i64(i64_from_u128(u128::from(v))?)
    }
    fn serialize_u128(self, v: u128) -> Result<(), SerError> {
        self.serialize_i64(i64_from_u128(v)?)
    }
    fn serialize_f32(self, _v: f32) -> Result<(), SerError> {
        Err(SerError::Float)
    }
    fn serialize_f64(self, _v: f64) -> Result<(), SerError> {
        Err(SerError::Float)
    }
    fn serialize_char(self, v: char) -> Result<(), SerError> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), SerError> {
        put_bytes(self.out, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), SerError> {
        put_bytes(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), SerError> {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), SerError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), SerError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), SerError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        self.out.push(b'd');
        put_bytes(self.out, variant.as_bytes());
        let before = self.out.len();
        value.serialize(Serializer::new(self.out))?;
        if self.out.len() == before {
            return Err(SerError::MissingValue);
        }
        self.out.push(b'e');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<SeqSerializer<'a>, SerError> {
        self.out.push(b'l');
        Ok(SeqSerializer {
            out: self.out,
            variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSerializer<'a>, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqSerializer<'a>, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<SeqSerializer<'a>, SerError> {
        self.out.push(b'd');
        put_bytes(self.out, variant.as_bytes());
        self.out.push(b'l');
        Ok(SeqSerializer {
            out: self.out,
            variant: true,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<DictSerializer<'a>, SerError> {
        Ok(DictSerializer::new(self.out, len.unwrap_or(0), false))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<DictSerializer<'a>, SerError> {
        Ok(DictSerializer::new(self.out, len, false))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<DictSerializer<'a>, SerError> {
        self.out.push(b'd');
        put_bytes(self.out, variant.as_bytes());
        Ok(DictSerializer::new(self.out, len, true))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Writes the elements of a list (or of a tuple variant).
#[derive(Debug)]
pub struct SeqSerializer<'a> {
    out: &'a mut Vec<u8>,
    /// Inside a single-entry variant dictionary that needs closing too.
    variant: bool,
}

impl SeqSerializer<'_> {
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        let before = self.out.len();
        value.serialize(Serializer::new(self.out))?;
        if self.out.len() == before {
            return Err(SerError::MissingValue);
        }
        Ok(())
    }

    fn finish(self) -> Result<(), SerError> {
        self.out.push(b'e');
        if self.variant {
            self.out.push(b'e');
        }
        Ok(())
    }
}

impl ser::SerializeSeq for SeqSerializer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.element(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

impl ser::SerializeTuple for SeqSerializer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.element(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for SeqSerializer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.element(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for SeqSerializer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.element(value)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

/// One entry written into the output: `start..end` is `<len>:<key><value>`, `key` the key bytes.
#[derive(Debug, Clone)]
struct Entry {
    start: usize,
    key: Range<usize>,
    end: usize,
}

/// Writes a dictionary (map, struct or struct variant) with sorted keys.
///
/// Entries are written straight to the output in arrival order. When they arrive sorted (the
/// usual case for structs whose fields are declared in key order, and for `BTreeMap`s) nothing
/// more happens; otherwise the entries are reordered once when the dictionary ends.
#[derive(Debug)]
pub struct DictSerializer<'a> {
    out: &'a mut Vec<u8>,
    /// Where the first entry starts (just after the `d`).
    base: usize,
    entries: Vec<Entry>,
    /// Entries so far arrived in strictly increasing key order.
    sorted: bool,
    /// A key written by `serialize_key`, waiting for its value: (entry start, key range).
    pending: Option<(usize, Range<usize>)>,
    /// Scratch for map keys of arbitrary type.
    key_buf: Vec<u8>,
    /// Inside a single-entry variant dictionary that needs closing too.
    variant: bool,
}

impl<'a> DictSerializer<'a> {
    fn new(out: &'a mut Vec<u8>, len: usize, variant: bool) -> Self {
        out.push(b'd');
        let base = out.len();
        DictSerializer {
            out,
            base,
            entries: Vec::with_capacity(len.min(64)),
            sorted: true,
            pending: None,
            key_buf: Vec::new(),
            variant,
        }
    }

    fn key_bytes(&self, r: &Range<usize>) -> &[u8] {
        self.out.get(r.clone()).unwrap_or_default()
    }

    /// Writes `<len>:<key>` and returns (entry start, key range).
    fn write_key(&mut self, key: &[u8]) -> (usize, Range<usize>) {
        let start = self.out.len();
        put_bytes(self.out, key);
        let end = self.out.len();
        (start, end - key.len()..end)
    }

    /// Writes the value for a key already written; drops the entry if the value wrote nothing.
    fn value<T: ?Sized + Serialize>(
        &mut self,
        start: usize,
        key: Range<usize>,
        value: &T,
    ) -> Result<(), SerError> {
        let before = self.out.len();
        value.serialize(Serializer::new(self.out))?;
        if self.out.len() == before {
            // `None` or unit: leave the entry out altogether.
            self.out.truncate(start);
            return Ok(());
        }
        if let Some(last) = self.entries.last() {
            match self.key_bytes(&key).cmp(self.key_bytes(&last.key)) {
                std::cmp::Ordering::Greater => {}
                std::cmp::Ordering::Less => self.sorted = false,
                std::cmp::Ordering::Equal => {
                    return Err(SerError::DuplicateKey(self.key_bytes(&key).to_vec()))
                }
            }
        }
        let end = self.out.len();
        self.entries.push(Entry { start, key, end });
        Ok(())
    }

    fn finish(mut self) -> Result<(), SerError> {
        if !self.sorted {
            let written = self.out.split_off(self.base);
            let base = self.base;
            let local = |r: &Range<usize>| written.get(r.start - base..r.end - base);
            self.entries
                .sort_by(|a, b| local(&a.key).cmp(&local(&b.key)));
            for pair in self.entries.windows(2) {
                if let [a, b] = pair {
                    if local(&a.key) == local(&b.key) {
                        let key = local(&a.key).unwrap_or_default().to_vec();
                        return Err(SerError::DuplicateKey(key));
                    }
                }
            }
            for e in &self.entries {
                let bytes = written.get(e.start - base..e.end - base);
                self.out.extend_from_slice(bytes.unwrap_or_default());
            }
        }
        self.out.push(b'e');
        if self.variant {
            self.out.push(b'e');
        }
        Ok(())
    }
}

impl ser::SerializeMap for DictSerializer<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), SerError> {
        let mut buf = std::mem::take(&mut self.key_buf);
        buf.clear();
        let result = key.serialize(KeySerializer { out: &mut buf });
        if result.is_ok() {
            self.pending = Some(self.write_key(&buf));
        }
        self.key_buf = buf;
        result
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        let Some((start, key)) = self.pending.take() else {
            return Err(SerError::Custom(
                "map value serialized before its key".to_owned(),
            ));
        };
        self.value(start, key, value)
    }

    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

impl ser::SerializeStruct for DictSerializer<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        let (start, range) = self.write_key(key.as_bytes());
        self.value(start, range, value)
    }

    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for DictSerializer<'_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }

    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

/// Serializes a map key to its raw bytes (not yet bencoded).
struct KeySerializer<'k> {
    out: &'k mut Vec<u8>,
}

impl KeySerializer<'_> {
    fn decimal(self, v: impl fmt::Display) -> Result<(), SerError> {
        use std::io::Write as _;
        write!(self.out, "{v}").map_err(|e| SerError::Custom(e.to_string()))
    }
}

impl ser::Serializer for KeySerializer<'_> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = ser::Impossible<(), SerError>;
    type SerializeTuple = ser::Impossible<(), SerError>;
    type SerializeTupleStruct = ser::Impossible<(), SerError>;
    type SerializeTupleVariant = ser::Impossible<(), SerError>;
    type SerializeMap = ser::Impossible<(), SerError>;
    type SerializeStruct = ser::Impossible<(), SerError>;
    type SerializeStructVariant = ser::Impossible<(), SerError>;

    fn serialize_bool(self, _v: bool) -> Result<(), SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_i8(self, v: i8) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), SerError> {
        self.decimal(v)
    }
    fn serialize_f32(self, _v: f32) -> Result<(), SerError> {
        Err(SerError::Float)
    }
    fn serialize_f64(self, _v: f64) -> Result<(), SerError> {
        Err(SerError::Float)
    }
    fn serialize_char(self, v: char) -> Result<(), SerError> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), SerError> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), SerError> {
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), SerError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        Err(SerError::KeyNotString)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        Err(SerError::KeyNotString)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}
