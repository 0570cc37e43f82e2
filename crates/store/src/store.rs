//! Piece-level reads and writes on top of any [`Backend`]: a piece or block is split into its
//! file spans, padding is filled with zeros on reads and skipped on writes.

use crate::backend::Backend;
use crate::error::StoreError;
use crate::layout::Layout;

/// Reads the whole of `piece` ([`Layout::piece_size`] bytes; padding reads as zeros).
///
/// # Errors
/// [`StoreError::OutOfRange`] for a piece past the end, [`StoreError::TooLarge`] if the buffer
/// cannot be allocated, and whatever the backend returns ([`StoreError::Missing`] when the data
/// is not there).
pub fn read_piece<B: Backend + ?Sized>(
    backend: &B,
    layout: &Layout,
    piece: u32,
) -> Result<Vec<u8>, StoreError> {
    if piece >= layout.num_pieces() {
        return Err(StoreError::OutOfRange {
            piece,
            offset: 0,
            len: 0,
        });
    }
    let size = layout.piece_size(piece);
    let len = u32::try_from(size).map_err(|_| StoreError::too_large("piece", size))?;
    let n = usize::try_from(len).map_err(|_| StoreError::too_large("piece", size))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(n)
        .map_err(|_| StoreError::too_large("piece buffer", size))?;
    buf.resize(n, 0);
    read_block(backend, layout, piece, 0, len, &mut buf)?;
    Ok(buf)
}

/// Reads `len` bytes at `begin` within `piece` into the start of `buf`.
///
/// # Errors
/// [`StoreError::BufferSize`] if `buf` is shorter than `len`, [`StoreError::OutOfRange`] if the
/// range passes the piece's end, and whatever the backend returns.
pub fn read_block<B: Backend + ?Sized>(
    backend: &B,
    layout: &Layout,
    piece: u32,
    begin: u32,
    len: u32,
    buf: &mut [u8],
) -> Result<(), StoreError> {
    let want = usize::try_from(len).map_err(|_| StoreError::too_large("block", len))?;
    let got = u64::try_from(buf.len()).unwrap_or(u64::MAX);
    let buf = buf.get_mut(..want).ok_or(StoreError::BufferSize {
        expected: u64::from(len),
        got,
    })?;
    let mut at = 0usize;
    for span in layout.spans(piece, begin, len)? {
        let n = usize::try_from(span.len).map_err(|_| StoreError::too_large("span", span.len))?;
        let stop = at
            .checked_add(n)
            .ok_or(StoreError::too_large("span", span.len))?;
        let part = buf.get_mut(at..stop).ok_or(StoreError::BufferSize {
            expected: u64::from(len),
            got: u64::try_from(at).unwrap_or(u64::MAX),
        })?;
        if span.padding {
            part.fill(0);
        } else {
            backend.read_at(span.file, span.file_offset, part)?;
        }
        at = stop;
    }
    Ok(())
}

/// Writes `data` at `begin` within `piece`, split across its files. Bytes that fall on padding
/// are not written (nor checked: a piece with non-zero padding fails its hash check anyway).
///
/// # Errors
/// [`StoreError::OutOfRange`] if the range passes the piece's end, and whatever the backend
/// returns. Spans before a failing one are written.
pub fn write_block<B: Backend + ?Sized>(
    backend: &B,
    layout: &Layout,
    piece: u32,
    begin: u32,
    data: &[u8],
) -> Result<(), StoreError> {
    let len = u32::try_from(data.len()).map_err(|_| StoreError::OutOfRange {
        piece,
        offset: u64::from(begin),
        len: u64::try_from(data.len()).unwrap_or(u64::MAX),
    })?;
    let mut at = 0usize;
    for span in layout.spans(piece, begin, len)? {
        let n = usize::try_from(span.len).map_err(|_| StoreError::too_large("span", span.len))?;
        let stop = at
            .checked_add(n)
            .ok_or(StoreError::too_large("span", span.len))?;
        let part = data.get(at..stop).ok_or(StoreError::BufferSize {
            expected: u64::from(len),
            got: u64::try_from(at).unwrap_or(u64::MAX),
        })?;
        if !span.padding {
            backend.write_at(span.file, span.file_offset, part)?;
        }
        at = stop;
    }
    Ok(())
}
