//! # tessera-store
//!
//! The piece store: maps pieces and blocks to file spans, reads and writes them through a
//! storage backend, and verifies them against v1 and v2 hashes.
//!
//! ```text
//!  Metainfo ──Layout::new──▶ Layout: one byte stream of files (padding virtual), cut in pieces
//!                              │ spans(piece, begin, len) ─▶ [FileSpan { file, file_offset, len }]
//!                              ▼
//!  block from a peer ──write_block──▶ Backend::write_at(file, offset, bytes)
//!  piece to hash ◀─────read_piece───── Backend::read_at(file, offset, buf)
//!                                        ├─ FileBackend: pread/pwrite under a download dir
//!                                        └─ MemoryBackend: files in memory (tests, examples)
//! ```
//!
//! ```
//! use tessera_metainfo::{Metainfo, TorrentBuilder, TorrentVersion};
//! use tessera_store::{read_piece, write_block, Layout, MemoryBackend};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A two-file hybrid torrent made from a temporary directory.
//! let dir = tempfile::tempdir()?;
//! let content = dir.path().join("album");
//! std::fs::create_dir(&content)?;
//! std::fs::write(content.join("a.flac"), vec![1u8; 20_000])?;
//! std::fs::write(content.join("b.flac"), vec![2u8; 5_000])?;
//! let torrent = TorrentBuilder::new(&content)
//!     .version(TorrentVersion::Hybrid)
//!     .piece_length(16 * 1024)
//!     .build()?;
//! let meta = Metainfo::from_bytes(torrent.bytes)?;
//!
//! // Map it: file 0, padding up to the next piece, file 2 (and padding after it).
//! let layout = Layout::new(&meta)?;
//! assert!(layout.files()[1].padding);
//! assert_eq!(layout.files()[2].offset, 32 * 1024);
//!
//! // Store every piece in memory, as blocks would arrive from peers.
//! let store = MemoryBackend::new(&layout);
//! let mut stream = vec![0u8; usize::try_from(layout.total_length())?];
//! stream[..20_000].fill(1);
//! stream[32_768..37_768].fill(2);
//! for piece in 0..layout.num_pieces() {
//!     let start = usize::try_from(u64::from(piece) * layout.piece_length())?;
//!     let size = usize::try_from(layout.piece_size(piece))?;
//!     write_block(&store, &layout, piece, 0, &stream[start..start + size])?;
//! }
//! // The padding was never stored, but reads back as zeros.
//! assert_eq!(read_piece(&store, &layout, 1)?, stream[16_384..32_768]);
//! assert_eq!(store.file_bytes(0), Some(vec![1u8; 20_000]));
//! assert_eq!(store.file_bytes(1), None);
//! # Ok(())
//! # }
//! ```
//!
//! ## Verification
//!
//! [`Verifier`] checks whole pieces against the v1 and v2 hashes ([`PieceHasher`] as blocks
//! arrive, in any order), and single v2 blocks against their file's `pieces root` or piece
//! hash with the uncle hashes a peer sent ([`Verifier::verify_block_proof`],
//! [`verify_block_proof`]), so a bad block is refused before its piece is complete. A v2
//! torrent from a magnet link gets its piece layers from peers later: [`PieceLayers`] takes
//! each after checking it against the file's root, and [`Verifier::with_piece_layers`] uses
//! them. [`recheck`] (or [`recheck_with`] and such a verifier) verifies what is on disk on
//! every core.
//!
//! ## Partial downloads
//!
//! [`Priorities`] gives each file a [`FilePriority`]; a piece is wanted unless every file it
//! touches is skipped ([`Priorities::wanted_pieces`]). [`PartialBackend`] wraps a backend so
//! that skipped files are never created: their bytes (in practice those of the pieces they
//! share with wanted files) go to a [`PartFile`] in the download directory, and move into the
//! real file when it is unskipped ([`PartialBackend::set_priorities`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod bitfield;
mod block;
mod error;
mod file_backend;
pub mod fuzzing;
mod layout;
mod memory;
mod part_file;
mod partial;
mod path;
mod piece_layers;
mod priority;
mod recheck;
mod resume;
mod store;
mod verify;

pub use backend::{Backend, FileState};
pub use bitfield::{Bitfield, BitfieldError};
pub use block::{block_proof_len, verify_block_in_piece, verify_block_proof, BlockError};
pub use error::StoreError;
pub use file_backend::{FileBackend, FileBackendOptions};
pub use layout::{FileSpan, Layout, LayoutFile, Spans, BLOCK_SIZE};
pub use memory::MemoryBackend;
pub use part_file::{PartFile, PartFileError, PartStatus, PART_FILE_VERSION};
pub use partial::PartialBackend;
pub use path::safe_join;
pub use piece_layers::{PieceLayerError, PieceLayers};
pub use priority::{FilePriority, Priorities};
pub use recheck::{recheck, recheck_with, RecheckOptions, RecheckReport};
pub use resume::write_atomically;
pub use resume::{
    load_resume, read_resume, save_resume, ResumeData, ResumeError, ResumeState, ResumeStatus,
    ResumeWriter, RESUME_VERSION,
};
pub use store::{read_block, read_piece, write_block};
pub use verify::{HashError, PieceHasher, PieceVerdict, Verifier};
