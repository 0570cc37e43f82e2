//! Per-file download priorities, and the piece priorities that follow from them.

use crate::bitfield::Bitfield;
use crate::layout::Layout;

/// How much the user wants a file. Ordered: `Skip < Low < Normal < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum FilePriority {
    /// Not wanted: never written into the user's files (see
    /// [`PartialBackend`](crate::PartialBackend)).
    Skip = 0,
    /// Wanted after everything else.
    Low = 1,
    /// Wanted (the default).
    #[default]
    Normal = 2,
    /// Wanted before everything else.
    High = 3,
}

impl FilePriority {
    /// The priority as a number, `0` (skip) to `3` (high).
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The priority numbered `n` (as [`as_u8`](Self::as_u8) gives), or `None` above 3.
    pub fn from_u8(n: u8) -> Option<FilePriority> {
        match n {
            0 => Some(FilePriority::Skip),
            1 => Some(FilePriority::Low),
            2 => Some(FilePriority::Normal),
            3 => Some(FilePriority::High),
            _ => None,
        }
    }
}

/// One [`FilePriority`] per file of a [`Layout`] (padding files have one too, but it is
/// ignored), and what follows for each piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priorities {
    files: Vec<FilePriority>,
    /// Per file: its piece range and whether it is padding.
    ranges: Vec<(u32, u32, bool)>,
    num_pieces: u32,
}

impl Priorities {
    /// Every file of `layout` at [`FilePriority::Normal`].
    pub fn new(layout: &Layout) -> Priorities {
        Priorities {
            files: vec![FilePriority::Normal; layout.files().len()],
            ranges: layout
                .files()
                .iter()
                .map(|f| (f.first_piece, f.end_piece, f.padding))
                .collect(),
            num_pieces: layout.num_pieces(),
        }
    }

    /// Number of files (padding included), as in [`Layout::files`].
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True if the layout has no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every file's priority, in layout order.
    pub fn as_slice(&self) -> &[FilePriority] {
        &self.files
    }

    /// The priority of `file` (`None` for an unknown index).
    pub fn get(&self, file: usize) -> Option<FilePriority> {
        self.files.get(file).copied()
    }

    /// Sets the priority of `file`; returns false (and changes nothing) for an unknown index.
    pub fn set(&mut self, file: usize, priority: FilePriority) -> bool {
        match self.files.get_mut(file) {
            Some(p) => {
                *p = priority;
                true
            }
            None => false,
        }
    }

    /// The same priorities with `file` set to `priority` (unknown indices are ignored).
    #[must_use]
    pub fn with(mut self, file: usize, priority: FilePriority) -> Priorities {
        self.set(file, priority);
        self
    }

    /// True if `file` is a real (not padding) file set to [`FilePriority::Skip`].
    pub fn is_skipped(&self, file: usize) -> bool {
        self.get(file) == Some(FilePriority::Skip) && self.ranges.get(file).is_some_and(|r| !r.2)
    }

    /// The non-padding files with bytes in `piece`, in order.
    pub fn piece_files(&self, piece: u32) -> impl Iterator<Item = usize> + '_ {
        // Piece ranges are non-decreasing in file order, so the files touching `piece` are a
        // contiguous run starting at the first file that ends after it.
        let start = self.ranges.partition_point(|r| r.1 <= piece);
        self.ranges
            .iter()
            .enumerate()
            .skip(start)
            .take_while(move |(_, r)| r.0 <= piece)
            .filter(move |(_, r)| !r.2 && r.0 < r.1 && piece < r.1)
            .map(|(i, _)| i)
    }

    /// The highest priority of the non-padding files `piece` touches: [`FilePriority::Skip`]
    /// only if every one of them is skipped (or it touches none, or is past the end).
    pub fn piece_priority(&self, piece: u32) -> FilePriority {
        self.piece_files(piece)
            .filter_map(|f| self.files.get(f).copied())
            .max()
            .unwrap_or(FilePriority::Skip)
    }

    /// The pieces whose [`piece_priority`](Self::piece_priority) is not
    /// [`FilePriority::Skip`]: those a download must fetch.
    pub fn wanted_pieces(&self) -> Bitfield {
        let mut b = Bitfield::new(self.num_pieces);
        for piece in 0..self.num_pieces {
            if self.piece_priority(piece) != FilePriority::Skip {
                b.set(piece, true);
            }
        }
        b
    }

    /// True if `piece` touches at least one skipped (non-padding) file.
    pub fn touches_skipped(&self, piece: u32) -> bool {
        self.piece_files(piece).any(|f| self.is_skipped(f))
    }
}
