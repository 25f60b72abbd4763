//! CNN visualisations as an esegeta plugin: class activation maps that Captum does not have,
//! on a layer of an ONNX model (`esegeta layers MODEL` lists the layers), and CNN-vis's own
//! gradient maps (vanilla backprop, gradient times image; vanilla_backprop.rs) and guided ones
//! (guided Grad-CAM, layer activation with guided backpropagation; guided.rs), and the
//! optimisation methods that make an input: DeepDream, layer visualisation and inverted
//! representation (optimise.rs).
//!
//! Each follows pytorch-grad-cam 1.5.7 (the maintained implementations of these papers),
//! against which tools/make_layer_fixtures.py checks them: `score_cam` needs only forward
//! passes; the gradient CAMs (gradient_cam.rs) differ only in how they combine a layer's output
//! with its gradient, one small function each.

mod deep_dream;
mod grad_cam_plus_plus;
mod gradient_cam;
mod grayscale;
mod guided;
mod guided_grad_cam;
mod hires_cam;
mod inverted_representation;
mod layer_activation_guided_backprop;
mod layer_cam;
mod layer_visualisation;
mod optimise;
mod score_cam;
mod vanilla_backprop;
mod xgrad_cam;

esegeta_plugin_api::export_plugin!("cnnvis");
