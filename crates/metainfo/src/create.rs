//! Torrent creation: v1 (BEP 3), v2 (BEP 52) and hybrid torrents from a file or a directory.
//!
//! ```text
//!  path ──scan──▶ sorted files ──layout──▶ pieces (+ BEP 47 pad files for hybrids)
//!                                              │ jobs (file × piece range, or stream piece range)
//!                                              ▼
//!                      worker threads: positioned reads, each 16 KiB block fed once to
//!                      SHA-1 (v1 piece) and SHA-256 (v2 leaf); with cores to spare, each
//!                      worker has a reading thread that fills its next buffers meanwhile
//!                                              │
//!                                              ▼
//!            v1 `pieces`, v2 piece layers and `pieces root`s ──▶ canonical bencode
//! ```
//!
//! The file order is the one libtorrent uses: paths compared component by component, bytewise,
//! which is also the order of a v2 `file tree`. In a hybrid torrent with more than one file,
//! every non-empty file whose end is not on a piece boundary, the last one included, is followed
//! by a pad file `.pad/<size>` with `attr` `p`, as libtorrent 2.0 does; a single-file torrent
//! is not padded.
//!
//! Symbolic links are followed: a link to a file contributes the target's bytes under the
//! link's own name, a link to a directory is walked as a directory. A cycle of links is an
//! error ([`CreateError::SymlinkLoop`]), so is a dangling link ([`CreateError::Io`]) and any
//! entry that is neither a regular file nor a directory ([`CreateError::UnsupportedFileType`]).
//! Nothing is skipped: hidden files are included.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha1::{Digest, Sha1};
use sha2::Sha256;
use tessera_bencode::Value;

use crate::hash::{InfoHashes, Sha1Hash, Sha256Hash};
use crate::magnet::Magnet;
use crate::merkle::{hash_leaf, piece_layer_height, root_from_layer, BLOCK_SIZE};
use crate::version::TorrentVersion;

/// Deepest directory nesting walked.
const MAX_DEPTH: usize = 256;

/// Bytes read from a file at a time by a worker that reads for itself. Small enough that the
/// buffer stays in the core's cache between the read and the hashing (copying out of the page
/// cache into a buffer of a few MiB measured several times slower than into one of 64 KiB),
/// large enough that the system calls cost little: 256 KiB measured 1–3% faster than 64 KiB.
const READ_CHUNK: usize = 256 * 1024;

/// Bytes per chunk when a reading thread reads for the worker (see [`Prefetch`]): there the
/// data crosses from one core's cache to another's, and 64 KiB measured steadier than larger.
const PREFETCH_CHUNK: usize = 64 * 1024;

/// Chunks a worker's reading thread keeps ready ahead of the hashing (see [`Prefetch`]):
/// enough to cover a nap of the reader, few enough to stay in cache.
const PREFETCH_BUFFERS: usize = 8;

/// Name of the directory that pad files live in.
const PAD_DIR: &str = ".pad";

/// A callback told how many content bytes have been hashed so far, and the total.
type ProgressFn = dyn Fn(u64, u64) + Send + Sync;

/// Why a torrent could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// Reading a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file became shorter while it was being hashed.
    #[error("{path}: file changed while it was being read")]
    FileChanged {
        /// The file.
        path: PathBuf,
    },
    /// There is nothing to share: no files, or only empty ones.
    #[error("{path}: no content to share (no files, or only empty files)")]
    EmptyContent {
        /// The path given to the builder.
        path: PathBuf,
    },
    /// The piece length is not allowed for this torrent version.
    #[error(
        "invalid piece length {piece_length} for a {version} torrent: v2 and hybrid torrents need \
         a power of two, v1 torrents a multiple of 16 KiB, between 16 KiB and 256 MiB"
    )]
    InvalidPieceLength {
        /// The piece length asked for.
        piece_length: u64,
        /// The torrent version asked for.
        version: TorrentVersion,
    },
    /// A file or directory name is not UTF-8, which torrent paths must be.
    #[error("{path}: name is not valid UTF-8")]
    NonUtf8Path {
        /// The file or directory.
        path: PathBuf,
    },
    /// The torrent name (given or taken from the path) cannot be a torrent name.
    #[error("invalid torrent name {name:?}: it must be non-empty and contain no '/' or NUL")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// An entry is neither a regular file nor a directory (socket, FIFO, device).
    #[error("{path}: not a regular file or directory")]
    UnsupportedFileType {
        /// The entry.
        path: PathBuf,
    },
    /// Following symbolic links leads back to a directory being walked.
    #[error("{path}: symbolic link loop")]
    SymlinkLoop {
        /// The link.
        path: PathBuf,
    },
    /// Directories nest deeper than the walker allows.
    #[error("{path}: directories nested more than {max} deep")]
    TooDeep {
        /// The directory.
        path: PathBuf,
        /// The limit.
        max: usize,
    },
    /// A top-level `.pad` directory would clash with the hybrid torrent's pad files.
    #[error("{path}: a top-level `.pad` directory clashes with hybrid pad files")]
    ReservedPath {
        /// The entry.
        path: PathBuf,
    },
    /// The content is larger than a torrent can describe.
    #[error("content too large")]
    TooLarge,
}

/// A torrent made by [`TorrentBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreatedTorrent {
    /// The `.torrent` file.
    pub bytes: Vec<u8>,
    /// Its info hashes: v1 for v1 and hybrid torrents, v2 for v2 and hybrid ones.
    pub info_hashes: InfoHashes,
    /// The torrent's name.
    pub name: String,
    /// The piece length.
    pub piece_length: u64,
    /// Bytes of content, pad files not counted.
    pub total_length: u64,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
}

impl CreatedTorrent {
    /// A magnet link for this torrent: info hashes, name, every tracker and web seed.
    pub fn to_magnet(&self) -> Magnet {
        let mut m = Magnet::new(self.info_hashes);
        m.name = Some(self.name.clone());
        for url in self.trackers.iter().flatten() {
            if !m.trackers.contains(url) {
                m.trackers.push(url.clone());
            }
        }
        m.web_seeds = self.web_seeds.clone();
        m
    }
}

/// Builds a `.torrent` from a file or a directory.
///
/// ```no_run
/// use tessera_metainfo::{TorrentBuilder, TorrentVersion};
///
/// let torrent = TorrentBuilder::new("photos")
///     .version(TorrentVersion::Hybrid)
///     .tracker("udp://tracker.example:6969/announce")
///     .build()?;
/// std::fs::write("photos.torrent", &torrent.bytes)?;
/// println!("{}", torrent.to_magnet());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The output depends only on the content and the settings: no creation date unless one is
/// set, and the same bytes whatever the number of threads.
#[derive(Clone)]
pub struct TorrentBuilder {
    path: PathBuf,
    version: TorrentVersion,
    piece_length: Option<u64>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    private: bool,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    name: Option<String>,
    threads: Option<NonZeroUsize>,
    progress: Option<Arc<ProgressFn>>,
}

impl fmt::Debug for TorrentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TorrentBuilder")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("piece_length", &self.piece_length)
            .field("trackers", &self.trackers)
            .field("web_seeds", &self.web_seeds)
            .field("private", &self.private)
            .field("comment", &self.comment)
            .field("created_by", &self.created_by)
            .field("creation_date", &self.creation_date)
            .field("name", &self.name)
            .field("threads", &self.threads)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl TorrentBuilder {
    /// Smallest piece length accepted: one 16 KiB merkle block.
    pub const MIN_PIECE_LENGTH: u64 = BLOCK_SIZE;

    /// Largest piece length accepted: 256 MiB.
    pub const MAX_PIECE_LENGTH: u64 = 256 * 1024 * 1024;

    /// A builder for the file or directory at `path`: hybrid, automatic piece length, no
    /// trackers, created by `Tessera/<version>`, no creation date, all cores.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TorrentBuilder {
            path: path.into(),
            version: TorrentVersion::Hybrid,
            piece_length: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            private: false,
            comment: None,
            created_by: Some(format!("Tessera/{}", env!("CARGO_PKG_VERSION"))),
            creation_date: None,
            name: None,
            threads: None,
            progress: None,
        }
    }

    /// v1, v2 or hybrid (the default).
    pub fn version(mut self, version: TorrentVersion) -> Self {
        self.version = version;
        self
    }

    /// A fixed piece length instead of the automatic one ([`TorrentBuilder::auto_piece_length`]).
    /// v2 and hybrid torrents need a power of two; v1 torrents a multiple of 16 KiB; both at
    /// least 16 KiB and at most 256 MiB ([`TorrentBuilder::build`] checks).
    pub fn piece_length(mut self, piece_length: u64) -> Self {
        self.piece_length = Some(piece_length);
        self
    }

    /// Adds a tracker in a tier of its own, after the tiers already added. Empty URLs are
    /// ignored.
    pub fn tracker(self, url: impl Into<String>) -> Self {
        self.tracker_tier([url.into()])
    }

    /// Adds a tier of trackers (BEP 12), after the tiers already added. Empty URLs are ignored,
    /// and so is a tier left empty.
    pub fn tracker_tier<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        let tier: Vec<String> = urls
            .into_iter()
            .map(Into::into)
            .filter(|u| !u.is_empty())
            .collect();
        if !tier.is_empty() {
            self.trackers.push(tier);
        }
        self
    }

    /// Adds a web seed (BEP 19 `url-list`). Empty URLs are ignored.
    pub fn web_seed(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        if !url.is_empty() {
            self.web_seeds.push(url);
        }
        self
    }

    /// Marks the torrent private (BEP 27).
    pub fn private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// A free-text comment.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// The `created by` field; `None` leaves it out. Defaults to `Tessera/<version>`.
    pub fn created_by(mut self, created_by: Option<String>) -> Self {
        self.created_by = created_by;
        self
    }

    /// The `creation date` field in seconds since the Unix epoch; `None` (the default) leaves
    /// it out, so that building twice gives the same bytes.
    pub fn creation_date(mut self, unix_seconds: Option<i64>) -> Self {
        self.creation_date = unix_seconds;
        self
    }

    /// The torrent's name instead of the file or directory name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Number of hashing threads; by default, one per core.
    pub fn threads(mut self, threads: NonZeroUsize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// A callback told, from the hashing threads, how many content bytes have been hashed so
    /// far and how many there are in all. It is called after every read of up to 64 KiB; calls
    /// from different threads may arrive slightly out of order.
    pub fn on_progress(mut self, f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// The piece length chosen when none is set, for `total_length` bytes of content: the
    /// smallest power of two from 16 KiB to 16 MiB for which the piece hash list stays near
    /// twice the square root of the content size (the rule libtorrent uses).
    pub fn auto_piece_length(total_length: u64) -> u64 {
        for shift in 0..10u32 {
            let piece = u128::from(BLOCK_SIZE << shift);
            // (2 * piece / 20)^2, rounded to the nearest byte.
            let threshold = (piece * piece + 50) / 100;
            if threshold >= u128::from(total_length) {
                return BLOCK_SIZE << shift;
            }
        }
        BLOCK_SIZE << 10
    }

    /// Reads and hashes the content and writes the torrent.
    ///
    /// # Errors
    /// [`CreateError`]: an I/O error (with its path), no content, a piece length not allowed
    /// for the version, a name that is not UTF-8, an unsupported file type, a symbolic link
    /// loop, or a file that shrank while it was read.
    pub fn build(&self) -> Result<CreatedTorrent, CreateError> {
        let content = scan(&self.path)?;
        let name = match &self.name {
            Some(n) => n.clone(),
            None => content.name.clone(),
        };
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            return Err(CreateError::InvalidName { name });
        }
        let total_length = content
            .files
            .iter()
            .try_fold(0u64, |acc, f| acc.checked_add(f.len))
            .ok_or(CreateError::TooLarge)?;
        if total_length == 0 {
            return Err(CreateError::EmptyContent {
                path: self.path.clone(),
            });
        }
        let piece_length = match self.piece_length {
            Some(pl) => {
                check_piece_length(pl, self.version)?;
                pl
            }
            None => Self::auto_piece_length(total_length),
        };
        if self.version == TorrentVersion::Hybrid && !content.single {
            if let Some(f) = content
                .files
                .iter()
                .find(|f| f.rel.first().is_some_and(|c| c == PAD_DIR))
            {
                return Err(CreateError::ReservedPath {
                    path: f.path.clone(),
                });
            }
        }

        let layout = Layout::new(&content, piece_length, self.version)?;
        let threads = self
            .threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get);
        // A core to spare for each worker: reads go to a thread of their own, so that hashing
        // never waits for the copy out of the page cache.
        let prefetch = std::thread::available_parallelism()
            .is_ok_and(|cores| threads.saturating_mul(2) <= cores.get());
        let hashes = hash_all(
            &content,
            &layout,
            threads,
            prefetch,
            total_length,
            self.progress.as_deref(),
        )?;

        let (bytes, info_hashes) = self.encode(&name, &content, &layout, &hashes);
        Ok(CreatedTorrent {
            bytes,
            info_hashes,
            name,
            piece_length,
            total_length,
            trackers: self.trackers.clone(),
            web_seeds: self.web_seeds.clone(),
        })
    }

    fn encode(
        &self,
        name: &str,
        content: &Content,
        layout: &Layout,
        hashes: &Hashes,
    ) -> (Vec<u8>, InfoHashes) {
        let pl = layout.piece_length;
        let mut info: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
        info.insert(b"name".to_vec(), name.into());
        info.insert(b"piece length".to_vec(), int(pl));
        if self.private {
            info.insert(b"private".to_vec(), Value::Int(1));
        }
        let version = layout.version;

        if version.has_v1() {
            if content.single {
                let len = content.files.first().map_or(0, |f| f.len);
                info.insert(b"length".to_vec(), int(len));
            } else {
                let mut list = Vec::new();
                for (f, pad) in content.files.iter().zip(&layout.pad_after) {
                    let mut d = BTreeMap::new();
                    d.insert(b"length".to_vec(), int(f.len));
                    let path = f.rel.iter().map(|c| Value::from(c.as_str())).collect();
                    d.insert(b"path".to_vec(), Value::List(path));
                    list.push(Value::Dict(d));
                    if *pad > 0 {
                        let mut d = BTreeMap::new();
                        d.insert(b"attr".to_vec(), "p".into());
                        d.insert(b"length".to_vec(), int(*pad));
                        let path = vec![PAD_DIR.into(), pad.to_string().into()];
                        d.insert(b"path".to_vec(), Value::List(path));
                        list.push(Value::Dict(d));
                    }
                }
                info.insert(b"files".to_vec(), Value::List(list));
            }
            let mut pieces = Vec::with_capacity(hashes.v1.len() * Sha1Hash::LEN);
            for h in &hashes.v1 {
                pieces.extend_from_slice(h.as_bytes());
            }
            info.insert(b"pieces".to_vec(), Value::Bytes(pieces));
        }

        let mut layers: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
        if version.has_v2() {
            let mut tree: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
            for (f, roots) in content.files.iter().zip(&hashes.v2) {
                let mut leaf = BTreeMap::new();
                leaf.insert(b"length".to_vec(), int(f.len));
                if f.len > 0 {
                    let root = file_root(roots, pl);
                    leaf.insert(b"pieces root".to_vec(), Value::Bytes(root.0.to_vec()));
                    if roots.len() > 1 {
                        let mut layer = Vec::with_capacity(roots.len() * Sha256Hash::LEN);
                        for r in roots {
                            layer.extend_from_slice(r.as_bytes());
                        }
                        layers.insert(root.0.to_vec(), Value::Bytes(layer));
                    }
                }
                let mut file_entry = BTreeMap::new();
                file_entry.insert(Vec::new(), Value::Dict(leaf));
                let components: Vec<&str> = if content.single {
                    vec![name]
                } else {
                    f.rel.iter().map(String::as_str).collect()
                };
                insert_tree(&mut tree, &components, Value::Dict(file_entry));
            }
            info.insert(b"file tree".to_vec(), Value::Dict(tree));
            info.insert(b"meta version".to_vec(), Value::Int(2));
        }

        let info_bytes = Value::Dict(info).to_bytes();
        let info_hashes = InfoHashes {
            v1: version
                .has_v1()
                .then(|| Sha1Hash(Sha1::digest(&info_bytes).into())),
            v2: version
                .has_v2()
                .then(|| Sha256Hash(Sha256::digest(&info_bytes).into())),
        };

        // The outer dictionary, written by hand so the info dictionary is copied verbatim.
        let mut outer: BTreeMap<Vec<u8>, Option<Value>> = BTreeMap::new();
        let all_urls: Vec<&String> = self.trackers.iter().flatten().collect();
        if let Some(first) = all_urls.first() {
            outer.insert(b"announce".to_vec(), Some(first.as_str().into()));
        }
        if all_urls.len() > 1 {
            let tiers = self
                .trackers
                .iter()
                .map(|t| Value::List(t.iter().map(|u| u.as_str().into()).collect()))
                .collect();
            outer.insert(b"announce-list".to_vec(), Some(Value::List(tiers)));
        }
        if let Some(c) = &self.comment {
            outer.insert(b"comment".to_vec(), Some(c.as_str().into()));
        }
        if let Some(c) = &self.created_by {
            outer.insert(b"created by".to_vec(), Some(c.as_str().into()));
        }
        if let Some(d) = self.creation_date {
            outer.insert(b"creation date".to_vec(), Some(Value::Int(d)));
        }
        match self.web_seeds.as_slice() {
            [] => {}
            [one] => {
                outer.insert(b"url-list".to_vec(), Some(one.as_str().into()));
            }
            many => {
                let list = many.iter().map(|u| u.as_str().into()).collect();
                outer.insert(b"url-list".to_vec(), Some(Value::List(list)));
            }
        }
        outer.insert(b"info".to_vec(), None);
        if version.has_v2() {
            outer.insert(b"piece layers".to_vec(), Some(Value::Dict(layers)));
        }

        let mut bytes = Vec::with_capacity(info_bytes.len() + 256);
        bytes.push(b'd');
        for (k, v) in &outer {
            tessera_bencode::put_bytes(&mut bytes, k);
            match v {
                Some(v) => bytes.extend_from_slice(&v.to_bytes()),
                None => bytes.extend_from_slice(&info_bytes),
            }
        }
        bytes.push(b'e');
        (bytes, info_hashes)
    }
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn check_piece_length(pl: u64, version: TorrentVersion) -> Result<(), CreateError> {
    let in_range =
        (TorrentBuilder::MIN_PIECE_LENGTH..=TorrentBuilder::MAX_PIECE_LENGTH).contains(&pl);
    let shape_ok = if version.has_v2() {
        pl.is_power_of_two()
    } else {
        pl % BLOCK_SIZE == 0
    };
    if in_range && shape_ok {
        Ok(())
    } else {
        Err(CreateError::InvalidPieceLength {
            piece_length: pl,
            version,
        })
    }
}

/// The `pieces root` of a file from its piece layer.
fn file_root(piece_roots: &[Sha256Hash], piece_length: u64) -> Sha256Hash {
    match piece_roots {
        [one] => *one,
        _ => root_from_layer(piece_roots, piece_layer_height(piece_length)),
    }
}

/// Inserts `leaf` at `path` in a nested `file tree` dictionary.
fn insert_tree(tree: &mut BTreeMap<Vec<u8>, Value>, path: &[&str], leaf: Value) {
    match path {
        [] => {}
        [last] => {
            tree.insert(last.as_bytes().to_vec(), leaf);
        }
        [first, rest @ ..] => {
            let node = tree
                .entry(first.as_bytes().to_vec())
                .or_insert_with(|| Value::Dict(BTreeMap::new()));
            if let Value::Dict(sub) = node {
                insert_tree(sub, rest, leaf);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scanning

/// One file to share.
#[derive(Debug, Clone)]
struct SourceFile {
    /// Path components below the torrent root (empty for a single-file torrent).
    rel: Vec<String>,
    /// Where to read it.
    path: PathBuf,
    /// Its length when scanned.
    len: u64,
}

#[derive(Debug)]
struct Content {
    /// The file or directory name.
    name: String,
    /// True when the path is a file, not a directory.
    single: bool,
    /// The files in torrent order.
    files: Vec<SourceFile>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn utf8_name(path: &Path, name: &std::ffi::OsStr) -> Result<String, CreateError> {
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| CreateError::NonUtf8Path {
            path: path.to_path_buf(),
        })
}

fn scan(path: &Path) -> Result<Content, CreateError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let canonical = fs::canonicalize(path).map_err(io_err(path))?;
    // The name as given (a link keeps its own name); `.` and `..` need the resolved path.
    let name = match path.file_name().or_else(|| canonical.file_name()) {
        Some(n) => utf8_name(path, n)?,
        None => String::new(),
    };
    if meta.is_file() {
        return Ok(Content {
            name,
            single: true,
            files: vec![SourceFile {
                rel: Vec::new(),
                path: path.to_path_buf(),
                len: meta.len(),
            }],
        });
    }
    if !meta.is_dir() {
        return Err(CreateError::UnsupportedFileType {
            path: path.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    let mut ancestors = vec![canonical];
    walk(path, &mut Vec::new(), &mut ancestors, &mut files)?;
    // Component-wise bytewise order, as libtorrent and the v2 file tree have it.
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(Content {
        name,
        single: false,
        files,
    })
}

fn walk(
    dir: &Path,
    rel: &mut Vec<String>,
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<SourceFile>,
) -> Result<(), CreateError> {
    if rel.len() >= MAX_DEPTH {
        return Err(CreateError::TooDeep {
            path: dir.to_path_buf(),
            max: MAX_DEPTH,
        });
    }
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let name = utf8_name(&path, &entry.file_name())?;
        // Follows symbolic links.
        let meta = fs::metadata(&path).map_err(io_err(&path))?;
        rel.push(name);
        if meta.is_file() {
            out.push(SourceFile {
                rel: rel.clone(),
                path,
                len: meta.len(),
            });
        } else if meta.is_dir() {
            let canonical = fs::canonicalize(&path).map_err(io_err(&path))?;
            if ancestors.contains(&canonical) {
                return Err(CreateError::SymlinkLoop { path });
            }
            ancestors.push(canonical);
            walk(&path, rel, ancestors, out)?;
            ancestors.pop();
        } else {
            return Err(CreateError::UnsupportedFileType { path });
        }
        rel.pop();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Layout and hashing

/// Where the files sit in the v1 piece stream.
#[derive(Debug)]
struct Layout {
    version: TorrentVersion,
    piece_length: u64,
    /// Offset of each file in the v1 stream (pad files included).
    offsets: Vec<u64>,
    /// Bytes of pad file after each file (hybrid only).
    pad_after: Vec<u64>,
    /// Number of v1 pieces.
    v1_pieces: u64,
}

impl Layout {
    fn new(
        content: &Content,
        piece_length: u64,
        version: TorrentVersion,
    ) -> Result<Self, CreateError> {
        let pad = version == TorrentVersion::Hybrid && content.files.len() > 1;
        let mut offsets = Vec::with_capacity(content.files.len());
        let mut pad_after = Vec::with_capacity(content.files.len());
        let mut off = 0u64;
        for f in &content.files {
            offsets.push(off);
            off = off.checked_add(f.len).ok_or(CreateError::TooLarge)?;
            let tail = off % piece_length;
            let p = if pad && f.len > 0 && tail != 0 {
                piece_length - tail
            } else {
                0
            };
            off = off.checked_add(p).ok_or(CreateError::TooLarge)?;
            pad_after.push(p);
        }
        Ok(Layout {
            version,
            piece_length,
            offsets,
            pad_after,
            v1_pieces: off.div_ceil(piece_length),
        })
    }
}

/// A unit of hashing work.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// Pieces `first..first + count` of one file (v2 and hybrid: pieces never span files).
    File { file: usize, first: u64, count: u64 },
    /// Pieces `first..first + count` of the v1 stream (v1: pieces may span files).
    Stream { first: u64, count: u64 },
}

/// What a job produced.
#[derive(Debug, Default)]
struct JobOut {
    v1: Vec<Sha1Hash>,
    v2: Vec<Sha256Hash>,
}

/// All piece hashes.
#[derive(Debug)]
struct Hashes {
    /// v1 piece hashes, in stream order.
    v1: Vec<Sha1Hash>,
    /// v2 piece layer of each file (empty for an empty file).
    v2: Vec<Vec<Sha256Hash>>,
}

fn make_jobs(content: &Content, layout: &Layout, threads: usize, total: u64) -> Vec<Job> {
    let pl = layout.piece_length;
    // Enough jobs to keep every thread busy to the end, few enough that each read is long.
    let target = (total / (threads as u64 * 8)).clamp(4 << 20, 64 << 20);
    let per_job = (target / pl).max(1);
    let mut jobs = Vec::new();
    if layout.version.has_v2() {
        for (i, f) in content.files.iter().enumerate() {
            let pieces = f.len.div_ceil(pl);
            let mut first = 0;
            while first < pieces {
                let count = per_job.min(pieces - first);
                jobs.push(Job::File {
                    file: i,
                    first,
                    count,
                });
                first += count;
            }
        }
    } else {
        let mut first = 0;
        while first < layout.v1_pieces {
            let count = per_job.min(layout.v1_pieces - first);
            jobs.push(Job::Stream { first, count });
            first += count;
        }
    }
    jobs
}

struct Shared<'a> {
    content: &'a Content,
    layout: &'a Layout,
    jobs: &'a [Job],
    next: AtomicUsize,
    abort: AtomicBool,
    done: AtomicU64,
    total: u64,
    progress: Option<&'a ProgressFn>,
    /// Each worker reads on a thread of its own ([`for_each_chunk`]).
    prefetch: bool,
}

impl Shared<'_> {
    fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(cb) = self.progress {
            cb(done, self.total);
        }
    }
}

type WorkerOut = Result<Vec<(usize, JobOut)>, CreateError>;

fn worker(shared: &Shared<'_>) -> WorkerOut {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    while !shared.abort.load(Ordering::Relaxed) {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(job) = shared.jobs.get(i) else { break };
        let r = match *job {
            Job::File { file, first, count } => hash_file_job(shared, file, first, count, &mut buf),
            Job::Stream { first, count } => hash_stream_job(shared, first, count, &mut buf),
        };
        match r {
            Ok(o) => out.push((i, o)),
            Err(e) => {
                shared.abort.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn hash_all(
    content: &Content,
    layout: &Layout,
    threads: usize,
    prefetch: bool,
    total: u64,
    progress: Option<&ProgressFn>,
) -> Result<Hashes, CreateError> {
    let jobs = make_jobs(content, layout, threads, total);
    let shared = Shared {
        content,
        layout,
        jobs: &jobs,
        next: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        done: AtomicU64::new(0),
        total,
        progress,
        prefetch,
    };
    let threads = threads.clamp(1, jobs.len().max(1));
    let results: Vec<WorkerOut> = if threads == 1 {
        vec![worker(&shared)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| worker(&shared))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };

    let pl = layout.piece_length;
    let mut v1 = if layout.version.has_v1() {
        vec![
            Sha1Hash::default();
            usize::try_from(layout.v1_pieces).map_err(|_| CreateError::TooLarge)?
        ]
    } else {
        Vec::new()
    };
    let mut v2: Vec<Vec<Sha256Hash>> = if layout.version.has_v2() {
        content
            .files
            .iter()
            .map(|f| vec![Sha256Hash::default(); usize::try_from(f.len.div_ceil(pl)).unwrap_or(0)])
            .collect()
    } else {
        Vec::new()
    };
    for result in results {
        for (i, out) in result? {
            let (v1_start, file, first) = match jobs.get(i) {
                Some(Job::File { file, first, .. }) => {
                    let base = layout.offsets.get(*file).copied().unwrap_or(0) / pl;
                    (base + first, Some(*file), *first)
                }
                Some(Job::Stream { first, .. }) => (*first, None, 0),
                None => continue,
            };
            let start = usize::try_from(v1_start).map_err(|_| CreateError::TooLarge)?;
            for (slot, h) in v1.iter_mut().skip(start).zip(out.v1) {
                *slot = h;
            }
            if let Some(layer) = file.and_then(|f| v2.get_mut(f)) {
                let start = usize::try_from(first).map_err(|_| CreateError::TooLarge)?;
                for (slot, h) in layer.iter_mut().skip(start).zip(out.v2) {
                    *slot = h;
                }
            }
        }
    }
    Ok(Hashes { v1, v2 })
}

/// The hashes of the piece being filled.
struct PieceState {
    piece_length: u64,
    v1: Option<Sha1>,
    v2: bool,
    /// Leaves are padded to this many for a piece root: a full piece's worth, or for a file
    /// smaller than a piece the next power of two.
    small_file: bool,
    leaves: Vec<Sha256Hash>,
    filled: u64,
    /// Zero bytes fed to SHA-1 after the data of a short last piece (a pad file follows).
    pad_last: bool,
    out: JobOut,
}

const ZEROS: [u8; BLOCK_SIZE as usize] = [0u8; BLOCK_SIZE as usize];

impl PieceState {
    fn new(piece_length: u64, v1: bool, v2: bool, small_file: bool, pad_last: bool) -> Self {
        PieceState {
            piece_length,
            v1: v1.then(Sha1::new),
            v2,
            small_file,
            leaves: Vec::new(),
            filled: 0,
            pad_last,
            out: JobOut::default(),
        }
    }

    /// Feeds content, which starts where the previous call stopped.
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = usize::try_from(self.piece_length - self.filled).unwrap_or(usize::MAX);
            let (part, rest) = data.split_at(room.min(data.len()));
            for block in part.chunks(BLOCK_SIZE as usize) {
                if let Some(h) = &mut self.v1 {
                    h.update(block);
                }
                if self.v2 {
                    self.leaves.push(hash_leaf(block));
                }
            }
            self.filled += part.len() as u64;
            if self.filled == self.piece_length {
                self.finish_piece();
            }
            data = rest;
        }
    }

    fn finish_piece(&mut self) {
        if let Some(h) = &mut self.v1 {
            if self.pad_last {
                let mut left = self.piece_length - self.filled;
                while left > 0 {
                    let n = left.min(BLOCK_SIZE);
                    h.update(ZEROS.get(..n as usize).unwrap_or_default());
                    left -= n;
                }
            }
            self.out.v1.push(Sha1Hash(h.finalize_reset().into()));
        }
        if self.v2 {
            let width = if self.small_file {
                self.leaves.len().next_power_of_two()
            } else {
                usize::try_from(self.piece_length / BLOCK_SIZE).unwrap_or(1)
            };
            self.leaves.resize(width.max(1), Sha256Hash::default());
            self.out.v2.push(root_from_layer(&self.leaves, 0));
            self.leaves.clear();
        }
        self.filled = 0;
    }

    fn finish(mut self) -> JobOut {
        if self.filled > 0 {
            self.finish_piece();
        }
        self.out
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    let mut done = 0usize;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        match file.seek_read(rest, offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

fn read_file_at(
    f: &SourceFile,
    file: &File,
    buf: &mut [u8],
    offset: u64,
) -> Result<(), CreateError> {
    read_at(file, buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            CreateError::FileChanged {
                path: f.path.clone(),
            }
        } else {
            CreateError::Io {
                path: f.path.clone(),
                source: e,
            }
        }
    })
}

fn hash_file_job(
    shared: &Shared<'_>,
    index: usize,
    first: u64,
    count: u64,
    buf: &mut [u8],
) -> Result<JobOut, CreateError> {
    let layout = shared.layout;
    let pl = layout.piece_length;
    let Some(f) = shared.content.files.get(index) else {
        return Ok(JobOut::default());
    };
    let pad_last = layout.pad_after.get(index).is_some_and(|&p| p > 0);
    let mut state = PieceState::new(pl, layout.version.has_v1(), true, f.len < pl, pad_last);
    let start = first.saturating_mul(pl);
    let end = first.saturating_add(count).saturating_mul(pl).min(f.len);
    let file = File::open(&f.path).map_err(io_err(&f.path))?;
    for_each_chunk(
        shared,
        start..end,
        buf,
        |chunk, pos| read_file_at(f, &file, chunk, pos),
        |chunk| state.feed(chunk),
    )?;
    Ok(state.finish())
}

/// Reads `range` of some content in consecutive chunks of up to `buf.len()` bytes with
/// `fill(chunk, offset)`, and hands each chunk to `consume` in order, counting it as done.
///
/// With [`Shared::prefetch`], a reading thread of its own runs `fill` for the chunks ahead (see
/// [`Prefetch`]), so that the copying out of the page cache leaves the hashing core; any chunk
/// it has not got ready in time is read here, so the hashing never waits for it. Stops early,
/// without an error, when the work is aborted; the first error of `fill` ends it.
fn for_each_chunk<F>(
    shared: &Shared<'_>,
    range: std::ops::Range<u64>,
    buf: &mut [u8],
    mut fill: F,
    mut consume: impl FnMut(&[u8]),
) -> Result<(), CreateError>
where
    F: FnMut(&mut [u8], u64) -> Result<(), CreateError> + Send + Clone,
{
    let prefetch = shared.prefetch;
    let chunk_len = if prefetch {
        PREFETCH_CHUNK.min(buf.len())
    } else {
        buf.len()
    }
    .max(1) as u64;
    let chunks = range.end.saturating_sub(range.start).div_ceil(chunk_len);
    let at = |k: u64| {
        let pos = range.start + k * chunk_len;
        (pos, (range.end - pos).min(chunk_len) as usize)
    };
    // The reading thread's own copy of `fill`.
    let reader_fill = fill.clone();
    let mut read_here = |k: u64, consume: &mut dyn FnMut(&[u8])| {
        let (pos, n) = at(k);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        fill(chunk, pos)?;
        consume(chunk);
        Ok::<usize, CreateError>(n)
    };
    let ahead = if prefetch && chunks > 1 {
        Some(Prefetch::new(chunk_len as usize))
    } else {
        None
    };
    std::thread::scope(|s| {
        if let Some(p) = &ahead {
            let abort = &shared.abort;
            let reader = move || p.read_ahead(chunks, at, reader_fill, abort);
            // Without the thread every chunk is simply read here.
            let _ = std::thread::Builder::new()
                .name("tessera-read".to_owned())
                .spawn_scoped(s, reader);
        }
        let result = (|| {
            for k in 0..chunks {
                if shared.abort.load(Ordering::Relaxed) {
                    break;
                }
                let n = match ahead.as_ref().and_then(|p| p.take(k, &mut consume)) {
                    Some(n) => n,
                    None => read_here(k, &mut consume)?,
                };
                if let Some(p) = &ahead {
                    p.done.store(k + 1, Ordering::Release);
                }
                shared.advance(n as u64);
            }
            Ok(())
        })();
        if let Some(p) = &ahead {
            p.stop.store(true, Ordering::Relaxed);
        }
        result
    })
}

/// Chunks read ahead by a reading thread for [`for_each_chunk`], in a ring of
/// [`PREFETCH_BUFFERS`] slots: chunk `k` goes to slot `k % PREFETCH_BUFFERS`.
///
/// The hashing thread never waits for the reader and never has to wake it: it takes chunk `k`
/// from its slot if the slot's flag says it holds it, and otherwise reads the chunk itself. A
/// blocking hand-over (a channel) would make it pay for a wake-up, a system call and in a
/// virtual machine an interrupt to the other core, for each buffer it hands back, which
/// measured far more than the copy saved; and a reader starved of CPU by other work on the
/// machine would stall it. The reader skips chunks the hashing has got past, keeps at most a
/// ring ahead, and naps when it is that far ahead (it copies several times faster than SHA-1
/// hashes). Each slot's mutex is only ever taken by one side at a time.
struct Prefetch {
    slots: Vec<PrefetchSlot>,
    /// Chunks the hashing thread is done with.
    done: AtomicU64,
    /// The hashing has ended: the reader stops.
    stop: AtomicBool,
}

struct PrefetchSlot {
    /// `k + 1` once the slot holds chunk `k`, read in full; 0 before.
    holds: AtomicU64,
    data: Mutex<Vec<u8>>,
}

/// How long the reading thread naps when it is a ring of chunks ahead of the hashing: a
/// fraction of the time the hashing takes to get through them.
const READER_NAP: std::time::Duration = std::time::Duration::from_micros(100);

impl Prefetch {
    fn new(chunk_len: usize) -> Self {
        Prefetch {
            slots: (0..PREFETCH_BUFFERS)
                .map(|_| PrefetchSlot {
                    holds: AtomicU64::new(0),
                    data: Mutex::new(vec![0u8; chunk_len]),
                })
                .collect(),
            done: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    fn slot(&self, k: u64) -> Option<&PrefetchSlot> {
        self.slots.get((k % PREFETCH_BUFFERS as u64) as usize)
    }

    /// Hands chunk `k` to `consume` if the reader has it ready; returns its length.
    fn take(&self, k: u64, consume: &mut dyn FnMut(&[u8])) -> Option<usize> {
        let slot = self.slot(k)?;
        if slot.holds.load(Ordering::Acquire) != k + 1 {
            return None;
        }
        let data = lock(&slot.data);
        consume(&data);
        Some(data.len())
    }

    /// The reading thread: fills the slots with the chunks after the one being hashed. An
    /// error is left for the hashing thread to meet when it reads that chunk itself.
    fn read_ahead<F>(
        &self,
        chunks: u64,
        at: impl Fn(u64) -> (u64, usize),
        mut fill: F,
        abort: &AtomicBool,
    ) where
        F: FnMut(&mut [u8], u64) -> Result<(), CreateError>,
    {
        // The chunk being hashed is already being read there; start with the next.
        let mut k = 1u64;
        while k < chunks {
            if self.stop.load(Ordering::Relaxed) || abort.load(Ordering::Relaxed) {
                return;
            }
            let done = self.done.load(Ordering::Acquire);
            if k <= done {
                // The hashing got here first (it reads what is not ready): skip ahead.
                k = done + 1;
                continue;
            }
            if k >= done + PREFETCH_BUFFERS as u64 {
                // A ring ahead: the slot still holds a chunk the hashing may take.
                std::thread::sleep(READER_NAP);
                continue;
            }
            let Some(slot) = self.slot(k) else { return };
            let (pos, n) = at(k);
            let ok = {
                let mut data = lock(&slot.data);
                data.resize(n, 0);
                fill(&mut data, pos).is_ok()
            };
            if !ok {
                return;
            }
            slot.holds.store(k + 1, Ordering::Release);
            k += 1;
        }
    }
}

/// A slot's buffer. Only one side uses a slot at a time, so this never waits; a poisoned lock
/// (the other side panicked while holding it, which it cannot) is taken over as it is.
fn lock(m: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn hash_stream_job(
    shared: &Shared<'_>,
    first: u64,
    count: u64,
    buf: &mut [u8],
) -> Result<JobOut, CreateError> {
    let layout = shared.layout;
    let files = &shared.content.files;
    let pl = layout.piece_length;
    let mut state = PieceState::new(pl, true, false, false, false);
    let start = first.saturating_mul(pl);
    // Without padding the stream is the files back to back.
    let stream_len = layout
        .offsets
        .last()
        .copied()
        .unwrap_or(0)
        .saturating_add(files.last().map_or(0, |f| f.len));
    let end = first
        .saturating_add(count)
        .saturating_mul(pl)
        .min(stream_len);
    // The first file that ends after `start`.
    let idx = layout
        .offsets
        .iter()
        .zip(files)
        .position(|(&o, f)| o + f.len > start)
        .unwrap_or(files.len());
    // Fills a chunk at `pos` of the stream from consecutive files. Each copy (the reading
    // thread has one) keeps its own place in the file list; positions only grow.
    let mut open: Option<(usize, Arc<File>)> = None;
    let mut idx = idx;
    let fill = move |chunk: &mut [u8], pos: u64| {
        let n = chunk.len();
        let mut filled = 0usize;
        while filled < n {
            let (Some(f), Some(&off)) = (files.get(idx), layout.offsets.get(idx)) else {
                return Err(CreateError::TooLarge);
            };
            let at = pos + filled as u64;
            if at >= off + f.len {
                idx += 1;
                continue;
            }
            let within = at - off;
            let take = usize::try_from(off + f.len - at)
                .unwrap_or(usize::MAX)
                .min(n - filled);
            if open.as_ref().is_none_or(|(i, _)| *i != idx) {
                let file = File::open(&f.path).map_err(io_err(&f.path))?;
                open = Some((idx, Arc::new(file)));
            }
            if let (Some((_, file)), Some(dst)) =
                (open.as_ref(), chunk.get_mut(filled..filled + take))
            {
                read_file_at(f, file, dst, within)?;
            }
            filled += take;
        }
        Ok(())
    };
    for_each_chunk(shared, start..end, buf, fill, |chunk| state.feed(chunk))?;
    Ok(state.finish())
}

#[cfg(test)]
mod tests;
