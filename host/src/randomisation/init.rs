//! Re-initialising a group's parameters as PyTorch initialises a fresh module, from a seed:
//!
//! - a weight of 2 or more dims (Conv, ConvTranspose, Linear): `kaiming_uniform_(a=sqrt(5))`,
//!   that is uniform on `[-1/sqrt(fan_in), 1/sqrt(fan_in)]` with `fan_in = size(1) x` the
//!   kernel's size (PyTorch's `_calculate_fan_in_and_fan_out`, for transposed convolutions too);
//! - the bias beside such a weight: uniform on the same interval;
//! - a 1-dim weight (batch, instance, group and layer norms): ones; its bias: zeros (so a
//!   norm layer is reset to the identity rather than randomised, as a fresh one would be);
//! - anything else: normal with the parameter's own mean and standard deviation.

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use tch::{Kind, Tensor};

/// Re-initialises, in place, the parameters named `members` of `parameters` (name, tensor
/// sharing the model's storage), from the seed of `group`; returns the names it changed.
pub fn reinitialise(
    parameters: &[(String, Tensor)],
    group: &str,
    members: &[String],
    seed: u64,
) -> Result<Vec<String>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(super::group_seed(seed, group));
    let mut changed = Vec::new();
    for (name, tensor) in parameters {
        if !members.contains(name) {
            continue;
        }
        let values = fresh_values(name, tensor, parameters, &mut rng)?;
        let fresh = Tensor::from_slice(&values)
            .reshape(tensor.size())
            .to_kind(tensor.kind())
            .to_device(tensor.device());
        tch::no_grad(|| {
            let mut target = tensor.shallow_clone();
            target.copy_(&fresh);
        });
        changed.push(name.clone());
    }
    Ok(changed)
}

fn fresh_values(
    name: &str,
    tensor: &Tensor,
    parameters: &[(String, Tensor)],
    rng: &mut impl Rng,
) -> Result<Vec<f32>> {
    let n = tensor.numel();
    let uniform = |bound: f64, rng: &mut dyn rand::RngCore| -> Vec<f32> {
        (0..n)
            .map(|_| rng.random_range(-bound..=bound) as f32)
            .collect()
    };
    let is_weight = name.ends_with("weight");
    if is_weight && tensor.dim() >= 2 {
        return Ok(uniform(1.0 / fan_in(&tensor.size()).sqrt(), rng));
    }
    if let Some(owner) = name.strip_suffix("bias") {
        let weight = parameters
            .iter()
            .find(|(w, _)| *w == format!("{owner}weight"));
        return Ok(match weight {
            Some((_, w)) if w.dim() >= 2 => uniform(1.0 / fan_in(&w.size()).sqrt(), rng),
            _ => vec![0.0; n],
        });
    }
    if is_weight && tensor.dim() == 1 {
        return Ok(vec![1.0; n]);
    }
    let t = tensor.to_kind(Kind::Double);
    let (mean, std) = (
        t.mean(Kind::Double).double_value(&[]),
        if n > 1 {
            t.std(true).double_value(&[])
        } else {
            0.0
        },
    );
    let normal = Normal::new(mean, std.max(f64::MIN_POSITIVE))?;
    Ok((0..n).map(|_| normal.sample(rng) as f32).collect())
}

/// PyTorch's fan-in of a weight: its second dim times the kernel's size.
fn fan_in(size: &[i64]) -> f64 {
    (size[1] * size[2..].iter().product::<i64>()).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn params() -> Vec<(String, Tensor)> {
        let t = |shape: &[i64]| Tensor::full(shape, 7.0, (Kind::Float, tch::Device::Cpu));
        vec![
            ("conv.weight".into(), t(&[4, 3, 2, 2])),
            ("conv.bias".into(), t(&[4])),
            ("norm.weight".into(), t(&[4])),
            ("norm.bias".into(), t(&[4])),
        ]
    }

    #[test]
    fn weights_get_pytorch_default_bounds_norms_are_reset_and_other_groups_untouched() {
        let p = params();
        let changed = reinitialise(&p, "conv", &names(&["conv.weight", "conv.bias"]), 3).unwrap();
        assert_eq!(changed, ["conv.weight", "conv.bias"]);
        let bound = 1.0 / 12f64.sqrt(); // fan_in = 3 * 2 * 2
        for (name, t) in &p[..2] {
            let max = t.abs().max().double_value(&[]);
            assert!(max <= bound + 1e-7 && max > 0.0, "{name}: {max}");
            assert!(t.std(true).double_value(&[]) > 0.01, "{name} is random");
        }
        assert_eq!(
            p[2].1.mean(Kind::Float).double_value(&[]),
            7.0,
            "norm untouched"
        );
        reinitialise(&p, "norm", &names(&["norm.weight", "norm.bias"]), 3).unwrap();
        assert_eq!(p[2].1.min().double_value(&[]), 1.0);
        assert_eq!(p[3].1.abs().max().double_value(&[]), 0.0);
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let (a, b) = (params(), params());
        reinitialise(&a, "conv", &names(&["conv.weight"]), 11).unwrap();
        reinitialise(&b, "conv", &names(&["conv.weight"]), 11).unwrap();
        assert!(a[0].1.equal(&b[0].1));
        let c = params();
        reinitialise(&c, "conv", &names(&["conv.weight"]), 12).unwrap();
        assert!(!a[0].1.equal(&c[0].1));
    }
}
