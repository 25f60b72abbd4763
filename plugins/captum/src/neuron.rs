//! What Captum's neuron methods share: one neuron of a layer, chosen by `neuron_selector` (its
//! index in the layer's output, or input with `attribute_to_neuron_input`, without the batch
//! dimension), whose value per example replaces the target score as the function explained.

use anyhow::{bail, ensure, Result};
use esegeta_plugin_api::{Context, Tap};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

/// Captum's `neuron_selector`: one index per dimension of the layer's value after the batch
/// (an integer alone for a flat layer).
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(untagged)]
pub enum Selector {
    One(i64),
    Index(Vec<i64>),
}

impl Selector {
    fn index(&self) -> Vec<i64> {
        match self {
            Selector::One(i) => vec![*i],
            Selector::Index(v) => v.clone(),
        }
    }
}

/// One neuron of a layer.
pub struct Neuron<'a> {
    pub layer: &'a str,
    pub selector: &'a Selector,
    pub at_input: bool,
}

impl Neuron<'_> {
    /// The neuron's value per example, `[B]`, with autograd history where `inputs` has it.
    pub fn value(&self, ctx: &Context<'_>, inputs: &Tensor) -> Result<Tensor> {
        let mut values = ctx.layer_values(inputs, &[self.tap()])?;
        self.pick(&values.remove(0))
    }

    /// The tap on the layer's value the neuron is in.
    pub fn tap(&self) -> Tap<'_> {
        Tap::capture(self.layer).at_input(self.at_input)
    }

    /// The neuron's entry, per example, of a tensor shaped like the layer's value (the value
    /// itself, a gradient there): `[B]`.
    pub fn pick(&self, value: &Tensor) -> Result<Tensor> {
        let index = self.selector.index();
        let shape = value.size()[1..].to_vec();
        let inside = index.len() == shape.len()
            && index.iter().zip(&shape).all(|(&i, &n)| (0..n).contains(&i));
        ensure!(
            inside,
            "neuron_selector {index:?} is not a neuron of the {} of layer `{}`, whose shape \
             per example is {shape:?}: give one index per dimension, each below its size",
            if self.at_input { "input" } else { "output" },
            self.layer
        );
        let mut neuron = value.shallow_clone();
        for &i in index.iter().rev() {
            neuron = neuron.select(-1, i);
        }
        Ok(neuron)
    }

    /// The gradient of the neuron's value with respect to `inputs`.
    pub fn gradient(&self, ctx: &Context<'_>, inputs: &Tensor) -> Result<Tensor> {
        let x = inputs.detach().set_requires_grad(true);
        let value = self.value(ctx, &x)?;
        if !value.requires_grad() {
            bail!(
                "the value of layer `{}` carries no gradient to the input (a model exported \
                 with a fixed batch runs in chunks and copies it); export the model with a \
                 dynamic batch (tools/export_model.py)",
                self.layer
            );
        }
        let sum = value.sum(tch::Kind::Float);
        Ok(Tensor::f_run_backward(&[sum], &[&x], false, false)?.remove(0))
    }
}
