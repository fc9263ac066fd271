"""The same seed gives the same numbers as the stored ones: a few steps of training on the locked JAX.

``tests/data/same_numbers.json`` holds, per case, the mean loss of each chunk and per-parameter sums after training,
written by this file's ``__main__`` (``python tests/core/test_same_numbers.py``) from the code before the random-number
route of ``bmrsparse._rng`` changed (issue 32, on main at 4e2697a, jax/jaxlib 0.10.2, CPU). The cases cover each
way a step draws its random numbers on CPU: the straight-line Threefry with dropout masks (Flat-MAP) and normal draws
(Flat-FF, MLP and LeNet-5), and the vmapped default route (two seeds, BMR-S&S with a prune between two chunks).
Compared on the JAX version that stored them; other JAX versions are covered by ``tests/core/test_rng.py`` (the same
random bits) and the newest-JAX run (``make test-newest``).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from bmrsparse.bench import synthetic_dataset
from bmrsparse.settings import TrainingSettings
from bmrsparse.train import Trainer

STORED = Path(__file__).parents[1] / "data" / "same_numbers.json"
NETS = {"mlp": {"width": 16, "depth": 2}, "lenet": {"features": [2, 4, 8], "hidden": 8}}  # config/test.yaml's
CASES = {
    "mlp-flat_map": ("mlp", "flat_map", [0]),
    "mlp-flat_ff": ("mlp", "flat_ff", [0]),
    "lenet-tiered_ff": ("lenet", "tiered_ff", [0]),
    "mlp-bmr_ss-seeds01": ("mlp", "bmr_ss", [0, 1]),
}


def run_case(arch: str, method: str, seeds: list[int]) -> dict:
    """Train 20 steps in chunks of 10 (BMR-S&S: a prune between them); the chunks' losses and per-parameter sums."""
    settings = TrainingSettings.from_mapping({"batch_size": 32, "net": NETS})
    ds = synthetic_dataset("fashion_mnist", arch, n_train=512, n_test=16)
    tr = Trainer(arch=arch, method=method, dataset=ds, seeds=seeds, settings=settings)
    state, losses = tr.init(), []
    on_loss = lambda n, dt, loss: losses.append([float(v) for v in loss])  # noqa: E731
    state, _ = tr.train(state, 10, chunk_size=10, on_loss=on_loss, progress=False)
    if tr.method.prunes:
        state = tr.prune(state, epoch=1)
    state, _ = tr.train(state, 10, chunk_size=10, on_loss=on_loss, progress=False)
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), tr.params(state))
    return {
        "losses": losses,
        "sums": {k: [float(v) for v in params[k].reshape(len(seeds), -1).sum(axis=1)] for k in sorted(params)},
        "abs_sums": {k: [float(v) for v in np.abs(params[k]).reshape(len(seeds), -1).sum(axis=1)]
                     for k in sorted(params)},
    }


def _stored():
    return json.loads(STORED.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_gives_the_stored_numbers(case):
    stored = _stored()
    if jax.__version__ != stored["jax"] or jax.default_backend() != "cpu":
        pytest.skip(f"stored on jax {stored['jax']} (cpu); this is jax {jax.__version__} ({jax.default_backend()})")
    want, got = stored["cases"][case], run_case(*CASES[case])
    # float rounding only: XLA's CPU code may differ with the processor's instruction set (on the machine that stored
    # them, issue 32's public RNG route reproduced every stored value exactly)
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-6, err_msg="losses")
    for key in ("sums", "abs_sums"):
        assert sorted(got[key]) == sorted(want[key])
        for k in want[key]:
            np.testing.assert_allclose(got[key][k], want[key][k], rtol=1e-5, atol=1e-5, err_msg=f"{key} {k}")


if __name__ == "__main__":
    out = {"jax": jax.__version__, "cases": {name: run_case(*case) for name, case in sorted(CASES.items())}}
    STORED.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {STORED}")
