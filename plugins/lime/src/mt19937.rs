//! NumPy's legacy random stream (`numpy.random.RandomState(seed)`, the Mersenne Twister
//! MT19937 of Matsumoto and Nishimura, 1998), as far as lime's image explainer draws from it:
//! `randint(0, 2, n)` for the samples and `randint(0, 1000)` for the segmentation's seed when
//! none is given. Drawing the same numbers makes lime's own samples, so that with the same
//! segmentation the explanation equals lime's.

pub struct RandomState {
    state: [u32; 624],
    index: usize,
}

impl RandomState {
    /// `RandomState(seed)`: NumPy seeds an integer below 2^32 with MT19937's `init_genrand`.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        RandomState { state, index: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.regenerate();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        // MT19937's tempering.
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// The next 624 words of the state (MT19937's recurrence).
    fn regenerate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 == 1 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// `randint(0, high)` for `high` up to 2^32: NumPy's legacy bounded integers draw a 32-bit
    /// word, mask it to the smallest all-ones mask covering `high - 1`, and reject values above
    /// `high - 1`.
    pub fn randint(&mut self, high: u64) -> u64 {
        assert!(
            (1..=1 << 32).contains(&high),
            "randint's bound is in 1..=2^32"
        );
        let max = high - 1;
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let value = u64::from(self.next_u32()) & mask;
            if value <= max {
                return value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RandomState;

    /// `np.random.RandomState(0).randint(0, 2, 16)` and `RandomState(42).randint(0, 1000, 4)`,
    /// printed by NumPy 2.4.
    #[test]
    fn draws_numpys_numbers() {
        let mut rng = RandomState::new(0);
        let bits: Vec<u64> = (0..16).map(|_| rng.randint(2)).collect();
        assert_eq!(bits, [0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0]);
        let mut rng = RandomState::new(42);
        let ints: Vec<u64> = (0..4).map(|_| rng.randint(1000)).collect();
        assert_eq!(ints, [102, 435, 860, 270]);
    }
}
