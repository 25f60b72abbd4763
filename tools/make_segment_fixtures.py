"""scikit-image's superpixels and supervoxels, the references of esegeta's segmentation service.

What it does
------------
Makes a few small seeded inputs (a 128x128 PNG of ``astronaut`` at a quarter of its size, a
64x64 colour crop of ``astronaut``, a 64x64 grey crop of ``camera``, a 24^3 volume of smoothed
blobs with noise, a disk ROI on the 64x64 images and a ball in the volume), runs scikit-image
0.26's ``segmentation.slic``, ``felzenszwalb`` and ``quickshift`` on them and writes
``tests/fixtures/segment/``: the inputs as float32 ``.npy`` (the photo as its PNG)
in esegeta's layout (``[1, C, H, W]``, ``[1, 1, D, H, W]``), the ROIs, each case's labels
(``<case>.npy``, int16, ``[1, ...spatial]``) and ``cases.json`` (input, algorithm, params,
labels), which tests/segment.rs reads. scikit-image is fed the float32 values as float64,
channels last (``channel_axis=None`` for one channel), as esegeta computes in float64.

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install scikit-image==0.26.0 torch==2.13.0
    ~/.cache/esegeta/venv/bin/python tools/make_segment_fixtures.py

Deterministic: the only randomness is seeded (NumPy's default_rng(0) for the volume's
noise; quickshift's own tie-breaking noise, rng=42).
"""

import json
from pathlib import Path

import numpy as np
import skimage
from skimage import data, filters, segmentation, transform

assert skimage.__version__ == "0.26.0", skimage.__version__

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "segment"


def inputs():
    colour = transform.resize(data.astronaut()[0:256, 128:384], (64, 64), anti_aliasing=True)
    grey = transform.resize(data.camera()[64:320, 128:384], (64, 64), anti_aliasing=True)
    rng = np.random.default_rng(0)
    blobs = data.binary_blobs(24, blob_size_fraction=0.3, n_dim=3, rng=1).astype(float)
    volume = filters.gaussian(blobs, sigma=1.0) + 0.05 * rng.standard_normal((24,) * 3)
    yy, xx = np.mgrid[:64, :64]
    roi = ((yy - 30) ** 2 + (xx - 34) ** 2 < 22**2).astype(np.uint8)
    zz, yy, xx = np.mgrid[:24, :24, :24]
    sphere = ((zz - 12) ** 2 + (yy - 11) ** 2 + (xx - 13) ** 2 < 9**2).astype(np.uint8)
    # A photo read as esegeta reads a PNG (uint8 / 255 in float32): 128x128, big enough for
    # fragments at the image's first rows that meet no labelled neighbour.
    photo = data.astronaut()[::4, ::4]
    return {
        "photo": photo.astype(np.float32) / np.float32(255),
        "colour": colour.astype(np.float32),
        "grey": grey.astype(np.float32),
        "volume": volume.astype(np.float32),
    }, {"roi.npy": roi, "sphere.npy": sphere}


CASES = [
    # (case, input, algorithm, params)
    ("slic_photo", "photo", "slic", {}),
    ("slic_photo_loose", "photo", "slic", {"compactness": 1}),
    ("felzenszwalb_photo", "photo", "felzenszwalb", {"scale": 100, "sigma": 0.5, "min_size": 50}),
    ("quickshift_photo_lime", "photo", "quickshift",
     {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}),
    ("slic_colour", "colour", "slic", {}),
    ("slic_colour_sigma", "colour", "slic", {"n_segments": 40, "compactness": 20, "sigma": 1}),
    ("slic_colour_zero", "colour", "slic", {"n_segments": 60, "slic_zero": True}),
    ("slic_colour_mask", "colour", "slic", {"n_segments": 30, "mask": "roi.npy"}),
    ("slic_colour_mask_zero", "colour", "slic",
     {"n_segments": 30, "mask": "roi.npy", "slic_zero": True}),
    ("slic_volume_mask", "volume", "slic",
     {"n_segments": 20, "compactness": 0.1, "mask": "sphere.npy"}),
    ("slic_grey", "grey", "slic", {"n_segments": 50, "compactness": 0.1}),
    ("slic_volume", "volume", "slic", {"n_segments": 27, "compactness": 0.1}),
    (
        "slic_volume_spacing",
        "volume",
        "slic",
        {"n_segments": 20, "compactness": 0.2, "spacing": [2, 1, 1], "sigma": 0.5,
         "start_label": 0},
    ),
    ("felzenszwalb_colour", "colour", "felzenszwalb", {"scale": 100, "sigma": 0.5, "min_size": 20}),
    ("felzenszwalb_grey", "grey", "felzenszwalb", {"scale": 50}),
    ("quickshift_colour_lime", "colour", "quickshift",
     {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}),
    ("quickshift_colour", "colour", "quickshift", {}),
    ("quickshift_grey", "grey", "quickshift",
     {"kernel_size": 3, "max_dist": 20, "ratio": 0.5, "convert2lab": False}),
    # The camera's flat sky gives exact density ties, which quickshift breaks with its random
    # noise: scikit-image's own labels under rng=1 agree with these (rng=42) on 89% of pixels.
    ("quickshift_grey_ties", "grey", "quickshift",
     {"kernel_size": 3, "max_dist": 6, "convert2lab": False}),
]


def channels_last(x):
    """esegeta's example (H, W, 3) / (H, W) / (D, H, W) as scikit-image takes it."""
    return x.astype(np.float64)


def run(algorithm, image, params, rois):
    grey = image.ndim == 2 or (image.ndim == 3 and image.shape[-1] != 3)
    kwargs = dict(params)
    if algorithm == "slic":
        if "mask" in kwargs:
            kwargs["mask"] = rois[kwargs["mask"]].astype(bool)
        return segmentation.slic(image, channel_axis=None if grey else -1, **kwargs)
    if algorithm == "felzenszwalb":
        return segmentation.felzenszwalb(image, **kwargs)
    return segmentation.quickshift(image, **kwargs)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    images, rois = inputs()
    skimage.io.imsave(OUT / "photo.png", data.astronaut()[::4, ::4], check_contrast=False)
    layouts = {
        "colour": images["colour"].transpose(2, 0, 1)[None],
        "grey": images["grey"][None, None],
        "volume": images["volume"][None, None],
    }
    for name, array in layouts.items():
        np.save(OUT / f"{name}.npy", np.ascontiguousarray(array))
    for name, roi in rois.items():
        np.save(OUT / name, roi)
    cases = []
    for case, source, algorithm, params in CASES:
        labels = run(algorithm, channels_last(images[source]), params, rois)
        np.save(OUT / f"{case}.npy", labels[None].astype(np.int16))
        case_record = {
            "case": case,
            "input": "photo.png" if source == "photo" else f"{source}.npy",
            "algorithm": algorithm,
            "params": params,
            "labels": f"{case}.npy",
            "segments": int(len(np.unique(labels))),
        }
        cases.append(case_record)
        print(f"{case}: {len(np.unique(labels))} segments")
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
