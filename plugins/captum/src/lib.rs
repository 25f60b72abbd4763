//! Captum's attribution methods (gradient, perturbation, rule-based and layer families) as an
//! esegeta plugin.
//!
//! One file per method, named as Captum names the class; parameters keep Captum 0.9's keyword
//! names and defaults. `noise_tunnel` wraps any gradient method. The `layer_*` methods and
//! `internal_influence` attribute to a layer's output and need a graph (ONNX) model.

mod baselines;
mod deconvolution;
mod deeplift;
mod deeplift_shap;
mod feature_ablation;
mod feature_permutation;
mod gradient_shap;
mod guided_backprop;
mod guided_grad_cam;
mod input_x_gradient;
mod integrated_gradients;
mod internal_influence;
mod kernel_shap;
mod layer_activation;
mod layer_conductance;
mod layer_deeplift;
mod layer_deeplift_shap;
mod layer_feature_ablation;
mod layer_grad_cam;
mod layer_gradient_shap;
mod layer_gradient_x_activation;
mod layer_integrated_gradients;
mod layer_lrp;
mod layer_params;
mod layer_path;
mod lime;
mod lime_base;
mod linear_model;
mod lrp;
mod neuron;
mod neuron_conductance;
mod neuron_feature_ablation;
mod neuron_gradient;
mod neuron_gradient_shap;
mod neuron_integrated_gradients;
mod noise_tunnel;
mod occlusion;
mod perturbation;
mod saliency;
mod shapley_value_sampling;
mod shapley_values;

esegeta_plugin_api::export_plugin!("captum");

/// serde's default for parameters that default to true.
pub(crate) fn yes() -> bool {
    true
}
