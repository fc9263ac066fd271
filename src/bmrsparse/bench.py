"""Benchmark: time per SVI step, compile time and the BMR prune step for every architecture x method.

Usage::

    python -m bmrsparse.bench                       # all archs x methods, FashionMNIST shapes, this device
    python -m bmrsparse.bench --archs mlp lenet --steps 200 --out results/bench/bench.csv
    python -m bmrsparse.bench --tiny --steps 5      # shrunken networks: a smoke test

Images are random ``uint8`` arrays of the data set's shape (speed does not depend on pixel values), so no
download is needed. Each row: device, dataset, arch, method, batch_size, compile_s, ms_per_step, steps_per_s and,
for BMR-S&S, prune_ms (ΔF and the fixed point over all layers, compiled) and prune_share (prune time over the
training time of one epoch of ``--epoch-steps`` steps, the paper's 2e4).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np
import pandas as pd

from . import data as bdata
from .experiment import resolve_settings
from .methods import METHODS
from .nets import ARCHS, input_shape
from .train import Trainer

TINY = {
    "mlp": {"width": 32, "depth": 2},
    "lenet": {"features": [4, 8, 16], "hidden": 16},
    "mixer": {"hidden_dim": 16, "tokens_mlp_dim": 16, "channels_mlp_dim": 16, "num_blocks": 1},
    "vit": {"embed_dim": 16, "num_heads": 2, "mlp_dim": 16, "num_blocks": 1},
}


def device_name() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '')}".rstrip(":")


def synthetic_dataset(name: str, arch: str, n_train: int = 4096, n_test: int = 256, seed: int = 0):
    """Random uint8 images with the raw shape of data set ``name`` (28x28x1 or 32x32x3)."""
    shape = (28, 28, 1) if name == "fashion_mnist" else (32, 32, 3)
    rng = np.random.default_rng(seed)
    k = bdata.NUM_CLASSES[name]
    x = rng.integers(0, 256, (n_train,) + shape, dtype=np.uint8)
    xt = rng.integers(0, 256, (n_test,) + shape, dtype=np.uint8)
    return bdata.Dataset(name, x, rng.integers(0, k, n_train), xt, rng.integers(0, k, n_test), k)


def bench_one(dataset: str, arch: str, method: str, *, steps: int, epoch_steps: int, tiny: bool, batch_size: int,
              num_seeds: int = 1):
    settings = resolve_settings({"batch_size": batch_size, "net": TINY if tiny else {}})
    ds = synthetic_dataset(dataset, arch)
    tr = Trainer(arch=arch, method=method, dataset=ds, seeds=list(range(num_seeds)), settings=settings)
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


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(prog="python -m bmrsparse.bench", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion_mnist", choices=list(bdata.DATASETS))
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--steps", type=int, default=200, help="timed steps per (arch, method)")
    p.add_argument("--epoch-steps", type=int, default=20000, help="steps of one BMR epoch, for prune_share")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--tiny", action="store_true", help="shrunken networks (smoke test)")
    p.add_argument("--seeds", type=int, default=1,
                   help="also time this many seeds vmapped in one program (cost_vs_one_seed: over one seed's)")
    p.add_argument("--out", default=None, help="CSV to write (atomically)")
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error("--steps must be >= 1")
    rows = []
    for arch in a.archs:
        for method in a.methods:
            one = None
            for n in sorted({1, a.seeds}):
                row = bench_one(a.dataset, arch, method, steps=a.steps, epoch_steps=a.epoch_steps, tiny=a.tiny,
                                batch_size=a.batch_size, num_seeds=n)
                one = one or row["ms_per_step"]
                row["cost_vs_one_seed"] = row["ms_per_step"] / one
                rows.append(row)
                prune = (f"  prune {row['prune_ms']:.2f} ms ({100 * row['prune_share']:.3f} % of an epoch)"
                         if not np.isnan(row["prune_ms"]) else "")
                print(f"{row['device']:>12} {arch:>6} {method:>10} x{n} {row['ms_per_step']:8.2f} ms/step "
                      f"{row['steps_per_s']:8.1f} steps/s  compile {row['compile_s']:6.2f} s{prune}", flush=True)
    df = pd.DataFrame(rows)
    if a.out:
        from .io import atomic_write_text

        atomic_write_text(a.out, df.to_csv(index=False))
        print(f"wrote {a.out}", file=sys.stderr)
    return df


if __name__ == "__main__":
    main()
