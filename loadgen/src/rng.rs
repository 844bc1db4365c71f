//! SplitMix64: the seeded, reproducible source of every value the load generator sends.
//!
//! SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014;
//! Vigna's `splitmix64.c`) adds a fixed odd constant to a 64-bit state and scrambles the result.
//! Because the state moves by a constant, output number `k` of a stream can be computed directly
//! without generating the `k` outputs before it ([`nth_output`]). The workload uses that to give
//! every point a value that depends only on the seed and the point's position, not on how many
//! connections sent it or in which order, so a later `--verify` can recompute any value alone.
//!
//! This module owns the generator and the mapping of its output to `[0, 1)`; what the values mean
//! is the workload's business.

/// The increment of the SplitMix64 state: 2^64 divided by the golden ratio, made odd.
pub const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A SplitMix64 stream. `next_u64` returns outputs 0, 1, 2, ... of the stream for its seed.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    /// The seed plus `GAMMA` times the number of outputs taken so far (wrapping).
    state: u64,
}

impl SplitMix64 {
    /// A stream seeded with `seed`; equal seeds give equal streams.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next output of the stream.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }
}

/// Output number `k` (counting from 0) of the stream seeded with `seed`, in constant time:
/// `nth_output(seed, k)` equals the `k + 1`-th call of `SplitMix64::new(seed).next_u64()`.
pub fn nth_output(seed: u64, k: u64) -> u64 {
    mix(seed.wrapping_add(GAMMA.wrapping_mul(k.wrapping_add(1))))
}

/// The SplitMix64 finaliser (a variant of MurmurHash3's `fmix64`).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps a 64-bit output to `[0, 1)` using its top 53 bits, so every result is exactly
/// representable and evenly spaced by 2^-53.
pub fn unit_f64(x: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (x >> 11) as f64 * SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_outputs() {
        // Published outputs of splitmix64.c (Rosetta Code, "Pseudo-random numbers/Splitmix64").
        let mut rng = SplitMix64::new(1_234_567);
        let expected = [
            6_457_827_717_110_365_317,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
            4_593_380_528_125_082_431,
            16_408_922_859_458_223_821,
        ];
        for want in expected {
            assert_eq!(rng.next_u64(), want);
        }
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn different_seeds_differ() {
        let a: Vec<u64> = (0..8).map(|k| nth_output(1, k)).collect();
        let b: Vec<u64> = (0..8).map(|k| nth_output(2, k)).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn nth_output_jumps_into_the_stream() {
        for seed in [0, 1, 1_234_567, u64::MAX] {
            let mut rng = SplitMix64::new(seed);
            for k in 0..100 {
                assert_eq!(nth_output(seed, k), rng.next_u64(), "seed {seed} k {k}");
            }
        }
    }

    #[test]
    fn unit_f64_stays_in_unit_interval() {
        assert_eq!(unit_f64(0), 0.0);
        assert!(unit_f64(u64::MAX) < 1.0);
        let mut rng = SplitMix64::new(7);
        for _ in 0..1000 {
            let u = unit_f64(rng.next_u64());
            assert!((0.0..1.0).contains(&u));
        }
    }
}
