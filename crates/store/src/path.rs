//! Joining a torrent's relative paths to the download directory without escaping it, and
//! the names a file system cannot take.

use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// Joins `relative` (a `/`-separated path from [`LayoutFile::path`](crate::LayoutFile::path))
/// to `base`, one component at a time.
///
/// # Errors
/// [`StoreError::UnsafePath`] for an empty or absolute path, an empty, `.` or `..` component,
/// or a NUL byte: anything that could name a file outside `base` or that no file system takes.
pub fn safe_join(base: &Path, relative: &str) -> Result<PathBuf, StoreError> {
    let unsafe_path = |reason| StoreError::UnsafePath {
        path: relative.to_owned(),
        reason,
    };
    if relative.is_empty() {
        return Err(unsafe_path("empty path"));
    }
    if relative.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    let mut out = base.to_path_buf();
    for component in relative.split('/') {
        match component {
            "" => return Err(unsafe_path("empty component")),
            "." | ".." => return Err(unsafe_path("`.` or `..` component")),
            c if c.contains('\0') => return Err(unsafe_path("NUL byte")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Longest file name (one path component) the common file systems take, in bytes: Linux's and
/// the BSDs' `NAME_MAX` (ext4, XFS, btrfs, APFS, ZFS all stop at 255).
pub(crate) const MAX_NAME_BYTES: usize = 255;

/// Longest whole path the OS takes, in bytes (`PATH_MAX` less its NUL), where it has a limit
/// that `open` enforces.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_PATH_BYTES: Option<usize> = Some(4095);
#[cfg(any(target_os = "macos", target_os = "ios"))]
const MAX_PATH_BYTES: Option<usize> = Some(1023);
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
)))]
const MAX_PATH_BYTES: Option<usize> = None;

/// Longest file name Windows takes, in UTF-16 code units.
const MAX_WINDOWS_NAME_UNITS: usize = 255;

/// Device names Windows reserves in every directory, with or without an extension
/// (`CON`, `con.txt`). Compared ignoring ASCII case. The superscript digits are reserved too.
const WINDOWS_RESERVED: &[&str] = &[
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "COM0",
    "COM1",
    "COM2",
    "COM3",
    "COM4",
    "COM5",
    "COM6",
    "COM7",
    "COM8",
    "COM9",
    "COM\u{b9}",
    "COM\u{b2}",
    "COM\u{b3}",
    "LPT0",
    "LPT1",
    "LPT2",
    "LPT3",
    "LPT4",
    "LPT5",
    "LPT6",
    "LPT7",
    "LPT8",
    "LPT9",
    "LPT\u{b9}",
    "LPT\u{b2}",
    "LPT\u{b3}",
];

/// Why the file system could not take `relative` (a `/`-separated path as
/// [`LayoutFile::path`](crate::LayoutFile::path) gives it) below a download directory whose
/// path is `base_len` bytes long, or `None` if it can.
///
/// Always checked: a component longer than [`MAX_NAME_BYTES`], a NUL byte, and a whole path
/// longer than the OS takes. With `portable`, also what Windows refuses whatever the OS this
/// runs on, so that a download can be copied there: reserved device names (`CON`, `PRN`,
/// `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9`, with or without an extension), the characters
/// `< > : " \ | ? *` and control characters, a name ending in a space or a dot, and a name
/// longer than 255 UTF-16 units.
pub(crate) fn name_problem(relative: &str, base_len: usize, portable: bool) -> Option<String> {
    if let Some(max) = MAX_PATH_BYTES {
        // The base, a separator, the relative path.
        let total = base_len.saturating_add(1).saturating_add(relative.len());
        if total > max {
            return Some(format!(
                "the path is {total} bytes long, more than the {max} the OS takes"
            ));
        }
    }
    for name in relative.split('/') {
        if name.len() > MAX_NAME_BYTES {
            return Some(format!(
                "the name {:?} is {} bytes long, more than the {MAX_NAME_BYTES} a file name can have",
                abbreviate(name),
                name.len()
            ));
        }
        if name.contains('\0') {
            return Some(format!("the name {name:?} contains a NUL byte"));
        }
        if portable {
            if let Some(why) = windows_problem(name) {
                return Some(format!(
                    "the name {:?} {why} (portable names are required)",
                    abbreviate(name)
                ));
            }
        }
    }
    None
}

/// What Windows refuses in the file name `name`.
fn windows_problem(name: &str) -> Option<&'static str> {
    // The device names are reserved with any extension, and Windows drops trailing spaces
    // before comparing (`NUL .txt` is `NUL`).
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    if WINDOWS_RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(stem))
    {
        return Some("is a device name Windows reserves");
    }
    if name
        .chars()
        .any(|c| matches!(c, '<' | '>' | ':' | '"' | '\\' | '|' | '?' | '*') || c < ' ')
    {
        return Some("contains a character Windows does not allow (< > : \" \\ | ? * or a control character)");
    }
    if name.ends_with(' ') || name.ends_with('.') {
        return Some("ends with a space or a dot, which Windows drops");
    }
    if name.encode_utf16().count() > MAX_WINDOWS_NAME_UNITS {
        return Some("is longer than the 255 UTF-16 units Windows takes");
    }
    None
}

/// The first 40 characters of a long name, for messages.
fn abbreviate(name: &str) -> String {
    match name.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", name.get(..i).unwrap_or(name)),
        None => name.to_owned(),
    }
}

/// `O_NOFOLLOW` for `OpenOptionsExt::custom_flags`: opening a symbolic link fails instead of
/// following it. The value is the C library's for the platform (it differs between
/// architectures on Linux); `0` where it is not known here, which leaves only the
/// `symlink_metadata` checks made before opening.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    any(
        target_arch = "arm",
        target_arch = "aarch64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "m68k"
    )
))]
pub(crate) const O_NOFOLLOW: i32 = 0x8000;
/// See the other definitions.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "arm",
        target_arch = "aarch64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "m68k"
    ))
))]
pub(crate) const O_NOFOLLOW: i32 = 0x20000;
/// See the other definitions.
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub(crate) const O_NOFOLLOW: i32 = 0x100;
/// See the other definitions.
#[cfg(any(target_os = "solaris", target_os = "illumos"))]
pub(crate) const O_NOFOLLOW: i32 = 0x20000;
/// See the other definitions.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "solaris",
    target_os = "illumos"
)))]
pub(crate) const O_NOFOLLOW: i32 = 0;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn joins_and_refuses() {
        let base = Path::new("/dl");
        assert_eq!(
            safe_join(base, "a/b c/d.txt").unwrap(),
            Path::new("/dl/a/b c/d.txt")
        );
        for bad in [
            "",
            "/etc/passwd",
            "a/../../x",
            "..",
            "a//b",
            "a/./b",
            "a/",
            "a\0b",
        ] {
            assert!(
                matches!(safe_join(base, bad), Err(StoreError::UnsafePath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_the_file_system_cannot_take() {
        let ok = ["t/a.txt", "t/icon/x", "t/CONSOLE.txt", "t/COM10", "t/a b.c"];
        for name in ok {
            assert_eq!(name_problem(name, 10, true), None, "{name}");
        }
        let long = format!("t/{}", "x".repeat(256));
        let why = name_problem(&long, 10, false).unwrap();
        assert!(why.contains("256 bytes"), "{why}");
        assert_eq!(
            name_problem(&format!("t/{}", "x".repeat(255)), 10, false),
            None
        );
        // 100 four-byte characters: 400 bytes, too long for a name.
        assert!(name_problem(&"\u{1F600}".repeat(100), 10, false).is_some());
        assert!(name_problem("t/a\0b", 10, false).unwrap().contains("NUL"));
        if let Some(max) = MAX_PATH_BYTES {
            assert!(name_problem("t/x", max, false)
                .unwrap()
                .contains("bytes long"));
            assert_eq!(name_problem("t/x", max - 4, false), None);
        }
        // Windows rules only when asked for.
        for bad in [
            "t/CON",
            "t/con.txt",
            "t/Nul .tar.gz",
            "t/aux",
            "t/PRN.x",
            "t/COM1",
            "t/lpt9.doc",
            "t/LPT\u{b9}",
            "d/COM3/inner",
            "t/a:b",
            "t/a?",
            "t/x*",
            "t/a|b",
            "t/q\"",
            "t/<",
            "t/a\\b",
            "t/tab\there",
            "t/dot.",
            "t/space ",
        ] {
            assert_eq!(name_problem(bad, 10, false), None, "{bad}");
            let why = name_problem(bad, 10, true).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(why.contains("portable"), "{why}");
        }
        assert!(name_problem("t/CON", 10, true)
            .unwrap()
            .contains("reserves"));
    }
}
