//! Joining a torrent's relative paths to the download directory without escaping it.

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
}
