//! NumPy's default generator, `numpy.random.default_rng(seed)`, as far as quickshift needs it:
//! the seed spread into PCG64's state by `SeedSequence` (O'Neill's seed_seq hashing, as
//! NumPy's `bit_generator.pyx` describes it), PCG64's XSL-RR output (O'Neill, "PCG: A Family
//! of Simple Fast Space-Efficient Statistically Good Algorithms for Random Number
//! Generation", 2014), and `Generator.standard_normal` by Marsaglia and Tsang's ziggurat with
//! 256 layers on 52-bit draws ("The Ziggurat Method for Generating Random Variables", 2000),
//! its tables built at start from the paper's recursion. scikit-image's quickshift breaks
//! ties with `default_rng(rng).normal(scale=1e-5)`, so the same draws give its labels.

const MULT_A: u32 = 0x931e_8875;
const MULT_B: u32 = 0x58f3_8ded;
const INIT_A: u32 = 0x43b0_d7e5;
const INIT_B: u32 = 0x8b51_f9dd;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const POOL: usize = 4;

/// `SeedSequence(seed).generate_state(words, uint32)`.
fn seed_sequence(seed: u64, words: usize) -> Vec<u32> {
    let mut entropy = vec![seed as u32];
    if seed >> 32 != 0 {
        entropy.push((seed >> 32) as u32);
    }
    let mut hash = INIT_A;
    let mut hashmix = |value: u32| {
        let mut v = value ^ hash;
        hash = hash.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash);
        v ^ (v >> 16)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_MULT_L
            .wrapping_mul(x)
            .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
        r ^ (r >> 16)
    };
    let mut pool = [0u32; POOL];
    for (i, p) in pool.iter_mut().enumerate() {
        *p = hashmix(entropy.get(i).copied().unwrap_or(0));
    }
    for src in 0..POOL {
        for dst in 0..POOL {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    for &e in entropy.iter().skip(POOL) {
        for dst in 0..POOL {
            let h = hashmix(e);
            pool[dst] = mix(pool[dst], h);
        }
    }
    let mut hash = INIT_B;
    (0..words)
        .map(|i| {
            let mut v = pool[i % POOL] ^ hash;
            hash = hash.wrapping_mul(MULT_B);
            v = v.wrapping_mul(hash);
            v ^ (v >> 16)
        })
        .collect()
}

const PCG_MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

/// `numpy.random.PCG64(seed)` with NumPy's standard normals.
pub struct NumpyRng {
    state: u128,
    inc: u128,
    ziggurat: Ziggurat,
}

impl NumpyRng {
    pub fn new(seed: u64) -> Self {
        let words = seed_sequence(seed, 8);
        let word64 = |i: usize| words[2 * i] as u64 | (words[2 * i + 1] as u64) << 32;
        let init_state = (word64(0) as u128) << 64 | word64(1) as u128;
        let init_seq = (word64(2) as u128) << 64 | word64(3) as u128;
        let mut rng = NumpyRng {
            state: 0,
            inc: init_seq << 1 | 1,
            ziggurat: Ziggurat::new(),
        };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        ((s >> 64) as u64 ^ s as u64).rotate_right((s >> 122) as u32)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `Generator.standard_normal()`.
    pub fn standard_normal(&mut self) -> f64 {
        loop {
            let r = self.next_u64();
            let idx = (r & 0xff) as usize;
            let r = r >> 8;
            let rabs = (r >> 1) & 0x000f_ffff_ffff_ffff;
            let z = &self.ziggurat;
            let mut x = rabs as f64 * z.w[idx];
            if r & 1 == 1 {
                x = -x;
            }
            if rabs < z.k[idx] {
                return x;
            }
            if idx == 0 {
                loop {
                    let xx = -(1.0 / R) * (-self.next_f64()).ln_1p();
                    let yy = -(-self.next_f64()).ln_1p();
                    if yy + yy > xx * xx {
                        return if (rabs >> 8) & 1 == 1 {
                            -(R + xx)
                        } else {
                            R + xx
                        };
                    }
                }
            }
            let (f0, f1) = (self.ziggurat.f[idx - 1], self.ziggurat.f[idx]);
            if (f0 - f1) * self.next_f64() + f1 < (-0.5 * x * x).exp() {
                return x;
            }
        }
    }
}

/// The right edge of the base layer and the area of each layer, for 256 layers.
const R: f64 = 3.654_152_885_361_008_8;
const V: f64 = 0.004_928_673_233_974_655;

/// Per layer: the acceptance bound on the 52-bit draw, the draw's scale, and the density
/// at the layer's edge.
struct Ziggurat {
    k: [u64; 256],
    w: [f64; 256],
    f: [f64; 256],
}

impl Ziggurat {
    fn new() -> Self {
        let m = 4_503_599_627_370_496.0; // 2^52
        let (mut k, mut w, mut f) = ([0u64; 256], [0f64; 256], [0f64; 256]);
        let mut d = R;
        let mut t = d;
        let q = V / (-0.5 * d * d).exp();
        k[0] = (d / q * m) as u64;
        k[1] = 0;
        w[0] = q / m;
        w[255] = d / m;
        f[0] = 1.0;
        f[255] = (-0.5 * d * d).exp();
        for i in (1..255).rev() {
            d = (-2.0 * (V / d + (-0.5 * d * d).exp()).ln()).sqrt();
            k[i + 1] = (d / t * m) as u64;
            t = d;
            f[i] = (-0.5 * d * d).exp();
            w[i] = d / m;
        }
        Ziggurat { k, w, f }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_as_numpy_default_rng() {
        // np.random.SeedSequence(42).generate_state(4, np.uint64)[0] and PCG64(42).random_raw(2)
        let words = seed_sequence(42, 2);
        assert_eq!(
            words[0] as u64 | (words[1] as u64) << 32,
            0x9f1e_2e6d_cd54_0ab7
        );
        let mut rng = NumpyRng::new(42);
        assert_eq!(rng.next_u64(), 0xc621_fbcd_16d9_2688);
        assert_eq!(rng.next_u64(), 0x705a_5661_a791_ffc1);
        // np.random.default_rng(42).standard_normal(6)
        let numpy = [
            0.30471708,
            -1.03998411,
            0.7504512,
            0.94056472,
            -1.95103519,
            -1.30217951,
        ];
        let mut rng = NumpyRng::new(42);
        for expected in numpy {
            assert!((rng.standard_normal() - expected).abs() < 1e-7);
        }
        // Deep in the stream, through the ziggurat's rejection and tail paths:
        // z = np.random.default_rng(7).standard_normal(200000); z[-1], z.sum(), abs(z).max()
        let mut rng = NumpyRng::new(7);
        let z: Vec<f64> = (0..200_000).map(|_| rng.standard_normal()).collect();
        assert!((z[199_999] - 0.5342501005320923).abs() < 1e-12);
        assert!((z.iter().sum::<f64>() - 190.85261457580395).abs() < 1e-8);
        let max = z.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!((max - 4.522829666849905).abs() < 1e-12);
    }
}
