//! The layout TorchScript models get (host/src/model/torchscript.rs): on CPU, images go in
//! channels-last, and a model that cannot take it (a `view` of a feature map) falls back to the
//! default layout. Both give Captum's maps, of forward passes and of gradients (fixtures from
//! tools/make_layout_fixtures.py), within 1e-5 of the map's scale, and gradients come back in
//! the default layout.

#[macro_use]
mod common;

use common::*;

folder_cases!(
    "layout",
    view_occlusion,
    flatten_occlusion,
    view_integrated_gradients,
    flatten_integrated_gradients
);

/// The debug log of an occlusion of `model`.
fn layout_log(model: &str) -> String {
    occlusion_log(
        &format!("layout/{model}.pt"),
        "layout/x.npy",
        r#"{"sliding_window_shapes": [3, 4, 4], "strides": 2}"#,
        &["--target", "1"],
    )
}

#[test]
fn a_model_that_views_a_feature_map_falls_back_to_the_default_layout() {
    let log = layout_log("view");
    assert!(log.contains("retrying in the default layout"), "{log}");
    assert!(log.contains("view size is not compatible"), "{log}");
    // Only once: from then on the model gets the default layout.
    assert_eq!(
        log.matches("retrying in the default layout").count(),
        1,
        "{log}"
    );
    assert!(!layout_log("flatten").contains("retrying"));
}

/// Plugins take gradients with respect to the inputs they pass and may `view` them: the
/// gradient must come back contiguous, as in the default layout.
#[test]
fn gradients_through_channels_last_come_back_in_the_default_layout() {
    use tch::{Device, Kind, Tensor};
    let path = fixture("layout/flatten.pt");
    let model = esegeta::model::load(&path, Device::Cpu, Kind::Float, 0).unwrap();
    let x = load(&fixture("layout/x.npy")).repeat([2, 1, 1, 1]);
    let x = x.set_requires_grad(true);
    let score = model.forward(&x).unwrap().select(1, 1).sum(Kind::Float);
    let grad = Tensor::run_backward(&[score], &[&x], false, false).remove(0);
    assert!(grad.is_contiguous(), "strides {:?}", grad.stride());
    // Values: the integrated gradients cases above.
    assert!(grad.abs().max().double_value(&[]) > 0.0);
}
