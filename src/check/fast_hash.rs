//! A fast hash for the rules' maps of names and VMIDs: rustc's FxHash
//! (the `rustc-hash` crate). std's SipHash guards against keys chosen to
//! collide, which hosts.nix, the user's own file, has no reason to be; at
//! 10,000 hosts SipHash was a sixth of the rules' time.

pub(crate) use rustc_hash::FxHashMap as FastMap;

/// A map with room for `n` entries.
pub(crate) fn map_with_capacity<K, V>(n: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(n, Default::default())
}
