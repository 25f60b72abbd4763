//! `cargo bench`: exact incremental evaluation (host/src/model/onnx/incremental.rs) against
//! full forward passes, in one process, on copies of an input that each hide one window.
//!
//! Models: the ONNX fixtures of tests/fixtures/incremental (a ResNet-like on 64x64, a 3D UNet
//! on 24^3), and bench/models' ResNet-18 on 224x224 and 3D UNet on 64^3 when `make bench` has
//! made them. Per model, four copies: "full" is the model's forward on the batch, "incremental"
//! the same batch near the recorded input (one example at a time, as the host runs it on CPU).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use tch::{Device, Kind, Tensor};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Four copies of `base`, each with a window of `window` positions per spatial axis zeroed at a
/// different place (corners and centre, as occlusion visits them).
fn occluded(base: &Tensor, window: i64) -> Tensor {
    let size = base.size();
    let mut repeats = vec![1; size.len()];
    repeats[0] = 4;
    let copies = base.repeat(repeats.as_slice());
    for (k, at) in [0.0, 0.3, 0.6, 1.0].iter().enumerate() {
        let mut region = copies.get(k as i64);
        for (d, &n) in size.iter().enumerate().skip(2) {
            let start = ((n - window) as f64 * at) as i64;
            region = region.narrow(d as i64 - 1, start, window);
        }
        let _ = region.fill_(0.0);
    }
    copies
}

fn bench_model(c: &mut Criterion, name: &str, model: &Path, input: &Path, window: i64) {
    if !model.exists() {
        eprintln!(
            "{name}: {} is missing, skipped (make bench makes it)",
            model.display()
        );
        return;
    }
    let model = esegeta::model::load(model, Device::Cpu, Kind::Float, 0).unwrap();
    let graph = model.graph().unwrap();
    let base = esegeta::io::load_tensor(input).unwrap();
    let copies = occluded(&base, window);
    let recorded = tch::no_grad(|| graph.record(&base)).unwrap().unwrap();
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.bench_function("full", |b| {
        b.iter(|| tch::no_grad(|| model.forward(&copies)).unwrap())
    });
    group.bench_function("incremental", |b| {
        b.iter(|| {
            tch::no_grad(|| {
                for example in copies.split(1, 0) {
                    let _ = graph.forward_near(&recorded, &example).unwrap();
                }
            })
        })
    });
    group.finish();
}

fn incremental(c: &mut Criterion) {
    let fixtures = root().join("tests/fixtures/incremental");
    let models = root().join("bench/models");
    bench_model(
        c,
        "resnet_like 64x64, 8x8 windows",
        &fixtures.join("resnet_like.onnx"),
        &fixtures.join("resnet_like_x.npy"),
        8,
    );
    bench_model(
        c,
        "unet3d 24^3, 6^3 windows",
        &fixtures.join("unet3d.onnx"),
        &fixtures.join("unet3d_x.npy"),
        6,
    );
    bench_model(
        c,
        "resnet18 224x224, 32x32 windows",
        &models.join("resnet18.onnx"),
        &models.join("image.npy"),
        32,
    );
    bench_model(
        c,
        "unet3d 64^3, 16^3 windows",
        &models.join("unet3d.onnx"),
        &models.join("volume.npy"),
        16,
    );
}

criterion_group!(benches, incremental);
criterion_main!(benches);
