"""Benchmark: time per SVI step, compile time and the BMR prune step for every architecture x method.

Usage::

    python -m bmrsparse.bench                       # all archs x methods, FashionMNIST shapes, this device
    python -m bmrsparse.bench --archs mlp lenet --steps 200 --out results/bench/bench.csv
    python -m bmrsparse.bench --tiny --steps 5      # shrunken networks: a smoke test
    python -m bmrsparse.bench --archs mlp lenet --compare-reference --reference-dir ~/bmr4pml \
        --reference-script ref_bench.py --repeats 3 --out results/bench/compare.csv

``--compare-reference`` times the authors' code (github.com/dimarkov/bmr4pml) beside this library, one after the
other in one run on this machine, alternating the two sides ``--repeats`` times per (arch, method), and prints one
table: the median ms/step of each side, their spread (min-max over the repeats), ``ratio`` (ours over theirs, < 1:
faster) and ``vs_map`` (each side's step over the same network's Flat-MAP step). The authors' side is run by a
driver script (``--reference-script`` or ``$BMRSPARSE_REF_SCRIPT``; it is called as
``python SCRIPT steps SCALE ARCH`` with ``$METHODS`` naming one method and prints one JSON line per method with
``ms_per_step``) on the checkout in ``--reference-dir`` (or ``$BMR4PML_DIR``, the folder that holds the package
``bmr4pml/``); its network library (equinox) must be importable, e.g. through ``$PYTHONPATH``.

Images are random ``uint8`` arrays of the data set's shape (speed does not depend on pixel values), so no
download is needed. Each row: device, dataset, arch, method, batch_size, compile_s, ms_per_step, steps_per_s and,
for BMR-S&S, prune_ms (ΔF and the fixed point over all layers, compiled) and prune_share (prune time over the
training time of one epoch of ``--epoch-steps`` steps, the paper's 2e4).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from . import data as bdata
from .methods import METHODS
from .nets import NETWORKS, input_shape
from .settings import TrainingSettings
from .train import Trainer

#: Sizes of ``--tiny``: each network's declared ``tiny`` (bmrsparse.nets.Network), a live view.
TINY = NETWORKS.attribute_view("tiny")


def device_name() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '')}".rstrip(":")


def synthetic_dataset(name: str, arch: str, n_train: int = 4096, n_test: int = 256, seed: int = 0):
    """Random uint8 images with the raw shape of data set ``name`` (its declared ``shape``)."""
    shape = bdata.get_dataset(name).shape
    rng = np.random.default_rng(seed)
    k = bdata.NUM_CLASSES[name]
    x = rng.integers(0, 256, (n_train,) + shape, dtype=np.uint8)
    xt = rng.integers(0, 256, (n_test,) + shape, dtype=np.uint8)
    return bdata.Dataset(name, x, rng.integers(0, k, n_train), xt, rng.integers(0, k, n_test), k)


#: Trainers kept by ``bench_one(..., reuse=True)``: {(dataset, arch, method, seeds, settings): Trainer}.
_TRAINERS: dict = {}


def bench_one(dataset: str, arch: str, method: str, *, steps: int, epoch_steps: int, tiny: bool = False,
              batch_size: int | None = None, num_seeds: int = 1, elbo: str | None = None,
              settings: TrainingSettings | dict | None = None, reuse: bool = False):
    """Time ``steps`` SVI steps (after one compiling step) of one (dataset, arch, method) on synthetic images.

    The settings are either a training job's own ``settings`` (those of ``bmrsparse.experiment.run_stage``, e.g.
    the workflow's timing of claim 4, so that it times exactly what the training jobs run), or built from
    ``batch_size``, ``tiny`` and ``elbo`` over the library's defaults. Giving both raises ``ValueError``.

    ``reuse``: keep the trainer (its data and compiled step) for a later call with the same arguments, which then
    starts from a fresh initial state without compiling again (its row repeats the first compile's ``compile_s``):
    repeated rounds of the same timing (rule time_steps) pay one compile per (arch, method).
    """
    if settings is not None:
        if tiny or batch_size is not None or elbo is not None:
            raise ValueError("bench_one: pass either settings or tiny/batch_size/elbo, not both")
        settings = TrainingSettings.from_mapping(settings)
    else:
        if batch_size is None:
            raise ValueError("bench_one needs batch_size (or a job's settings)")
        overrides = {"batch_size": batch_size, "net": {a: dict(v) for a, v in TINY.items()} if tiny else {}}
        if elbo is not None:
            overrides["elbo"] = elbo
        settings = TrainingSettings(**overrides)
    batch_size = settings.batch_size
    key = (dataset, arch, method, num_seeds, repr(settings))
    tr = _TRAINERS.get(key) if reuse else None
    if tr is None:
        ds = synthetic_dataset(dataset, arch)
        tr = Trainer(arch=arch, method=method, dataset=ds, seeds=list(range(num_seeds)), settings=settings)
        if reuse:
            _TRAINERS[key] = tr
    state = tr.init()
    jax.block_until_ready(state.svi_state)
    state, _ = tr.train(state, 1, chunk_size=1, progress=False)  # compiles (timed inside) and warms up
    compile_s = tr.compile_seconds
    t0 = time.perf_counter()
    state, secs = tr.train(state, steps, chunk_size=steps, progress=False)
    wall = time.perf_counter() - t0
    row = {
        "device": device_name(),
        "dataset": dataset,
        "arch": arch,
        "method": method,
        "batch_size": batch_size,
        "seeds": num_seeds,
        "elbo": settings.elbo,
        "input_shape": "x".join(map(str, input_shape(arch, dataset))),
        "compile_s": round(compile_s, 3),
        "ms_per_step": 1e3 * secs / steps,
        "steps_per_s": steps / secs,
        "wall_s": wall,
        "prune_ms": np.nan,
        "prune_share": np.nan,
    }
    if METHODS[method].prunes:
        # a method pruned against another method's state (a matched baseline) is timed against its own masks
        reference = state.masks if METHODS[method].reference else None
        state = tr.prune(state, reference)  # compile
        jax.block_until_ready(state.masks)
        reps = 5
        t0 = time.perf_counter()
        for _ in range(reps):
            s2 = tr.prune(state, reference)
            jax.block_until_ready(s2.masks)
        prune_s = (time.perf_counter() - t0) / reps
        row["prune_ms"] = 1e3 * prune_s
        row["prune_share"] = prune_s / (epoch_steps * secs / steps)
    return row


#: the four methods of the paper, as the authors' code names them
REFERENCE_LABELS = {"flat_map": "Flat-MAP", "flat_ff": "Flat-FF", "tiered_ff": "Tiered-FF", "bmr_ss": "BMR-S&S"}


class ReferenceUnavailable(RuntimeError):
    """The authors' code could not be run (missing checkout, driver script or dependency)."""


def find_reference(reference_dir=None, script=None) -> tuple[Path, Path]:
    """The authors' checkout (holding ``bmr4pml/``) and the driver script; a clear error when either is missing."""
    reference_dir = reference_dir or os.environ.get("BMR4PML_DIR")
    script = script or os.environ.get("BMRSPARSE_REF_SCRIPT")
    if not reference_dir:
        raise ReferenceUnavailable("--compare-reference needs the authors' code: pass --reference-dir (or set BMR4PML_DIR) "
                             "to a checkout of github.com/dimarkov/bmr4pml, the folder that holds bmr4pml/")
    ref = Path(reference_dir).expanduser()
    if not (ref / "bmr4pml").is_dir():
        raise ReferenceUnavailable(f"{ref} does not hold the package folder bmr4pml/ (a checkout of "
                             "github.com/dimarkov/bmr4pml); pass its top folder as --reference-dir")
    if not script:
        raise ReferenceUnavailable("--compare-reference needs the driver script that times the authors' code: "
                             "pass --reference-script (or set BMRSPARSE_REF_SCRIPT)")
    if not Path(script).expanduser().is_file():
        raise ReferenceUnavailable(f"reference driver script {script} not found")
    return ref, Path(script).expanduser()


def reference_step(arch: str, method: str, *, reference_dir: Path, script: Path, steps: int,
                   timeout: float = 3600) -> dict:
    """ms/step of the authors' code for one (arch, method), batch 128: one run of the driver script."""
    label = REFERENCE_LABELS[method]
    env = dict(os.environ, BMR4PML_DIR=str(reference_dir), METHODS=label)
    cmd = [sys.executable, str(script), "steps", f"{steps / 200:g}", arch]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    rows = [r for r in rows if r.get("method") == label and "ms_per_step" in r]
    if run.returncode != 0 or not rows:
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-5:])
        raise ReferenceUnavailable(f"the authors' code failed for {arch}/{label} (exit {run.returncode}):\n{tail}")
    return rows[-1]


def compare_table(ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    """One row per (arch, method): both sides' median ms/step, spread, ``ratio`` (ours/theirs) and ``vs_map``.

    ``ours`` and ``theirs``: one row per timed run with columns ``arch``, ``method``, ``ms_per_step`` (ours also
    ``compile_s``). ``vs_map_*``: the side's median step over the same side's Flat-MAP median on that network.
    """
    def summary(df, side):
        g = df.groupby(["arch", "method"], sort=False)["ms_per_step"]
        out = pd.DataFrame({f"{side}_ms": g.median(), f"{side}_min": g.min(), f"{side}_max": g.max(),
                            "repeats": g.size()})
        return out

    t = summary(ours, "ours").join(summary(theirs, "ref").drop(columns="repeats"), how="left").reset_index()
    if "compile_s" in ours:
        t = t.merge(ours.groupby(["arch", "method"], sort=False)["compile_s"].max().rename("ours_compile_s_max"),
                    on=["arch", "method"], how="left")
    t["ratio"] = t.ours_ms / t.ref_ms
    for side in ("ours", "ref"):
        maps = t[t.method == "flat_map"].set_index("arch")[f"{side}_ms"]
        t[f"vs_map_{side}"] = t[f"{side}_ms"] / t.arch.map(maps)
    t.insert(2, "label", t.method.map(REFERENCE_LABELS))
    return t


def format_compare(t: pd.DataFrame) -> str:
    """The comparison as a Markdown table (ms/step medians, min-max spread, ratios)."""
    lines = ["| arch | method | authors' ms/step (min-max) | bmrsparse ms/step (min-max) | ratio ours/theirs | "
             "ours vs own MAP | theirs vs own MAP |", "|---|---|---|---|---|---|---|"]
    for r in t.itertuples():
        lines.append(f"| {r.arch} | {r.label} | {r.ref_ms:.2f} ({r.ref_min:.2f}-{r.ref_max:.2f}) | "
                     f"{r.ours_ms:.2f} ({r.ours_min:.2f}-{r.ours_max:.2f}) | {r.ratio:.2f} | "
                     f"{r.vs_map_ours:.2f} | {r.vs_map_ref:.2f} |")
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU model named in /proc/cpuinfo ('' where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def compare_reference(a) -> pd.DataFrame:
    """Time both sides, alternating (ours, theirs, theirs, ours, ...) ``a.repeats`` times per (arch, method)."""
    ref_dir, script = find_reference(a.reference_dir, a.reference_script)
    methods = [m for m in a.methods if m in REFERENCE_LABELS]
    if not methods:
        raise ReferenceUnavailable(f"--compare-reference times only {sorted(REFERENCE_LABELS)}")
    ours, theirs = [], []
    for arch in a.archs:
        for method in methods:
            for rep in range(a.repeats):
                sides = ("ours", "ref") if rep % 2 == 0 else ("ref", "ours")
                for side in sides:
                    if side == "ours":
                        row = bench_one(a.dataset, arch, method, steps=a.steps, epoch_steps=a.epoch_steps,
                                        tiny=a.tiny, batch_size=a.batch_size, elbo=a.elbo)
                        ours.append(row)
                    else:
                        row = dict(reference_step(arch, method, reference_dir=ref_dir, script=script,
                                                  steps=a.steps), arch=arch, method=method)
                        theirs.append(row)
                    print(f"{side:>4} {arch:>6} {REFERENCE_LABELS[method]:>9} run {rep}: "
                          f"{row['ms_per_step']:8.2f} ms/step", flush=True)
    t = compare_table(pd.DataFrame(ours), pd.DataFrame(theirs))
    t.insert(0, "device", device_name())
    t.insert(1, "cpu", cpu_model())
    t["elbo"] = a.elbo or TrainingSettings().elbo
    print(f"\n{device_name()} ({cpu_model()}), batch {a.batch_size}, {a.steps} steps per run, "
          f"{a.repeats} runs per side, elbo {t.elbo.iloc[0]}")
    print(format_compare(t), flush=True)
    return t


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(prog="python -m bmrsparse.bench", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default=next(iter(bdata.DATASETS)), choices=list(bdata.DATASETS))
    p.add_argument("--archs", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--steps", type=int, default=200, help="timed steps per (arch, method)")
    p.add_argument("--epoch-steps", type=int, default=20000, help="steps of one BMR epoch, for prune_share")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--tiny", action="store_true", help="shrunken networks (smoke test)")
    p.add_argument("--seeds", type=int, default=1,
                   help="also time this many seeds vmapped in one program (cost_vs_one_seed: over one seed's)")
    p.add_argument("--out", default=None, help="CSV to write (atomically)")
    p.add_argument("--elbo", default=None, choices=["trace_graph", "mean_field"],
                   help="ELBO estimator of the mean-field methods (default: the library's setting training.elbo)")
    p.add_argument("--compare-reference", action="store_true",
                   help="time the authors' code beside this library and print both sides and their ratios")
    p.add_argument("--reference-dir", default=None, help="checkout of the authors' code (default: $BMR4PML_DIR)")
    p.add_argument("--reference-script", default=None,
                   help="driver script timing the authors' code (default: $BMRSPARSE_REF_SCRIPT)")
    p.add_argument("--repeats", type=int, default=3, help="runs per side and (arch, method) with --compare-reference")
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error("--steps must be >= 1")
    if a.compare_reference:
        if a.repeats < 1:
            p.error("--repeats must be >= 1")
        try:
            df = compare_reference(a)
        except ReferenceUnavailable as e:
            p.exit(2, f"{p.prog}: error: {e}\n")
        _write(df, a.out)
        return df
    rows = []
    for arch in a.archs:
        for method in a.methods:
            one = None
            for n in sorted({1, a.seeds}):
                row = bench_one(a.dataset, arch, method, steps=a.steps, epoch_steps=a.epoch_steps, tiny=a.tiny,
                                batch_size=a.batch_size, num_seeds=n, elbo=a.elbo)
                one = one or row["ms_per_step"]
                row["cost_vs_one_seed"] = row["ms_per_step"] / one
                rows.append(row)
                prune = (f"  prune {row['prune_ms']:.2f} ms ({100 * row['prune_share']:.3f} % of an epoch)"
                         if not np.isnan(row["prune_ms"]) else "")
                print(f"{row['device']:>12} {arch:>6} {method:>10} x{n} {row['ms_per_step']:8.2f} ms/step "
                      f"{row['steps_per_s']:8.1f} steps/s  compile {row['compile_s']:6.2f} s{prune}", flush=True)
    df = pd.DataFrame(rows)
    _write(df, a.out)
    return df


def _write(df: pd.DataFrame, out) -> None:
    if out:
        from .io import atomic_write_text

        atomic_write_text(out, df.to_csv(index=False))
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
