//! The store's error type, grouped by who is at fault: the torrent's layout, its file names,
//! the disk, the data, and the caller.

use std::path::PathBuf;

/// Everything that can go wrong while mapping, reading or writing pieces.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    // --- The torrent cannot be laid out ---
    /// A size or count does not fit: more pieces than `u32` can number, a stream longer than
    /// `u64`, or a buffer larger than memory allows.
    #[error("{what} is too large ({value})")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
        /// The amount that did not fit (saturated if it did not fit in `u64` either).
        value: u64,
    },
    /// The torrent's piece length is zero.
    #[error("the piece length is zero")]
    ZeroPieceLength,
    /// A hybrid torrent lists a file that does not start on a piece boundary, so its v2 pieces
    /// would span files (v1 hashes forbid inserting padding there).
    #[error("file {file} starts at {offset}, not on a piece boundary")]
    Misaligned {
        /// Index of the file in the layout.
        file: usize,
        /// Its offset in the torrent's byte stream.
        offset: u64,
    },

    // --- File names ---
    /// A file's path would escape the download directory: `..`, an absolute path, an empty
    /// component, or a NUL byte.
    #[error("unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// The path as the torrent gives it (relative, `/`-separated).
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The file system cannot take the name: a name or path too long, a NUL byte, invalid
    /// characters or encoding, or (with
    /// [`FileBackendOptions::portable`](crate::FileBackendOptions::portable)) a name Windows
    /// refuses, such as `CON` or `aux.txt`.
    #[error("{}: the file system cannot take this name: {reason}", path.display())]
    InvalidFileName {
        /// The full path that was refused.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },

    /// A directory or file on the way to a file, inside the download directory, is a symbolic
    /// link. The store never follows one there: it could point anywhere outside.
    #[error("{}: {} is a symbolic link, which the store does not follow", path.display(), link.display())]
    SymlinkInPath {
        /// The file that was to be opened.
        path: PathBuf,
        /// The symbolic link found on the way (the file itself, or one of its directories).
        link: PathBuf,
    },

    // --- The disk ---
    /// An I/O error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The data is not there: the file does not exist or ends before the range read.
    /// Rechecks treat this as "piece not present".
    #[error("file {file}: {len} bytes at {offset} are not on disk")]
    Missing {
        /// Index of the file in the layout.
        file: usize,
        /// Offset in the file of the range read.
        offset: u64,
        /// Length of the range read.
        len: u64,
    },

    // --- The data ---
    /// Non-zero bytes were written to a padding file, which holds zeros by definition.
    #[error("file {file} is padding but the data written to it is not all zeros")]
    PaddingNotZero {
        /// Index of the padding file in the layout.
        file: usize,
    },

    // --- The caller's misuse ---
    /// A piece, or a range within a piece, lies outside the torrent.
    #[error("piece {piece}: range {offset}+{len} is out of bounds")]
    OutOfRange {
        /// The piece index.
        piece: u32,
        /// Offset within the piece.
        offset: u64,
        /// Length of the range.
        len: u64,
    },
    /// A file index past the layout's file list.
    #[error("no file with index {file}")]
    NoSuchFile {
        /// The index given.
        file: usize,
    },
    /// A range within a file lies past its length in the torrent.
    #[error("file {file}: range {offset}+{len} is past its length {file_len}")]
    FileRange {
        /// Index of the file in the layout.
        file: usize,
        /// Offset in the file.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// The file's length in the torrent.
        file_len: u64,
    },
    /// A buffer of the wrong size was passed.
    #[error("buffer of {got} bytes where {expected} are needed")]
    BufferSize {
        /// Bytes needed.
        expected: u64,
        /// Bytes given.
        got: u64,
    },
}

impl StoreError {
    /// A [`StoreError::TooLarge`] for a value that may not fit in `u64`.
    pub(crate) fn too_large(what: &'static str, value: impl TryInto<u64>) -> Self {
        StoreError::TooLarge {
            what,
            value: value.try_into().unwrap_or(u64::MAX),
        }
    }
}
