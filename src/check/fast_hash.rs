//! A fast hash for the rules' maps of names and VMIDs (FxHash, as rustc
//! uses it). std's SipHash guards against keys chosen to collide, which
//! hosts.nix, the user's own file, has no reason to be; at 10,000 hosts
//! SipHash was a sixth of the rules' time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FxHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A map with room for `n` entries.
pub(crate) fn map_with_capacity<K, V>(n: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(n, BuildHasherDefault::default())
}

#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            self.add(u64::from_le_bytes(word));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weakest; the table indexes by
        // them.
        self.0.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_near_keys_apart() {
        let mut m: FastMap<&str, u32> = map_with_capacity(4);
        for (i, k) in ["web", "web1", "web2", "", "a-much-longer-name-than-eight"]
            .iter()
            .enumerate()
        {
            assert_eq!(m.insert(k, i as u32), None);
        }
        assert_eq!(m.get("web1"), Some(&1));
        assert_eq!(m.get("a-much-longer-name-than-eight"), Some(&4));
        assert_eq!(m.get("web3"), None);
        let mut vmids: FastMap<i64, ()> = map_with_capacity(0);
        assert!(vmids.insert(-1, ()).is_none() && vmids.insert(-1, ()).is_some());
    }
}
