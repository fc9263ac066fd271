"""E_q[w] of the figures (Figs. 3, 4): the weight locations held at their means, the scales' mean exact where it can be."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bmrsparse.bench import synthetic_dataset
from bmrsparse.methods._layers import Layout
from bmrsparse.settings import TrainingSettings
from bmrsparse.train import Trainer

from conftest import TINY_NETS


def _trainer(method):
    ds = synthetic_dataset("fashion_mnist", "mlp", n_train=256, n_test=16)
    settings = TrainingSettings.from_mapping({"net": TINY_NETS})
    trainer = Trainer(arch="mlp", method=method, dataset=ds, seeds=[0], settings=settings)
    return trainer, trainer.init()


def _first_kernel(w):
    name = next(iter(w))
    return np.asarray(w[name]["kernel"]), name


def test_flat_posterior_mean_is_exact_and_needs_no_draws():
    trainer, state = _trainer("flat_ff")
    a = trainer.posterior_mean_weights(state, key=jax.random.PRNGKey(1))
    b = trainer.posterior_mean_weights(state, key=jax.random.PRNGKey(2))
    ka, name = _first_kernel(a)
    kb, _ = _first_kernel(b)
    np.testing.assert_array_equal(ka, kb)  # no Monte Carlo noise at all
    # E[w] = gamma_0 E[c] mu with c = (c^-2)^(-1/2), q(c^-2) = LogNormal(m, s^2): E[c] = exp(-m/2 + s^2/8)
    params = jax.tree.map(lambda x: np.asarray(x[0], np.float64), trainer.params(state))
    mu = Layout(trainer.layers).leaf(params["w_hat.loc"], name, "kernel")
    i = [l.name for l in trainer.layers].index(name)
    m, s = params["c_inv_sqr.loc"][i], params["c_inv_sqr.scale"][i]
    expected = float(TrainingSettings().gamma0) * np.exp(-m / 2 + s**2 / 8) * mu
    np.testing.assert_allclose(ka, expected, rtol=1e-5, atol=1e-8)


def test_tiered_posterior_mean_holds_w_hat_at_its_mean():
    trainer, state = _trainer("tiered_ff")
    w = trainer.posterior_mean_weights(state, key=jax.random.PRNGKey(3), num_draws=16)
    kernel, name = _first_kernel(w)
    params = jax.tree.map(lambda x: np.asarray(x[0]), trainer.params(state))
    mu = Layout(trainer.layers).leaf(params["w_hat.loc"], name, "kernel")
    # gamma is one scale per output unit (column): E[w] / mu is the same for every input of a unit; a sampled
    # w_hat would make the ratio vary from input to input
    ratio = kernel / mu
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:1], ratio.shape), rtol=1e-4)
    assert (ratio > 0).all()


@pytest.mark.parametrize("method", ["flat_map"])
def test_point_estimate_mean_is_the_point(method):
    trainer, state = _trainer(method)
    a = trainer.posterior_mean_weights(state, key=jax.random.PRNGKey(1))
    b = trainer.posterior_mean_weights(state, key=jax.random.PRNGKey(5))
    np.testing.assert_array_equal(_first_kernel(a)[0], _first_kernel(b)[0])
