//! shap's explainers as an esegeta plugin (family `shap`): GradientExplainer (expected
//! gradients, with shap's own random draws), DeepExplainer (DeepLIFT against a background,
//! with shap's rules) and PartitionExplainer with an Image masker (Owen values over shap's
//! partition tree, blurred or constant hidden regions), on 2D images as shap computes them and
//! on 3D volumes alike, through every task wrapper.
//!
//! Written from shap 0.51's source (MIT) and checked against its outputs, made by
//! tools/make_shap_fixtures.py; the code is esegeta's own.

mod background;
mod deep_explainer;
mod gradient_explainer;
mod image_masker;
mod partition_explainer;

esegeta_plugin_api::export_plugin!("shap");
