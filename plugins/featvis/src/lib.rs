//! Feature visualisation as an esegeta plugin: images optimised to excite a unit of a layer,
//! as Lucent (the PyTorch port of Lucid) renders them, on 2D and 3D models.
//!
//! param.rs is the image's parameterisation (a scaled Fourier spectrum or pixels, colours
//! decorrelated, squashed into (0, 1)), transform.rs the random jitter, scaling and rotation
//! that keep the optimisation from exploiting single pixels, objective.rs Lucent's objectives
//! and their weighted sums, and feature_visualisation.rs the Adam steps.

mod feature_visualisation;
mod objective;
mod param;
mod transform;

esegeta_plugin_api::export_plugin!("featvis");
