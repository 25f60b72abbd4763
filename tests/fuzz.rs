//! Every reader of files from outside, fed mutated copies of valid files: npy, NIfTI (plain
//! and gzipped), PNG, JPEG, ONNX (the model and its external data) and run configs. Each
//! mutated file must give a result or an error, never a panic, within a time limit. The
//! mutations (byte flips, extreme integers over header fields, truncation, repeated and
//! inserted chunks) come from a seeded generator, so a failure names the reader and the
//! iteration that reproduce it.
//!
//! CI runs `ESEGETA_FUZZ_ITERATIONS` (default 200) inputs per reader; `make fuzz` runs more.
//! The counts are printed: `fuzz npy: 200 inputs, 0 panics, 0 hangs`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An input that takes longer than this to be read or refused counts as a hang.
const LIMIT: Duration = Duration::from_secs(20);

fn iterations() -> usize {
    std::env::var("ESEGETA_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// One to four mutations of `seed`.
fn mutate(seed: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if bytes.is_empty() {
            bytes.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..6) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes[at] = rng.random(),
            2 => {
                // An extreme integer over what may be a header field (a size, an offset).
                let value: [u8; 8] = match rng.random_range(0..4) {
                    0 => u64::MAX.to_le_bytes(),
                    1 => (i64::MAX as u64).to_le_bytes(),
                    2 => 0u64.to_le_bytes(),
                    _ => (1u64 << 40).to_le_bytes(),
                };
                let width = [2usize, 4, 8][rng.random_range(0..3)];
                for (i, b) in value.iter().take(width).enumerate() {
                    if at + i < bytes.len() {
                        bytes[at + i] = *b;
                    }
                }
            }
            3 => bytes.truncate(at),
            4 => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                let chunk = bytes[at..end].to_vec();
                bytes.splice(at..at, chunk);
            }
            _ => {
                let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                bytes.splice(at..at, junk);
            }
        }
    }
    bytes
}

/// Feeds `iterations()` mutations of `seed` to `read` (on a file named `name` in a scratch
/// folder, with `beside` copied next to it), and fails on any panic or hang.
fn fuzz(reader: &str, seed: &[u8], name: &str, beside: &[PathBuf], read: fn(&Path)) {
    let dir = scratch(&format!("fuzz-{reader}"));
    for file in beside {
        std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
    }
    let mut rng = StdRng::seed_from_u64(0x5eed ^ reader.len() as u64);
    let (mut panics, mut hangs) = (Vec::new(), Vec::new());
    let n = iterations();
    for i in 0..n {
        let path = dir.join(format!("{i}-{name}"));
        std::fs::write(&path, mutate(seed, &mut rng)).unwrap();
        let (done, finished) = mpsc::channel();
        let target = path.clone();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| read(&target));
            let _ = done.send(outcome.is_ok());
        });
        match finished.recv_timeout(LIMIT) {
            Ok(true) => {
                let _ = std::fs::remove_file(&path);
            }
            Ok(false) => panics.push(path.display().to_string()),
            Err(_) => hangs.push(path.display().to_string()),
        }
    }
    println!(
        "fuzz {reader}: {n} inputs, {} panics, {} hangs",
        panics.len(),
        hangs.len()
    );
    assert!(
        panics.is_empty() && hangs.is_empty(),
        "{reader}: panics on {panics:?}, hangs on {hangs:?} (the files are kept)"
    );
}

fn read_input(path: &Path) {
    let _ = esegeta::io::load_input(path);
}

#[test]
fn npy_reader() {
    let seed = std::fs::read(fixture("classifier2d_x.npy")).unwrap();
    fuzz("npy", &seed, "x.npy", &[], read_input);
}

#[test]
fn nifti_readers() {
    let gz = std::fs::read(fixture("vol.nii.gz")).unwrap();
    fuzz("nii.gz", &gz, "v.nii.gz", &[], read_input);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .unwrap();
    fuzz("nii", &plain, "v.nii", &[], read_input);
}

#[test]
fn image_readers() {
    let png = std::fs::read(fixtures().join("../../configs/demo/scan_with_lesion.png")).unwrap();
    fuzz("png", &png, "i.png", &[], read_input);
    // A JPEG of the same scan, written by the image crate.
    let dir = scratch("fuzz-jpeg-seed");
    let jpeg = dir.join("seed.jpg");
    image::open(fixtures().join("../../configs/demo/scan_with_lesion.png"))
        .unwrap()
        .save(&jpeg)
        .unwrap();
    fuzz(
        "jpeg",
        &std::fs::read(&jpeg).unwrap(),
        "i.jpg",
        &[],
        read_input,
    );
}

fn read_model(path: &Path) {
    let _ = esegeta::model::load(path, tch::Device::Cpu, tch::Kind::Float, 0);
}

#[test]
fn onnx_reader() {
    let model = fixture("onnx/classifier2d.onnx");
    let seed = std::fs::read(&model).unwrap();
    let data = fixture("onnx/classifier2d.onnx.data");
    // The model names its data file `classifier2d.onnx.data`: copied beside each mutation.
    fuzz("onnx", &seed, "m.onnx", &[data.clone()], read_model);
    // And the external data itself, read through an intact model.
    let dir = scratch("fuzz-onnx-data");
    let mut rng = StdRng::seed_from_u64(7);
    let bytes = std::fs::read(&data).unwrap();
    let n = iterations();
    for i in 0..n {
        std::fs::copy(&model, dir.join("classifier2d.onnx")).unwrap();
        std::fs::write(dir.join("classifier2d.onnx.data"), mutate(&bytes, &mut rng)).unwrap();
        let path = dir.join("classifier2d.onnx");
        let outcome = std::panic::catch_unwind(|| read_model(&path));
        assert!(outcome.is_ok(), "onnx data: a panic at iteration {i}");
    }
    println!("fuzz onnx external data: {n} inputs, 0 panics");
}

fn read_config(path: &Path) {
    let plugins = fixtures().join("../../target/release");
    let registry = esegeta::plugins::Registry::discover(&[plugins]);
    let _ = esegeta::config::check_with(path, &registry, false);
}

#[test]
fn run_config_reader() {
    let config = serde_json::json!({
        "model": {"path": fixture("classifier2d.pt"), "task": "classification"},
        "inputs": [{"path": fixture("classifier2d_x.npy"), "targets": [0, 1]}],
        "preprocessing": {"normalize": {"mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]}},
        "methods": [{"id": "captum.integrated_gradients", "params": {"n_steps": 8}},
                    {"id": "captum.occlusion", "params": {"sliding_window_shapes": [3, 2, 2]}}],
        "execution": {"patching": {"size": [4, 4]}},
        "output": {"folder": "out", "formats": ["npy", "png"]}
    });
    let seed = serde_json::to_vec_pretty(&config).unwrap();
    fuzz("config", &seed, "c.json", &[], read_config);
}

/// Headers that declare more than any input may hold are refused before anything of that size
/// is allocated, with the size they would need: an npy claiming 10^12 values, a NIfTI volume
/// claiming 2048 x 2048 x 1024 voxels, plain and as a gzip bomb (a few KB that would inflate to
/// 16 GiB).
#[test]
fn headers_that_declare_too_much_are_refused_before_allocating() {
    let dir = scratch("fuzz-bombs");
    let refused = |path: &Path, words: &[&str]| {
        let Err(e) = esegeta::io::load_input(path) else {
            panic!("{} was read", path.display())
        };
        let e = format!("{e:#}");
        for w in words {
            assert!(e.contains(w), "{w:?} missing from: {e}");
        }
    };
    let mut header =
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }".to_vec();
    while (header.len() + 11) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend((header.len() as u16).to_le_bytes());
    npy.extend(header);
    npy.extend([0u8; 64]);
    let path = dir.join("bomb.npy");
    std::fs::write(&path, npy).unwrap();
    refused(
        &path,
        &["1000000000000 values", "3725 GiB", "at most 2^31 values"],
    );

    let gz = std::fs::read(fixture("vol.nii.gz")).unwrap();
    let mut nii = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut nii)
        .unwrap();
    // NIfTI-1's dim[1..4], int16 at bytes 42..48.
    for (i, d) in [2048i16, 2048, 1024].iter().enumerate() {
        nii[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    let path = dir.join("bomb.nii");
    std::fs::write(&path, &nii).unwrap();
    refused(&path, &["[2048, 2048, 1024]", "16 GiB"]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, &nii).unwrap();
    let path = dir.join("bomb.nii.gz");
    std::fs::write(&path, encoder.finish().unwrap()).unwrap();
    refused(&path, &["[2048, 2048, 1024]", "16 GiB"]);
}

/// A protobuf field: tag (field number, wire type 2: length-delimited) and its bytes.
fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for mut v in [number << 3 | 2, bytes.len() as u64] {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    out.extend_from_slice(bytes);
    out
}

/// A model whose graph nests 5000 subgraphs (an `If` node's branch holding a graph whose
/// node holds a branch, and so on; prost would stop a recursive decoder at depth 100), the
/// shape of a decoder's stack overflow. The importer reads no subgraphs: it skips the branch's
/// bytes without descending, and refuses the graph with a sentence (this one has no input).
/// (In onnx.proto: ModelProto.graph 7, GraphProto.node 1, NodeProto.op_type 4 and
/// attribute 5, AttributeProto.name 1 and g 6.)
#[test]
fn a_deeply_nested_protobuf_is_refused_without_descending() {
    let mut graph = Vec::new();
    for _ in 0..5_000 {
        let attribute = [field(1, b"then_branch"), field(6, &graph)].concat();
        let node = [field(4, b"If"), field(5, &attribute)].concat();
        graph = field(1, &node);
    }
    let model = field(7, &graph);
    let path = scratch("fuzz-nested").join("nested.onnx");
    std::fs::write(&path, model).unwrap();
    let outcome = std::panic::catch_unwind(|| {
        esegeta::model::load(&path, tch::Device::Cpu, tch::Kind::Float, 0).err()
    });
    let error = outcome.expect("no panic").expect("the model is refused");
    let text = format!("{error:#}");
    assert!(
        text.contains("cannot load the ONNX model") && text.contains("input"),
        "{text}"
    );
}
