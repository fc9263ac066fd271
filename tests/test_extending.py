"""The README's worked example of "Extending": a method added as one module of another package plus a config entry.

In a temporary copy of the workflow, a package of the user's own declares ``toy_ff`` in one module and registers it
through the entry-point group ``bmrsparse.methods``. What ``pip install`` of that package leaves on the path (the
module and its ``*.dist-info`` with ``entry_points.txt``) is written directly, so the test stays offline and fast.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from conftest import copy_workflow

# The module of the README's example, verbatim.
TOY_MODULE = '''\
from bmrsparse.methods import Method

METHOD = Method(
    name="toy_ff",
    label="Toy-FF",
    color="#e377c2",
    prior="flat",
    guide="mean_field",
    learning_rate=2e-3,
    start="warmup",
)
'''


def install_plugin(site: Path) -> None:
    """What `pip install` of a package `toy-methods` with the module above and the entry point writes."""
    (site / "toy_methods").mkdir(parents=True)
    (site / "toy_methods" / "__init__.py").write_text("")
    (site / "toy_methods" / "toy_ff.py").write_text(TOY_MODULE)
    info = site / "toy_methods-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-methods\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bmrsparse.methods]\ntoy_ff = toy_methods.toy_ff\n")


def run(cmd, cwd, env, timeout=300):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_method_from_another_package_is_planned_and_labelled(tmp_path):
    project = copy_workflow(tmp_path / "project")
    site = tmp_path / "site"
    install_plugin(site)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    # the config entry
    config = yaml.safe_load((project / "config" / "test.yaml").read_text())
    config.update(archs=["mlp"], methods=["flat_ff", "bmr_ss", "toy_ff"])
    (project / "config" / "toy.yaml").write_text(yaml.safe_dump(config))

    plan = run([sys.executable, "-m", "snakemake", "--dry-run", "--configfile", "config/toy.yaml"], project, env)
    out = plan.stdout + plan.stderr
    assert plan.returncode == 0, out[-3000:]
    jobs = {block.split(":", 1)[0]: block for block in out.split("\nrule ")[1:]}
    toy = [b for b in out.split("\nrule ")[1:] if "/toy_ff/" in b.split("\n")[2]]
    assert len(toy) == 1 and toy[0].startswith("train_continue:")  # continues from the warm-up: one job
    assert re.search(r"input: .*results/warmup/fashion_mnist/mlp/lr0\.002/seed0/posterior\.npz", toy[0])
    assert "results/train/fashion_mnist/mlp/toy_ff/seed0/posterior.npz" in toy[0]
    assert "results/train/fashion_mnist/mlp/toy_ff/seed0/metrics.csv" in jobs["collect_metrics"]

    # Without the plug-in on the path, the same config is a clear error naming the registered methods.
    bare = run([sys.executable, "-m", "snakemake", "--dry-run", "--configfile", "config/toy.yaml"], project,
               {k: v for k, v in env.items() if k != "PYTHONPATH"})
    assert bare.returncode != 0
    assert "'methods[2]' = 'toy_ff': must be one of flat_map, flat_ff" in bare.stdout + bare.stderr

    # The figures label it: Fig. 1 drawn from a metrics table with toy_ff rows, in a process that has the plug-in.
    script = textwrap.dedent("""
        import pandas as pd
        from bmrsparse.experiment import resolve_settings
        from bmrsparse.plots import plot_performance
        assert resolve_settings(None)["learning_rate"]["toy_ff"] == 2e-3  # its declared default learning rate
        rows = [dict(dataset="fashion_mnist", arch="mlp", method=m, seed=0, epoch=e, acc=0.8, ece=0.05, nll=0.5,
                     pruned_fraction=0.0) for m in ("flat_ff", "toy_ff") for e in (0, 1)]
        fig = plot_performance(pd.DataFrame(rows), "fashion_mnist")
        labels = {t.get_text() for leg in fig.legends for t in leg.get_texts()}
        labels |= {t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()}
        colors = {line.get_label(): line.get_color() for ax in fig.axes for line in ax.get_lines()}
        print(sorted(labels), colors.get("Toy-FF"))
    """)
    drawn = run([sys.executable, "-c", script], tmp_path, env)
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert "'Toy-FF'" in drawn.stdout and "'Flat-FF'" in drawn.stdout and "#e377c2" in drawn.stdout, drawn.stdout
