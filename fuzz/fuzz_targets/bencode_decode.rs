#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_bencode::fuzzing::decode_roundtrip(data));
