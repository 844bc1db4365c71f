//! Routing a metric name to its shard.
//!
//! The hash is XXH3-64 with seed 0 (Yann Collet's xxHash, through the `xxhash-rust` crate): its
//! output is fixed by the xxHash specification since 0.8.0, the same on every platform, run and
//! process, and it is fast on short keys such as metric names (go-carbon shards its cache with the
//! same function). The 64-bit hash is reduced to `0..n_shards` with Lemire's multiply-shift
//! ("A fast alternative to the modulo reduction", 2016), which uses the hash's high bits and
//! needs no division.
//!
//! The routing is public knowledge, so a hostile sender can pile its names onto one shard; that
//! costs balance, not correctness. The per-shard hash tables use a randomly seeded hasher, so
//! the same sender cannot make lookups quadratic.

use xxhash_rust::xxh3::xxh3_64;

/// The shard (`0..n_shards`) that owns `name`. Deterministic: the same name always maps to the
/// same shard for a given `n_shards`.
#[inline]
pub fn shard_of(name: &[u8], n_shards: usize) -> usize {
    reduce(name_hash(name), n_shards)
}

/// XXH3-64 of a metric name: what `shard_of` routes by, and what a batch compares first to
/// recognise a repeated name.
#[inline]
pub(super) fn name_hash(name: &[u8]) -> u64 {
    xxh3_64(name)
}

/// Lemire's fast range reduction: `hash × n / 2^64`, uniform when `hash` is.
#[inline]
pub(super) fn reduce(hash: u64, n_shards: usize) -> usize {
    debug_assert!(n_shards >= 1);
    ((u128::from(hash) * n_shards as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh3_matches_the_specification() {
        // XXH3_64bits("") from the xxHash reference (xxhsum --H3 on an empty file).
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn shard_of_is_stable() {
        // Frozen values: changing them moves every metric to another shard, which is harmless
        // in memory but breaks any test, benchmark or operator note that relies on routing.
        let cases: [(&[u8], usize, usize); 6] = [
            (b"", 16, 2),
            (b"carbon.agents.host-a.cache.size", 16, 9),
            (b"stats.counters.requests.count", 16, 10),
            (b"servers.web01.cpu.user", 16, 9),
            (b"servers.web01.cpu.user", 7, 4),
            (b"servers.web01.cpu.user", 1, 0),
        ];
        for (name, n_shards, expected) in cases {
            assert_eq!(shard_of(name, n_shards), expected, "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn shard_of_spreads_names() {
        let n_shards = 8;
        let mut counts = [0usize; 8];
        for i in 0..8000 {
            counts[shard_of(format!("servers.host{i}.cpu.user").as_bytes(), n_shards)] += 1;
        }
        // 1000 expected per shard; a broken reduction puts everything in one or two.
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }

    #[test]
    fn reduce_covers_the_range() {
        assert_eq!(reduce(0, 5), 0);
        assert_eq!(reduce(u64::MAX, 5), 4);
        assert_eq!(reduce(u64::MAX / 2, 2), 0);
        assert_eq!(reduce(u64::MAX / 2 + 1, 2), 1);
    }
}
