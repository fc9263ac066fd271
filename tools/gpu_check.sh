#!/usr/bin/env bash
# The prepared device check (issue 32): the paper profile's step times on a GPU and the paper grid's cost from them,
# in one call of at most 10 minutes on a machine that has JAX's CUDA build but no network.
#
#   tools/gpu_check.sh prepare   here, with the project's .venv (`make setup`) and PyPI:
#       .gpu/wheels/  this project's wheel, and numpyro 0.22 (pure Python; GPU images ship 0.21, which breaks
#                     TraceGraph_ELBO under jax >= 0.11). JAX, flax, optax, numpy, pandas and yaml are the machine's.
#       .gpu/plan/    the paper grid as plain JSON, so that Snakemake need not be there: Snakemake's dry run of
#                     --profile profiles/local --configfile config/paper.yaml --cores 16 --resources gpu=1 in a
#                     clean copy of the workflow, read in this process; jobs.json (each job's Job fields: id, rule,
#                     wildcards, threads, gpu, inputs, outputs, trained method) and settings.json (the arguments,
#                     config files, the validated config, cores and GPU limit).
#   tools/gpu_check.sh run       there, e.g. run(command="bash tools/gpu_check.sh run", carry=[".gpu"],
#                                timeout_s=600):
#       1. installs .gpu/wheels into $SITE (first on PYTHONPATH) and stops unless the machine's JAX is in
#          pyproject.toml's range;
#       2. prints the device (nvidia-smi, jax.devices(), versions);
#       3. times FashionMNIST x {MLP, LeNet-5, Mixer, ViT} x {Flat-FF, Tiered-FF} at the paper's network sizes and
#          minibatch with bmrsparse.steptime.time_network, in this process (init, compile, 3 x STEPS steps: the
#          median window, one predictive pass), then one job of GPU_CHECK_SEEDS seeds vmapped (Flat-FF on
#          GPU_CHECK_SEEDS_ARCH); each row is written as soon as it is measured; what the budget leaves no time for
#          is skipped, said so;
#       4. estimates the paper grid from the measured times and the jobs rebuilt from .gpu/plan, with
#          bmrsparse.workflow.plan's estimate and format_plan (its FashionMNIST part, and the whole grid), naming
#          every step time it had to assume.
#   Files in $OUT: gpu_check.txt (device, table, estimates), step_times.csv, gpu_check.log (everything printed).
#
# Environment: GPU_CHECK_DIR (.gpu: what prepare writes and run reads; ignored by git), OUT (default
# $GPU_CHECK_DIR/out), PY (prepare: .venv/bin/python; run: python3), SITE (/tmp/bmrsparse-gpu-site),
# GPU_CHECK_STEPS (100 timed steps per window), GPU_CHECK_BUDGET_S (480: seconds for part 3; the rest of a 600 s
# call is install, start-up, estimate), GPU_CHECK_KINDS ("flat tiered"), GPU_CHECK_SEEDS (5),
# GPU_CHECK_SEEDS_ARCH (lenet), GPU_CHECK_TINY (1: config/test.yaml's shrunken networks, for the CPU check in
# tests/tooling/test_gpu_check.py; the estimate is then of nothing real).
# Functions used: prepare: bmrsparse.workflow.plan.dag.dry_run (Snakemake's parser and dry run) and its grid's
# config.as_dict(); run, without Snakemake (the package bmrsparse.workflow.plan does not import its dag module):
# bmrsparse.workflow.plan's Job, KINDS, timing_settings, job_work, estimate and format_plan;
# bmrsparse.steptime.time_network and time_startup; bmrsparse.settings.TrainingSettings.from_mapping and
# bmrsparse.train.Trainer (the seeds row); bmrsparse.bench.device_name and synthetic_dataset.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GPU=${GPU_CHECK_DIR:-.gpu}
export GPU_CHECK_DIR=$GPU

prepare() {
    local py smk_args="--profile profiles/local --configfile config/paper.yaml --cores 16 --resources gpu=1"
    py=$(command -v "${PY:-$ROOT/.venv/bin/python}")
    rm -rf "$GPU/wheels" "$GPU/plan"
    mkdir -p "$GPU/wheels" "$GPU/plan"
    rm -rf build  # a stale build/ would carry files deleted from src/ into the wheel
    "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$GPU/wheels" .
    "$py" -m pip download -q --no-deps --only-binary=:all: -d "$GPU/wheels" numpyro==0.22.0
    # the grid's jobs as a fresh checkout sees them (results/ of this one may hold finished jobs)
    local copy
    copy=$(mktemp -d)
    cp -r Snakefile workflow config profiles envs "$copy/"
    "$py" - "$copy" "$GPU/plan" $smk_args <<'EOF'
import json, sys
from dataclasses import asdict
from pathlib import Path
from bmrsparse.workflow.plan.dag import dry_run
copy, folder, args = Path(sys.argv[1]), Path(sys.argv[2]).resolve(), sys.argv[3:]
run = dry_run(args, copy)
(folder / "jobs.json").write_text(json.dumps([asdict(j) for j in run.jobs], indent=1))
(folder / "settings.json").write_text(json.dumps(
    {"args": args, "configfiles": run.configfiles, "config": run.grid.config.as_dict(), "cores": run.cores,
     "gpu_limit": run.gpu_limit}, indent=1))
print(f"the paper grid: {len(run.jobs)} jobs, {run.cores} cores, GPU limit {run.gpu_limit}")
EOF
    rm -rf "$copy"
    ls -l "$GPU/wheels" "$GPU/plan"
    du -sh "$GPU"
}

run() {
    local py=${PY:-python3} out=${OUT:-$GPU/out} site=${SITE:-/tmp/bmrsparse-gpu-site}
    mkdir -p "$out"
    exec > >(tee "$out/gpu_check.log") 2>&1
    echo "== tools/gpu_check.sh run, $(date -u +%FT%TZ)"
    # 1. our wheel and numpyro 0.22 over the machine's packages; the machine's JAX must be one we support
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "$GPU"/wheels/*.whl
    export PYTHONPATH=$site PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
    "$py" - <<'EOF'
import importlib, sys, tomllib
from packaging.requirements import Requirement
from packaging.version import Version
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for name in ("jax", "jaxlib", "numpyro"):  # in this order: numpyro needs a JAX it supports
    version = importlib.import_module(name).__version__
    req = next(Requirement(d) for d in deps if Requirement(d).name == name)
    if Version(version) not in req.specifier:
        sys.exit(f"{name} {version} here is outside pyproject.toml's {req}: nothing can be installed offline")
import bmrsparse
print(f"bmrsparse from {bmrsparse.__file__}")
EOF
    # 2. the device
    if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L; nvidia-smi | head -n 4; fi
    # 3. and 4. (step_times.csv and gpu_check.txt)
    OUT=$out "$py" - <<'EOF'
import csv, json, os, time
from pathlib import Path

import jax, numpyro, yaml

from bmrsparse.bench import device_name, synthetic_dataset
from bmrsparse.settings import TrainingSettings
from bmrsparse.steptime import time_network, time_startup
from bmrsparse.train import Trainer
from bmrsparse.workflow.plan import KINDS, Job, estimate, format_plan, job_work, timing_settings

start = time.perf_counter()
out = Path(os.environ["OUT"])
steps = int(os.environ.get("GPU_CHECK_STEPS", "100"))
budget = float(os.environ.get("GPU_CHECK_BUDGET_S", "480"))
n_seeds = int(os.environ.get("GPU_CHECK_SEEDS", "5"))
seeds_arch = os.environ.get("GPU_CHECK_SEEDS_ARCH", "lenet")
tiny = os.environ.get("GPU_CHECK_TINY", "0") == "1"
prepared = Path(os.environ["GPU_CHECK_DIR"]) / "plan"
kinds = os.environ.get("GPU_CHECK_KINDS", "flat tiered").split()
saved = json.loads((prepared / "settings.json").read_text())
cfg = saved["config"]
if tiny:  # the test profile's shrunken networks (CPU check only)
    cfg["training"]["net"] = yaml.safe_load(Path("config/test.yaml").read_text())["training"]["net"]
device = f"{device_name()} (jax {jax.__version__}, numpyro {numpyro.__version__}, {jax.default_backend()})"
print(f"device: {device}; devices {jax.devices()}", flush=True)

# 3. FashionMNIST x four networks x {Flat-FF, Tiered-FF}: one row each, written as measured
fields = ["dataset", "arch", "method", "seeds", "ms_per_step", "init_s", "compile_s", "eval_compile_s",
          "eval_ms_per_image_sample", "wall_s", "note"]
table = out / "step_times.csv"
with table.open("w", newline="") as f:
    csv.writer(f).writerow(fields)

def row(**r):
    with table.open("a", newline="") as f:
        csv.DictWriter(f, fields).writerow(r)
    print("  " + ", ".join(f"{k}={v}" for k, v in r.items()), flush=True)

timings, longest = {}, 0.0
for kind in kinds:
    for arch in ("mlp", "lenet", "mixer", "vit"):
        method = KINDS[kind][1]
        left = budget - (time.perf_counter() - start)
        if left < 1.5 * longest:
            row(dataset="fashion_mnist", arch=arch, method=method, seeds=1, note=f"skipped: {max(left, 0):.0f} s left")
            continue
        t0 = time.perf_counter()
        t = time_network("fashion_mnist", arch, method, timing_settings(cfg, arch), steps)
        wall = time.perf_counter() - t0
        longest = max(longest, wall)
        timings[("fashion_mnist", arch, kind)] = t
        row(dataset="fashion_mnist", arch=arch, method=method, seeds=1, ms_per_step=f"{1e3 * t.step_s:.3f}",
            init_s=f"{t.init_s:.1f}", compile_s=f"{t.compile_s:.1f}", eval_compile_s=f"{t.eval_compile_s:.1f}",
            eval_ms_per_image_sample=f"{1e3 * t.eval_s:.4f}", wall_s=f"{wall:.0f}", note="")

# one job of several seeds vmapped in one program (Flat-FF), beside its one-seed row
seeds_note = ""
one = timings.get(("fashion_mnist", seeds_arch, "flat"))
left = budget - (time.perf_counter() - start)
if one is None or left < 1.5 * longest:
    seeds_note = f"skipped: {max(left, 0):.0f} s left" if one is not None else f"skipped: no one-seed {seeds_arch} row"
    row(dataset="fashion_mnist", arch=seeds_arch, method="flat_ff", seeds=n_seeds, note=seeds_note)
else:
    t0 = time.perf_counter()
    s = TrainingSettings.from_mapping(timing_settings(cfg, seeds_arch))
    ds = synthetic_dataset("fashion_mnist", seeds_arch, n_train=4096, n_test=16)
    tr = Trainer(arch=seeds_arch, method="flat_ff", dataset=ds, seeds=list(range(n_seeds)), settings=s)
    state = tr.init()
    state, _ = tr.train(state, 1, chunk_size=1, progress=False)  # compiles
    windows = []
    for _ in range(3):
        state, secs = tr.train(state, steps, chunk_size=steps, progress=False)
        windows.append(secs)
    step_s = sorted(windows)[1] / steps
    seeds_note = f"{n_seeds} seeds cost {step_s / one.step_s:.2f} x one seed's step"
    row(dataset="fashion_mnist", arch=seeds_arch, method="flat_ff", seeds=n_seeds, ms_per_step=f"{1e3 * step_s:.3f}",
        compile_s=f"{tr.compile_seconds:.1f}", wall_s=f"{time.perf_counter() - t0:.0f}", note=seeds_note)

# 4. the paper grid's estimate from the measured step times
jobs = [Job(**j) for j in json.loads((prepared / "jobs.json").read_text())]  # the Job fields, as prepare wrote them
startup = time_startup()
assumed = {}  # measured (data set, arch, kind) -> what it stands in for

def timing_for(dataset, arch, kind):
    """The measured timing; else the nearest measured one (the same data set's Flat-FF: a MAP step costs less;
    FashionMNIST's: CIFAR's 32x32x3 images cost more), named in `assumed`."""
    for d, k in ((dataset, kind), (dataset, "flat"), ("fashion_mnist", kind), ("fashion_mnist", "flat")):
        if (d, arch, k) in timings:
            if (d, k) != (dataset, kind):
                assumed.setdefault(f"{d}/{arch} {KINDS[k][0]}", []).append(f"{dataset} {KINDS[kind][0]}")
            return timings[(d, arch, k)]
    return None

lines = [f"bmrsparse device check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", f"device: {device}",
         f"timed: {steps} steps x 3 windows (median) per row after compiling; minibatch "
         f"{cfg['training']['batch_size']}{'; TINY networks (CPU check), not the paper sizes' if tiny else ''}",
         "", table.read_text().rstrip(), ""]
for name, keep in (("the paper grid's FashionMNIST part", {"fashion_mnist"}),
                   ("the whole paper grid", set(cfg["datasets"]))):
    sub = [j for j in jobs if j.wildcards.get("dataset", "fashion_mnist") in keep]
    sub_cfg = dict(cfg, datasets=[d for d in cfg["datasets"] if d in keep])
    needed = {w for j in sub for w in job_work(j, sub_cfg)}
    assumed.clear()
    grid = {w: timing_for(*w) for w in sorted(needed)}
    if None in grid.values():
        lines += [f"== {name}: no estimate (no step time measured for "
                  f"{', '.join(f'{a} {k}' for (_, a, k), t in grid.items() if t is None)})", ""]
        continue
    est = estimate(sub, sub_cfg, grid, startup, saved["cores"], saved["gpu_limit"])
    lines += [f"== {name}", format_plan(sub, est, sub_cfg, grid, device=device, cores=saved["cores"],
                                        gpu_limit=saved["gpu_limit"], startup_s=startup, cached=False,
                                        configfiles=saved["configfiles"]),
              "  step times assumed, not measured (the measured row: what it stands in for): "
              + ("; ".join(f"{src}: {', '.join(sorted(set(v)))}" for src, v in sorted(assumed.items())) or "none"),
              ""]
lines.append(f"check took {time.perf_counter() - start:.0f} s after start-up")
(out / "gpu_check.txt").write_text("\n".join(lines) + "\n")
print("\n".join(lines), flush=True)
EOF
    echo "== wrote $out/gpu_check.txt, $out/step_times.csv, $out/gpu_check.log"
}

case ${1:-} in
    prepare) prepare ;;
    run) run ;;
    -h | --help)
        echo "usage: tools/gpu_check.sh prepare|run"
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        ;;
    *)
        echo "usage: tools/gpu_check.sh prepare|run  (see the header of tools/gpu_check.sh)" >&2
        exit 2
        ;;
esac
