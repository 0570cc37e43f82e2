//! Why a torrent file was rejected.
//!
//! The variants mirror libtorrent's error codes for torrent parsing one to one, so that
//! [`Error::reason_class`] can be compared with libtorrent's verdict on the same file. A few
//! extra variants cover the limits in [`ParseOptions`](crate::ParseOptions) that libtorrent does
//! not have.

/// A torrent file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- The bytes are not usable bencode ---------------------------------------------------
    /// The file is not bencode, or (with `meta version` set) the info dictionary is not
    /// canonical bencode: unsorted or duplicate keys, numbers with leading zeros.
    #[error("invalid bencoding: {0}")]
    InvalidBencoding(#[source] tessera_bencode::Error),
    /// Lists and dictionaries nested deeper than the limit.
    #[error("bencoded nesting deeper than {limit} levels")]
    DepthExceeded {
        /// The limit ([`ParseOptions::max_depth`](crate::ParseOptions::max_depth)).
        limit: usize,
    },

    // ---- The structure of the torrent is wrong ----------------------------------------------
    /// The root value is not a dictionary.
    #[error("torrent file is not a dictionary")]
    NotADictionary,
    /// There is no `info` dictionary.
    #[error("missing or invalid 'info' section in torrent file")]
    MissingInfo,
    /// `name` is missing or empty, or a file has no path.
    #[error("missing name in torrent file")]
    MissingName,
    /// A path or `symlink path` list holds something other than strings.
    #[error("invalid 'name' of torrent (possible exploit attempt)")]
    InvalidName,
    /// A file length is missing, negative or too large, or all files together are empty or
    /// larger than the 2^48 byte limit.
    #[error("invalid length of torrent: {length}")]
    InvalidLength {
        /// The offending length (-1 when it is missing or not an integer).
        length: i64,
    },
    /// `piece length` is missing, not positive, too large, or (v2) not a power of two of at
    /// least 16 KiB.
    #[error("invalid or missing 'piece length': {piece_length}")]
    MissingPieceLength {
        /// The value found (-1 when it is missing or not an integer).
        piece_length: i64,
    },
    /// A v1 torrent has no `pieces` string.
    #[error("invalid or missing 'pieces' entry in torrent file")]
    MissingPieces,
    /// The `pieces` string does not hold one SHA-1 hash per piece.
    #[error("incorrect number of piece hashes: {got} bytes, expected {expected}")]
    InvalidHashes {
        /// 20 times the number of pieces.
        expected: u64,
        /// The length of `pieces`.
        got: u64,
    },
    /// The torrent has more pieces than allowed.
    #[error("too many pieces in torrent: {pieces} (limit {limit})")]
    TooManyPieces {
        /// Number of pieces the files need.
        pieces: u64,
        /// The limit ([`ParseOptions::max_pieces`](crate::ParseOptions::max_pieces)).
        limit: u64,
    },
    /// The torrent lists no files.
    #[error("no files in torrent")]
    NoFiles,
    /// Renaming duplicate file names took too many attempts.
    #[error("too many duplicate filenames (more than {limit} collisions)")]
    TooManyDuplicateFilenames {
        /// The limit ([`ParseOptions::max_duplicate_filenames`](crate::ParseOptions::max_duplicate_filenames)).
        limit: usize,
    },
    /// A hybrid torrent's v1 file list does not describe the same files as its v2 file tree.
    #[error("the v1 and v2 file metadata does not match")]
    InconsistentFiles,
    /// The v2 `file tree` is malformed: a node that is not a dictionary, an empty name, or
    /// directories nested too deep.
    #[error("failed to parse files from torrent file")]
    FileParseFailed,
    /// A v2 file entry has the pad attribute, which only v1 file lists may use.
    #[error("a file in the v2 metadata has the pad attribute set")]
    InvalidPadFile,
    /// An entry of `piece layers` has the wrong size, matches no file, or does not hash to the
    /// file's `pieces root`.
    #[error("a piece layer is invalid")]
    InvalidPieceLayer,
    /// A non-empty v2 file has no (or an all-zero) `pieces root`.
    #[error("a v2 file entry has no root hash")]
    MissingPiecesRoot,
    /// `meta version` is higher than 2.
    #[error("unknown torrent version {version}")]
    UnknownVersion {
        /// The `meta version` found.
        version: i64,
    },
    /// A v2 torrent has no `file tree`.
    #[error("v2 torrent has no 'file tree'")]
    MissingFileTree,
    /// A torrent has a `file tree` but no `meta version`.
    #[error("torrent has a 'file tree' but no 'meta version'")]
    MissingMetaVersion,
    /// A file path has more components than allowed.
    #[error("file path with {depth} components (limit {limit})")]
    DirectoryTooDeep {
        /// Number of components.
        depth: usize,
        /// The limit ([`ParseOptions::max_path_depth`](crate::ParseOptions::max_path_depth)).
        limit: usize,
    },

    // ---- The torrent is past a configured limit ---------------------------------------------
    /// More files than allowed.
    #[error("too many files in torrent (limit {limit})")]
    TooManyFiles {
        /// The limit ([`ParseOptions::max_files`](crate::ParseOptions::max_files)).
        limit: usize,
    },
    /// The file paths together take more than 4 GiB.
    #[error("the file paths of the torrent take more than 4 GiB")]
    FileListTooLarge,
    /// A name or path component longer than allowed.
    #[error("name or path component of {len} bytes (limit {limit})")]
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit ([`ParseOptions::max_name_length`](crate::ParseOptions::max_name_length)).
        limit: usize,
    },
    /// The piece layers together are larger than allowed.
    #[error("piece layers of {len} bytes (limit {limit})")]
    PieceLayersTooLarge {
        /// Their total size in bytes.
        len: u64,
        /// The limit ([`ParseOptions::max_piece_layer_bytes`](crate::ParseOptions::max_piece_layer_bytes)).
        limit: u64,
    },
    /// A file larger than allowed.
    #[error("file of {len} bytes (limit {limit})")]
    FileTooLarge {
        /// The file's length.
        len: u64,
        /// The limit ([`ParseOptions::max_file_size`](crate::ParseOptions::max_file_size)).
        limit: u64,
    },
}

impl Error {
    /// The libtorrent error name for this error (`"torrent_missing_name"`, `"invalid_bencoding"`,
    /// ...), or a name in the same style for the limits libtorrent does not have.
    pub fn reason_class(&self) -> &'static str {
        match self {
            Error::InvalidBencoding(_) => "invalid_bencoding",
            Error::DepthExceeded { .. } => "depth_exceeded",
            Error::NotADictionary => "torrent_is_no_dict",
            Error::MissingInfo => "torrent_missing_info",
            Error::MissingName => "torrent_missing_name",
            Error::InvalidName => "torrent_invalid_name",
            Error::InvalidLength { .. } => "torrent_invalid_length",
            Error::MissingPieceLength { .. } => "torrent_missing_piece_length",
            Error::MissingPieces => "torrent_missing_pieces",
            Error::InvalidHashes { .. } => "torrent_invalid_hashes",
            Error::TooManyPieces { .. } => "too_many_pieces_in_torrent",
            Error::NoFiles => "no_files_in_torrent",
            Error::TooManyDuplicateFilenames { .. } => "too_many_duplicate_filenames",
            Error::InconsistentFiles => "torrent_inconsistent_files",
            Error::FileParseFailed => "torrent_file_parse_failed",
            Error::InvalidPadFile => "torrent_invalid_pad_file",
            Error::InvalidPieceLayer => "torrent_invalid_piece_layer",
            Error::MissingPiecesRoot => "torrent_missing_pieces_root",
            Error::UnknownVersion { .. } => "torrent_unknown_version",
            Error::MissingFileTree => "torrent_missing_file_tree",
            Error::MissingMetaVersion => "torrent_missing_meta_version",
            Error::DirectoryTooDeep { .. } => "torrent_directory_too_deep",
            Error::TooManyFiles { .. } | Error::FileListTooLarge => "too_many_files_in_torrent",
            Error::NameTooLong { .. } => "filename_too_long",
            Error::PieceLayersTooLarge { .. } => "piece_layers_too_large",
            Error::FileTooLarge { .. } => "file_too_large",
        }
    }
}

impl From<tessera_bencode::Error> for Error {
    fn from(e: tessera_bencode::Error) -> Self {
        match e.kind {
            tessera_bencode::ErrorKind::DepthExceeded { limit } => Error::DepthExceeded { limit },
            _ => Error::InvalidBencoding(e),
        }
    }
}
