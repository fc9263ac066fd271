"""Measured inference: the table from real (tiny) state files, the exported compact network, the figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, copy_workflow

from bmrsparse import compact, compact_numpy, data as bdata, inference
from bmrsparse.io import atomic_savez
from bmrsparse.plots import plot_speedup_accuracy
from bmrsparse.settings import TrainingSettings
from bmrsparse.state import read_state, save_state
from bmrsparse.train import Trainer

NET = {"mlp": {"width": 16, "depth": 2}, "lenet": {"features": [3, 4, 8], "hidden": 8}}


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    """A tiny data set and, per architecture, a Flat-FF state and a structured BMR state pruned from it."""
    root = tmp_path_factory.mktemp("inference")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(256, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, size=256)
    data = root / "fashion_mnist.npz"
    atomic_savez(data, x_train=x, y_train=y, x_test=x[:40], y_test=y[:40], name=np.array("fashion_mnist"),
                 num_classes=np.array(10, np.int64))
    ds = bdata.Dataset("fashion_mnist", x, y, x[:40], y[:40], 10)
    settings = TrainingSettings.from_mapping({"batch_size": 32, "net": NET, "init_radius": 0.5})
    out = {}
    for arch in NET:
        dense = Trainer(arch=arch, method="flat_ff", dataset=ds, seeds=[0], settings=settings)
        state, _ = dense.train(dense.init(), 20, chunk_size=20, progress=False)
        save_state(dense, state, root / f"{arch}_flat_ff.npz", extra={"settings": settings})
        pruner = Trainer(arch=arch, method="bmr_struct", dataset=ds, seeds=[0], settings=settings)
        pstate, _ = read_state(pruner, root / f"{arch}_flat_ff.npz")
        pstate = pruner.prune(pstate)
        save_state(pruner, pstate, root / f"{arch}_bmr_struct.npz", extra={"settings": settings})
        out[arch] = {"flat_ff": str(root / f"{arch}_flat_ff.npz"), "bmr_struct": str(root / f"{arch}_bmr_struct.npz")}
    return data, out


@pytest.mark.parametrize("arch", ["mlp", "lenet"])
def test_inference_table_times_every_format_against_the_dense_network(states, arch, tmp_path):
    data, paths = states
    stem = tmp_path / "bmr_struct"
    small = inference.export_compact(paths[arch]["bmr_struct"], data, stem)
    net = compact_numpy.load(stem)
    images = bdata.load_prepared(data).x_test[:5]
    assert compact_numpy.predict(net, images).shape == (5, 10)
    table = inference.inference_table(paths[arch], data, exported={"bmr_struct": str(stem)}, batches=(1, 4),
                                      repeats=3, min_seconds=0.0, bcoo=("bmr_struct",))
    assert list(table.columns) == list(inference.COLUMNS)
    assert set(zip(table.method, table.format)) == {("flat_ff", "dense"), ("flat_ff", "compact"),
                                                    ("bmr_struct", "masked"), ("bmr_struct", "compact"),
                                                    ("bmr_struct", "bcoo")}
    assert set(table.batch) == {1, 4} and len(table) == 10
    dense = table[table.format == "dense"]
    assert (dense.speedup == 1.0).all() and (dense.params_kept_fraction == 1.0).all() and (dense.mac_ratio == 1).all()
    # the unpruned network in the compact runtime: the same widths and arithmetic, the reference of the same-runtime
    # speed-up
    full = table[(table.method == "flat_ff") & (table.format == "compact")]
    assert (full.widths == dense.widths.iloc[0]).all() and (full.speedup_same_runtime == 1.0).all()
    assert table[table.format != "compact"].speedup_same_runtime.isna().all()
    widths = [int(w) for w in dense.widths.iloc[0].split("-")]
    assert widths[-1] == 10 and widths[0] == (784 if arch == "mlp" else 1) and dense.inputs_kept.iloc[0] == widths[0]
    assert (table.ms_per_batch > 0).all() and table.acc.between(0, 1).all() and np.isfinite(table.nll).all()
    row = table[(table.format == "compact") & (table.method == "bmr_struct")].iloc[0]
    assert row.macs == compact.multiply_adds(net["spec"]) and row.mac_ratio == dense.macs.iloc[0] / row.macs
    assert row.widths == "-".join(map(str, compact.widths(net["spec"])))
    assert row.params == sum(net["arrays"][l[k]].size for l in net["spec"]["layers"] for k in ("kernel", "bias"))
    assert row.params == sum(small.arrays[k].size for k in small.arrays if k != "input_index")
    masked = table[table.format == "masked"].iloc[0]
    assert row.params <= masked.params < dense.params.iloc[0] or masked.params == dense.params.iloc[0]
    # the formats of one network compute the same function: the same accuracy on the same images
    accs = table[table.method == "bmr_struct"].groupby("format").acc.first()
    assert accs.nunique() == 1


def test_a_method_that_does_not_prune_is_only_the_dense_reference(states):
    data, paths = states
    with pytest.raises(ValueError, match="dense reference"):
        inference.inference_table({"bmr_struct": paths["mlp"]["bmr_struct"]}, data)


def _row(method, fmt, batch, acc, speedup, arch="mlp", steps=20000):
    return dict(dataset="fashion_mnist", arch=arch, method=method, format=fmt, seed=0, widths="784-40-10",
                inputs_kept=784, macs=1000, mac_ratio=speedup, params=1, params_kept_fraction=0.1, acc=acc, nll=0.4,
                batch=batch, ms_per_batch=1.0 / speedup, speedup=speedup,
                speedup_same_runtime=speedup if fmt == "compact" else float("nan"), train_steps=steps,
                train_seconds=100.0, device="cpu: test")


def test_speedup_figure_draws_every_panel_with_readable_speedup_ticks():
    rows = []
    for arch in ("mlp", "lenet"):
        for batch in (1, 128):
            for method, fmt, speed in (("flat_ff", "dense", 1.0), ("flat_ff", "compact", 1.1),
                                       ("bmr_ss", "masked", 1.0), ("bmr_ss", "bcoo", 0.4),
                                       ("bmr_struct", "compact", 1.03 if batch == 128 else 31.0)):
                rows.append(_row(method, fmt, batch, 0.85, speed, arch=arch))
    fig = plot_speedup_accuracy(pd.DataFrame(rows))
    assert len(fig.axes) == 4
    fig.canvas.draw()
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels and all(label.endswith("x") for label in labels)
        values = [float(label[:-1]) for label in labels]
        assert all(round(v / 10 ** np.floor(np.log10(v))) in (1, 2, 5) for v in values)  # 1-2-5 steps only
        assert not [t for t in ax.xaxis.get_minor_ticks() if t.label1.get_text()]  # no minor labels to overlap
        assert ax.get_xlim()[0] <= 0.4 and ax.get_xlim()[1] >= 1.1
    annotations = [c.get_text() for ax in fig.axes for c in ax.texts]
    assert any(text.startswith("MACs /") for text in annotations)
    assert "MACs /31" in annotations and "MACs /1" not in annotations  # a compact network that removed nothing
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:  # tick labels apart from each other; every label inside its panel
        ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        assert all(a.x1 < b.x0 for a, b in zip(ticks, ticks[1:])), [t.get_text() for t in ax.get_xticklabels()]
        box = ax.get_window_extent(renderer)
        for text in ax.texts:
            extent = text.get_window_extent(renderer)
            assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1, (
                text.get_text(), extent, box)
    with pytest.raises(ValueError, match="column"):
        plot_speedup_accuracy(pd.DataFrame(rows).drop(columns="speedup"))


def _claim6(inference_rows):
    from bmrsparse.workflow.claims import paper_claims

    metrics = pd.DataFrame([dict(dataset="fashion_mnist", arch=arch, method=m, seed=0, epoch=1, step=10, acc=0.85,
                                 ece=0.05, nll=0.4, pruned_fraction=0.0, seconds=1.0, steps_per_s=10.0)
                            for arch in ("mlp", "lenet") for m in ("flat_ff", "bmr_struct")])
    inference_table = None if inference_rows is None else pd.DataFrame(inference_rows)
    claims = paper_claims(metrics, inference=inference_table)
    sel = claims[claims.claim_id == 6]
    return dict(zip(sel.scope, sel.verdict)), sel


@pytest.mark.parametrize("acc,speedup,steps,verdict", [(0.842, 5.5, 20000, "holds"),
                                                       (0.835, 5.5, 20000, "does not hold"),
                                                       (0.85, 4.9, 20000, "does not hold"),
                                                       (0.85, 6.0, 30000, "does not hold")])
def test_claim_6_is_judged_on_the_measured_mlp_rows_at_batch_128(acc, speedup, steps, verdict):
    rows = [_row("flat_ff", "dense", 128, 0.85, 1.0), _row("bmr_units", "compact", 128, acc, speedup, steps=steps),
            _row("bmr_ss", "masked", 128, 0.85, 1.0),
            _row("tiered_ff", "compact", 128, 0.85, 9.0),  # structured, but not BMR: it does not count
            _row("bmr_units", "compact", 1, 0.5, 10.0)]  # batch 1 does not count
    got, sel = _claim6(rows)
    assert got == {"fashion_mnist / mlp": verdict, "fashion_mnist / lenet": "not applicable", "all": verdict}
    evidence = sel[sel.scope == "fashion_mnist / mlp"].evidence.iloc[0]
    assert f"{speedup:.2f}x" in evidence and "cpu: test" in evidence and "tiered_ff" not in evidence


@pytest.mark.parametrize("speedup,verdict", [(2.1, "holds"), (1.9, "does not hold")])
def test_claim_6_asks_lenet_for_2x_without_the_accuracy_margin(speedup, verdict):
    rows = [_row("flat_ff", "dense", 128, 0.90, 1.0, arch="lenet"),
            _row("bmr_units", "compact", 128, 0.85, speedup, arch="lenet")]
    got, _ = _claim6(rows)
    assert got["fashion_mnist / lenet"] == verdict and got["fashion_mnist / mlp"] == "not applicable"


def test_claim_6_appears_only_with_an_inference_table():
    got, _ = _claim6(None)
    assert got == {}
    got, _ = _claim6([_row("flat_ff", "dense", 1, 0.85, 1.0)])  # no batch-128 rows
    assert set(got.values()) == {"not applicable"}


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(),
                    reason="needs Debian's FashionMNIST (apt-get install dataset-fashion-mnist)")
def test_inference_rules_run_on_the_test_profile(tmp_path, monkeypatch):
    """config/test.yaml sizes with Flat-FF and structured BMR: the export, the table, the figure and claim 6. One
    structured-BMR epoch, not test.yaml's two: the exported network is the final posterior either way; chained epoch
    jobs are the end-to-end workflow test's subject (BMR-S&S, the same per-epoch rule), pruning that accumulates over
    epochs test_bmr_struct's."""
    # the grid in a config file (a --config subset would write its tables under results/subsets/)
    project = copy_workflow(tmp_path / "project",
                            "schedule: {num_epochs: 1}\nmethods: [flat_ff, bmr_struct]\narchs: [mlp, lenet]\n")
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))
    targets = ["results/tables/inference.csv", "results/figures/speedup_accuracy.png",
               "results/tables/paper_claims.csv"]
    run = subprocess.run([sys.executable, "-m", "snakemake", *targets, "--cores", "2",
                          "--configfile", "config/test.yaml", "override.yaml"],
                         cwd=project, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    table = pd.read_csv(project / "results/tables/inference.csv")
    assert list(table.columns) == [*inference.COLUMNS, "xla_threads"]  # the job's threads, written by the rule
    assert set(table.arch) == {"mlp", "lenet"} and set(table.batch) == {1, 128, 1024}
    assert set(zip(table.method, table.format)) == {("flat_ff", "dense"), ("flat_ff", "compact"),
                                                    ("bmr_struct", "masked"), ("bmr_struct", "compact")}
    for arch in ("mlp", "lenet"):
        net = compact_numpy.load(project / f"results/compact/fashion_mnist/{arch}/bmr_struct/seed0")
        assert net["spec"]["arch"] == arch and net["spec"]["method"] == "bmr_struct"
    claims = pd.read_csv(project / "results/tables/paper_claims.csv")
    row = claims[(claims.claim_id == 6) & (claims.scope == "fashion_mnist / mlp")].iloc[0]
    assert row.verdict in ("holds", "does not hold") and "batch 128" in row.evidence
    assert (project / "results/figures/speedup_accuracy.png").read_bytes()[:4] == b"\x89PNG"
