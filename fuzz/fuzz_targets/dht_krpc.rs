#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_dht::fuzzing::krpc_decode(data));
