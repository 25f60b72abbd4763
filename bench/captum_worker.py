"""One case's Python side of the benchmark, as a child process of bench/run.py: loads the model
once, then answers requests (JSON lines on stdin, one JSON line per answer on stdout):

- {"op": "captum", "method": ID, "params": {...}, "knob": NAME, "value": V, "out": PATH}
  runs Captum 0.9 on the case with esegeta's parameters translated to Captum's, with the tuning
  keyword NAME=V (V null: Captum's default), saves the map (or the metric's scores) to PATH,
  and answers the wall time of the attribute call and the peak resident memory during it.
- {"op": "limit", "no_grad": N, "grad": M, "batches": [..]} answers the time of the
  unavoidable model evaluations: N examples through the wrapped model under torch.no_grad and M
  with torch.autograd.grad of the target score with respect to the input only (parameters
  frozen), at the best of the batch sizes given. Chunk timings are kept until
  {"op": "forget"} (the parent sends it at each repetition), so the methods of one
  repetition share them.

Peak memory: before each request the freed heap is returned to the system (malloc_trim) and the
kernel's high-water mark is reset (/proc/self/clear_refs, 5), so VmHWM is the peak of that
request on top of what the process already holds (interpreter, torch, model).

Guided backprop and LayerGradCam hook modules, which a TorchScript module does not allow:
they run on the PyTorch module with the same weights (make_models.eager, named by EAGER).

Usage: python bench/captum_worker.py MODEL INPUT WRAPPER TARGET THREADS EAGER
"""

import ctypes
import json
import math
import statistics
import sys
import time

import numpy as np
import torch

from wrappers import wrap

LIBC = ctypes.CDLL("libc.so.6")


def reset_peak():
    LIBC.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Worker:
    def __init__(self, model_path, input_path, wrapper, target, threads, eager):
        torch.set_num_threads(threads)
        self.model = wrap(torch.jit.load(model_path).eval(), wrapper)
        self.model_path, self.wrapper, self.eager_name = model_path, wrapper, eager
        self.eager = None
        self.x = torch.from_numpy(np.load(input_path)).float()
        self.target = target
        self.threads = threads
        self.chunks = {}

    # ---------------------------------------------------------------- Captum

    def eager_model(self):
        """(wrapped PyTorch module, the bare module), made on first use."""
        if self.eager is None:
            from make_models import eager
            bare = eager(self.eager_name, self.model_path)
            self.eager = (wrap(bare, self.wrapper), bare)
        return self.eager

    def captum(self, method, params, knob, value, out):
        from captum.attr import (FeatureAblation, GuidedBackprop, IntegratedGradients,
                                 LayerGradCam, NoiseTunnel, Occlusion, Saliency,
                                 ShapleyValueSampling)
        from captum.metrics import infidelity, sensitivity_max
        f, x, t = self.model, self.x, self.target
        tune = {} if value is None else {knob: value}
        torch.manual_seed(0)

        def groups():
            return torch.from_numpy(np.load(params["feature_mask"]))

        if method == "captum.integrated_gradients":
            run = lambda: IntegratedGradients(f).attribute(
                x, target=t, n_steps=params["n_steps"], **tune)
        elif method == "captum.saliency":
            nt = params["noise_tunnel"]
            run = lambda: NoiseTunnel(Saliency(f)).attribute(
                x, target=t, nt_type=nt["nt_type"], nt_samples=nt["nt_samples"],
                stdevs=nt["stdevs"], **tune)
        elif method == "captum.occlusion":
            run = lambda: Occlusion(f).attribute(
                x, target=t, sliding_window_shapes=tuple(params["sliding_window_shapes"]),
                strides=tuple(params["strides"]), baselines=0.0, **tune)
        elif method == "captum.feature_ablation":
            mask = groups()
            run = lambda: FeatureAblation(f).attribute(x, target=t, feature_mask=mask, **tune)
        elif method == "captum.shapley_value_sampling":
            mask = groups()
            run = lambda: ShapleyValueSampling(f).attribute(
                x, target=t, feature_mask=mask, n_samples=params["n_samples"], **tune)
        elif method == "captum.guided_backprop":
            fe, _ = self.eager_model()
            run = lambda: GuidedBackprop(fe).attribute(x, target=t)
        elif method == "captum.layer_grad_cam":
            fe, bare = self.eager_model()
            layer = bare.get_submodule(params["layer"])
            run = lambda: LayerGradCam(fe, layer).attribute(x, target=t)
        elif method == "captum.infidelity":
            stdevs = params["perturbation"]["stdevs"]

            def gaussian(inputs):
                noise = torch.randn(inputs.shape) * stdevs
                return noise, inputs - noise

            def run():
                attributions = Saliency(f).attribute(x, target=t)
                return infidelity(f, gaussian, x, attributions, target=t,
                                  n_perturb_samples=params["n_perturb_samples"], **tune)
        elif method == "captum.sensitivity_max":
            saliency = Saliency(f)
            run = lambda: sensitivity_max(
                saliency.attribute, x, target=t, perturb_radius=params["perturb_radius"],
                n_perturb_samples=params["n_perturb_samples"], **tune)
        else:
            raise ValueError(f"no Captum translation for {method}")
        reset_peak()
        start = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - start
        peak = peak_rss_mib()
        np.save(out, result.detach().float().numpy())
        return {"seconds": seconds, "peak_rss_mib": peak}

    # ---------------------------------------------------------------- the limit

    def chunk_seconds(self, size, grad):
        """Median wall time of one evaluation of `size` examples (after one warm-up call: the
        TorchScript executor specialises on the first calls of each shape), remembered."""
        key = (size, grad)
        if key not in self.chunks:
            self.chunks[key] = self.time_chunk(size, grad)
        return self.chunks[key]

    def time_chunk(self, size, grad):
        chunk = self.x.expand(size, *self.x.shape[1:]).contiguous()
        times = []
        for i in range(3):
            start = time.perf_counter()
            if grad:
                xg = chunk.clone().requires_grad_(True)
                score = self.model(xg)[:, self.target].sum()
                torch.autograd.grad(score, xg)
            else:
                with torch.no_grad():
                    self.model(chunk)[:, self.target]
            if i:
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    def part(self, count, grad, batches):
        """The least time over the batch sizes for `count` evaluations: full chunks at the
        measured chunk time, plus the remainder chunk."""
        if count == 0:
            return 0.0, None
        best = (math.inf, None)
        for b in sorted({min(b, count) for b in batches}):
            full, rest = divmod(count, b)
            total = full * self.chunk_seconds(b, grad)
            if rest:
                total += self.chunk_seconds(rest, grad)
            best = min(best, (total, b))
        return best

    def limit(self, no_grad, grad, batches):
        parameters = list(self.model.parameters())
        flags = [p.requires_grad for p in parameters]
        for p in parameters:
            p.requires_grad_(False)
        try:
            forward, fb = self.part(no_grad, False, batches)
            backward, bb = self.part(grad, True, batches)
        finally:
            for p, flag in zip(parameters, flags):
                p.requires_grad_(flag)
        return {"seconds": forward + backward, "batch_no_grad": fb, "batch_grad": bb}


def main():
    model, inp, wrapper, target, threads, eager = sys.argv[1:7]
    worker = Worker(model, inp, None if wrapper == "none" else wrapper, int(target),
                    int(threads), eager)
    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "captum":
                answer = worker.captum(request["method"], request["params"], request["knob"],
                                       request["value"], request["out"])
            elif request["op"] == "forget":
                worker.chunks.clear()
                answer = {}
            elif request["op"] == "limit":
                answer = worker.limit(request["no_grad"], request["grad"], request["batches"])
            else:
                raise ValueError(f"unknown op {request['op']}")
        except Exception as e:  # the parent reports it in the table
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
