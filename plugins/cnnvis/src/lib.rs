//! CNN visualisations as an esegeta plugin: class activation maps that Captum does not have,
//! on a layer of an ONNX model (`esegeta layers MODEL` lists the layers).
//!
//! `score_cam` follows pytorch-grad-cam's `ScoreCAM` (the maintained implementation of Wang
//! et al.), against which tools/make_layer_fixtures.py checks it.

mod score_cam;

esegeta_plugin_api::export_plugin!("cnnvis");
