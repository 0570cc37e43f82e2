//! Decode errors and warnings, each with the byte offset and key path of the fault.

use std::fmt;

/// One step on the way from the root value to a fault: a dictionary key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// The value under this dictionary key (raw bytes; usually ASCII).
    Key(Vec<u8>),
    /// The element at this index of a list.
    Index(usize),
}

/// The path of keys and indices from the root value to a fault, e.g. `info.files[3].length`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Path(pub Vec<PathSegment>);

impl Path {
    /// The segments from the root down.
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    /// True for the root value itself.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<root>");
        }
        let mut first = true;
        for seg in &self.0 {
            match seg {
                PathSegment::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    for chunk in k.utf8_chunks() {
                        f.write_str(chunk.valid())?;
                        for b in chunk.invalid() {
                            write!(f, "\\x{b:02x}")?;
                        }
                    }
                }
                PathSegment::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// Non-canonical but common encodings: accepted with a [`Warning`] in lenient mode, rejected with
/// [`ErrorKind::NonCanonical`] in strict mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Irregularity {
    /// A dictionary key is not greater than the key before it (keys must be sorted as raw bytes).
    UnsortedKeys,
    /// A dictionary key equal to the key just before it; lookups return the first occurrence.
    /// (A repeat further apart is preceded by an out-of-order key, reported as `UnsortedKeys`.)
    DuplicateKey,
    /// The integer `i-0e`.
    NegativeZero,
    /// An integer or string length written with leading zeros, e.g. `i03e` or `04:spam`.
    LeadingZeros,
    /// Bytes after the end of the root value.
    TrailingData,
}

impl fmt::Display for Irregularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Irregularity::UnsortedKeys => "dictionary keys not sorted",
            Irregularity::DuplicateKey => "duplicate dictionary key",
            Irregularity::NegativeZero => "negative zero integer",
            Irregularity::LeadingZeros => "number with leading zeros",
            Irregularity::TrailingData => "trailing data after the root value",
        })
    }
}

/// What went wrong while decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended inside a value.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// A byte that cannot start a value here.
    #[error("unexpected byte 0x{0:02x}")]
    UnexpectedByte(u8),
    /// An integer with no digits (`ie`, `i-e`) or with a non-digit inside.
    #[error("malformed integer")]
    MalformedInteger,
    /// An integer that does not fit in an `i64`.
    #[error("integer out of range for i64")]
    IntegerOverflow,
    /// A byte string length that is malformed or larger than the remaining input.
    #[error("byte string length malformed or past the end of input")]
    BadStringLength,
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a byte string")]
    KeyNotString,
    /// A dictionary ended after a key and before its value.
    #[error("dictionary key without a value")]
    MissingValue,
    /// Nesting deeper than the configured limit.
    #[error("nesting deeper than {limit} levels")]
    DepthExceeded {
        /// The configured limit.
        limit: usize,
    },
    /// More values than the configured limit.
    #[error("more than {limit} values")]
    TooManyTokens {
        /// The configured limit.
        limit: usize,
    },
    /// The input is larger than the decoder can address (4 GiB).
    #[error("input of {len} bytes is too large")]
    InputTooLarge {
        /// The input length.
        len: usize,
    },
    /// A non-canonical encoding, rejected because the decoder is in strict mode.
    #[error("{0} (strict mode)")]
    NonCanonical(Irregularity),
}

/// A decode error: what, at which byte offset, and under which keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset into the input where the fault was found.
    pub offset: usize,
    /// Keys and indices from the root to the faulty value.
    pub path: Path,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {} ({})", self.kind, self.offset, self.path)
    }
}

impl std::error::Error for Error {}

/// A non-canonical encoding accepted in lenient mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What was irregular.
    pub kind: Irregularity,
    /// Byte offset of the irregular value.
    pub offset: usize,
    /// Keys and indices from the root to the irregular value.
    pub path: Path,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {} ({})", self.kind, self.offset, self.path)
    }
}
