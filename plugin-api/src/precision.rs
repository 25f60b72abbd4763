//! The kind reductions accumulate in, for methods that run at every precision the host offers
//! (fp32, the reduced bf16 and fp16, and the fp64 reference).

use tch::Kind;

/// float64 for float64 values, float32 for everything else: sums of half or bfloat16 values
/// accumulate in float32, as PyTorch's do, and an fp64 run stays float64 throughout, so that
/// its map is the reference that tells float32 rounding from error.
pub fn accumulation(kind: Kind) -> Kind {
    if kind == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_float64_accumulates_in_float64() {
        assert_eq!(accumulation(Kind::Double), Kind::Double);
        for kind in [Kind::Float, Kind::Half, Kind::BFloat16] {
            assert_eq!(accumulation(kind), Kind::Float);
        }
    }
}
