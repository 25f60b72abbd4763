# The two commands of the README, and the build they share. Each recipe sources tools/env.sh,
# which installs torch==2.13.0 (libtorch for tch) into a cached virtualenv on first use.
SHELL := /bin/bash
ENV := . tools/env.sh &&
ESEGETA := target/release/esegeta

.PHONY: build demo demo-lesion serve test schemas bench bench-torchray bench-cnnvis bench-lime bench-shap fuzz soak cluster-test zoo

## Builds the esegeta binary and every plugin (release), beside each other in target/release.
build:
	$(ENV) cargo build --release --workspace

## The main job: explains three vessel segmenters on a synthetic angiogram, scores the
## explanations and checks them by cascading randomisation; writes out/demo-vessels/report.html.
demo: build
	$(ESEGETA) run configs/demo-vessels.json
	@echo "Open out/demo-vessels/report.html"

## The first demo: why the demo classifier sees a lesion, writing out/demo/.
demo-lesion: build
	$(ESEGETA) explain --model configs/demo/lesion_classifier.pt \
		--input configs/demo/scan_with_lesion.png \
		--method captum.integrated_gradients --params '{"n_steps": 50}' --target 1 \
		--out out/demo/integrated_gradients.png
	$(ESEGETA) explain --model configs/demo/lesion_classifier.pt \
		--input configs/demo/scan_with_lesion.png \
		--method captum.occlusion --params '{"sliding_window_shapes": [1, 8, 8], "strides": [1, 4, 4]}' \
		--target 1 --out out/demo/occlusion.png
	@echo "Open out/demo/integrated_gradients.png and out/demo/occlusion.png"

## The web GUI over this folder (the demo's models and inputs are under configs/); open the URL
## it prints. Its page is built by npm into the binary (host/build.rs).
serve: build
	$(ESEGETA) serve $(SERVE_ARGS)

## Every test: unit tests, and end-to-end tests of the binary against Captum references.
test: build
	$(ENV) cargo test --release --workspace --tests

## Regenerates schemas/ (a test fails when it is stale).
schemas: build
	$(ESEGETA) schema --write-dir schemas

## esegeta against Captum 0.9 and the model's own limit; writes bench/RESULTS.md. BENCH_ARGS:
## --quick (about 2 minutes), --all (adds the vessel UNet), --reps N, --cases/--methods SUBSTR.
bench: build
	$(ENV) python bench/run.py $(BENCH_ARGS)

## esegeta's TorchRay plugin against TorchRay itself (RISE, extremal perturbation); needs
## `pip install torchray==1.0.0.2` in the venv (tools/README.md). BENCH_ARGS: --quick, --reps N.
bench-torchray: build
	$(ENV) python bench/torchray.py $(BENCH_ARGS)

## lime.lime_image against lime 0.2.0.1's LimeImageExplainer (1000 samples, quickshift) on the
## bench's ResNet-18 and the lime fixtures' small CNN; BENCH_ARGS: --quick, --reps N, --threads N.
bench-lime: build
	$(ENV) python bench/lime.py $(BENCH_ARGS)

## shap's partition explainer (blur and constant maskers) and gradient explainer against shap
## 0.51 itself on the bench's ResNet-18; BENCH_ARGS: --quick, --reps N, --threads N.
bench-shap: build
	$(ENV) python bench/shap.py $(BENCH_ARGS)

## cnnvis's DeepDream, layer visualisation and inverted representation against their PyTorch
## references (tools/cnnvis_reference.py) on the bench's ResNet-18; BENCH_ARGS: --quick, --reps N.
bench-cnnvis: build
	$(ENV) python bench/cnnvis.py $(BENCH_ARGS)

## Every reader of outside files fed mutated valid files (tests/fuzz.rs) for longer than the
## test suite does: FUZZ_ITERATIONS inputs per reader (default 20000).
fuzz: build
	$(ENV) ESEGETA_FUZZ_ITERATIONS=$${FUZZ_ITERATIONS:-20000} cargo test --release -p esegeta --test fuzz -- --nocapture

## The model zoo: every torchvision and MONAI architecture of tools/make_zoo.py exported,
## loaded on both backends and explained against Captum; rewrites docs/models.md. Installs
## tools/requirements-zoo.txt into the venv (torch stays 2.13.0). ZOO_ARGS: --only SUBSTR.
zoo: build
	$(ENV) pip install --quiet -r tools/requirements-zoo.txt && python tools/make_zoo.py --table docs/models.md $(ZOO_ARGS)

## A run of 2100 jobs (every method family, the small ONNX classifier) with resident memory
## and open files sampled (tools/soak.py); SOAK_ARGS: --inputs N (x 42 jobs), --methods SUBSTR.
soak: build
	$(ENV) python tools/soak.py $(SOAK_ARGS)

## Shards on a real Slurm cluster (a single node on localhost, started as root in a temporary
## folder): a job array and its merge against a single-process run, and a task cancelled and
## submitted again. Needs `apt-get install slurm-wlm munge`. About 2 minutes.
cluster-test: build
	$(ENV) bash tools/cluster_test.sh
