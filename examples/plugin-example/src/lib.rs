//! An example esegeta plugin built outside the workspace: Blur Integrated Gradients (Xu et al.
//! 2020), the integrated gradients of a path that blurs the input from a Gaussian of width
//! `max_sigma` down to none, instead of scaling it from a baseline.

mod blur;
mod blur_integrated_gradients;

esegeta_plugin_api::export_plugin!("example");
