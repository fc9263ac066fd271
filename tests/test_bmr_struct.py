"""Structured BMR-S&S: the group ΔF (sum, quadrature), the fixed point over groups, and the prune step in training."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.special import digamma, expit

from bmrsparse import bmr, data as bdata, methods
from bmrsparse.experiment import resolve_settings
from bmrsparse.methods import bmr_struct
from bmrsparse.train import Trainer


def _normal(x, mean, sd):
    return np.exp(-0.5 * ((x - mean) / sd) ** 2) / (np.sqrt(2 * np.pi) * sd)


def _quadrature_delta_f(mu, sigma, theta, half_width=9.0, n=121):
    r"""ln ∫ q(w) N(w; 0, θ²)/N(w; 0, 1) dw over the whole group, on one tensor grid (no factorisation used)."""
    axes = [np.linspace(-half_width * theta, half_width * theta, n) for _ in mu]
    grid = np.meshgrid(*axes, indexing="ij")
    integrand = np.ones_like(grid[0])
    for w, m, s in zip(grid, mu, sigma):
        integrand = integrand * _normal(w, m, s) * _normal(w, 0.0, theta) / _normal(w, 0.0, 1.0)
    value = integrand
    for ax in axes:
        value = np.trapezoid(value, ax, axis=0)
    return float(np.log(value))


GROUP_MU = np.array([0.3, -0.8, 0.05])
GROUP_SIGMA = np.array([0.4, 0.7, 0.9])


def _leaves(mu, sigma):
    """A one-unit dense layer whose kernel holds the first weights of the group and whose bias is the last."""
    return {"kernel": (mu[:-1, None], sigma[:-1, None]), "bias": (mu[-1:], sigma[-1:])}


def test_group_delta_f_is_the_sum_of_its_weights():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=(7, 5)), rng.uniform(0.1, 1.0, size=(7, 5))
    bmu, bsigma = rng.normal(size=5), rng.uniform(0.1, 1.0, size=5)
    got = np.asarray(bmr_struct.group_delta_f({"kernel": (mu, sigma), "bias": (bmu, bsigma)}))
    want = np.asarray(bmr.delta_f_zero(mu, sigma)).sum(axis=0) + np.asarray(bmr.delta_f_zero(bmu, bsigma))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # a conv filter: every axis but the last belongs to the group
    k_mu, k_sigma = rng.normal(size=(3, 3, 2, 4)), rng.uniform(0.1, 1.0, size=(3, 3, 2, 4))
    got = np.asarray(bmr_struct.group_delta_f({"kernel": (k_mu, k_sigma), "bias": (bmu[:4], bsigma[:4])}))
    want = np.asarray(bmr.delta_f_zero(k_mu, k_sigma)).sum(axis=(0, 1, 2)) + np.asarray(
        bmr.delta_f_zero(bmu[:4], bsigma[:4]))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("theta", [0.3, 0.05])
def test_group_delta_f_matches_a_direct_quadrature(theta):
    got = float(bmr_struct.group_delta_f(_leaves(GROUP_MU, GROUP_SIGMA), theta=theta)[0])
    want = _quadrature_delta_f(GROUP_MU, GROUP_SIGMA, theta)
    assert got == pytest.approx(want, abs=1e-4)


def test_removing_the_group_is_the_narrow_prior_limit_of_the_quadrature():
    """ΔF_g(λ=0) against the quadrature at a reduced prior of width 1e-3 (they differ by O(θ²))."""
    got = float(bmr_struct.group_delta_f(_leaves(GROUP_MU, GROUP_SIGMA))[0])
    assert got == pytest.approx(_quadrature_delta_f(GROUP_MU, GROUP_SIGMA, 1e-3), abs=1e-4)
    assert got != pytest.approx(float(np.sum(bmr.delta_f_zero(GROUP_MU[:1], GROUP_SIGMA[:1]))), abs=1e-2)


def _transcription(df_groups, alpha0, beta0, iters, keep):
    """Eqs. (22-23) over groups written out with scipy: q^{k+1} = σ(ψ(α^k) - ψ(β^k) - ΔF_g)."""
    alpha, beta = alpha0, beta0
    q = np.full(len(df_groups), 0.5)
    for _ in range(iters):
        q = expit(digamma(alpha) - digamma(beta) - df_groups)
        alpha, beta = q.sum() + alpha0, (1 - q).sum() + beta0
    if keep == "zeta":
        q = expit(digamma(alpha) - digamma(beta) - df_groups)
    return q


@pytest.mark.parametrize("keep", ["zeta", "q"])
@pytest.mark.parametrize("iters", [1, 4, 7])
def test_fixed_point_over_groups_matches_a_transcription(keep, iters):
    rng = np.random.default_rng(iters)
    df_groups = np.concatenate([rng.normal(3.0, 2.0, 30), rng.normal(-4.0, 3.0, 10)])
    q, kept = bmr_struct.group_keep(df_groups, alpha0=1.0, beta0=2.0, iters=iters, keep=keep)
    want = _transcription(df_groups, 1.0, 2.0, iters, keep)
    np.testing.assert_allclose(np.asarray(q), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(kept), want >= 0.5)


def test_method_is_registered_like_bmr_ss():
    m, ref = methods.get_method("bmr_struct"), methods.get_method("bmr_ss")
    assert (m.start, m.per_epoch, m.learning_rate, m.prior, m.guide) == ("warmup", True, 1e-2, "flat", "mean_field")
    assert set(m.settings) == set(ref.settings) and m.prunes and m.reference is None


def _trainer(arch, net):
    rng = np.random.default_rng(0)
    side = 28 if arch == "mlp" else 32
    x = rng.integers(0, 256, size=(128, side, side, 1), dtype=np.uint8)
    y = rng.integers(0, 10, size=128)
    ds = bdata.Dataset("fashion_mnist", x, y, x[:32], y[:32], 10)
    settings = resolve_settings({"batch_size": 32, "net": {arch: net}, "init_radius": 0.5})
    return Trainer(arch=arch, method="bmr_struct", dataset=ds, seeds=[0], settings=settings)


@pytest.mark.parametrize("arch,net", [("mlp", {"width": 16, "depth": 2}),
                                      ("lenet", {"features": [3, 4, 8], "hidden": 8}),
                                      ("vit", {"patch_size": 8, "embed_dim": 8, "num_heads": 2, "mlp_dim": 8,
                                               "num_blocks": 1})])
def test_prune_step_removes_whole_units_never_the_head_and_accumulates(arch, net):
    trainer = _trainer(arch, net)
    state, _ = trainer.train(trainer.init(), 10, chunk_size=10, progress=False)
    params = jax.tree.map(lambda a: a[0], trainer.params(state))
    post = jax.device_get(methods.layer_posteriors(trainer.built, params))
    s = trainer.settings
    first = trainer.prune(state)
    masks = jax.tree.map(lambda m: np.asarray(m)[0], jax.device_get(first.masks))
    for layer in trainer.layers:
        m = masks[layer.name]
        if layer.is_head or layer.kind not in ("dense", "conv"):  # the output layer, norms, embeddings: whole
            assert all(v.all() for v in m.values())
            continue
        kernel = m["kernel"].reshape(-1, m["kernel"].shape[-1])
        assert (kernel == m["bias"][None]).all()  # a unit is kept or removed whole
        df = np.asarray(bmr_struct.group_delta_f(post[layer.name]))
        want = _transcription(df, s["alpha0"], s["beta0"], s["bmr_iters"], s["bmr_keep"]) >= 0.5
        np.testing.assert_array_equal(m["bias"], want)
    # masks accumulate: a second step never brings a unit back
    second = jax.tree.map(lambda m: np.asarray(m)[0], jax.device_get(trainer.prune(first).masks))
    for layer in trainer.layers:
        for leaf in masks[layer.name]:
            assert not (second[layer.name][leaf] & ~masks[layer.name][leaf]).any()
