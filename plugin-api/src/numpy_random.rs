//! NumPy's legacy random stream (`numpy.random.RandomState(seed)`, `np.random.seed(seed)`):
//! the Mersenne Twister MT19937 (Matsumoto and Nishimura, 1998) seeded with `init_genrand`,
//! NumPy's bounded integers by masked rejection, its doubles from 53 bits, and its
//! permutation. Methods whose reference library draws from it (lime's samples, shap's
//! GradientExplainer, scikit-image's maskSLIC seeds) draw the same numbers, so that their maps
//! equal the library's for the same seed, not only alike.

const N: usize = 624;
const M: usize = 397;

pub struct RandomState {
    state: [u32; N],
    index: usize,
}

impl RandomState {
    /// `RandomState(seed)` for an integer seed below 2^32.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        RandomState { state, index: N }
    }

    /// The next tempered 32-bit word.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.regenerate();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// The next 624 words of the state (MT19937's recurrence).
    fn regenerate(&mut self) {
        for i in 0..N {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % N] & 0x7fff_ffff);
            let mut next = self.state[(i + M) % N] ^ (y >> 1);
            if y & 1 == 1 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// A uniform integer in `0..=max` by masked rejection (NumPy's `random_interval`: one
    /// 32-bit word per try while `max` fits in 32 bits, two above).
    pub fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        loop {
            let value = if max <= u32::MAX as u64 {
                self.next_u32() as u64 & mask
            } else {
                ((self.next_u32() as u64) << 32 | self.next_u32() as u64) & mask
            };
            if value <= max {
                return value;
            }
        }
    }

    /// `randint(0, high)` (and `np.random.choice(high)`), `high >= 1`; `high == 1` draws
    /// nothing, as NumPy's does not.
    pub fn randint(&mut self, high: u64) -> u64 {
        self.interval(high.max(1) - 1)
    }

    /// `np.random.uniform()`: a double in [0, 1) from two draws (27 + 26 bits).
    pub fn uniform(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `choice(n, size, replace=False)`: the first `size` of a shuffled `0..n`.
    pub fn choice_without_replacement(&mut self, n: usize, size: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.interval(i as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(size);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::RandomState;

    /// Numbers printed by NumPy 2.4, and MT19937's published first output for seed 5489.
    #[test]
    fn draws_numpys_numbers() {
        assert_eq!(RandomState::new(5489).next_u32(), 3_499_211_612);
        // np.random.RandomState(0).randint(0, 2, 16); RandomState(42).randint(0, 1000, 4)
        let mut rng = RandomState::new(0);
        let bits: Vec<u64> = (0..16).map(|_| rng.randint(2)).collect();
        assert_eq!(bits, [0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0]);
        let mut rng = RandomState::new(42);
        let ints: Vec<u64> = (0..4).map(|_| rng.randint(1000)).collect();
        assert_eq!(ints, [102, 435, 860, 270]);
        // np.random.RandomState(123).permutation(10)
        assert_eq!(
            RandomState::new(123).choice_without_replacement(10, 10),
            vec![4, 0, 7, 5, 8, 3, 1, 6, 9, 2]
        );
        // np.random.seed(0); np.random.uniform(); [np.random.choice(10) for _ in range(5)]
        let u = RandomState::new(0).uniform();
        assert!((u - 0.548_813_503_927_324_8).abs() < 1e-16, "{u}");
        let mut r = RandomState::new(0);
        let got: Vec<u64> = (0..5).map(|_| r.randint(10)).collect();
        assert_eq!(got, [5, 0, 3, 3, 7]);
        // np.random.seed(0); [np.random.choice(8) for _ in range(3)], np.random.uniform()
        let mut r = RandomState::new(0);
        let got: Vec<u64> = (0..3).map(|_| r.randint(8)).collect();
        assert_eq!(got, [4, 7, 5]);
        assert!((r.uniform() - 0.844_265_748_581_017_3).abs() < 1e-16);
    }
}
