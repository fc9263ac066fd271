"""One test-profile training stage of the paper's four methods on whatever JAX is installed: `make test` runs it on the
locked JAX (requirements/cpu.lock), `make test-newest` on the newest the bound allows (requirements/newest.lock,
Python >= 3.12; CI runs both). The settings are config/test.yaml's (shrunken networks, minibatch 32, two predictive
samples on 200 test images), the images synthetic in the prepared format, each stage one SVI step, through the
library function the workflow's training jobs call (bmrsparse.experiment.run_stage).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import jax
import numpy as np
import numpyro
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from bmrsparse.bench import synthetic_dataset
from bmrsparse.experiment import run_stage
from bmrsparse.io import atomic_savez

ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _test_profile_settings() -> dict:
    training, evaluation = TEST_CONFIG["training"], TEST_CONFIG["evaluation"]
    # learning rates: test.yaml gives none, so each method's declared one (TrainingSettings.learning_rate = None)
    return {"batch_size": training["batch_size"], "net": training["net"], "num_eval_samples": evaluation["num_samples"],
            "test_subset": evaluation["test_subset"], "eval_batch_size": evaluation["eval_batch_size"]}


def test_the_installed_jax_is_in_pyprojects_range_with_a_numpyro_that_works_with_it():
    for name, version in (("jax", jax.__version__), ("jaxlib", jax.lib.__version__)):
        bound = next(Requirement(d) for d in PYPROJECT["project"]["dependencies"] if Requirement(d).name == name)
        assert Version(version) in bound.specifier, f"{name} {version} is outside pyproject.toml's {bound}"
    # numpyro 0.21 breaks TraceGraph_ELBO under jax 0.11 (seen on the GPU image, 2026-11-26)
    assert Version(numpyro.__version__) >= Version("0.22")


@pytest.mark.parametrize("arch", ["mlp", "lenet"])
def test_one_test_profile_step_of_each_method(tmp_path, arch):
    ds = synthetic_dataset("fashion_mnist", arch, n_train=512, n_test=256)
    data = tmp_path / "fashion_mnist.npz"
    atomic_savez(data, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test,
                 name=np.array("fashion_mnist"), num_classes=np.array(10, np.int64))
    settings = _test_profile_settings()

    def stage(method, first_epoch=0, init_state=None):
        out = tmp_path / method / f"epoch{first_epoch}"
        metrics = run_stage(data_path=data, dataset="fashion_mnist", arch=arch, method=method, seed=0, schedule=[1],
                            first_epoch=first_epoch, init_state=init_state, out_state=out / "posterior.npz",
                            out_metrics=out / "metrics.csv", settings=settings, progress=False)
        assert len(metrics) == 1 and (out / "posterior.npz").is_file()
        for column in ("acc", "nll", "ece", "elbo"):
            assert np.isfinite(metrics[column]).all(), (method, column, metrics[column])
        return out / "posterior.npz", metrics

    warmup, _ = stage("flat_ff")  # the Flat-FF warm-up, from scratch
    stage("flat_map")
    stage("tiered_ff")
    _, pruned = stage("bmr_ss", first_epoch=1, init_state=warmup)  # a prune (BMR), then one step
    assert 0.0 <= float(pruned["pruned_fraction"].iloc[0]) <= 1.0
