//! The torrent as one byte stream: files in metainfo order, padding included, cut into pieces
//! and blocks.

use std::ops::Range;

use tessera_metainfo::{Metainfo, Sha256Hash, TorrentVersion};

use crate::error::StoreError;

/// Bytes per block: the unit of requests on the wire and of v2 merkle leaves (16 KiB).
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// One file of a [`Layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutFile {
    /// The sanitised path relative to the download directory, `/`-separated (from
    /// [`FileEntry::path`](tessera_metainfo::FileEntry::path)); empty for padding the layout
    /// inserted itself.
    pub path: String,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the first byte in the torrent's byte stream.
    pub offset: u64,
    /// A padding file: virtual zeros, never read from or written to disk.
    pub padding: bool,
    /// v2: the root of the file's merkle tree.
    pub pieces_root: Option<Sha256Hash>,
    /// The first piece that holds bytes of this file.
    pub first_piece: u32,
    /// One past the last piece that holds bytes of this file (equal to `first_piece` for an
    /// empty file).
    pub end_piece: u32,
    /// The file's index in [`Metainfo::files`], or `None` for padding the layout inserted to
    /// align a v2 file. For torrents parsed by `tessera-metainfo` (which pads v2 files itself)
    /// it is always `Some(i)` with `i` equal to the index in the layout.
    pub metainfo_index: Option<usize>,
}

impl LayoutFile {
    /// One past the last byte in the stream.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }
}

/// A run of bytes that lies within one file: part of what [`Layout::spans`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Index of the file in [`Layout::files`].
    pub file: usize,
    /// Offset within the file.
    pub file_offset: u64,
    /// Number of bytes (never zero).
    pub len: u64,
    /// The file is padding: the bytes are zeros and never touch the disk.
    pub padding: bool,
}

/// The map from pieces to files.
///
/// Pieces are numbered over one byte stream: the files in metainfo order, padding files
/// included as zero-filled ranges, empty files taking no bytes. In a v2 or hybrid torrent
/// every non-empty file starts on a piece boundary, so a v2 piece never spans files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    files: Vec<LayoutFile>,
    /// Indices of the files with at least one byte, in stream order.
    nonempty: Vec<usize>,
    piece_length: u64,
    num_pieces: u32,
    total_length: u64,
    version: TorrentVersion,
}

impl Layout {
    /// Lays out the files of `meta`.
    ///
    /// For a v2-only torrent a file that does not start on a piece boundary gets virtual
    /// padding inserted before it.
    ///
    /// # Errors
    /// [`StoreError::ZeroPieceLength`]; [`StoreError::TooLarge`] if the piece length does not
    /// fit in `u32`, the stream in `u64` or the piece count in `u32`;
    /// [`StoreError::Misaligned`] for a hybrid torrent whose files are not piece-aligned.
    pub fn new(meta: &Metainfo) -> Result<Layout, StoreError> {
        let piece_length = meta.piece_length();
        if piece_length == 0 {
            return Err(StoreError::ZeroPieceLength);
        }
        if u32::try_from(piece_length).is_err() {
            return Err(StoreError::too_large("piece length", piece_length));
        }
        let version = meta.version();
        let mut files: Vec<LayoutFile> = Vec::with_capacity(meta.files().len());
        let mut offset: u64 = 0;
        for (i, f) in meta.files().iter().enumerate() {
            let padding = f.is_padding();
            let rem = offset % piece_length;
            if version.has_v2() && !padding && f.length > 0 && rem != 0 {
                if version != TorrentVersion::V2 {
                    return Err(StoreError::Misaligned {
                        file: files.len(),
                        offset,
                    });
                }
                let pad = piece_length - rem;
                files.push(LayoutFile {
                    path: String::new(),
                    length: pad,
                    offset,
                    padding: true,
                    pieces_root: None,
                    first_piece: 0,
                    end_piece: 0,
                    metainfo_index: None,
                });
                offset = offset
                    .checked_add(pad)
                    .ok_or(StoreError::too_large("torrent length", u64::MAX))?;
            }
            files.push(LayoutFile {
                path: f.path.to_owned(),
                length: f.length,
                offset,
                padding,
                pieces_root: if padding { None } else { f.pieces_root },
                first_piece: 0,
                end_piece: 0,
                metainfo_index: Some(i),
            });
            offset = offset
                .checked_add(f.length)
                .ok_or(StoreError::too_large("torrent length", u64::MAX))?;
        }
        let total_length = offset;
        let num_pieces = u32::try_from(total_length.div_ceil(piece_length))
            .map_err(|_| StoreError::too_large("piece count", total_length / piece_length))?;
        let to_piece = |x: u64| u32::try_from(x).unwrap_or(u32::MAX).min(num_pieces);
        let mut nonempty = Vec::new();
        for (i, f) in files.iter_mut().enumerate() {
            f.first_piece = to_piece(f.offset / piece_length);
            f.end_piece = if f.length == 0 {
                f.first_piece
            } else {
                nonempty.push(i);
                to_piece(f.end().div_ceil(piece_length))
            };
        }
        Ok(Layout {
            files,
            nonempty,
            piece_length,
            num_pieces,
            total_length,
            version,
        })
    }

    /// v1, v2 or hybrid, as the torrent says.
    pub fn version(&self) -> TorrentVersion {
        self.version
    }

    /// Number of pieces.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// Bytes per piece (it fits in `u32`).
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }

    /// Bytes in the stream, padding included.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// The files in stream order, padding included.
    pub fn files(&self) -> &[LayoutFile] {
        &self.files
    }

    /// Offset of `piece` in the stream (no check against the piece count).
    pub(crate) fn piece_start(&self, piece: u32) -> u64 {
        u64::from(piece).saturating_mul(self.piece_length)
    }

    /// The size of `piece`: 0 past the end. For v1 and hybrid torrents, the bytes of the stream
    /// it covers (the last piece may be short). For v2-only torrents, the bytes of its file it
    /// covers: each file's last piece may be short, and the padding after it is not counted.
    pub fn piece_size(&self, piece: u32) -> u64 {
        if piece >= self.num_pieces {
            return 0;
        }
        let start = self.piece_start(piece);
        let stream = self
            .total_length
            .saturating_sub(start)
            .min(self.piece_length);
        if self.version == TorrentVersion::V2 {
            if let Some(f) = self.file_at(start).and_then(|i| self.files.get(i)) {
                if !f.padding {
                    return f.end().saturating_sub(start).min(stream);
                }
            }
        }
        stream
    }

    /// For v2 and hybrid torrents: the bytes of its file that `piece` covers (what its v2 hash
    /// is taken of). `None` for v1 torrents and pieces past the end.
    pub fn v2_piece_size(&self, piece: u32) -> Option<u64> {
        let (file, _) = self.v2_file_of_piece(piece)?;
        let f = self.files.get(file)?;
        let start = self.piece_start(piece);
        Some(f.end().saturating_sub(start).min(self.piece_length))
    }

    /// Number of [`BLOCK_SIZE`] blocks in `piece` (the last one may be short); 0 past the end.
    pub fn block_count(&self, piece: u32) -> u32 {
        let blocks = self.piece_size(piece).div_ceil(u64::from(BLOCK_SIZE));
        u32::try_from(blocks).unwrap_or(u32::MAX)
    }

    /// The length of block `block` of `piece`, or `None` past the piece's end.
    pub fn block_len(&self, piece: u32, block: u32) -> Option<u32> {
        let size = self.piece_size(piece);
        let begin = u64::from(block).checked_mul(u64::from(BLOCK_SIZE))?;
        let left = size.checked_sub(begin).filter(|&l| l > 0)?;
        u32::try_from(left.min(u64::from(BLOCK_SIZE))).ok()
    }

    /// The index of the non-empty file holding stream byte `pos`, if any.
    fn file_at(&self, pos: u64) -> Option<usize> {
        let k = self.nonempty_index_at(pos)?;
        self.nonempty.get(k).copied()
    }

    /// The position in `nonempty` of the file holding stream byte `pos`.
    fn nonempty_index_at(&self, pos: u64) -> Option<usize> {
        let after = self
            .nonempty
            .partition_point(|&i| self.files.get(i).is_some_and(|f| f.offset <= pos));
        let k = after.checked_sub(1)?;
        let f = self.files.get(*self.nonempty.get(k)?)?;
        (pos < f.end()).then_some(k)
    }

    /// The file runs that make up `len` bytes at `begin` within `piece`, in stream order,
    /// covering the range exactly once. Empty files never appear; padding does, marked.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] if the piece does not exist or the range passes its end
    /// ([`piece_size`](Self::piece_size)).
    pub fn spans(&self, piece: u32, begin: u32, len: u32) -> Result<Spans<'_>, StoreError> {
        let out_of_range = StoreError::OutOfRange {
            piece,
            offset: u64::from(begin),
            len: u64::from(len),
        };
        if piece >= self.num_pieces {
            return Err(out_of_range);
        }
        let end_in_piece = u64::from(begin) + u64::from(len);
        if end_in_piece > self.piece_size(piece) {
            return Err(out_of_range);
        }
        let pos = self.piece_start(piece) + u64::from(begin);
        let end = pos + u64::from(len);
        let next = if len == 0 {
            self.nonempty.len()
        } else {
            match self.nonempty_index_at(pos) {
                Some(k) => k,
                None => return Err(out_of_range),
            }
        };
        Ok(Spans {
            layout: self,
            pos,
            end,
            next,
        })
    }

    /// The file runs that make up `len` bytes of the stream at `pos`, across pieces (and the
    /// padding between v2 pieces); `None` if the range passes the end of the stream.
    pub(crate) fn stream_spans(&self, pos: u64, len: u64) -> Option<Spans<'_>> {
        let end = pos.checked_add(len).filter(|&e| e <= self.total_length)?;
        let next = if len == 0 {
            self.nonempty.len()
        } else {
            self.nonempty_index_at(pos)?
        };
        Some(Spans {
            layout: self,
            pos,
            end,
            next,
        })
    }

    /// The pieces that hold bytes of `file` (empty for empty files and unknown indices).
    pub fn file_pieces(&self, file: usize) -> Range<u32> {
        self.files
            .get(file)
            .map_or(0..0, |f| f.first_piece..f.end_piece)
    }

    /// The files with bytes in `piece` (its [`piece_size`](Self::piece_size) bytes), in order,
    /// padding included.
    pub fn piece_files(&self, piece: u32) -> impl Iterator<Item = usize> + '_ {
        let len = u32::try_from(self.piece_size(piece)).unwrap_or(0);
        self.spans(piece, 0, len)
            .ok()
            .into_iter()
            .flatten()
            .map(|s| s.file)
    }

    /// For v2 and hybrid torrents: the file `piece` belongs to and the piece's index within
    /// that file's piece layer. `None` for v1 torrents, pieces past the end, and (which a
    /// well-formed layout never has) a piece that starts in padding.
    pub fn v2_file_of_piece(&self, piece: u32) -> Option<(usize, u32)> {
        if !self.version.has_v2() || piece >= self.num_pieces {
            return None;
        }
        let file = self.file_at(self.piece_start(piece))?;
        let f = self.files.get(file)?;
        if f.padding {
            return None;
        }
        Some((file, piece.checked_sub(f.first_piece)?))
    }
}

/// The iterator [`Layout::spans`] returns.
#[derive(Debug, Clone)]
pub struct Spans<'a> {
    layout: &'a Layout,
    /// Next stream position to cover.
    pos: u64,
    /// One past the last stream position to cover.
    end: u64,
    /// Index into `layout.nonempty` of the file holding `pos`.
    next: usize,
}

impl Iterator for Spans<'_> {
    type Item = FileSpan;

    fn next(&mut self) -> Option<FileSpan> {
        if self.pos >= self.end {
            return None;
        }
        let file = *self.layout.nonempty.get(self.next)?;
        let f = self.layout.files.get(file)?;
        let stop = f.end().min(self.end);
        let len = stop.checked_sub(self.pos).filter(|&l| l > 0)?;
        let span = FileSpan {
            file,
            file_offset: self.pos.checked_sub(f.offset)?,
            len,
            padding: f.padding,
        };
        self.pos = stop;
        self.next += 1;
        Some(span)
    }
}
