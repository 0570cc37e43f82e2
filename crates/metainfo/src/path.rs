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
    if element == b"." {
        return;
    }
    let sep = usize::from(!path.is_empty());
    if sep == 1 {
        path.push('/');
    }
    if element.is_empty() {
        path.push('_');
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
                if let Some(s) = rest
                    .get(..seq_len)
                    .and_then(|b| std::str::from_utf8(b).ok())
                {
                    path.push_str(s);
                }
                if c == u32::from(b'.') {
                    dots += 1;
                }
                added += seq_len;
            }
            _ => {
                path.push('_');
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
        path.push('_');
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
