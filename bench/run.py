"""esegeta against Captum 0.9 and against the model's own speed limit, in one invocation.

For every case (model, input, task wrapper) and method of bench/cases.py, each repetition runs,
one after the other so that all see the same machine load:
  1. esegeta: the release binary, `esegeta explain --timing --repeat 2 --threads T`; the time
     is the method's own wall time as esegeta reports it (no process start, model load or
     writing) in its first run, and in the second ("warm": what every job after the first of
     a run costs), the memory the process's peak resident set (VmHWM) when the first run
     ended;
  2. Captum 0.9 in a child Python process per case (same torch, same thread count): with its
     defaults, and with the best setting of a small grid of its batching keyword (the grid is
     searched in the first repetition; later ones run the default and the best);
  3. the limit: the method's unavoidable evaluations of the wrapped model in plain torch
     (forwards under no_grad; forward + torch.autograd.grad to the input only where the
     method needs gradients), at the best batch size.
It prints one table (medians over repetitions, with min and max) and writes bench/RESULTS.md.

Usage: python bench/run.py [--quick] [--reps N] [--threads N] [--cases SUBSTR] [--methods SUBSTR]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases as C  # noqa: E402
import make_models  # noqa: E402

ESEGETA = C.ROOT / "target" / "release" / "esegeta"
LIMIT_BATCHES = [1, 4, 8]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps/samples/windows, 1 repetition")
    p.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of both tools")
    p.add_argument("--cases", default="", help="only cases whose name contains this")
    p.add_argument("--all", action="store_true",
                   help="also the vessel UNet through the threshold wrapper (twice the time)")
    p.add_argument("--methods", default="", help="only methods whose name contains this")
    p.add_argument("--unbounded", action="store_true",
                   help="also run Captum's default integrated gradients on volumes (all steps "
                        "in one batch: 6-12 GB)")
    p.add_argument("--results", default=str(C.HERE / "RESULTS.md"), help="where the table goes")
    args = p.parse_args()
    args.reps = args.reps or (1 if args.quick else 3)
    return args


# The limit's process keeps freed memory as esegeta does (host/src/main.rs sets the same with
# mallopt): otherwise every pass page-faults its activations in again, a cost that is not the
# model's. Captum runs as users run it, with glibc's defaults.
KEEP_FREED = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"


class CaptumWorker:
    """The case's child Python process (bench/captum_worker.py), one request at a time."""

    def __init__(self, case, threads, env=None):
        wrapper = case.wrapper or "none"
        self.proc = subprocess.Popen(
            [sys.executable, str(C.HERE / "captum_worker.py"), str(case.model), str(case.input),
             wrapper, str(case.target), str(threads), case.eager],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=C.HERE,
            env={**os.environ, **(env or {})})
        self.hello = json.loads(self.proc.stdout.readline())

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the Captum worker died (out of memory?)")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def run_esegeta(case, method, params, threads, out):
    model = case.onnx if method.onnx else case.model
    cmd = [str(ESEGETA), "explain", "--model", str(model), "--input", str(case.input),
           "--method", method.esegeta_id, "--params", json.dumps(params),
           "--target", str(case.target), "--threads", str(threads), "--timing", "--repeat", "2",
           "--out", out]
    if case.wrapper:
        cmd += ["--task", "segmentation", "--wrapper", case.wrapper]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    for line in done.stdout.splitlines():
        if line.startswith("timing: "):
            t = json.loads(line[len("timing: "):])
            return {"seconds": t["method_s"], "warm": t["warm_s"],
                    "peak_rss_mib": t["peak_rss_mib"]}
    return {"error": "esegeta printed no timing line"}


class Record:
    """Every measurement of one (case, method)."""

    def __init__(self, case, method):
        self.case, self.method = case, method
        self.esegeta, self.default, self.limit = [], [], []
        self.grid = {}  # knob value -> list of measurements
        self.errors = []
        self.diff = None
        self.skipped = None

    def best_value(self):
        timed = {v: ms for v, ms in self.grid.items() if ms and "seconds" in ms[0]}
        if not timed:
            return None
        return min(timed, key=lambda v: statistics.median(m["seconds"] for m in timed[v]))


def measure(ms, key="seconds"):
    values = [m[key] for m in ms if key in m]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def relative_difference(ours, theirs):
    a, b = np.load(ours).astype(np.float64), np.load(theirs).astype(np.float64)
    if a.shape != b.shape:
        a = a.reshape(b.shape) if a.size == b.size else a
    if a.shape != b.shape:
        return f"shapes {a.shape} vs {b.shape}"
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a - b).max())


def bench_case(case, methods, args, tmp):
    workers = CaptumWorker(case, args.threads), CaptumWorker(case, args.threads,
                                                              {"GLIBC_TUNABLES": KEEP_FREED})
    records = [Record(case, m) for m in methods]
    try:
        for rep in range(args.reps):
            workers[1].ask(op="forget")
            for r in records:
                one_repetition(workers, r, rep, args, tmp)
    finally:
        for w in workers:
            w.close()
    return records, workers[0].hello


def one_repetition(workers, r, rep, args, tmp):
    worker, limit_worker = workers
    case, method = r.case, r.method
    params = C.esegeta_params(method, case, args.quick)
    slug = "".join(ch if ch.isalnum() else "_" for ch in method.name)
    stem = f"{tmp}/{case.model.stem}_{slug}"
    print(f"  rep {rep + 1}: {method.name}", file=sys.stderr, flush=True)
    ours = run_esegeta(case, method, params, args.threads, f"{stem}_esegeta.npy")
    r.esegeta.append(ours)
    values = method.grid if rep == 0 else unique([method.grid[0] if method.grid else None,
                                                   r.best_value()])
    for value in values:
        if skipped(case, method, value, args):
            r.skipped = (f"Captum's default {method.knob} evaluates all steps in one batch "
                         "(6-12 GB on these volumes); skipped to spare the shared machine, "
                         "--unbounded runs it")
            continue
        out = f"{stem}_captum_{value}.npy"
        got = worker.ask(op="captum", method=method.esegeta_id, params=params, knob=method.knob,
                         value=value, out=out)
        if "error" in got:
            r.errors.append(f"Captum {method.knob}={value}: {got['error']}")
        r.grid.setdefault(value, []).append(got)
        if value is method.grid[0]:
            r.default.append(got)
        if r.diff is None and "seconds" in got and "seconds" in ours:
            r.diff = relative_difference(f"{stem}_esegeta.npy", out)
    no_grad, grad = C.evaluations(method, case, args.quick)
    r.limit.append(limit_worker.ask(op="limit", no_grad=no_grad, grad=grad,
                                    batches=LIMIT_BATCHES))
    if "error" in ours:
        r.errors.append(f"esegeta: {ours['error']}")


def skipped(case, method, value, args):
    """Captum's unbatched integrated gradients on a volume: tens of GB-scale batches."""
    volume = np.load(case.input, mmap_mode="r").ndim == 5
    return (volume and value is None and method.knob == "internal_batch_size"
            and not args.unbounded)


def unique(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


# ------------------------------------------------------------------------------ the table


def fmt_time(m):
    if m is None:
        return "n/a"
    med, lo, hi = m
    return f"{med:.2f} ({lo:.2f}-{hi:.2f})"


def ratio(a, b):
    return f"{a[0] / b[0]:.2f}" if a and b else "n/a"


def fmt_mib(m):
    return f"{m[0]:.0f}" if m else "n/a"


def table(records):
    head = ("| case | method | esegeta s | esegeta warm s | Captum default s | Captum tuned s "
            "(setting) | limit s (batch) | esegeta/limit | warm/limit | esegeta/tuned | "
            "esegeta/default | peak MiB esegeta | peak MiB Captum default | peak MiB Captum "
            "tuned | max\\|diff\\|/max\\|captum\\| |")
    rows = [head, "|" + "---|" * 15]
    for r in records:
        ours, warm, default = measure(r.esegeta), measure(r.esegeta, "warm"), measure(r.default)
        best = r.best_value()
        tuned = measure(r.grid.get(best, [])) if best is not None or None in r.grid else None
        limit = measure(r.limit)
        setting = f"{r.method.knob}={best}" if r.method.knob else "nothing to tune"
        diff = ("n/a" if r.diff is None else
                r.diff if isinstance(r.diff, str) else f"{r.diff:.1e}")
        if r.method.sampled and isinstance(r.diff, float):
            diff += " (sampled)"
        rows.append(" | ".join([
            f"| {r.case.name}", r.method.name, fmt_time(ours), fmt_time(warm), fmt_time(default),
            f"{fmt_time(tuned)} ({setting})", f"{fmt_time(limit)} ({limit_batches(r)})",
            ratio(ours, limit), ratio(warm, limit),
            ratio(ours, tuned), ratio(ours, default), fmt_mib(measure(r.esegeta, "peak_rss_mib")),
            fmt_mib(measure(r.default, "peak_rss_mib")),
            fmt_mib(measure(r.grid.get(best, []), "peak_rss_mib")), diff]) + " |")
    return "\n".join(rows)


def limit_batches(r):
    """The batch sizes the limit was best at, in the last repetition."""
    last = r.limit[-1] if r.limit else {}
    parts = [f"{what} b={last[key]}" for what, key in (("no_grad", "batch_no_grad"),
                                                      ("grad", "batch_grad")) if last.get(key)]
    return ", ".join(parts) or "n/a"


def startup_seconds(n=10):
    """`esegeta methods`: process start and plugin loading, median of n runs."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([str(ESEGETA), "methods"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def machine(args, hello):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    version = subprocess.run([str(ESEGETA), "--version"], capture_output=True,
                             text=True).stdout.strip()
    import captum
    return (f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
            f"threads {args.threads} (torch.set_num_threads in Captum's process: "
            f"{hello.get('threads')}; esegeta --threads); torch {hello.get('torch')}, "
            f"captum {captum.__version__}, {version}, Python {platform.python_version()}")


def load():
    return open("/proc/loadavg").read().split()[:3]


def main():
    args = parse_args()
    if not ESEGETA.exists():
        sys.exit(f"{ESEGETA} is missing; build it first (make build, or make bench)")
    make_models.main()
    methods = [m for m in C.METHODS if args.methods in m.name]
    cases = [c for c in C.CASES if args.cases in c.name
             and (args.all or args.cases or not c.name.startswith("vessel"))]
    started, load_before = time.time(), load()
    records, hello = [], {}
    with tempfile.TemporaryDirectory(prefix="esegeta-bench-") as tmp:
        for case in cases:
            print(f"{case.name}", file=sys.stderr, flush=True)
            got, hello = bench_case(case, methods, args, tmp)
            records += got
    startup = startup_seconds()
    errors = [f"- {r.case.name}, {r.method.name}: {e}" for r in records for e in r.errors]
    errors += [f"- {r.case.name}, {r.method.name}: {r.skipped}" for r in records if r.skipped]
    report = "\n".join([
        "# Benchmark: esegeta against Captum 0.9 and the model's own limit",
        "",
        f"Made by `python bench/run.py {' '.join(sys.argv[1:])}` (`make bench`) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{time.time() - started:.0f} s in all.",
        "",
        f"- Machine: {machine(args, hello)}.",
        f"- Load average (1, 5, 15 min) before: {' '.join(load_before)}; after: "
        f"{' '.join(load())}. The machine was shared: rerun on an idle machine before "
        "trusting ratios.",
        f"- Repetitions: {args.reps}{' (--quick sizes)' if args.quick else ''}; times are "
        "medians in seconds with (min-max); memory is the median peak resident set.",
        f"- esegeta start and plugin loading (`esegeta methods`, 10 runs): "
        f"{fmt_time(startup)} s.",
        "",
        table(records),
        "",
        "How to read it:",
        "- esegeta s: the method's wall time as `esegeta explain --timing` reports it, in a "
        "fresh process: its first call pays oneDNN's kernel selection and first-touch page "
        "faults, which the limit (timed after a warm-up) and Captum (a long-lived worker) do "
        "not. esegeta warm s: the same method run again in that process (`--repeat 2`), as "
        "every job after the first of a run is; warm/limit compares like with like. Peak MiB "
        "esegeta: the whole process's VmHWM (libtorch, model, method) when the first run "
        "ended.",
        "- Captum: a child process per case; peak MiB is VmHWM during the call, after returning "
        "freed heap to the system and resetting the high-water mark, so it includes the "
        "interpreter, torch and the model. Tuned: the best of the grid of the named keyword.",
        "- limit: the method's unavoidable evaluations of the wrapped model (forwards under "
        "no_grad; forward + autograd.grad to the input only where gradients are needed), "
        "each chunk size timed once per repetition (median of 2 calls after a warm-up) and "
        f"summed over the chunks, at the best of the batch sizes {LIMIT_BATCHES}, in a process "
        "whose allocator keeps freed memory as esegeta's does (GLIBC_TUNABLES; Captum runs "
        "with glibc's defaults, as users run it).",
        "- Methods marked ONNX run esegeta on the model's ONNX export (guided backprop and "
        "LayerGradCam need its graph; incremental: only what each perturbation reaches is "
        "recomputed) and Captum on the PyTorch model with the same weights.",
        "- max|diff|/max|captum|: esegeta's map against Captum's default map (metrics: the "
        "scores), or against its first grid setting where the default was skipped. Methods marked sampled draw different random numbers in the two tools, so "
        "there the difference is sampling noise, not error; tests/ check them statistically.",
        *(["", "Errors and skipped runs:", *errors] if errors else []),
        "",
    ])
    print(report)
    Path(args.results).write_text(report)


if __name__ == "__main__":
    main()
