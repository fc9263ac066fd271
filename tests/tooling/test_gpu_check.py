"""The prepared device check (tools/gpu_check.sh) runs on the CPU before a lent GPU session spends its minutes on it:
`prepare` builds the project's wheel, fetches numpyro's and saves the paper grid's dry run (needs PyPI, as CI has);
`run` installs those wheels into a folder of its own, refuses a JAX outside pyproject.toml's range, and times the
test profile's shrunken networks (Flat-FF only, two seeds for the vmapped job, 2-step windows) before estimating
the paper grid from them. What only a GPU shows (the step times themselves) is left to the device."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bmrsparse import plan

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "gpu_check.sh"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OUT")}
    return {**env, "PY": sys.executable, **extra}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu")
    done = subprocess.run(["bash", str(SCRIPT), "prepare"], env=_env(GPU_CHECK_DIR=str(folder)),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_prepare_carries_our_wheel_numpyro_and_the_paper_grids_jobs(prepared):
    wheels = sorted(p.name for p in (prepared / "wheels").iterdir())
    assert [w.split("-")[0] for w in wheels] == ["bmrsparse", "numpyro"], wheels
    assert all(w.endswith("-py3-none-any.whl") for w in wheels)  # pure Python: runs on the device's Python
    assert "numpyro-0.22.0-" in wheels[1]
    saved = json.loads((prepared / "plan" / "settings.json").read_text())
    assert saved["configfiles"] == ["config/paper.yaml"] and saved["cores"] == 16 and saved["gpu_limit"] == 1
    jobs = plan.parse_dry_run((prepared / "plan" / "dry_run.txt").read_text())
    warmups = {(j.wildcards["dataset"], j.wildcards["arch"]) for j in jobs if j.rule == "train_warmup"}
    assert warmups == {(d, a) for d in saved["config"]["datasets"] for a in saved["config"]["archs"]}
    assert len(warmups) == 12  # the whole paper grid, not what this checkout's results/ still lacks


def test_run_times_the_networks_and_estimates_the_paper_grid(prepared, tmp_path):
    out = tmp_path / "out"
    env = _env(GPU_CHECK_DIR=str(prepared), OUT=str(out), SITE=str(tmp_path / "site"), GPU_CHECK_TINY="1",
               GPU_CHECK_STEPS="2", GPU_CHECK_KINDS="flat", GPU_CHECK_SEEDS="2", GPU_CHECK_BUDGET_S="1500")
    done = subprocess.run(["bash", str(SCRIPT), "run"], env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = (out / "gpu_check.log").read_text()
    assert f"bmrsparse from {tmp_path / 'site'}" in log  # the carried wheel, not this checkout's src/
    rows = list(csv.DictReader((out / "step_times.csv").open()))
    assert [(r["arch"], r["method"], r["seeds"]) for r in rows] == [
        ("mlp", "flat_ff", "1"), ("lenet", "flat_ff", "1"), ("mixer", "flat_ff", "1"), ("vit", "flat_ff", "1"),
        ("lenet", "flat_ff", "2")]
    assert all(float(r["ms_per_step"]) > 0 for r in rows)
    assert rows[-1]["note"].startswith("2 seeds cost ")
    text = (out / "gpu_check.txt").read_text()
    assert "TINY networks" in text and "device: cpu" in text
    for part in ("== the paper grid's FashionMNIST part", "== the whole paper grid"):
        section = text.split(part)[1]
        assert "estimated wall time:" in section.split("==")[0]
    # what was not measured is named: every MAP and Tiered-FF step, and CIFAR's
    assert "fashion_mnist/lenet mean-field flat: cifar10 MAP, cifar10 mean-field flat, cifar10 tiered" in text


def test_run_refuses_a_jax_outside_pyprojects_range(prepared, tmp_path):
    site = tmp_path / "site"
    for name in ("jax", "jaxlib"):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text('__version__ = "0.9.0"\n')
    env = _env(GPU_CHECK_DIR=str(prepared), OUT=str(tmp_path / "out"), SITE=str(site))
    done = subprocess.run(["bash", str(SCRIPT), "run"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "jax 0.9.0 here is outside pyproject.toml's jax" in done.stdout + done.stderr
    assert not (tmp_path / "out" / "step_times.csv").exists()
