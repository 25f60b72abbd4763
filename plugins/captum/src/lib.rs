//! Captum's attribution methods (gradient, perturbation, rule-based and layer families) as an
//! esegeta plugin.
//!
//! One file per method, named as Captum names the class; parameters keep Captum 0.9's keyword
//! names and defaults. `noise_tunnel` wraps any gradient method.

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
mod layer_deeplift;
mod layer_deeplift_shap;
mod lrp;
mod noise_tunnel;
mod occlusion;
mod perturbation;
mod saliency;
mod shapley_value_sampling;

esegeta_plugin_api::export_plugin!("captum");
