//! The v2 piece layers of a torrent, owned and filled in as they become known.
//!
//! A torrent file carries every file's piece layer (`piece layers`), but a torrent found
//! through a magnet link has only its info dictionary: each file's `pieces root`, and no
//! layers until peers send them (BEP 52 `hash request` / `hashes` for the piece layer). Until
//! a file's layer is known its pieces larger than a file cannot be verified;
//! [`PieceLayers::insert`] accepts a layer only once it reduces to the file's root, so a
//! verifier built on it ([`Verifier::with_piece_layers`](crate::Verifier::with_piece_layers))
//! never trusts a hash a peer made up.
//!
//! ```text
//!  peer's `hashes` ──(wire: verify_hashes against the pieces root)──▶ Vec<Sha256Hash>
//!        ──PieceLayers::insert(file, layer)── reduces to the root? ──▶ kept
//!        ──Verifier::with_piece_layers(&meta, &layout, &layers)──▶ verify_piece / PieceHasher
//! ```

use tessera_metainfo::merkle::verify_piece_layer;
use tessera_metainfo::{Metainfo, Sha256Hash};
use thiserror::Error;

use crate::layout::Layout;

/// Why [`PieceLayers::insert`] refused a layer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PieceLayerError {
    // --- The caller's misuse ---
    /// No file with this index in the layout.
    #[error("no file with index {file}")]
    NoSuchFile {
        /// The index given.
        file: usize,
    },
    /// The file has no v2 merkle tree: padding, an empty file, or a v1-only torrent.
    #[error("file {file} has no pieces root (padding, empty, or not a v2 file)")]
    NotV2File {
        /// Index of the file in the layout.
        file: usize,
    },

    // --- The peer (or torrent) sent a bad layer ---
    /// The layer does not have one hash per piece of the file.
    #[error("file {file}: piece layer of {got} hashes where the file has {expected} pieces")]
    WrongCount {
        /// Index of the file in the layout.
        file: usize,
        /// Pieces of the file.
        expected: u64,
        /// Hashes given.
        got: u64,
    },
    /// The layer does not reduce to the file's pieces root.
    #[error("file {file}: the piece layer does not match the file's pieces root")]
    RootMismatch {
        /// Index of the file in the layout.
        file: usize,
    },
}

/// One file's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileLayer {
    /// The file's pieces root and length; `None` for files without a merkle tree.
    root: Option<(Sha256Hash, u64)>,
    /// The verified piece layer, once known.
    layer: Option<Vec<Sha256Hash>>,
}

/// The piece layer of every v2 file of a [`Layout`], indexed like [`Layout::files`], each
/// checked against the file's `pieces root` before it is accepted.
///
/// A file no larger than one piece needs no layer: its one piece hash is its root, known
/// from the start. Memory is one 32-byte hash per piece, bounded by the torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceLayers {
    piece_length: u64,
    files: Vec<FileLayer>,
}

impl PieceLayers {
    /// The layers of `layout`'s files, none known yet except those of files no larger than a
    /// piece (their root).
    pub fn new(layout: &Layout) -> PieceLayers {
        let piece_length = layout.piece_length();
        let files = layout
            .files()
            .iter()
            .map(|f| {
                let root = match f.pieces_root {
                    Some(r) if !f.padding && f.length > 0 => Some((r, f.length)),
                    _ => None,
                };
                let layer = match root {
                    Some((r, len)) if len <= piece_length => Some(vec![r]),
                    _ => None,
                };
                FileLayer { root, layer }
            })
            .collect();
        PieceLayers {
            piece_length,
            files,
        }
    }

    /// The layers `meta` carries (all of them for a torrent file; those of small files only
    /// for the info dictionary of a magnet link), for `meta`'s `layout`.
    pub fn from_metainfo(meta: &Metainfo, layout: &Layout) -> PieceLayers {
        let mut layers = PieceLayers::new(layout);
        for (i, f) in layout.files().iter().enumerate() {
            if let Some(layer) = f.metainfo_index.and_then(|m| meta.piece_layer(m)) {
                // The parser has checked these against the roots already; checked again, it
                // cannot be wrong, so an error only leaves the layer unknown.
                let _ = layers.insert(i, layer.to_vec());
            }
        }
        layers
    }

    /// Accepts `layer` as the piece layer of `file` (an index into [`Layout::files`]) if it
    /// has one hash per piece of the file and reduces to the file's pieces root. A layer
    /// already known is replaced by an equal one, so inserting twice is harmless.
    ///
    /// # Errors
    /// [`PieceLayerError`]: an unknown file, a file without a merkle tree, a wrong number of
    /// hashes, or hashes that do not reduce to the root. Nothing changes then.
    pub fn insert(&mut self, file: usize, layer: Vec<Sha256Hash>) -> Result<(), PieceLayerError> {
        let piece_length = self.piece_length;
        let entry = self
            .files
            .get_mut(file)
            .ok_or(PieceLayerError::NoSuchFile { file })?;
        let (root, len) = entry.root.ok_or(PieceLayerError::NotV2File { file })?;
        let expected = len.div_ceil(piece_length.max(1));
        let got = layer.len() as u64;
        if got != expected {
            return Err(PieceLayerError::WrongCount {
                file,
                expected,
                got,
            });
        }
        if !verify_piece_layer(&layer, piece_length, len, &root) {
            return Err(PieceLayerError::RootMismatch { file });
        }
        entry.layer = Some(layer);
        Ok(())
    }

    /// The piece layer of `file`, if known.
    pub fn get(&self, file: usize) -> Option<&[Sha256Hash]> {
        self.files.get(file)?.layer.as_deref()
    }

    /// The file whose pieces root is `root` (how a BEP 52 `hashes` message names its file).
    pub fn file_by_root(&self, root: &Sha256Hash) -> Option<usize> {
        self.files
            .iter()
            .position(|f| f.root.is_some_and(|(r, _)| r == *root))
    }

    /// The v2 files whose layer is still unknown, in layout order: what to ask peers for.
    pub fn missing(&self) -> impl Iterator<Item = usize> + '_ {
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.root.is_some() && f.layer.is_none())
            .map(|(i, _)| i)
    }

    /// True once every v2 file's layer is known.
    pub fn is_complete(&self) -> bool {
        self.missing().next().is_none()
    }

    /// Number of files, as in [`Layout::files`].
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True if the layout has no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
