"""Shared fixtures: a small real-FashionMNIST data set for fast training tests; a copy of the workflow."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
ROOT = Path(__file__).resolve().parents[1]


def _fmnist_source():
    """Where real FashionMNIST can be read offline, or None."""
    for d in (os.environ.get("BMRSPARSE_DATA_DIR"), DEBIAN_FMNIST):
        if d and Path(d).is_dir() and any(Path(d).rglob("train-images-idx3-ubyte*")):
            return Path(d)
    return None


#: JAX reads its persistent compilation cache's folder from this variable (the workflow's scripts only set it from
#: the config's jax_cache_dir when it is unset: os.environ.setdefault).
JAX_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


@pytest.fixture(scope="session", autouse=True)
def shared_jax_cache(tmp_path_factory):
    """One JAX compilation cache for every Snakemake run and job this session starts (they inherit the variable):
    the workflow runs of different tests, each in its own copy of the workflow, compile the same small programs,
    and each would otherwise compile them afresh into its own results/.jax_cache. Speed only: a cached program is
    the compiled program. (This process's JAX reads the variable when first imported, mostly at collection, before
    this runs.) A folder given in the environment is kept."""
    if os.environ.get(JAX_CACHE_ENV):
        yield Path(os.environ[JAX_CACHE_ENV])
        return
    folder = tmp_path_factory.mktemp("jax_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(JAX_CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="session")
def fmnist_full(tmp_path_factory):
    """The whole real FashionMNIST, prepared (skips when no offline copy exists)."""
    from bmrsparse import data

    src = _fmnist_source()
    if src is None:
        pytest.skip(
            "real FashionMNIST not found offline: install Debian's dataset-fashion-mnist "
            "(apt-get install dataset-fashion-mnist) or set BMRSPARSE_DATA_DIR"
        )
    out = tmp_path_factory.mktemp("data") / "fashion_mnist.npz"
    data.prepare_dataset("fashion_mnist", out, source_dir=src, download=False)
    return out


@pytest.fixture(scope="session")
def fmnist_small(fmnist_full, tmp_path_factory):
    """A 6000/1000 subset of real FashionMNIST in the prepared format (first images of each split)."""
    from bmrsparse import data
    from bmrsparse.io import atomic_savez

    ds = data.load_prepared(fmnist_full)
    out = tmp_path_factory.mktemp("data") / "fashion_mnist_small.npz"
    atomic_savez(
        out,
        x_train=ds.x_train[:6000],
        y_train=ds.y_train[:6000],
        x_test=ds.x_test[:1000],
        y_test=ds.y_test[:1000],
        name=np.array("fashion_mnist"),
        num_classes=np.array(10, np.int64),
    )
    return out


#: shrunken networks for fast tests
TINY_NETS = {
    "mlp": {"width": 64, "depth": 2},
    "lenet": {"features": [4, 8, 16], "hidden": 16},
    "mixer": {"hidden_dim": 16, "tokens_mlp_dim": 16, "channels_mlp_dim": 16, "num_blocks": 1, "patch_size": 8},
    "vit": {"embed_dim": 16, "num_heads": 2, "mlp_dim": 16, "num_blocks": 1, "patch_size": 8},
}


#: what a run of the workflow needs (not results)
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "profiles", "envs")


def noise_dataset(n: int = 16):
    """A FashionMNIST-shaped data set of ``n`` random images (the same ones as train and test set), for tests that
    need a Trainer's shapes, not learning."""
    from bmrsparse import data as bdata

    x = np.random.default_rng(0).integers(0, 255, (n, 28, 28, 1), dtype=np.uint8)
    y = np.arange(n) % 10
    return bdata.Dataset("fashion_mnist", x, y, x, y, 10)


#: The Trainer tests' smallest MLP: one hidden layer of 8 units, minibatch 8.
TINY_MLP_SETTINGS = {"net": {"mlp": {"width": 8, "depth": 1}}, "batch_size": 8}


def copy_workflow(dest: Path, override: str | None = None) -> Path:
    """Copy the workflow into ``dest`` (so runs neither see nor touch the project's results); optionally write
    ``override.yaml`` with the given text."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", ".snakemake"))
        elif src.exists():
            shutil.copy2(src, dest / part)
    if override is not None:
        (dest / "override.yaml").write_text(override)
    return dest


# Synthetic tidy metrics (the tables' and the figures' tests)
METHODS = ("flat_map", "flat_ff", "tiered_ff", "bmr_ss")
# Final-epoch numbers per method, shaped like the paper's claims (BMR lowest ECE/NLL, Tiered-FF next).
FINAL = {
    "flat_map": dict(acc=0.88, ece=0.06, nll=0.40, pruned_fraction=0.0, steps_per_s=300.0),
    "flat_ff": dict(acc=0.87, ece=0.05, nll=0.38, pruned_fraction=0.0, steps_per_s=200.0),
    "tiered_ff": dict(acc=0.86, ece=0.03, nll=0.36, pruned_fraction=0.0, steps_per_s=100.0),
    "bmr_ss": dict(acc=0.87, ece=0.02, nll=0.35, pruned_fraction=0.8, steps_per_s=115.0),
}


def make_metrics(datasets=("fashion_mnist",), archs=("mlp", "lenet"), methods=METHODS, seeds=(0,), epochs=3,
                 final=FINAL, noise=0.0) -> pd.DataFrame:
    """A tidy metrics table: every method approaching its FINAL numbers over the epochs."""
    rng = np.random.default_rng(0)
    rows = []
    for dataset, arch, method, seed in itertools.product(datasets, archs, methods, seeds):
        for epoch in range(epochs + 1):
            f = dict(final[method])
            progress = (epoch + 1) / (epochs + 1)
            row = dict(dataset=dataset, arch=arch, method=method, seed=seed, epoch=epoch, step=100 * (epoch + 1),
                       acc=f["acc"] * progress + noise * rng.normal(), ece=f["ece"] / progress,
                       ece_width15=f["ece"], nll=f["nll"] / progress,
                       pruned_fraction=f["pruned_fraction"] * epoch / max(epochs, 1), seconds=1.0,
                       steps_per_s=f["steps_per_s"])
            if method == "bmr_ss" and epoch == 0:  # the shared warm-up is a Flat-FF stage
                row["steps_per_s"] = final["flat_ff"]["steps_per_s"]
            rows.append(row)
    return pd.DataFrame(rows)
