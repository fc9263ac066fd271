"""Snakemake's between-workflow cache shares the Flat-FF warm-up (and the prepared data) across checkouts.

Two copies of the workflow in different directories point SNAKEMAKE_OUTPUT_CACHE at one folder and run with
``--cache`` up to the warm-up posteriors of config/test.yaml (plus a second seed). The first trains and stores them;
the second takes every warm-up from the cache and trains none. A third copy with another warm-up learning rate
must miss the cache and train, and so must a fourth whose warm-up differs in a setting its folder's tag does not
name (the batch size).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_workflow

#: Merged over config/test.yaml: a second seed, so that two warm-ups differ only in a wildcard.
CONFIG_OVERRIDE = "seeds: [0, 1]\n"
WARMUPS = [("mlp", 0), ("mlp", 1), ("lenet", 0)]
DATA = "results/data/fashion_mnist.npz"

pytestmark = pytest.mark.slow


def _warmup(arch: str, seed: int, name: str, tag: str = "lr0.005") -> str:
    """A warm-up's output; `tag`: its settings' folder (Flat-FF's learning rate in config/test.yaml)."""
    return f"results/warmup/fashion_mnist/{arch}/{tag}/seed{seed}/{name}"


def _copy_workflow(dest: Path, override: str) -> Path:
    return copy_workflow(dest, override)


def _snakemake_cached(workdir: Path, cache: Path, targets: list[str]) -> str:
    env = dict(os.environ, SNAKEMAKE_OUTPUT_CACHE=str(cache))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--cache"]
    cmd += ["--configfile", "config/test.yaml", "override.yaml", "--", *targets]
    proc = subprocess.run(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200
    )
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed in {workdir} (exit {proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc.stdout


def _stored(out: str, path: str) -> bool:
    return f"Moving output file {path} to cache." in out


def _taken(out: str, path: str) -> bool:
    return f"Symlinking output file {path} from cache." in out


def test_second_checkout_takes_warmup_from_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    targets = [_warmup(arch, seed, "posterior.npz") for arch, seed in WARMUPS]

    first = _copy_workflow(tmp_path / "first", CONFIG_OVERRIDE)
    out1 = _snakemake_cached(first, cache, targets)
    for arch, seed in WARMUPS:
        for name in ("posterior.npz", "metrics.csv"):
            path = _warmup(arch, seed, name)
            assert _stored(out1, path), f"first run did not store {path} in the cache:\n{out1[-3000:]}"
            assert (first / path).is_symlink() and (first / path).resolve().parent == cache.resolve()
    # Each warm-up has its own cache entry: the key sees the arch and the seed, not only the shared data.
    entries = {(first / t).resolve() for t in targets}
    assert len(entries) == len(targets), "two different warm-ups share one cache entry"
    contents = {(first / t).read_bytes() for t in targets}
    assert len(contents) == len(targets), "two different warm-ups produced identical posteriors"

    second = _copy_workflow(tmp_path / "second", CONFIG_OVERRIDE)
    out2 = _snakemake_cached(second, cache, targets)
    assert _taken(out2, DATA) and not _stored(out2, DATA), "the prepared data set was not reused"
    for arch, seed in WARMUPS:
        for name in ("posterior.npz", "metrics.csv"):
            path = _warmup(arch, seed, name)
            assert _taken(out2, path), f"second run did not take {path} from the cache:\n{out2[-3000:]}"
            assert not _stored(out2, path), f"second run trained {path} again"
            assert (second / path).resolve() == (first / path).resolve()
        # No warm-up training ran: the rule's log is empty (Snakemake only creates it) and the metrics, timing
        # columns included, are the first run's.
        log = second / "logs" / "train_warmup" / "fashion_mnist" / arch / "lr0.005" / f"seed{seed}.log"
        assert not log.exists() or log.stat().st_size == 0, f"{log} has output, so the warm-up trained"
        assert (second / _warmup(arch, seed, "metrics.csv")).read_text() == (
            first / _warmup(arch, seed, "metrics.csv")
        ).read_text()
    assert not re.search(r"Moving output file .* to cache\.", out2)

    # A changed warm-up setting is a different cache entry: the third checkout trains its own.
    changed = CONFIG_OVERRIDE + "training:\n  learning_rate:\n    flat_ff: 4.0e-3\n"
    third = _copy_workflow(tmp_path / "third", changed)
    target = _warmup("mlp", 0, "posterior.npz", tag="lr0.004")
    out3 = _snakemake_cached(third, cache, [target])
    assert _taken(out3, DATA)
    assert _stored(out3, target), f"a warm-up with another learning rate was taken from the cache:\n{out3[-3000:]}"
    assert (third / target).resolve() != (first / _warmup("mlp", 0, "posterior.npz")).resolve()
    # the same folder, another setting: the key (params) sees it
    fourth = _copy_workflow(tmp_path / "fourth", CONFIG_OVERRIDE + "training:\n  batch_size: 16\n")
    target = _warmup("mlp", 0, "posterior.npz")
    out4 = _snakemake_cached(fourth, cache, [target])
    assert _stored(out4, target), f"a warm-up with another batch size was taken from the cache:\n{out4[-3000:]}"
    assert (fourth / target).resolve() != (first / target).resolve()
