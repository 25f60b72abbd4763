//! Captum's attribution methods (gradient and perturbation families) as an esegeta plugin.
//!
//! One file per method, named as Captum names the class; parameters keep Captum 0.9's keyword
//! names and defaults. `noise_tunnel` wraps any gradient method.

mod feature_ablation;
mod feature_permutation;
mod input_x_gradient;
mod integrated_gradients;
mod noise_tunnel;
mod occlusion;
mod perturbation;
mod saliency;
mod shapley_value_sampling;

esegeta_plugin_api::export_plugin!("captum");
