//! The node's only source of randomness: SplitMix64 over a state derived from the configured
//! seed, so that every run with the same seed behaves the same.

use crate::id::Id;

/// The next SplitMix64 output.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    mix64(*state)
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random id: three outputs, big-endian.
pub(crate) fn random_id(state: &mut u64) -> Id {
    let mut id = [0; 20];
    for chunk in id.chunks_mut(8) {
        for (o, b) in chunk.iter_mut().zip(splitmix64(state).to_be_bytes()) {
            *o = b;
        }
    }
    Id(id)
}
