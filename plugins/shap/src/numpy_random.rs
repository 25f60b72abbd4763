//! numpy's legacy global random generator (`np.random.seed`, `np.random.choice(n)`,
//! `np.random.uniform()`): MT19937 with numpy's seeding, bounded integers by masked
//! rejection and doubles from 53 random bits. shap's GradientExplainer draws its background
//! indices and path coefficients from it after `np.random.seed(rseed)`; drawing the same
//! numbers here makes esegeta's map equal to shap's for the same `rseed`, not only alike.

const N: usize = 624;
const M: usize = 397;

pub struct NumpyRandom {
    state: [u32; N],
    pos: usize,
}

impl NumpyRandom {
    /// `np.random.seed(seed)`: MT19937's `init_genrand`, as numpy seeds with one integer.
    pub fn seed(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        NumpyRandom { state, pos: N }
    }

    fn regenerate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX: u32 = 0x9908_b0df;
        for i in 0..N {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % N] & LOWER);
            let mut next = self.state[(i + M) % N] ^ (y >> 1);
            if y & 1 == 1 {
                next ^= MATRIX;
            }
            self.state[i] = next;
        }
        self.pos = 0;
    }

    /// One tempered 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.regenerate();
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `np.random.uniform()`: a double in [0, 1) from two draws (27 + 26 bits).
    pub fn uniform(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `np.random.choice(n)` (legacy `randint(0, n)`): masked rejection sampling on 32-bit
    /// draws; `n == 1` draws nothing, as numpy's does not.
    pub fn choice(&mut self, n: u32) -> u32 {
        assert!(n >= 1, "a choice among none");
        let max = n - 1;
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MT19937's published first output for `init_genrand(5489)`, and numpy's
    /// `np.random.seed(0); np.random.uniform()` = 0.5488135039273248.
    #[test]
    fn matches_the_reference_streams() {
        assert_eq!(NumpyRandom::seed(5489).next_u32(), 3_499_211_612);
        let u = NumpyRandom::seed(0).uniform();
        assert!((u - 0.548_813_503_927_324_8).abs() < 1e-16, "{u}");
        // np.random.seed(0); [np.random.choice(10) for _ in range(5)] == [5, 0, 3, 3, 7]
        let mut r = NumpyRandom::seed(0);
        let got: Vec<u32> = (0..5).map(|_| r.choice(10)).collect();
        assert_eq!(got, [5, 0, 3, 3, 7]);
        // np.random.seed(0); [np.random.choice(8) for _ in range(3)], np.random.uniform()
        let mut r = NumpyRandom::seed(0);
        let got: Vec<u32> = (0..3).map(|_| r.choice(8)).collect();
        assert_eq!(got, [4, 7, 5]);
        assert!((r.uniform() - 0.844_265_748_581_017_3).abs() < 1e-16);
    }
}
