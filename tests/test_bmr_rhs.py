"""BMR-RHS: the unit likelihood (ΔF summed over a unit) against quadrature, its tabulation, the horseshoe fit, and
the prune step in training."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from bmrsparse import bmr, data as bdata, methods
from bmrsparse.methods import bmr_rhs
from bmrsparse.settings import resolve_settings
from bmrsparse.train import Trainer


def _quadrature(mu, sigma, gamma2):
    """ln ∫ N(w; μ, σ²) N(w; 0, γ²) / N(w; 0, 1) dw for one weight (σ < 1), around the reduced posterior's mean."""
    precision = 1 / sigma**2 - 1 + 1 / gamma2
    mean, sd = (mu / sigma**2) / precision, precision**-0.5

    def f(w):
        return stats.norm.pdf(w, mu, sigma) * stats.norm.pdf(w, 0, math.sqrt(gamma2)) / stats.norm.pdf(w, 0, 1)

    value, _ = integrate.quad(f, mean - 12 * sd, mean + 12 * sd, limit=200)
    return math.log(value)


def _layer(rng, n_in=4, units=3, low=0.2, high=0.95):
    mu_k, sd_k = rng.normal(0, 1.2, (n_in, units)), rng.uniform(low, high, (n_in, units))
    mu_b, sd_b = rng.normal(0, 1.0, units), rng.uniform(low, high, units)
    return {"kernel": (mu_k, sd_k), "bias": (mu_b, sd_b)}


@pytest.mark.parametrize("log_gamma2", [-9.0, -3.1, -1.0, 0.4, 1.7])
def test_unit_likelihood_matches_quadrature_and_the_sum_of_eq_19(log_gamma2):
    leaves = _layer(np.random.default_rng(0))
    got = np.asarray(bmr_rhs.row_delta_f(jax.tree.map(jnp.asarray, leaves), log_gamma2))
    g2 = math.exp(log_gamma2)
    (mu_k, sd_k), (mu_b, sd_b) = leaves["kernel"], leaves["bias"]
    for i in range(3):
        pairs = list(zip(mu_k[:, i], sd_k[:, i])) + [(mu_b[i], sd_b[i])]
        want = sum(_quadrature(m, s, g2) for m, s in pairs)
        assert got[i] == pytest.approx(want, abs=2e-4)
        assert got[i] == pytest.approx(sum(float(bmr.delta_f(m, s, math.sqrt(g2))) for m, s in pairs), abs=2e-4)


def test_weights_not_narrower_than_the_prior_carry_no_information():
    rng = np.random.default_rng(1)
    leaves = _layer(rng)
    wide = {"kernel": (leaves["kernel"][0], np.where(np.arange(4)[:, None] == 2, 1.3, leaves["kernel"][1])),
            "bias": leaves["bias"]}
    without = {"kernel": (np.delete(leaves["kernel"][0], 2, axis=0), np.delete(leaves["kernel"][1], 2, axis=0)),
               "bias": leaves["bias"]}
    for s in (-4.0, 0.0, 6.0):
        np.testing.assert_allclose(np.asarray(bmr_rhs.row_delta_f(wide, s)),
                                   np.asarray(bmr_rhs.row_delta_f(without, s)), rtol=1e-6)
        assert np.isfinite(np.asarray(bmr_rhs.row_delta_f(wide, s))).all()


def test_tabulated_likelihood_interpolates_the_direct_sum():
    leaves = jax.tree.map(jnp.asarray, _layer(np.random.default_rng(2), n_in=50, units=6, low=0.05))
    tables = bmr_rhs.row_tables(leaves)
    s = jnp.linspace(-38.0, 11.0, 97)
    direct = jax.vmap(lambda v: bmr_rhs.row_delta_f(leaves, v))(s)
    interp = jax.vmap(lambda v: bmr_rhs.interpolate(tables, jnp.full(6, v)))(s)
    np.testing.assert_allclose(np.asarray(interp), np.asarray(direct), rtol=1e-4, atol=1e-3)
    # below the grid the likelihood is flat: the limit ΔF(λ = 0) of eq. (19)
    below = np.asarray(bmr_rhs.interpolate(tables, jnp.full(6, -80.0)))
    (mu_k, sd_k), (mu_b, sd_b) = leaves["kernel"], leaves["bias"]
    zero = np.asarray(bmr.delta_f_zero(mu_k, sd_k)).sum(axis=0) + np.asarray(bmr.delta_f_zero(mu_b, sd_b))
    np.testing.assert_allclose(below, zero, rtol=1e-4)


def _synthetic_layer(rng, units_used=3, units_idle=5, n_in=60):
    """Units whose weights are informative (|μ| large, σ small) and idle ones (μ ≈ 0, σ well below the prior's 1:
    removing them raises the evidence)."""
    mu = np.concatenate([rng.normal(0, 3.0, (n_in, units_used)), rng.normal(0, 0.02, (n_in, units_idle))], axis=1)
    sd = np.concatenate([np.full((n_in, units_used), 0.1), np.full((n_in, units_idle), 0.5)], axis=1)
    return {"kernel": (jnp.asarray(mu), jnp.asarray(sd)),
            "bias": (jnp.zeros(units_used + units_idle), jnp.full(units_used + units_idle, 0.5))}


def test_horseshoe_fit_shrinks_idle_units_and_keeps_used_ones():
    tables = {"dense_0": bmr_rhs.row_tables(_synthetic_layer(np.random.default_rng(3)))}
    inv, losses = jax.jit(lambda t: bmr_rhs.fit_scales(t, jax.random.PRNGKey(0), steps=1500))(tables)
    scale = np.asarray(inv["dense_0"]) ** -0.5
    assert scale[:3].min() > 20 * scale[3:].max()
    assert np.isfinite(np.asarray(losses)).all() and float(losses[-100:].mean()) < float(losses[:100].mean())


def test_prune_pins_units_below_the_threshold_only():
    layer = _synthetic_layer(np.random.default_rng(4))
    post = {"dense_0": layer, "head": layer}
    masks = {n: {k: jnp.ones(np.shape(v[0]), bool) for k, v in leaves.items()} for n, leaves in post.items()}
    layers = [methods.Layer("dense_0", ("dense_0",), (("kernel", (60, 8)), ("bias", (8,))), "dense"),
              methods.Layer("head", ("head",), (("kernel", (60, 8)), ("bias", (8,))), "dense")]
    key = jax.random.PRNGKey(1)
    # the authors' threshold: a unit's effective scale settles far above 1e-6 (see the module docstring)
    same = bmr_rhs.rhs_prune(post, masks, layers, "head", key, steps=1500)
    assert all(np.asarray(v).all() for leaves in same.values() for v in leaves.values())
    loose = bmr_rhs.rhs_prune(post, masks, layers, "head", key, steps=1500, threshold=0.05)
    kept = np.asarray(loose["dense_0"]["bias"])
    np.testing.assert_array_equal(kept, [True] * 3 + [False] * 5)
    np.testing.assert_array_equal(np.asarray(loose["dense_0"]["kernel"]), np.broadcast_to(kept, (60, 8)))
    assert np.asarray(loose["head"]["kernel"]).all()  # the output layer is never pruned


def test_method_is_registered_as_a_structured_per_epoch_method():
    m = methods.get_method("bmr_rhs")
    assert (m.start, m.per_epoch, m.prior, m.guide, m.structured) == ("warmup", True, "flat", "mean_field", True)
    assert m.learning_rate == methods.get_method("bmr_ss").learning_rate


def test_prune_step_in_training_keeps_whole_units():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(128, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, size=128)
    ds = bdata.Dataset("fashion_mnist", x, y, x[:32], y[:32], 10)
    settings = resolve_settings({"batch_size": 32, "net": {"mlp": {"width": 16, "depth": 2}}})
    trainer = Trainer(arch="mlp", method="bmr_rhs", dataset=ds, seeds=[0, 1], settings=settings)
    state, _ = trainer.train(trainer.init(), 5, chunk_size=5, progress=False)
    masks = jax.tree.map(np.asarray, jax.device_get(trainer.prune(state, epoch=1).masks))
    for layer in trainer.layers:
        m = masks[layer.name]
        kernel = m["kernel"].reshape(2, -1, m["kernel"].shape[-1])
        assert (kernel == m["bias"][:, None]).all()  # per seed, a unit is kept or pinned whole
