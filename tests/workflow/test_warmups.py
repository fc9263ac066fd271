"""Warm-ups (bmrsparse.workflow.jobs, .grid): the shared Flat-FF warm-up at the rate of the methods that start from
it, and a method that warms up its own model (Method.warmup_method): its own job, folder and settings, planned by
the workflow with the right inputs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import copy_workflow

from bmrsparse.methods import WARMUP_METHOD, register, unregister
from bmrsparse.workflow import Config, Grid
from bmrsparse.workflow.jobs import warmup_settings, warmup_tag
from bmrsparse.workflow.schema import validated

# A plug-in method that prunes between epochs and warms up its own (tiered) model.
SELF_WARMUP_MODULE = '''\
from bmrsparse.methods import Method


def prune(ctx, params, masks, reference):
    return masks


METHOD = Method(
    name="toy_self",
    label="Toy self-warm-up",
    color="#bcbd22",
    prior="tiered",
    guide="mean_field",
    learning_rate=2e-3,
    start="warmup",
    warmup_method="toy_self",
    per_epoch=True,
    prune=prune,
)
'''


def test_a_warmup_takes_the_learning_rate_of_the_method_that_starts_from_it():
    flat_ff = {"learning_rate": 5e-3, "batch_size": 128, "init_radius": 0.5}
    bmr = warmup_settings("bmr_ss", {"learning_rate": 1e-2, "batch_size": 128, "gamma0": 0.3}, flat_ff)
    # Flat-FF's settings but the inherited ones: the rate, and the initialisation left to the library's default
    assert bmr == {"learning_rate": 1e-2, "batch_size": 128}
    assert warmup_tag(bmr) == "lr0.01"
    own = warmup_settings(WARMUP_METHOD, flat_ff, flat_ff)
    assert own == flat_ff and warmup_tag(own) == "lr0.005-r0.5"
    same = warmup_settings("snr_ss", {"learning_rate": 1e-2, "batch_size": 128}, flat_ff)
    assert warmup_tag(same) == warmup_tag(bmr)  # equal settings: one warm-up
    tags = {warmup_tag({"learning_rate": lr, "init_scale": s}) for lr in (1e-3, 1e-2) for s in (0.1, 0.2)}
    assert len(tags) == 4  # different settings never share a folder
    with pytest.raises(ValueError, match="starts from scratch"):
        warmup_settings("flat_map", {"learning_rate": 1e-3}, flat_ff)
    with pytest.raises(ValueError, match="lack its learning rate"):
        warmup_settings("bmr_ss", {}, flat_ff)


@pytest.fixture
def toy_self():
    namespace: dict = {}
    exec(SELF_WARMUP_MODULE, namespace)
    method = register(namespace["METHOD"])
    yield method
    unregister(method.name)


def test_a_method_that_warms_up_its_own_model_gets_its_own_warmup(toy_self):
    config = Config.from_mapping(validated({"archs": ["mlp"], "methods": ["flat_ff", "bmr_ss", "toy_self"],
                                            "schedule": {"warmup_steps": 20, "epoch_steps": 10, "num_epochs": 2}}))
    grid = Grid(config)
    tag = grid.warmup_of["toy_self"]
    assert tag == "toy_self-lr0.002"  # its model's name first: never a Flat-FF warm-up's folder
    assert grid.warmup_of["flat_ff"] == "lr0.005" and grid.warmup_of["bmr_ss"] == "lr0.01"
    assert grid.warmups[tag] == "toy_self" and grid.warmup_model(tag) == "toy_self"
    assert grid.warmup_model("lr0.01") == WARMUP_METHOD
    # trained with its own settings (those of its own jobs), not Flat-FF's
    assert grid.warmup_settings("toy_self", "mlp") == grid.job_settings("toy_self", "mlp")
    assert grid.job_settings("toy_self", "mlp")["learning_rate"] == 2e-3
    # epoch 1 starts from it; its warm-up is its epoch 0 in the metrics
    warm = f"results/warmup/fashion_mnist/mlp/{tag}/seed0"
    assert grid.epoch_init("fashion_mnist", "mlp", "toy_self", 0, 1) == f"{warm}/posterior.npz"
    assert grid.stage_metrics("fashion_mnist", "mlp", "toy_self", 0)[0] == f"{warm}/metrics.csv"


def test_the_workflow_plans_a_method_s_own_warmup(tmp_path):
    """A plug-in method with warmup_method=<its name>: the dry run plans its warm-up job (its own folder, the
    prepared data as input) and its epoch 1 reading that warm-up, beside the shared Flat-FF warm-up of Flat-FF."""
    project = copy_workflow(tmp_path / "project")
    site = tmp_path / "site"
    (site / "toy_self_plugin").mkdir(parents=True)
    (site / "toy_self_plugin" / "__init__.py").write_text("")
    (site / "toy_self_plugin" / "toy_self.py").write_text(SELF_WARMUP_MODULE)
    info = site / "toy_self_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-self-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bmrsparse.methods]\ntoy_self = toy_self_plugin.toy_self\n")
    config = yaml.safe_load((project / "config" / "test.yaml").read_text())
    config.update(archs=["mlp"], methods=["flat_ff", "toy_self"])
    (project / "config" / "toy.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--configfile", "config/toy.yaml"],
                         cwd=project, env=env, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    blocks = {}  # {rule: [{"input": ..., "output": ...}]}
    for block in out.split("\nrule ")[1:]:
        fields = dict(re.findall(r"^    (input|output): (.*)$", block, re.M))
        blocks.setdefault(block.split(":", 1)[0], []).append(fields)
    warm = "results/warmup/fashion_mnist/mlp/toy_self-lr0.002/seed0"
    own = [b for b in blocks["train_warmup"] if f"{warm}/posterior.npz" in b["output"]]
    assert len(own) == 1 and own[0]["input"] == "results/data/fashion_mnist.npz"
    assert len(blocks["train_warmup"]) == 2  # and Flat-FF's (lr0.005)
    first = [b for b in blocks["train_epoch"] if "toy_self/seed0/epoch1/posterior.npz" in b["output"]]
    assert len(first) == 1 and f"{warm}/posterior.npz" in first[0]["input"]
    assert sum("toy_self" in b["output"] for b in blocks["train_epoch"]) == 2  # epochs 1 and 2 (test.yaml)
