//! TorchRay's attribution methods as an esegeta plugin (family `torchray`): backpropagation
//! saliency (gradient, deconvnet, guided backprop), layer saliency (Grad-CAM, linear
//! approximation), excitation backprop and RISE, on 2D images as TorchRay computes them and on
//! 3D volumes alike, through every task wrapper.
//!
//! Written from the papers and TorchRay's documented signatures and defaults; its outputs,
//! made by tools/make_torchray_fixtures.py, are what the tests compare with (TorchRay's
//! licence forbids reusing its code, so none of it was read).

mod backprop;
mod excitation_backprop;
mod extremal_perturbation;
mod layer_saliency;
mod perturbation;
mod rise;
mod saliency;

esegeta_plugin_api::export_plugin!("torchray");
