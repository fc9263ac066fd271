"""The mean-field guide's fast paths compute the same numbers as NumPyro's generic ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from numpyro.distributions import constraints
from numpyro.infer import SVI, TraceGraph_ELBO

from bmrsparse.methods import guides


@pytest.mark.parametrize("key", [jax.random.PRNGKey(3), jax.random.key(3)], ids=["raw", "typed"])
def test_standard_normal_is_jax_random_normal(key):
    shape = (5, 7)
    np.testing.assert_array_equal(jax.jit(lambda k: guides.standard_normal(k, shape))(key),
                                  jax.random.normal(key, shape))
    keys = jax.random.split(key, 3)
    np.testing.assert_array_equal(jax.jit(jax.vmap(lambda k: guides.standard_normal(k, (4,))))(keys),
                                  jax.vmap(lambda k: jax.random.normal(k, (4,)))(keys))


def test_the_draw_is_made_once_on_cpu():
    """The conditional that keeps XLA from recomputing the draw in each consumer survives compilation."""
    if jax.default_backend() != "cpu":
        pytest.skip("the conditional is used on CPU only")

    def f(key, loc, scale):
        eps = guides.standard_normal(key, loc.shape)
        w = loc + eps * scale
        return jnp.sum(w**2) + jnp.sum(eps * loc), w * 2

    hlo = jax.jit(f).lower(jax.random.PRNGKey(0), jnp.ones(64), jnp.ones(64)).compile().as_text()
    assert "conditional(" in hlo


def _log_q_and_grads(loc, rho, key, fast):
    def log_q(params):
        loc, rho = params
        d = guides._Normal(loc, jax.nn.softplus(rho))
        value = d.sample(key)
        if not fast:
            value = value + 0.0  # another array: the generic formula
        return jnp.sum(d.log_prob(value)), value

    (val, value), grads = jax.value_and_grad(log_q, has_aux=True)((loc, rho))
    return val, value, grads


def test_log_density_at_its_own_draw_matches_the_generic_formula():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    loc = jax.random.uniform(k1, (1000,), minval=-2, maxval=2)
    rho = jax.random.uniform(k2, (1000,), minval=-6, maxval=1)
    fast, generic = _log_q_and_grads(loc, rho, k3, True), _log_q_and_grads(loc, rho, k3, False)
    np.testing.assert_array_equal(fast[1], generic[1])  # the same draw
    np.testing.assert_allclose(fast[0], generic[0], rtol=1e-6)
    # the exact total derivatives: 0 for the location, -1/sigma (times softplus') for the scale
    np.testing.assert_allclose(fast[2][0], 0.0, atol=0)
    np.testing.assert_allclose(generic[2][0], 0.0, atol=1e-4)
    np.testing.assert_allclose(fast[2][1], generic[2][1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast[2][1], -jax.nn.sigmoid(rho) / jax.nn.softplus(rho), rtol=1e-6)


def test_log_density_elsewhere_is_the_generic_one():
    d = guides._Normal(jnp.zeros(3), jnp.full(3, 2.0))
    d.sample(jax.random.PRNGKey(0))
    x = jnp.array([0.5, -1.0, 3.0])
    np.testing.assert_allclose(d.log_prob(x), dist.Normal(0.0, 2.0).log_prob(x), rtol=1e-6)


def test_svi_step_matches_the_generic_guide():
    """One TraceGraph_ELBO step with the fast guide and with NumPyro's own Normal: same loss and update."""
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 4))
    y = (x[:, 0] > 0).astype(jnp.int32)

    def model(x, y):
        w = numpyro.sample("w", dist.Normal(jnp.zeros(8), 1.0).to_event(1))
        logits = x @ w.reshape(4, 2)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", dist.Categorical(logits=logits), obs=y)

    def guide_with(normal):
        def guide(x, y):
            loc = numpyro.param("loc", jnp.linspace(-1, 1, 8))
            scale = numpyro.param("scale", jnp.full(8, 0.1), constraint=constraints.softplus_positive)
            numpyro.sample("w", normal(loc, scale).to_event(1))

        return guide

    out = []
    for normal in (guides._Normal, dist.Normal):
        svi = SVI(model, guide_with(normal), optax.adabelief(1e-2), TraceGraph_ELBO())
        state = svi.init(jax.random.PRNGKey(2), x, y)
        for _ in range(3):
            state, loss = jax.jit(svi.update)(state, x, y)
        out.append((loss, svi.get_params(state)))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-5)
    for k in out[0][1]:
        np.testing.assert_allclose(out[0][1][k], out[1][1][k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_the_map_guide_starts_at_the_prior_median_as_autodelta_does():
    """The authors' Flat-MAP is NumPyro's AutoDelta, whose default init_to_median starts each location at the median
    of 15 prior draws: for w_hat ~ N(0, 1) a spread of about 0.32, not the mean-field guides' uniform [-2, 2]."""
    from bmrsparse.methods import METHODS
    from bmrsparse.methods._layers import HEAD, Layer
    from bmrsparse.methods._model import build

    layers = [Layer("Dense_0", ("Dense_0",), (("kernel", (400, 250)), ("bias", (250,))), "dense"),
              Layer(HEAD, (HEAD,), (("kernel", (250, 10)), ("bias", (10,))), "dense")]

    def params_of(method):
        built = build(METHODS[method], net=None, layers=layers, n_data=100, preprocess=lambda x: x)
        trace = numpyro.handlers.trace(numpyro.handlers.seed(built.guide, 0)).get_trace()
        return {name: np.asarray(site["value"]) for name, site in trace.items() if site["type"] == "param"}

    point, mean_field = params_of("flat_map"), params_of("flat_ff")
    spread = point["w_hat.loc"].std()
    assert 0.28 < spread < 0.36 and abs(point["w_hat.loc"].mean()) < 0.01
    # the median of 15 Gamma(2, 2) draws of c^-2, in log space
    assert np.all(np.abs(np.exp(point["c_inv_sqr.loc"]) - 0.84) < 0.5)
    assert mean_field["w_hat.loc"].min() < -1.9 and mean_field["w_hat.loc"].max() > 1.9
    # the same seed, the same start
    np.testing.assert_array_equal(point["w_hat.loc"], params_of("flat_map")["w_hat.loc"])
