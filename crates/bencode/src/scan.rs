//! A quick look into bencode without decoding it: where a top-level value starts, found by
//! skipping over what comes before it. Nothing is checked beyond what the skipping needs, so
//! the answer is a guess to confirm against a decoded [`Document`](crate::Document) — useful to
//! start work on a value (say, hashing an info dictionary on another thread) while the decoder
//! is still running.

/// Offset of the value under `key` in the root dictionary of `input` (the first such entry),
/// found by skipping over the entries before it without decoding or checking them.
///
/// Returns `None` if the root is not a dictionary, if `key` is not found, or if the bytes
/// before it are not bencode as far as skipping can tell. The answer is not checked further:
/// compare it with the span of the decoded value before relying on it. Takes time linear in the
/// bytes before the value, never recurses and never panics.
///
/// ```
/// let t = b"d8:announce3:url4:infod4:name1:xee";
/// assert_eq!(tessera_bencode::find_root_value(t, b"info"), Some(22));
/// assert_eq!(tessera_bencode::find_root_value(t, b"nodes"), None);
/// ```
pub fn find_root_value(input: &[u8], key: &[u8]) -> Option<usize> {
    if input.first() != Some(&b'd') {
        return None;
    }
    let mut pos = 1;
    loop {
        let (payload, end) = string_at(input, pos)?;
        if input.get(payload..end)? == key {
            return (end < input.len()).then_some(end);
        }
        pos = skip_value(input, end)?;
    }
}

/// The byte string at `pos`: its payload range.
fn string_at(input: &[u8], pos: usize) -> Option<(usize, usize)> {
    let mut i = pos;
    let mut len = 0usize;
    loop {
        let d = *input.get(i)?;
        if d == b':' && i > pos {
            break;
        }
        if !d.is_ascii_digit() {
            return None;
        }
        len = len.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
        i += 1;
    }
    let payload = i + 1;
    let end = payload.checked_add(len)?;
    (end <= input.len()).then_some((payload, end))
}

/// Offset just past the value at `pos`, containers included (with a depth count, no recursion).
fn skip_value(input: &[u8], mut pos: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match *input.get(pos)? {
            b'i' => {
                let digits = input.get(pos + 1..)?;
                pos += 1 + digits.iter().position(|&b| b == b'e')? + 1;
            }
            b'0'..=b'9' => pos = string_at(input, pos)?.1,
            b'l' | b'd' => {
                depth += 1;
                pos += 1;
                continue;
            }
            b'e' => {
                depth = depth.checked_sub(1)?;
                pos += 1;
            }
            _ => return None,
        }
        if depth == 0 {
            return Some(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_entry_after_nested_values() {
        let t = b"d1:ali1ed1:xi2eee1:bi3e4:infod1:ai1ee4:infoi0ee";
        let at = find_root_value(t, b"info").unwrap();
        assert_eq!(&t[at..at + 9], b"d1:ai1ee4");
        assert_eq!(find_root_value(t, b"b"), Some(20));
        assert_eq!(find_root_value(t, b"zzz"), None);
    }

    #[test]
    fn gives_up_on_malformed_input() {
        for t in [
            &b""[..],
            b"l4:infoi1ee",
            b"d4:info",
            b"d1:ai1e",
            b"d1:a99:x4:infoi1ee",
            b"d1:ax4:infoi1ee",
            b"d:4:infoi1ee",
            b"d1:aie",
            b"d1:ae4:infoi1ee",
            b"d99999999999999999999999:a",
        ] {
            let found = find_root_value(t, b"info");
            assert!(found.is_none(), "{:?}", String::from_utf8_lossy(t));
        }
    }
}
