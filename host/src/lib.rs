//! The esegeta host: everything around a method. It loads models and inputs, wraps the model
//! so that it returns class scores, loads method plugins, runs a method through the plugin ABI
//! and writes the map.

pub mod cli;
pub mod config;
pub mod doctor;
pub mod explain;
pub mod flags;
pub mod host_services;
pub mod io;
pub mod layers;
pub mod model;
pub mod near;
pub mod params;
pub mod patch;
pub mod patch_grid;
pub mod plugin_sdk;
pub mod plugins;
pub mod preprocess;
pub mod randomisation;
pub mod report;
pub mod rules;
pub mod run;
pub mod schema_text;
pub mod segment;
pub mod serve;
pub use esegeta_onnx::suggest;
pub mod taps;
pub mod task;
pub use esegeta_onnx::torch_errors;
