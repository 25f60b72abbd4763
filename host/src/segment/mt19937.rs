//! The Mersenne Twister MT19937 (Matsumoto and Nishimura, 1998) seeded as NumPy's legacy
//! `RandomState(seed)` seeds it, with NumPy's bounded integers and permutation: maskSLIC
//! draws its seeds from `RandomState(123)`, so the same draws give scikit-image's seeds.

pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 == 1 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// A uniform integer in `0..=max` by masked rejection (NumPy's `random_interval`).
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

    /// `RandomState.choice(n, size, replace=False)`: the first `size` of a shuffled `0..n`.
    pub fn choice(&mut self, n: usize, size: usize) -> Vec<usize> {
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
    use super::*;

    #[test]
    fn draws_as_numpy_random_state() {
        // np.random.RandomState(123).permutation(10)
        assert_eq!(
            Mt19937::new(123).choice(10, 10),
            vec![4, 0, 7, 5, 8, 3, 1, 6, 9, 2]
        );
        // The reference implementation's first output for its default seed.
        assert_eq!(Mt19937::new(5489).next_u32(), 3_499_211_612);
    }
}
