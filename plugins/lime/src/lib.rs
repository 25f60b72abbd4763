//! lime's image explainer as an esegeta plugin (family `lime`): `lime.lime_image`, lime
//! 0.2.0.1's `LimeImageExplainer.explain_instance` as lime computes it (superpixels, random
//! on/off samples of them drawn from NumPy's stream as lime draws them, a cosine kernel, and
//! lime_base's feature selection and weighted ridge surrogate), on 2D images and on 3D volumes
//! with supervoxels, through every task wrapper.
//!
//! The surrogate's linear algebra is this crate's own (`surrogate`, `lars`): a plugin must not
//! link another plugin's crate, whose method registrations would leak into this cdylib.

mod distances;
mod lars;
mod lime_image;
mod samples;
mod segments;
mod surrogate;

esegeta_plugin_api::export_plugin!("lime");
