"""Pruning baselines at BMR-S&S's per-layer sparsity: exact counts, the right weights, never the output layer."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import pytest

from bmrsparse import data as bdata, methods
from bmrsparse.experiment import run_stage
from bmrsparse.io import atomic_savez
from bmrsparse.train import Trainer
from bmrsparse.settings import TrainingSettings

BASELINES = ["magnitude_ss", "snr_ss"]
TINY = {"mlp": {"width": 16, "depth": 2}}


def _scores(name, mu, sigma):
    """What each baseline ranks by, written out independently of its module (lowest pruned first)."""
    return {"magnitude_ss": np.abs(mu), "snr_ss": np.abs(mu) / sigma}[name]


def _synthetic(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, size=n)
    return x, y


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    x, y = _synthetic()
    path = tmp_path_factory.mktemp("data") / "fashion_mnist.npz"
    atomic_savez(path, x_train=x, y_train=y, x_test=x[:64], y_test=y[:64], name=np.array("fashion_mnist"),
                 num_classes=np.array(10, np.int64))
    return path


def _flat(tree_of_layer):
    return np.concatenate([np.ravel(np.asarray(v)) for v in tree_of_layer.values()])


def _trainer(name, seeds=(0,)):
    x, y = _synthetic()
    ds = bdata.Dataset("fashion_mnist", x, y, x[:64], y[:64], 10)
    settings = TrainingSettings.from_mapping({"batch_size": 32, "net": TINY, "init_radius": 0.5})
    return Trainer(arch="mlp", method=name, dataset=ds, seeds=list(seeds), settings=settings)


def _random_reference(trainer, fractions, rng):
    """Keep-masks (seed axis) pruning a given fraction of each non-output layer at random positions."""
    ref = {}
    for layer, frac in zip(trainer.layers, fractions):
        ref[layer.name] = {}
        total = layer.size
        n = 0 if layer.is_head else int(frac * total)
        keep = np.ones(total, bool)
        keep[rng.choice(total, n, replace=False)] = False
        start = 0
        for leaf, shape in layer.shapes:
            size = int(np.prod(shape))
            ref[layer.name][leaf] = keep[start:start + size].reshape(shape)[None]
            start += size
    return jax.tree.map(np.asarray, ref)


@pytest.mark.parametrize("name", BASELINES)
def test_prunes_the_references_counts_lowest_score_first_and_accumulates(name):
    trainer = _trainer(name)
    state, _ = trainer.train(trainer.init(), 20, chunk_size=20, progress=False)  # mu and sigma spread out
    rng = np.random.default_rng(1)
    n_layers = len(trainer.layers)
    post = jax.device_get(methods.layer_posteriors(trainer.built, jax.tree.map(lambda a: a[0], trainer.params(state))))

    first = _random_reference(trainer, [0.3] * n_layers, rng)
    pruned = trainer.prune(state, first)
    masks = jax.device_get(pruned.masks)
    for layer in trainer.layers:
        keep = _flat({k: v[0] for k, v in masks[layer.name].items()})
        if layer.is_head:
            assert keep.all(), "the output layer was pruned"
            continue
        n = int((~_flat({k: v[0] for k, v in first[layer.name].items()})).sum())
        assert n > 0 and (~keep).sum() == n  # exactly the reference's count in this layer
        score = _flat({k: _scores(name, *post[layer.name][k]) for k in post[layer.name]})
        # the pruned weights are the n lowest-scoring ones of the layer (kernel and bias together)
        assert score[~keep].max() <= score[keep].min()

    # the next epoch: more pruned in the reference; what was pruned stays pruned, the count is again exact
    second = jax.tree.map(lambda a, b: a & b, first, _random_reference(trainer, [0.5] * n_layers, rng))
    again = jax.device_get(trainer.prune(pruned, second).masks)
    for layer in trainer.layers:
        before = _flat({k: v[0] for k, v in masks[layer.name].items()})
        after = _flat({k: v[0] for k, v in again[layer.name].items()})
        assert not (after & ~before).any()
        assert (~after).sum() == (~_flat({k: v[0] for k, v in second[layer.name].items()})).sum()


def test_magnitude_ranks_by_the_posterior_mean_weight():
    """|E_q[w]| (the network's posterior-mean weights) orders a layer as the magnitude baseline does."""
    trainer = _trainer("magnitude_ss")
    state, _ = trainer.train(trainer.init(), 20, chunk_size=20, progress=False)
    ref = _random_reference(trainer, [0.4] * len(trainer.layers), np.random.default_rng(2))
    masks = jax.device_get(trainer.prune(state, ref).masks)
    mean = trainer.posterior_mean_weights(state)  # before pruning: every weight kept
    for layer in trainer.layers:
        if layer.is_head:
            continue
        node = mean
        for key in layer.path:
            node = node[key]
        ew = np.abs(_flat({k: node[k] for k in layer.leaves}))
        keep = _flat({k: masks[layer.name][k][0] for k in layer.leaves})
        assert (~keep).any() and ew[~keep].max() <= ew[keep].min()


def test_run_stage_matches_bmr_ss_per_layer_counts_from_its_state_file(tiny_data, tmp_path):
    """Warm-up -> BMR-S&S epochs 1, 2 -> each baseline's epochs 1, 2, reading BMR-S&S's state of that epoch."""
    settings = {"batch_size": 32, "net": TINY, "init_radius": 0.5, "num_eval_samples": 2, "chunk_size": 10,
                "test_subset": 32, "eval_batch_size": 32}
    common = dict(data_path=tiny_data, dataset="fashion_mnist", arch="mlp", seed=[0, 1], settings=settings,
                  progress=False)

    def paths(tag):
        return [tmp_path / f"{tag}_s{s}.npz" for s in (0, 1)], [tmp_path / f"{tag}_s{s}.csv" for s in (0, 1)]

    warm, warm_csv = paths("warm")
    run_stage(method="flat_ff", schedule=[30], first_epoch=0, out_state=warm, out_metrics=warm_csv, **common)
    previous = dict.fromkeys(["bmr_ss", *BASELINES], warm)
    for epoch in (1, 2):
        bmr, bmr_csv = paths(f"bmr{epoch}")
        run_stage(method="bmr_ss", schedule=[10], first_epoch=epoch, init_state=previous["bmr_ss"], out_state=bmr,
                  out_metrics=bmr_csv, **common)
        previous["bmr_ss"] = bmr
        bmr_rows = [row for path in bmr_csv for row in _csv(path)]
        for name in BASELINES:
            base, base_csv = paths(f"{name}{epoch}")
            df = run_stage(method=name, schedule=[10], first_epoch=epoch, init_state=previous[name],
                           reference_state=bmr, out_state=base, out_metrics=base_csv, **common)
            previous[name] = base
            for seed in (0, 1):
                theirs = _masks(bmr[seed])
                ours = _masks(base[seed])
                assert sum((~m).sum() for m in theirs.values()) > 0, "BMR-S&S pruned nothing: the test is empty"
                assert set(ours) == set(theirs)
                for layer in ours:
                    assert (~ours[layer]).sum() == (~theirs[layer]).sum(), (name, epoch, seed, layer)
                assert ours["head"].all()
            assert list(df["pruned_fraction"]) == pytest.approx([r["pruned_fraction"] for r in bmr_rows])
    with pytest.raises(ValueError, match="reference_state"):
        run_stage(method=BASELINES[0], schedule=[10], first_epoch=1, init_state=warm, out_state=paths("x")[0],
                  out_metrics=paths("x")[1], **common)


def _masks(path):
    """{layer: all keep-mask leaves of the layer, flattened} from a state file."""
    with np.load(path) as z:
        out = {}
        for key in z.files:
            if key.startswith("mask/"):
                _, *layer, leaf = key.split("/")
                out.setdefault("/".join(layer), []).append(np.ravel(z[key]))
    return {layer: np.concatenate(parts) for layer, parts in out.items()}


def _csv(path):
    import pandas as pd

    return pd.read_csv(path).to_dict("records")


@pytest.mark.parametrize("name", BASELINES)
def test_workflow_plans_each_epoch_after_bmr_ss_of_that_epoch(name, tmp_path):
    from conftest import copy_workflow

    project = copy_workflow(tmp_path / "project")
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", f"results/train/fashion_mnist/mlp/{name}/seed0/epoch2/metrics.csv",
         "--dry-run", "--configfile", "config/test.yaml", "--config", "archs=[mlp]", f"methods=[{name}]"],
        cwd=project, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    blocks = [b for b in run.stdout.split("\nrule ") if b.startswith("train_epoch:")]
    inputs = {b.split("output: ")[1].split("/metrics.csv")[0].split(", ")[-1]: b.split("input: ")[1].split("\n")[0]
              for b in blocks}
    mine = f"results/train/fashion_mnist/mlp/{name}/seed0"
    bmr = "results/train/fashion_mnist/mlp/bmr_ss/seed0"
    assert f"{bmr}/epoch2/posterior.npz" in inputs[f"{mine}/epoch2"]
    assert f"{mine}/epoch1/posterior.npz" in inputs[f"{mine}/epoch2"]
    assert f"{bmr}/epoch1/posterior.npz" in inputs[f"{mine}/epoch1"]
    assert "results/warmup/fashion_mnist/mlp/lr0.01/seed0/posterior.npz" in inputs[f"{mine}/epoch1"]
    assert f"{bmr}/epoch2" in inputs  # BMR-S&S is trained for the baseline even when not listed
