#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_metainfo::fuzzing::parse_magnet(data));
