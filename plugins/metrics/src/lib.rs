//! Metrics of attribution maps as an esegeta plugin. Each metric is a method that explains
//! with another method through the Host handle (`Context::explain`) and scores the map.
//!
//! Captum's `infidelity` and `sensitivity_max` keep Captum's ids, names and defaults; the
//! localisation, faithfulness and complexity metrics are this plugin's own (`metrics.*`).

mod distance;
mod explained;
mod faithfulness;
mod infidelity;
mod localisation;
mod sensitivity;
mod sparseness;

esegeta_plugin_api::export_plugin!("metrics");
