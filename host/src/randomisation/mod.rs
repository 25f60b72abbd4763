//! Cascading model-parameter randomisation (Adebayo et al., "Sanity Checks for Saliency
//! Maps", NeurIPS 2018): the model's layers are re-initialised from the output end towards
//! the input, cumulatively, and a method re-run at every stage; a method whose maps stay like
//! the original's does not depend on what the model learned.
//!
//! - Groups: `layer` = the module owning a parameter (`dec.conv2` for `dec.conv2.weight`);
//!   `block` = its top-level module (`dec`), under any module path every parameter shares (a
//!   model wrapped as `net.enc1...`, `net.dec1...` has blocks `net.enc1`, `net.dec1`). A
//!   parameter at the root is its own group.
//! - Order: the model's parameter order (input to output for sequentially defined models),
//!   reversed. Stage k has the last k groups re-initialised; stage 0 is the trained model.
//! - Re-initialisation: see [`init`]; each group draws from a seed made of the run's seed and
//!   the group's name, so a stage's parameters do not depend on how stages were run.

pub mod init;
pub mod similarity;

use crate::config::Granularity;

/// The group a parameter belongs to at `granularity`; `shared` is the number of leading
/// module names every parameter's path shares.
pub fn group_of(parameter: &str, granularity: Granularity, shared: usize) -> String {
    let Some((owner, _)) = parameter.rsplit_once('.') else {
        return parameter.to_string();
    };
    match granularity {
        Granularity::Layer => owner.to_string(),
        Granularity::Block => owner
            .split('.')
            .take(shared + 1)
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// How many leading module names all parameters share (`net` in `net.enc1.0.weight`, ...).
fn shared_depth(parameters: &[String]) -> usize {
    let owners: Vec<Vec<&str>> = parameters
        .iter()
        .map(|p| {
            p.rsplit_once('.')
                .map_or(vec![], |(o, _)| o.split('.').collect())
        })
        .collect();
    let shortest = owners.iter().map(Vec::len).min().unwrap_or(0);
    (0..shortest)
        .take_while(|&d| owners.iter().all(|o| o[d] == owners[0][d]))
        .count()
}

/// The groups in the order stages randomise them, output end first, each with its
/// parameters' names.
pub fn cascade_order(
    parameters: &[String],
    granularity: Granularity,
) -> Vec<(String, Vec<String>)> {
    let shared = shared_depth(parameters);
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for p in parameters {
        let g = group_of(p, granularity, shared);
        match groups.iter_mut().find(|(name, _)| *name == g) {
            Some((_, members)) => members.push(p.clone()),
            None => groups.push((g, vec![p.clone()])),
        }
    }
    groups.reverse();
    groups
}

/// Moves a model from stage `k - 1` to stage `k` (from 1): re-initialises the `k`-th group of
/// `groups` (in cascade order), leaving the groups of earlier stages randomised; returns the
/// parameters it changed.
pub fn advance(
    parameters: &[(String, tch::Tensor)],
    groups: &[(String, Vec<String>)],
    k: usize,
    seed: u64,
) -> anyhow::Result<Vec<String>> {
    let (group, members) = &groups[k - 1];
    init::reinitialise(parameters, group, members, seed)
}

/// The seed of one group's re-initialisation: the run's seed mixed with the group's name
/// (FNV-1a), so each group's values are fixed whatever ran before it.
pub fn group_seed(seed: u64, group: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in group.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_layers_or_blocks_in_reverse_parameter_order() {
        let params: Vec<String> = [
            "enc.conv1.weight",
            "enc.conv1.bias",
            "enc.norm.weight",
            "dec.conv2.weight",
            "dec.conv2.bias",
            "head.weight",
            "scale",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let names = |g: Granularity| -> Vec<String> {
            cascade_order(&params, g)
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(
            names(Granularity::Layer),
            ["scale", "head", "dec.conv2", "enc.norm", "enc.conv1"]
        );
        assert_eq!(names(Granularity::Block), ["scale", "head", "dec", "enc"]);
        let blocks = cascade_order(&params, Granularity::Block);
        assert_eq!(blocks[2].1, ["dec.conv2.weight", "dec.conv2.bias"]);
        assert_eq!(blocks[3].1.len(), 3);
    }

    #[test]
    fn blocks_are_found_under_a_wrapper_module() {
        let params: Vec<String> = [
            "net.enc1.0.weight",
            "net.enc1.1.weight",
            "net.dec1.0.weight",
            "net.head.bias",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let order: Vec<String> = cascade_order(&params, Granularity::Block)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(order, ["net.head", "net.dec1", "net.enc1"]);
    }

    /// On a real TorchScript model: after stage k exactly the parameters of the last k layers
    /// differ from the trained ones, and the model's own forward sees the change.
    #[test]
    fn stages_randomise_cumulatively_from_the_output_end() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/segmenter3d.pt");
        let model = crate::model::load(&path, tch::Device::Cpu, tch::Kind::Float, 0).unwrap();
        let parameters = model.parameters().unwrap();
        let names: Vec<String> = parameters.iter().map(|(n, _)| n.clone()).collect();
        let trained: Vec<tch::Tensor> = parameters.iter().map(|(_, t)| t.copy()).collect();
        let groups = cascade_order(&names, Granularity::Layer);
        let order: Vec<&str> = groups.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(order, ["head", "mid", "enc"]);
        let x = tch::Tensor::ones([1, 1, 8, 8, 8], (tch::Kind::Float, tch::Device::Cpu));
        let mut before = model.forward(&x).unwrap();
        let expected = [
            vec!["head.weight", "head.bias"],
            vec!["head.weight", "head.bias", "mid.weight", "mid.bias"],
            vec![
                "head.weight",
                "head.bias",
                "mid.weight",
                "mid.bias",
                "enc.weight",
                "enc.bias",
            ],
        ];
        for k in 1..=groups.len() {
            advance(&parameters, &groups, k, 0).unwrap();
            let changed: Vec<&str> = parameters
                .iter()
                .zip(&trained)
                .filter(|((_, now), then)| !now.equal(then))
                .map(|((n, _), _)| n.as_str())
                .collect();
            let mut want = expected[k - 1].clone();
            want.sort_by_key(|n| names.iter().position(|m| m == n));
            assert_eq!(changed, want, "stage {k}");
            let after = model.forward(&x).unwrap();
            assert!(
                !after.equal(&before),
                "stage {k} changes the model's output"
            );
            before = after;
        }
    }

    #[test]
    fn group_seeds_differ_by_name_and_run_seed() {
        assert_ne!(group_seed(0, "a"), group_seed(0, "b"));
        assert_ne!(group_seed(0, "a"), group_seed(1, "a"));
        assert_eq!(group_seed(7, "dec"), group_seed(7, "dec"));
    }
}
