//! Entry points for the fuzz targets in `fuzz/`: each takes arbitrary bytes and must never
//! panic, whatever they hold.

use crate::resume::ResumeData;

/// Decodes `data` as a resume record. The first four bytes choose the torrent shape the record
/// is checked against (piece count and file count, both kept small); the rest is the record.
/// A record that decodes must have the torrent's shape (one file state, and one priority if it
/// records priorities, per file), be the canonical encoding of itself, and encode to bytes that
/// decode to the same record; without its priorities it must still round-trip (the form older
/// records have).
pub fn resume_decode(data: &[u8]) {
    let (shape, record) = data.split_at(data.len().min(4));
    let mut s = [0u8; 4];
    s.get_mut(..shape.len())
        .unwrap_or_default()
        .copy_from_slice(shape);
    let num_pieces = u32::from(u16::from_le_bytes([s[0], s[1]])) % 4096;
    let num_files = usize::from(u16::from_le_bytes([s[2], s[3]])) % 64;
    let Ok(decoded) = ResumeData::decode(record, num_pieces, num_files) else {
        return;
    };
    assert_eq!(
        decoded.files.len(),
        num_files,
        "wrong number of file states"
    );
    assert_eq!(decoded.verified.len(), num_pieces, "wrong number of pieces");
    if let Some(p) = &decoded.priorities {
        assert_eq!(p.len(), num_files, "wrong number of priorities");
    }
    assert_eq!(decoded.encode(), record, "accepted a non-canonical record");
    let mut older = decoded.clone();
    older.priorities = None;
    for record in [decoded, older] {
        let again = ResumeData::decode(&record.encode(), num_pieces, num_files);
        #[allow(clippy::panic)]
        match again {
            Ok(again) => assert_eq!(again, record, "resume record changed on a round trip"),
            Err(e) => panic!("a re-encoded resume record fails to decode: {e}"),
        }
    }
}

/// Decodes `data` as one copy of a part file's index, for a small fixed torrent (seven 16 KiB
/// pieces). Whatever the bytes, the decoder must return, never panic or allocate past the
/// bounds the torrent implies. Returns whether the bytes were a valid index.
pub fn part_file_index(data: &[u8]) -> bool {
    use std::sync::OnceLock;
    static PART: OnceLock<Option<crate::part_file::PartFile>> = OnceLock::new();
    let part = PART.get_or_init(|| {
        let meta = tessera_metainfo::Metainfo::from_bytes(sample_torrent()).ok()?;
        let layout = crate::Layout::new(&meta).ok()?;
        // The path is never created: opening only reads, and nothing here writes.
        let path = std::env::temp_dir().join("tessera-fuzz-absent/none.parts");
        Some(crate::part_file::PartFile::open(path, &layout, &meta.info_hashes()).0)
    });
    part.as_ref().is_some_and(|p| p.decode(data).is_ok())
}

/// A single-file v1 torrent of 100,000 bytes in 16 KiB pieces.
fn sample_torrent() -> Vec<u8> {
    use std::collections::BTreeMap;
    use tessera_bencode::Value;
    let mut info = BTreeMap::new();
    info.insert(b"length".to_vec(), Value::Int(100_000));
    info.insert(b"name".to_vec(), Value::from("sample"));
    info.insert(b"piece length".to_vec(), Value::Int(16_384));
    info.insert(b"pieces".to_vec(), Value::Bytes(vec![7u8; 7 * 20]));
    let mut top = BTreeMap::new();
    top.insert(b"info".to_vec(), Value::Dict(info));
    Value::Dict(top).to_bytes()
}
