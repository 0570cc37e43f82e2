//! The canonical encoder: integers in shortest form, dictionaries with sorted unique keys.

use crate::decode::{Kind, ValueRef};
use crate::value::Value;

/// Appends an integer: `i<n>e`.
pub fn put_int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    put_decimal(out, n);
    out.push(b'e');
}

/// Appends a byte string: `<len>:<bytes>`.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_decimal_u(out, b.len() as u64);
    out.push(b':');
    out.extend_from_slice(b);
}

fn put_decimal(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    put_decimal_u(out, n.unsigned_abs());
}

fn put_decimal_u(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Anything that can write its canonical bencode form.
pub trait Encode {
    /// Appends the canonical encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The canonical encoding of `self` in a new buffer.
    fn to_bencode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl Encode for Value {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => put_int(out, *i),
            Value::Bytes(b) => put_bytes(out, b),
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    put_bytes(out, k);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// Re-encodes a decoded value canonically: keys sorted, duplicates dropped (first kept),
/// integers and lengths in shortest form. Already-canonical input is reproduced byte for byte.
impl Encode for ValueRef<'_, '_> {
    fn encode(&self, out: &mut Vec<u8>) {
        if self.is_folded() {
            // Its elements are not on the tape: go through an owned copy.
            self.to_owned().encode(out);
            return;
        }
        match self.kind() {
            Kind::Int => put_int(out, self.as_int().unwrap_or(0)),
            Kind::Bytes => put_bytes(out, self.as_bytes().unwrap_or_default()),
            Kind::List => {
                out.push(b'l');
                for v in self.as_list().into_iter().flatten() {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Kind::Dict => {
                out.push(b'd');
                if let Some(d) = self.as_dict() {
                    let mut entries: Vec<_> = d.iter().enumerate().collect();
                    // Stable by key, then by position: the first of equal keys wins.
                    entries.sort_by(|(ia, (ka, _)), (ib, (kb, _))| ka.cmp(kb).then(ia.cmp(ib)));
                    let mut last: Option<&[u8]> = None;
                    for (_, (k, v)) in entries {
                        if last == Some(k) {
                            continue;
                        }
                        last = Some(k);
                        put_bytes(out, k);
                        v.encode(out);
                    }
                }
                out.push(b'e');
            }
        }
    }
}

impl Encode for i64 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_int(out, *self);
    }
}

impl Encode for [u8] {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self);
    }
}

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.as_bytes());
    }
}

/// Writes a dictionary whose entries arrive in any order: each entry is encoded once into a
/// scratch buffer, then the entries are sorted by key and written out.
#[derive(Debug, Default)]
pub struct DictBuilder {
    scratch: Vec<u8>,
    /// (key range, value range) into `scratch`.
    entries: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
}

impl DictBuilder {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key` with a value already encoded by `f`. A later entry with an equal key replaces
    /// an earlier one.
    pub fn entry_with(&mut self, key: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        let ks = self.scratch.len();
        self.scratch.extend_from_slice(key);
        let vs = self.scratch.len();
        f(&mut self.scratch);
        let ve = self.scratch.len();
        self.entries.push((ks..vs, vs..ve));
        self
    }

    /// Adds `key` with an encodable value.
    pub fn entry<E: Encode + ?Sized>(&mut self, key: &[u8], value: &E) -> &mut Self {
        self.entry_with(key, |out| value.encode(out))
    }

    /// Writes the sorted dictionary to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        let scratch = &self.scratch;
        let key = |r: &std::ops::Range<usize>| scratch.get(r.clone()).unwrap_or_default();
        // Stable sort, then keep the last of equal keys.
        self.entries.sort_by(|a, b| key(&a.0).cmp(key(&b.0)));
        out.push(b'd');
        let n = self.entries.len();
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if let Some((nk, _)) = self.entries.get(i + 1) {
                if i + 1 < n && key(nk) == key(k) {
                    continue;
                }
            }
            put_bytes(out, key(k));
            out.extend_from_slice(scratch.get(v.clone()).unwrap_or_default());
        }
        out.push(b'e');
    }
}
