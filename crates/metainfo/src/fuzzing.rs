//! Entry points for the fuzz targets in `fuzz/`: each takes arbitrary bytes and must never
//! panic, whatever they hold.

use crate::torrent::Metainfo;

/// Parses `data` as a torrent file and checks that the one-pass v1 file list reader gives
/// what the general reader gives; on success calls every getter and checks that
/// [`Metainfo::to_bytes`] gives a file that parses again with the same info hashes.
pub fn parse_metainfo(data: &[u8]) {
    let parsed = Metainfo::from_bytes(data.to_vec());
    readers_agree(data, &parsed);
    let Ok(m) = parsed else {
        return;
    };
    let _ = (m.version(), m.name(), m.name_bytes(), m.piece_length());
    let _ = (
        m.total_length(),
        m.trackers(),
        m.web_seeds(),
        m.http_seeds(),
    );
    let _ = (
        m.is_private(),
        m.creation_date(),
        m.comment(),
        m.created_by(),
    );
    let _ = (m.dht_nodes(), m.similar(), m.collections(), m.warnings());
    let _ = (m.extra_fields(), m.info_extra_fields(), m.as_bytes());
    let info = m.info_bytes();
    assert!(!info.is_empty(), "info dictionary cannot be empty");
    let n = m.num_pieces();
    for i in [0, n / 2, n.saturating_sub(1), n] {
        let _ = (m.piece_size(i), m.piece_hash_v1(i));
    }
    let mut end = 0u64;
    for (i, f) in m.files().iter().enumerate() {
        assert_eq!(f.offset, end, "files must be contiguous");
        end = f.end();
        assert!(!f.path.starts_with('/'), "absolute path {:?}", f.path);
        assert!(
            f.path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."),
            "unsafe path {:?}",
            f.path
        );
        let _ = m.piece_layer(i);
    }
    assert_eq!(end, m.total_length(), "file lengths must add up");
    let again = Metainfo::from_bytes(m.to_bytes());
    assert!(
        again
            .as_ref()
            .is_ok_and(|a| a.info_hashes() == m.info_hashes() && a.files() == m.files()),
        "to_bytes output does not parse back to the same torrent: {:?}",
        again.err()
    );
}

/// Parses `data` (as UTF-8, lossily) as a magnet link; on success checks that the canonical URI
/// it writes parses back to the same link.
pub fn parse_magnet(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(m) = crate::Magnet::parse(&text) else {
        return;
    };
    let uri = m.to_uri();
    #[allow(clippy::panic)]
    match crate::Magnet::parse(&uri) {
        Ok(again) => assert_eq!(
            again, m,
            "magnet link changed on a round trip through {uri}"
        ),
        Err(e) => panic!("the canonical URI {uri} of a parsed magnet link fails to parse: {e}"),
    }
}

/// Checks that `parsed` (from [`Metainfo::from_bytes`]) is what the general reader gives for
/// `data`, the one-pass v1 file list reader left out: the same torrent, or the same error.
pub fn readers_agree(data: &[u8], parsed: &Result<Metainfo, crate::Error>) {
    let general = crate::torrent::parse_general(data, &crate::ParseOptions::default());
    assert_eq!(
        format!("{parsed:?}"),
        format!("{general:?}"),
        "the one-pass file list reader disagrees with the general reader"
    );
}
