//! A keyed pseudo-random permutation of `0..n` (a balanced Feistel network with cycle walking),
//! so that consecutive probes land on unrelated hosts and subnets, like ZMap's cyclic walk.
//!
//! Evaluating position `i` costs a few hash rounds and no memory: a /8 is never materialised.

const ROUNDS: usize = 4;

#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; ROUNDS],
}

impl Permutation {
    pub fn new(n: u64, seed: u64) -> Permutation {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        let bits = bits + bits % 2;
        let mut state = seed;
        let keys = std::array::from_fn(|_| splitmix64(&mut state));
        Permutation { n, half_bits: bits / 2, keys }
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The element at position `i` (`i < n`).
    pub fn get(&self, i: u64) -> u64 {
        debug_assert!(i < self.n);
        let mut x = i;
        // The Feistel network permutes 0..2^bits with 2^bits < 4n; walking the cycle until we land below n
        // restricts it to a permutation of 0..n, taking fewer than four steps on average.
        loop {
            x = self.feistel(x);
            if x < self.n {
                return x;
            }
        }
    }

    /// The position of `value` in the permutation (`value < n`): the inverse of [`Permutation::get`].
    pub fn position(&self, value: u64) -> u64 {
        debug_assert!(value < self.n);
        let mut x = value;
        loop {
            x = self.feistel_inverse(x);
            if x < self.n {
                return x;
            }
        }
    }

    fn feistel_inverse(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys.iter().rev() {
            let prev = right ^ (mix(left ^ key) & mask);
            right = left;
            left = prev;
        }
        (left << self.half_bits) | right
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let next = left ^ (mix(right ^ key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix(*state)
}

/// The splitmix64 finaliser: a fast bijective mixer with full avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_permutation_for_many_sizes() {
        for n in [1u64, 2, 3, 5, 16, 17, 255, 256, 1000, 4097] {
            let p = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let v = p.get(i) as usize;
                assert!(!seen[v], "n={n}: {v} twice");
                seen[v] = true;
            }
        }
    }

    #[test]
    fn position_inverts_get() {
        for n in [1u64, 7, 1000, 65537] {
            let p = Permutation::new(n, 3);
            for i in (0..n).step_by(1 + n as usize / 500) {
                assert_eq!(p.position(p.get(i)), i);
            }
        }
    }

    #[test]
    fn seed_changes_the_order_deterministically() {
        let a: Vec<u64> = (0..100).map(|i| Permutation::new(100, 1).get(i)).collect();
        let b: Vec<u64> = (0..100).map(|i| Permutation::new(100, 1).get(i)).collect();
        let c: Vec<u64> = (0..100).map(|i| Permutation::new(100, 2).get(i)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn consecutive_positions_are_spread() {
        // Over a /16 worth of positions, neighbours in scan order are rarely neighbours in address order.
        let p = Permutation::new(65536, 7);
        let close = (0..65535).filter(|&i| p.get(i).abs_diff(p.get(i + 1)) < 256).count();
        assert!(close < 65536 / 50, "{close} consecutive probes in the same /24");
    }
}
