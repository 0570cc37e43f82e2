//! Magnet links: vectors, canonical writing, hostile input and round trips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use tessera_metainfo::{InfoHashes, Magnet, MagnetError, Sha1Hash, Sha256Hash};

/// Written by libtorrent's `make_magnet_uri` for libtorrent's own `v2_hybrid.torrent`.
const LIBTORRENT_HYBRID: &str = "magnet:?xt=urn:btih:514c76c1f27ec61ca8b37851bcd1cbf0b26cf120&xt=urn:btmh:1220518fbaf39b37020c896e8768a967da6d76bbd5ef7a02c761021b65a72c6cfa11&dn=bittorrent-v1-v2-hybrid-test";

#[test]
fn hex_and_base32_of_the_same_hash() {
    let hex = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    let expected = Sha1Hash::from_hex(hex).unwrap();
    for uri in [
        format!("magnet:?xt=urn:btih:{hex}"),
        format!("magnet:?xt=urn:btih:{}", hex.to_uppercase()),
        "magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK".to_string(),
        "magnet:?xt=urn:btih:yex6dqdlxisuvhoj6um3gnnkpqjwpkek".to_string(),
    ] {
        let m = Magnet::parse(&uri).unwrap();
        assert_eq!(m.info_hashes.v1, Some(expected), "{uri}");
        assert_eq!(m.info_hashes.v2, None);
        assert_eq!(m.to_uri(), format!("magnet:?xt=urn:btih:{hex}"));
    }
}

#[test]
fn hybrid_vector_from_libtorrent() {
    let m = Magnet::parse(LIBTORRENT_HYBRID).unwrap();
    assert_eq!(
        m.info_hashes.v1.unwrap().to_hex(),
        "514c76c1f27ec61ca8b37851bcd1cbf0b26cf120"
    );
    assert_eq!(
        m.info_hashes.v2.unwrap().to_hex(),
        "518fbaf39b37020c896e8768a967da6d76bbd5ef7a02c761021b65a72c6cfa11"
    );
    assert_eq!(m.name.as_deref(), Some("bittorrent-v1-v2-hybrid-test"));
    // Our canonical form puts the hashes in the same order as libtorrent.
    assert_eq!(m.to_uri(), LIBTORRENT_HYBRID);
    assert_eq!(m.to_string(), LIBTORRENT_HYBRID);
}

#[test]
fn v2_only_btmh() {
    let uri = "magnet:?xt=urn:btmh:1220518FBAF39B37020C896E8768A967DA6D76BBD5EF7A02C761021B65A72C6CFA11&dn=x";
    let m = Magnet::parse(uri).unwrap();
    assert_eq!(m.info_hashes.v1, None);
    let v2 = m.info_hashes.v2.unwrap();
    assert_eq!(
        v2,
        Sha256Hash::from_hex("518fbaf39b37020c896e8768a967da6d76bbd5ef7a02c761021b65a72c6cfa11")
            .unwrap()
    );
    assert_eq!(m.info_hashes.wire_hash(), Some(v2.truncated()));
    assert_eq!(m.to_uri(), uri.to_lowercase());
}

#[test]
fn all_fields_and_canonical_order() {
    let uri = "magnet:?so=0,2,4-6&x.pe=10.0.0.1:6881&ws=http://seed/a%20b&tr=udp%3A%2F%2Ft%3A80&dn=My+Torrent%21&xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&tr=udp://t:80&xs=http://x/y.torrent&x.pe=[::1]:1";
    let m = Magnet::parse(uri).unwrap();
    assert_eq!(m.name.as_deref(), Some("My Torrent!"));
    assert_eq!(m.trackers, vec!["udp://t:80"]);
    assert_eq!(m.web_seeds, vec!["http://seed/a b"]);
    assert_eq!(m.peers, vec!["10.0.0.1:6881", "[::1]:1"]);
    assert_eq!(m.select_only, vec![0..=0, 2..=2, 4..=6]);
    assert_eq!(
        m.other,
        vec![("xs".to_string(), "http://x/y.torrent".to_string())]
    );
    assert_eq!(
        m.to_uri(),
        "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=My%20Torrent%21\
         &tr=udp%3A%2F%2Ft%3A80&ws=http%3A%2F%2Fseed%2Fa%20b&x.pe=10.0.0.1%3A6881\
         &x.pe=%5B%3A%3A1%5D%3A1&so=0,2,4-6&xs=http%3A%2F%2Fx%2Fy.torrent"
    );
    assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
}

#[test]
fn repeated_identical_hash_is_fine_conflicting_is_not() {
    let h = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    let same = format!("magnet:?xt=urn:btih:{h}&xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK");
    assert!(Magnet::parse(&same).is_ok());
    let other = format!("magnet:?xt=urn:btih:{h}&xt=urn:btih:{}", "0".repeat(40));
    assert_eq!(
        Magnet::parse(&other),
        Err(MagnetError::ConflictingInfoHash { kind: "btih" })
    );
}

/// A hostile input and a check of the error it must give.
type Case = (String, fn(&MagnetError) -> bool);

#[test]
fn hostile_inputs_give_errors() {
    let h = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    let cases: Vec<Case> = vec![
        ("".into(), |e| matches!(e, MagnetError::NotMagnet)),
        ("http://x".into(), |e| matches!(e, MagnetError::NotMagnet)),
        ("magnet:".into(), |e| matches!(e, MagnetError::NotMagnet)),
        ("magnet:?".into(), |e| {
            matches!(e, MagnetError::MissingInfoHash)
        }),
        ("magnet:?dn=x&tr=y".into(), |e| {
            matches!(e, MagnetError::MissingInfoHash)
        }),
        ("magnet:?xt=urn:btih:abc".into(), |e| {
            matches!(e, MagnetError::InvalidBtih { .. })
        }),
        (format!("magnet:?xt=urn:btih:{}", "g".repeat(40)), |e| {
            matches!(e, MagnetError::InvalidBtih { .. })
        }),
        (format!("magnet:?xt=urn:btih:{}", "1".repeat(32)), |e| {
            matches!(e, MagnetError::InvalidBtih { .. })
        }),
        (
            format!("magnet:?xt=urn:btih:{}", "a".repeat(100_000)),
            |e| matches!(e, MagnetError::TooLong { .. }),
        ),
        (
            format!("magnet:?xt=urn:btih:{h}{}", "&a=b".repeat(2000)),
            |e| matches!(e, MagnetError::TooManyParams { .. }),
        ),
        (format!("magnet:?xt=urn:btih:{h}&dn=%"), |e| {
            matches!(e, MagnetError::InvalidPercentEncoding { .. })
        }),
        (format!("magnet:?xt=urn:btih:{h}&dn=%4"), |e| {
            matches!(e, MagnetError::InvalidPercentEncoding { .. })
        }),
        (format!("magnet:?xt=urn:btih:{h}&dn=%zz"), |e| {
            matches!(e, MagnetError::InvalidPercentEncoding { .. })
        }),
        (format!("magnet:?xt=urn:btih:{h}&dn=%ff%fe"), |e| {
            matches!(e, MagnetError::InvalidUtf8 { .. })
        }),
        ("magnet:?xt=urn:btmh:1220abcd".into(), |e| {
            matches!(e, MagnetError::InvalidBtmh { .. })
        }),
        ("magnet:?xt=urn:btmh:12".into(), |e| {
            matches!(e, MagnetError::InvalidBtmh { .. })
        }),
        (
            format!("magnet:?xt=urn:btmh:1114{}", "ab".repeat(20)),
            |e| {
                matches!(
                    e,
                    MagnetError::UnsupportedMultihash {
                        code: 0x11,
                        len: 0x14
                    }
                )
            },
        ),
        (format!("magnet:?xt=urn:btih:{h}&x.pe=nowhere"), |e| {
            matches!(e, MagnetError::InvalidPeer { .. })
        }),
        (format!("magnet:?xt=urn:btih:{h}&so=3-1"), |e| {
            matches!(e, MagnetError::InvalidSelectOnly { .. })
        }),
        (format!("magnet:?xt=urn:btih:{h}&so=a"), |e| {
            matches!(e, MagnetError::InvalidSelectOnly { .. })
        }),
    ];
    for (uri, check) in cases {
        let err = Magnet::parse(&uri).expect_err(&uri[..uri.len().min(80)]);
        assert!(check(&err), "{}: {err:?}", &uri[..uri.len().min(80)]);
        // Messages stay short even for huge hostile values.
        assert!(err.to_string().len() < 300, "{err}");
    }
}

#[test]
fn unknown_urns_are_kept() {
    let h = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    let m = Magnet::parse(&format!("magnet:?xt=urn:sha1:ABC&xt=urn:btih:{h}&flag")).unwrap();
    assert_eq!(
        m.other,
        vec![
            ("xt".to_string(), "urn:sha1:ABC".to_string()),
            ("flag".to_string(), String::new())
        ]
    );
    assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
}

fn text() -> impl Strategy<Value = String> {
    // Anything, including the characters the encoding must protect.
    prop::string::string_regex("[a-zA-Z0-9 %&=+#?/:.,~_\\-\u{e9}\u{1F600}]{0,24}").unwrap()
}

fn magnet() -> impl Strategy<Value = Magnet> {
    let hashes = (
        prop::option::of(any::<[u8; 20]>()),
        prop::option::of(any::<[u8; 32]>()),
        any::<bool>(),
    )
        .prop_map(|(v1, v2, force)| {
            let mut h = InfoHashes {
                v1: v1.map(Sha1Hash),
                v2: v2.map(Sha256Hash),
            };
            if h.v1.is_none() && h.v2.is_none() {
                if force {
                    h.v1 = Some(Sha1Hash([7; 20]));
                } else {
                    h.v2 = Some(Sha256Hash([9; 32]));
                }
            }
            h
        });
    let peer = (
        prop_oneof![
            "[a-z0-9.-]{1,12}",
            any::<std::net::Ipv6Addr>().prop_map(|a| format!("[{a}]")),
        ],
        1u16..,
    )
        .prop_map(|(h, p)| format!("{h}:{p}"));
    let range = (0usize..1000, 0usize..5).prop_map(|(a, n)| a..=a + n);
    let other = ("(xs|as|kt|x\\.foo|mt|[a-z]{3,6})", text());
    (
        hashes,
        prop::option::of(text()),
        prop::collection::vec(text(), 0..4),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(peer, 0..3),
        prop::collection::vec(range, 0..4),
        prop::collection::vec(other, 0..3),
    )
        .prop_map(|(h, name, tr, ws, pe, so, other)| {
            let mut m = Magnet::new(h);
            m.name = name;
            for t in tr {
                if !m.trackers.contains(&t) {
                    m.trackers.push(t);
                }
            }
            for w in ws {
                if !m.web_seeds.contains(&w) {
                    m.web_seeds.push(w);
                }
            }
            for p in pe {
                if !m.peers.contains(&p) {
                    m.peers.push(p);
                }
            }
            m.select_only = so;
            // Keys the parser interprets would not come back as `other`.
            m.other = other
                .into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "xt" | "dn" | "tr" | "ws" | "so"))
                .collect();
            m
        })
}

proptest! {
    #[test]
    fn write_then_parse_round_trips(m in magnet()) {
        let uri = m.to_uri();
        prop_assert!(uri.is_ascii());
        let back = Magnet::parse(&uri).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_uri(), uri);
    }

    #[test]
    fn parse_never_panics(s in "magnet:\\?[ -~]{0,200}") {
        let _ = Magnet::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_near_misses(
        hash in "[0-9a-zA-Z]{30,42}",
        tail in "[%&=+.a-z0-9:\\[\\]-]{0,40}",
    ) {
        let uri = format!("magnet:?xt=urn:btih:{hash}&{tail}");
        if let Ok(m) = Magnet::parse(&uri) {
            // Anything accepted is written canonically and reads back the same.
            prop_assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
        }
    }
}
