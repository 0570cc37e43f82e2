//! Path sanitisation: turning untrusted path components from a torrent into a relative,
//! '/'-separated path that cannot leave the download directory.
//!
//! The rules follow libtorrent's (POSIX build), so that file paths agree with its
//! `file_storage::file_path()` byte for byte:
//!
//! * `/`, `\` and NUL inside a component are dropped, as are the Unicode direction overrides
//!   U+202A..U+202E, U+200E and U+200F;
//! * control characters (below 0x20) and invalid UTF-8 become `_`;
//! * a component of only one or two dots (`.`, `..`) is dropped;
//! * an empty component becomes `_`;
//! * a component is cut at 240 bytes, keeping an extension of up to 9 bytes.
//!
//! The result never starts with `/`, never holds `.` or `..` components and never holds a
//! backslash, so joining it onto a download directory stays inside it.

/// Decodes one UTF-8 sequence at the start of `s` the way libtorrent does: returns the code
/// point (or `None` for an invalid sequence) and the number of bytes it spans (at least one,
/// possibly more than `s.len()` for a truncated sequence).
fn parse_codepoint(s: &[u8]) -> (Option<u32>, usize) {
    let Some(&b0) = s.first() else {
        return (None, 1);
    };
    let len = if b0 < 0x80 {
        return (Some(u32::from(b0)), 1);
    } else if b0 >> 5 == 0b110 {
        2
    } else if b0 >> 4 == 0b1110 {
        3
    } else if b0 >> 3 == 0b11110 {
        4
    } else if b0 >> 2 == 0b111110 {
        // An invalid lead byte that still claims a length: skip that many bytes.
        return (None, 5);
    } else {
        return (None, 1);
    };
    if len > s.len() {
        return (None, s.len().max(1));
    }
    let mut ch = u32::from(b0) & (0x7f >> len);
    for &b in s.iter().take(len).skip(1) {
        if !(0x80..=0xbf).contains(&b) {
            return (None, len);
        }
        ch = (ch << 6) | u32::from(b & 0x3f);
    }
    let min = match len {
        2 => 0x80,
        3 => 0x800,
        _ => 0x10000,
    };
    if ch < min || ch > 0x10ffff || (0xd800..=0xdfff).contains(&ch) {
        return (None, len);
    }
    (Some(ch), len)
}

/// Characters removed from path components: separators, NUL and writing-direction overrides.
fn is_filtered(c: u32) -> bool {
    matches!(
        c,
        0 | 0x202a | 0x202b | 0x202c | 0x202d | 0x202e | 0x200e | 0x200f
    ) || c == u32::from(b'/')
        || c == u32::from(b'\\')
}

/// Longest run of bytes kept from one component before only its extension is added.
const MAX_ELEMENT: usize = 240;

/// Appends the sanitised form of one raw path component to `path`, with a `/` before it if
/// `path` is not empty. A component that sanitises to nothing (`.`, `..`) is dropped.
pub(crate) fn append_element(path: &mut String, element: &[u8]) {
    let mut bytes = std::mem::take(path).into_bytes();
    let _ = append_bytes(&mut bytes, element);
    *path = into_string(bytes);
}

/// A path built by [`append_bytes`] as a `String`. It is UTF-8 by construction; were it not,
/// anything invalid would become U+FFFD rather than a panic.
pub(crate) fn into_string(path: Vec<u8>) -> String {
    String::from_utf8(path).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`append_element`] on a path kept as bytes, so that a whole path is checked as UTF-8 once
/// (by [`into_string`]) rather than once per component. `path` must hold UTF-8; it still does
/// afterwards. Returns how the component went in.
#[inline]
pub(crate) fn append_bytes(path: &mut Vec<u8>, element: &[u8]) -> Appended {
    match unchanged_by_sanitising(element) {
        Some(underscore) => {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(element);
            Appended::AsItWas { underscore }
        }
        None => {
            append_careful(path, element);
            Appended::Sanitised
        }
    }
}

/// How [`append_bytes`] added a component.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Appended {
    /// Unchanged; `underscore` if it holds a `_`.
    AsItWas { underscore: bool },
    /// Changed (or dropped) by sanitising.
    Sanitised,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Eight bytes as a little-endian word (0 if `w` is not eight bytes long).
#[inline(always)]
pub(crate) fn word(w: &[u8]) -> u64 {
    <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes)
}

/// The last eight bytes of `b` as a word; if `b` is shorter, its bytes with the missing high
/// bytes set to `fill`. Built in registers: copying a short tail into a buffer and loading it
/// as a word stalls the load until the copy's stores drain.
#[inline(always)]
pub(crate) fn tail_word(b: &[u8], fill: u8) -> u64 {
    if let Some(last) = b.len().checked_sub(8).and_then(|start| b.get(start..)) {
        return word(last);
    }
    let mut w = u64::from_le_bytes([fill; 8]);
    for (i, &c) in b.iter().take(7).enumerate() {
        let shift = 8 * i;
        w = (w & !(0xff << shift)) | (u64::from(c) << shift);
    }
    w
}

/// High bit set in each byte of `w` that is zero (exact as to whether there is one).
#[inline]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGH
}

/// Non-zero if one of the eight bytes in `w` is outside printable ASCII plus DEL, or is `/` or
/// `\`.
#[inline]
fn unusual_bytes(w: u64) -> u64 {
    // A byte below 0x20 borrows when 0x20 is taken from it, and so sets its high bit; a
    // borrow only ever carries into the byte above one that has borrowed itself, so the
    // result is non-zero exactly when some byte is below 0x20 or not ASCII.
    let control_or_non_ascii = (w.wrapping_sub(ONES * 0x20) | w) & HIGH;
    control_or_non_ascii
        | zero_bytes(w ^ (ONES * u64::from(b'/')))
        | zero_bytes(w ^ (ONES * u64::from(b'\\')))
}

/// `Some` when sanitising leaves `element` as it is, which is what almost every component of a
/// real torrent looks like: not empty, shorter than the cut, valid UTF-8, not `.` or `..`, and
/// free of control characters, `/`, `\` and the direction overrides (which all start with the
/// bytes `E2 80`; any `E2 80` sends the component down the careful path); then whether it
/// holds a `_` (in passing, for the padding file marker). Printable ASCII is recognised eight
/// bytes at a time.
#[inline]
pub(crate) fn unchanged_by_sanitising(element: &[u8]) -> Option<bool> {
    if !plain_shape(element) {
        return None;
    }
    let (unusual, underscore) = scan(element);
    if unusual {
        // Something outside printable ASCII: fine if it is only well-formed non-ASCII text.
        let fine = !element.iter().any(|&b| b < 0x20 || b == b'/' || b == b'\\')
            && std::str::from_utf8(element).is_ok()
            && !element.windows(2).any(|w| w == [0xe2, 0x80]);
        if !fine {
            return None;
        }
    }
    Some(underscore)
}

/// Whether a component has a shape sanitising keeps: not empty, shorter than the cut, not `.`
/// or `..` (its bytes are checked apart, see [`printable_ascii`]).
#[inline(always)]
pub(crate) fn plain_shape(element: &[u8]) -> bool {
    !(element.is_empty() || element.len() >= MAX_ELEMENT || element == b"." || element == b"..")
}

/// `Some` when every byte of `bytes` is printable ASCII other than `/` and `\` (so a
/// component made of such bytes, of a [plain shape](plain_shape), is left as it is by
/// sanitising); then whether one is a `_`. Eight bytes at a time: one pass over a whole
/// encoded path list (`3:dir5:a.txt`) answers for all its components, whose length prefixes
/// are printable ASCII too.
#[inline(always)]
pub(crate) fn printable_ascii(bytes: &[u8]) -> Option<bool> {
    let (unusual, underscore) = scan(bytes);
    (!unusual).then_some(underscore)
}

/// Whether `bytes` hold a byte that is not printable ASCII or is `/` or `\`, and whether
/// they hold a `_`: the whole words, then the tail (the last eight bytes again, overlapping
/// bytes already seen changing nothing, or for fewer bytes than eight, those padded with one
/// that is neither unusual nor `_`).
#[inline(always)]
fn scan(bytes: &[u8]) -> (bool, bool) {
    let under = |w: u64| zero_bytes(w ^ (ONES * u64::from(b'_')));
    let tail = tail_word(bytes, b'a');
    let mut unusual = unusual_bytes(tail);
    let mut underscore = under(tail);
    for w in bytes.chunks_exact(8) {
        let w = word(w);
        unusual |= unusual_bytes(w);
        underscore |= under(w);
    }
    (unusual != 0, underscore != 0)
}

/// [`append_bytes`] for components that need work: one code point at a time.
fn append_careful(path: &mut Vec<u8>, element: &[u8]) {
    if element == b"." {
        return;
    }
    let sep = usize::from(!path.is_empty());
    if sep == 1 {
        path.push(b'/');
    }
    if element.is_empty() {
        path.push(b'_');
        return;
    }
    let mut added = 0usize;
    let mut dots = 0usize;
    let mut found_extension = false;
    let mut i = 0usize;
    while i < element.len() {
        let rest = element.get(i..).unwrap_or_default();
        let (cp, seq_len) = parse_codepoint(rest);
        let next = i.saturating_add(seq_len);
        match cp {
            Some(c) if is_filtered(c) => {
                i = next;
                continue;
            }
            Some(c) if c >= 32 => {
                // Valid: copy the bytes of the sequence.
                path.extend_from_slice(rest.get(..seq_len).unwrap_or_default());
                if c == u32::from(b'.') {
                    dots += 1;
                }
                added += seq_len;
            }
            _ => {
                path.push(b'_');
                added += 1;
                i = next;
                continue;
            }
        }
        if added >= MAX_ELEMENT && !found_extension {
            // Keep an extension (a dot among the last 9 bytes, after this point) if there is
            // one; otherwise cut here.
            let lo = element.len().saturating_sub(10).max(i);
            let dot = (lo + 1..element.len())
                .rev()
                .find(|&j| element.get(j) == Some(&b'.'));
            match dot {
                Some(d) => {
                    found_extension = true;
                    i = d;
                    continue;
                }
                None => break,
            }
        }
        i = next;
    }
    if added == dots && added <= 2 {
        // Nothing but one or two dots: take the component (and its separator) back out.
        let keep = path.len().saturating_sub(added + sep);
        path.truncate(keep);
        return;
    }
    if path.is_empty() {
        path.push(b'_');
    }
}

/// Replaces invalid UTF-8 in a free-text field (comment, created by) the way libtorrent does:
/// each invalid sequence becomes `_`.
pub(crate) fn lossy_utf8(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = bytes.get(i..).unwrap_or_default();
        let (cp, len) = parse_codepoint(rest);
        match cp.and_then(char::from_u32) {
            Some(c) => out.push(c),
            None => out.push('_'),
        }
        i = i.saturating_add(len);
    }
    out
}

/// The extension of the last component of `path`, dot included (`""` if there is none). A
/// path that is all extension (`.hidden`) is its own extension, as in libtorrent.
pub(crate) fn extension(path: &str) -> &str {
    for (i, b) in path.bytes().enumerate().rev() {
        if b == b'/' {
            break;
        }
        if b == b'.' {
            return path.get(i..).unwrap_or_default();
        }
    }
    ""
}

/// `path` without the extension of its last component (unchanged if the only dot is the
/// first byte or lies before the last `/`).
pub(crate) fn remove_extension(path: &str) -> &str {
    let slash = path.rfind('/');
    match path.rfind('.') {
        None | Some(0) => path,
        Some(d) if slash.is_some_and(|s| d < s) => path,
        Some(d) => path.get(..d).unwrap_or(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn san(parts: &[&[u8]]) -> String {
        let mut p = String::new();
        for e in parts {
            append_element(&mut p, e);
        }
        p
    }

    #[test]
    fn escapes_are_neutralised() {
        assert_eq!(san(&[b"a", b"..", b"b"]), "a/b");
        assert_eq!(san(&[b"a", b".", b"b"]), "a/b");
        assert_eq!(san(&[b"/etc", b"passwd"]), "etc/passwd");
        assert_eq!(san(&[b"a\\..\\b"]), "a..b");
        assert_eq!(san(&[b"a", b"", b"b"]), "a/_/b");
        assert_eq!(san(&[b"x\x01y"]), "x_y");
        assert_eq!(san(&[b"\0\0"]), "");
        assert_eq!(san(&[b"\0bcd"]), "bcd");
        assert_eq!(san(&[b"\xff\xfeok"]), "__ok");
        assert_eq!(san(&[b".."]), "");
        assert_eq!(san(&[b"..."]), "...");
        assert_eq!(san(&["a\u{202e}b".as_bytes()]), "ab");
        assert_eq!(san(&["é".as_bytes()]), "é");
        // Overlong encoding of '/'.
        assert_eq!(san(&[b"\xc0\xafx"]), "_x");
    }

    #[test]
    fn fast_path_agrees_with_careful_path() {
        let samples: &[&[u8]] = &[
            b"plain-name.txt",
            b"with space and ~!@#$%^&*()",
            b"\x7f",
            "caf\u{e9}".as_bytes(),
            "\u{65e5}\u{672c}".as_bytes(),
            "\u{2014}dash".as_bytes(),
            "x\u{200f}y".as_bytes(),
            b"...",
            b".hidden",
            b"\xed\xa0\x80",
            b"a\\b",
        ];
        for e in samples {
            for prefix in ["", "root"] {
                let mut fast = prefix.as_bytes().to_vec();
                let _ = append_bytes(&mut fast, e);
                let mut careful = prefix.as_bytes().to_vec();
                append_careful(&mut careful, e);
                assert_eq!(fast, careful, "{e:?}");
            }
        }
        let long = vec![b'x'; MAX_ELEMENT - 1];
        assert_eq!(unchanged_by_sanitising(&long), Some(false));
        assert_eq!(unchanged_by_sanitising(&[b'x'; MAX_ELEMENT]), None);
        for b in 0..=255u8 {
            // `b` inside a whole word, in the tail, and both.
            let e = [b'a', b'b', b'c', b, b'e', b'f', b'g', b'h', b, b'z'];
            let plain = (0x20..0x80).contains(&b) && b != b'/' && b != b'\\';
            let want = plain.then_some(b == b'_');
            assert_eq!(unchanged_by_sanitising(&e[..8]), want, "{b:#x}");
            assert_eq!(unchanged_by_sanitising(&e[7..]), want, "{b:#x}");
            assert_eq!(unchanged_by_sanitising(&e), want, "{b:#x}");
            let alone = if b == b'.' { None } else { want };
            assert_eq!(unchanged_by_sanitising(&e[3..4]), alone, "{b:#x}");
        }
    }

    #[test]
    fn long_components_keep_their_extension() {
        let mut long = vec![b'a'; 300];
        long.extend_from_slice(b".txt");
        let p = san(&[&long]);
        assert_eq!(p.len(), 244);
        assert!(p.ends_with("a.txt"));
        let p = san(&[&[b'b'; 300]]);
        assert_eq!(p.len(), 240);
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("a/b.txt"), ".txt");
        assert_eq!(remove_extension("a/b.txt"), "a/b");
        assert_eq!(extension("a.d/b"), "");
        assert_eq!(remove_extension("a.d/b"), "a.d/b");
        assert_eq!(lossy_utf8(b"ok\xffok"), "ok_ok");
    }
}
