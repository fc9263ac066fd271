"""The experiment profiles: config/paper.yaml is the paper's text; config/authors-code.yaml lists only deviations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from conftest import copy_workflow

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def _leaves(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def test_paper_profile_follows_the_papers_text():
    paper = _load("paper.yaml")
    # section 3: AdaBelief at its defaults (alpha = 1e-3) for every method, N_B = 128, 1e5 + 5 x 2e4 steps
    assert set(paper["training"]["learning_rate"].values()) == {1.0e-3}
    assert set(paper["training"]["learning_rate"]) >= set(paper["methods"])
    assert paper["training"]["batch_size"] == 128
    assert paper["schedule"] == {"warmup_steps": 100000, "epoch_steps": 20000, "num_epochs": 5}
    assert paper["evaluation"]["num_samples"] == 100 and paper["evaluation"]["test_subset"] is None


def test_authors_code_overlay_lists_only_deviations_from_the_paper():
    paper, overlay = _load("paper.yaml"), _load("authors-code.yaml")
    leaves = dict(_leaves(overlay))
    assert leaves, "the overlay is empty"
    for path, value in leaves.items():
        # every key exists in the paper profile (so the schema knows it) and says something else
        assert _get(paper, path) != value, f"{'.'.join(path)} repeats the paper profile's value"
    assert overlay["training"]["learning_rate"]["bmr_ss"] == 1.0e-2


def test_paper_profile_with_the_overlay_plans_the_grid(tmp_path):
    project = copy_workflow(tmp_path / "wf")
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--quiet", "rules", "--cores", "1",
         "--configfile", "config/paper.yaml", "config/authors-code.yaml"],
        cwd=project, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "train_warmup" in run.stdout + run.stderr
