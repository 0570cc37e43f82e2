//! Web seed URL clean-up: percent-encoding of unsafe characters in the path, as libtorrent does
//! before it uses a `url-list` or `httpseeds` entry.

/// Characters that do not force a URL to be re-encoded.
fn is_acceptable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"%+;?:@=&,$/-_!.~*()".contains(&b)
}

/// Characters kept as they are when a path is re-encoded.
fn is_path_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"/-_!.~*()".contains(&b)
}

/// Percent-encodes the path of `url` if it holds characters that are not allowed unencoded
/// (spaces, non-ASCII, quotes...). The scheme, credentials, host and port are kept as they are;
/// a URL that does not look like `scheme://host...` is returned unchanged (invalid UTF-8 is
/// replaced).
pub(crate) fn maybe_url_encode(url: &[u8]) -> String {
    let lossy = || String::from_utf8_lossy(url).into_owned();
    let Some(path_start) = path_start(url) else {
        return lossy();
    };
    let (prefix, path) = url.split_at(path_start.min(url.len()));
    if path.iter().all(|&b| is_acceptable(b)) {
        return lossy();
    }
    let mut out = String::from_utf8_lossy(prefix).into_owned();
    if path.is_empty() || matches!(path.first(), Some(b'?' | b'#')) {
        out.push('/');
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in path {
        if is_path_safe(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(
                HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            ));
            out.push(char::from(
                HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}

/// Offset of the path in `scheme://[auth@]host[:port]path`, or `None` if `url` does not parse.
fn path_start(url: &[u8]) -> Option<usize> {
    let colon = url.iter().position(|&b| b == b':')?;
    if url.get(colon + 1..colon + 3) != Some(b"//") {
        return None;
    }
    let mut start = colon + 3;
    let rest = url.get(start..)?;
    let end = start
        + rest
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
    let at = rest.iter().position(|&b| b == b'@').map(|i| i + start);
    let auth_colon = rest.iter().position(|&b| b == b':').map(|i| i + start);
    if let (Some(at), Some(c)) = (at, auth_colon) {
        if c < at && at < end {
            start = at + 1;
        }
    }
    let host = url.get(start..)?;
    let port_from = if host.first() == Some(&b'[') {
        start + host.iter().position(|&b| b == b']')?
    } else {
        start
    };
    let port_colon = url
        .get(port_from..)?
        .iter()
        .position(|&b| b == b':')
        .map(|i| i + port_from);
    if let Some(p) = port_colon {
        if p < end && !url.get(p + 1..end)?.iter().all(u8::is_ascii_digit) {
            return None;
        }
    }
    Some(end)
}

/// Appends `/` unless the URL already ends with one.
pub(crate) fn ensure_trailing_slash(url: &mut String) {
    if !url.ends_with('/') {
        url.push('/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_only_unsafe_paths() {
        assert_eq!(
            maybe_url_encode(b"http://test.com/test file/foo bar"),
            "http://test.com/test%20file/foo%20bar"
        );
        assert_eq!(
            maybe_url_encode(b"http://test.com/a%20b"),
            "http://test.com/a%20b"
        );
        assert_eq!(
            maybe_url_encode(b"http://u:p@h:80/\xc3\xa9"),
            "http://u:p@h:80/%c3%a9"
        );
        assert_eq!(maybe_url_encode(b"not a url"), "not a url");
        assert_eq!(maybe_url_encode(b"http://h:x/a b"), "http://h:x/a b");
    }
}
