"""Extending, proven (docs/extending.md is this test in prose): a method, a dataset, a network and a figure, each one
module of a package of the user's own plus a config entry, with no change to the library or the workflow.

The package ``toy_plugin`` is written to a temporary folder as ``pip install`` of it would leave it (its four modules
and a ``toy_plugin-0.1.dist-info`` whose ``entry_points.txt`` names them in the groups ``bmrsparse.methods``,
``bmrsparse.datasets``, ``bmrsparse.nets`` and ``bmrsparse.figures``), so the test stays offline. The toy dataset's
files are tiny gzipped IDX files (FashionMNIST's format) written by the test. A dry run plans the toy jobs; a tiny
real run (config/test.yaml's sizes) draws the toy figure and the toy dataset's performance figure and lists the toy
method in the tables in its declared order (before Flat-MAP).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import copy_workflow

# toy_plugin/toy_ff.py: a method (Flat-FF with its own learning rate, label, colour and place in tables and legends).
METHOD_MODULE = '''\
from bmrsparse.methods import Method

METHOD = Method(
    name="toy_ff",
    label="Toy-FF",
    color="#e377c2",
    prior="flat",
    guide="mean_field",
    learning_rate=2e-3,
    start="warmup",
    order=5,  # before Flat-MAP (10) in every table and legend
)
'''

# toy_plugin/toy_digits.py: a dataset of four gzipped IDX files, found in the config's data_dir.
DATASET_MODULE = '''\
from bmrsparse.data import DatasetInfo, idx_reader

FILES = {
    "train_images": "toy-train-images-idx3-ubyte.gz",
    "train_labels": "toy-train-labels-idx1-ubyte.gz",
    "test_images": "toy-test-images-idx3-ubyte.gz",
    "test_labels": "toy-test-labels-idx1-ubyte.gz",
}
MD5 = {  # file name -> MD5 of the decompressed content
    "toy-train-images-idx3-ubyte.gz": "bb87f7bd095a938c0172b7f55d92a481",
    "toy-train-labels-idx1-ubyte.gz": "4917ecc381bcea90bbdfec4f63f0a871",
    "toy-test-images-idx3-ubyte.gz": "ee8d359a138498ce110c6b74fa285f31",
    "toy-test-labels-idx1-ubyte.gz": "0ed86500c7c89888ba099715a30dff7d",
}

DATASET = DatasetInfo(
    name="toy_digits",
    label="Toy digits",
    shape=(8, 8, 1),
    num_classes=3,
    read=idx_reader("toy_digits", FILES, MD5, image_shape=(8, 8), num_classes=3, label="Toy digits"),
    checksums=MD5,
)
'''

# toy_plugin/toy_mlp.py: a network (a Flax module following bmrsparse.nets' conventions, and its declaration).
NETWORK_MODULE = '''\
import flax.linen as nn

from bmrsparse.nets import Network


class ToyMLP(nn.Module):
    num_classes: int = 10
    width: int = 16

    @nn.compact
    def __call__(self, x, *, train=False):
        x = x.reshape((x.shape[0], -1))
        x = nn.tanh(nn.Dense(self.width, name="dense_0")(x))
        return nn.Dense(self.num_classes, name="head")(x)


NETWORK = Network(
    name="toy_mlp",
    label="Toy MLP",
    module=ToyMLP,
    input_size=None,  # takes the images as they are
    tiny={"width": 4},
    mem_mb=1000,
    ms_per_step={"gpu": 1, "cpu": 2},
)
'''

# toy_plugin/toy_figure.py: a figure drawn from the metrics table whenever the grid has the toy method.
FIGURE_MODULE = '''\
from matplotlib.figure import Figure as MplFigure

from bmrsparse.figures import Figure
from bmrsparse.plots import METHOD_COLORS, METHOD_LABELS


def draw(metrics):
    """Final test accuracy per method, mean over datasets, networks and seeds, in the methods' order."""
    final = metrics[metrics["epoch"] == metrics.groupby("method")["epoch"].transform("max")]
    acc = final.groupby("method")["acc"].mean()
    methods = [m for m in METHOD_LABELS if m in acc.index]
    fig = MplFigure(figsize=(4, 3), layout="constrained")
    ax = fig.subplots()
    ax.bar([METHOD_LABELS[m] for m in methods], [acc[m] for m in methods], color=[METHOD_COLORS[m] for m in methods])
    ax.set_ylabel("final test accuracy")
    return fig


FIGURE = Figure(
    name="toy_accuracy",
    caption="Final test accuracy per method (the toy figure of docs/extending.md).",
    draw=draw,
    reads="metrics",
    methods=("toy_ff",),
)
'''

TOY_MD5 = {
    "toy-train-images-idx3-ubyte.gz": "bb87f7bd095a938c0172b7f55d92a481",
    "toy-train-labels-idx1-ubyte.gz": "4917ecc381bcea90bbdfec4f63f0a871",
    "toy-test-images-idx3-ubyte.gz": "ee8d359a138498ce110c6b74fa285f31",
    "toy-test-labels-idx1-ubyte.gz": "0ed86500c7c89888ba099715a30dff7d",
}

ENTRY_POINTS = """\
[bmrsparse.methods]
toy_ff = toy_plugin.toy_ff

[bmrsparse.datasets]
toy_digits = toy_plugin.toy_digits

[bmrsparse.nets]
toy_mlp = toy_plugin.toy_mlp

[bmrsparse.figures]
toy_accuracy = toy_plugin.toy_figure
"""


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of uint8 values: magic 00 00 08 <ndim>, big-endian uint32 sizes, the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_toy_digits(folder: Path) -> dict[str, str]:
    """Three classes of 8x8 images (a bright row, column or diagonal, plus noise), 60 to train, 30 to test, as the
    four gzipped IDX files of the toy dataset; returns {file name: MD5 of the decompressed content}."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    md5 = {}
    for split, n in (("train", 60), ("test", 30)):
        labels = np.arange(n) % 3
        images = rng.integers(0, 60, (n, 8, 8))
        for i, k in enumerate(labels):
            if k == 0:
                images[i, 3, :] = 250
            elif k == 1:
                images[i, :, 3] = 250
            else:
                np.fill_diagonal(images[i], 250)
        for kind, array in (("images", images), ("labels", labels)):
            name = f"toy-{split}-{kind}-idx{array.ndim}-ubyte.gz"
            content = idx_bytes(array)
            (folder / name).write_bytes(gzip.compress(content))
            md5[name] = hashlib.md5(content).hexdigest()
    return md5


def install_plugin(site: Path) -> None:
    """What `pip install` of the package toy_plugin (the four modules and their entry points) leaves on the path."""
    package = site / "toy_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "toy_ff.py").write_text(METHOD_MODULE)
    (package / "toy_digits.py").write_text(DATASET_MODULE)
    (package / "toy_mlp.py").write_text(NETWORK_MODULE)
    (package / "toy_figure.py").write_text(FIGURE_MODULE)
    info = site / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def run(cmd, cwd, env, timeout=600):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def jobs_of(out: str) -> dict[str, list[str]]:
    """{rule: [job block]} of a dry run's output."""
    jobs: dict[str, list[str]] = {}
    for block in out.split("\nrule ")[1:] + out.split("\nlocalrule ")[1:]:
        jobs.setdefault(block.split(":", 1)[0], []).append(block)
    return jobs


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(project, env, snakemake command): a copy of the workflow, the plug-in on the path, the toy config."""
    tmp_path = tmp_path_factory.mktemp("extending")
    project = copy_workflow(tmp_path / "project")
    md5 = write_toy_digits(tmp_path / "toy-data")
    assert md5 == TOY_MD5  # the digests the dataset module declares
    site = tmp_path / "site"
    install_plugin(site)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    # the config entries: config/test.yaml's sizes on the toy grid
    config = yaml.safe_load((project / "config" / "test.yaml").read_text())
    config.update(datasets=["toy_digits"], archs=["toy_mlp"], methods=["flat_map", "toy_ff"],
                  data_dir=str(tmp_path / "toy-data"), download=False)
    config["schedule"].update(warmup_steps=10, epoch_steps=5, num_epochs=1)
    config["training"]["learning_rate"] = {"toy_ff": 5e-3}
    config["training"]["net"] = {"toy_mlp": {"width": 8}}
    config["resources"]["mem_mb"] = {"toy_mlp": 1000}
    config["resources"]["ms_per_step"] = {"gpu": {"toy_mlp": 1}, "cpu": {"toy_mlp": 2}}
    (project / "config" / "toy.yaml").write_text(yaml.safe_dump(config))
    return project, env, [sys.executable, "-m", "snakemake", "--configfile", "config/toy.yaml"]


def test_the_dry_run_plans_the_toy_jobs(toy):
    project, env, snakemake = toy
    plan = run([*snakemake, "--dry-run"], project, env)
    out = plan.stdout + plan.stderr
    assert plan.returncode == 0, out[-3000:]
    jobs = jobs_of(out)
    assert "results/data/toy_digits.npz" in jobs["prepare_dataset"][0]
    assert "results/train/toy_digits/toy_mlp/flat_map/seed0/posterior.npz" in jobs["train_scratch"][0]
    toy_jobs = [b for b in jobs["train_continue"] if "/toy_ff/" in b]
    assert len(toy_jobs) == 1 and "results/warmup/toy_digits/toy_mlp/lr0.005/seed0/posterior.npz" in toy_jobs[0]
    assert "results/figures/performance_toy_digits.pdf" in jobs["plot_performance"][0]  # the dataset's figure
    assert "results/figures/toy_accuracy.pdf" in jobs["plot_figure"][0]
    assert "results/metrics/metrics.csv" in jobs["plot_figure"][0]  # what the figure declares it reads
    assert not {"plot_pruned_fraction", "plot_posterior_cdf", "plot_first_layer"} & set(jobs)

    # Without the plug-in on the path, the same config is a clear error naming what is registered.
    bare = run([*snakemake, "--dry-run"], project, dict(os.environ))
    assert bare.returncode != 0
    message = bare.stdout + bare.stderr
    assert "'datasets[0]' = 'toy_digits': must be one of fashion_mnist, cifar10, cifar100" in message
    assert "'archs[0]' = 'toy_mlp': must be one of mlp, lenet, mixer, vit" in message


def test_a_tiny_run_draws_the_toy_figure_and_orders_the_toy_method(toy):
    project, env, snakemake = toy
    done = run([*snakemake, "--cores", "2"], project, env, timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    for figure in ("toy_accuracy", "performance_toy_digits"):
        for ext in ("pdf", "png"):
            assert (project / "results" / "figures" / f"{figure}.{ext}").stat().st_size > 0
    final = pd.read_csv(project / "results" / "tables" / "final_metrics.csv")
    assert list(final["method"]) == ["toy_ff", "flat_map"]  # Method.order: 5 before 10
    assert set(final["dataset"]) == {"toy_digits"} and set(final["arch"]) == {"toy_mlp"}
    table = (project / "results" / "tables" / "final_metrics.md").read_text()
    rows = [line.split("|")[3].strip() for line in table.splitlines() if line.startswith("| toy_digits |")]
    assert rows == ["toy_ff", "flat_map"]  # the table's rows (its settings line names methods too)


def test_docs_show_what_this_test_does():
    """docs/extending.md shows the plug-in's four modules and its entry points verbatim."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text()
    for text in (METHOD_MODULE, DATASET_MODULE, NETWORK_MODULE, FIGURE_MODULE, ENTRY_POINTS):
        assert text in doc
