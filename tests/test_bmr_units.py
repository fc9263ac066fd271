"""BMR over units: the units model (flat model with one Gaussian scale per unit and per input), the prune step over
the scales (eq. 19 of one scalar, the fixed point over a layer's units), and the prune step in training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from scipy.special import digamma, expit

from bmrsparse import bmr, data as bdata, methods
from bmrsparse.methods import bmr_units, flat, units
from bmrsparse.settings import resolve_settings
from bmrsparse.train import Trainer


def _layers(arch, net):
    from bmrsparse import nets

    model = nets.make_net(arch, "fashion_mnist", **net)
    shape = nets.input_shape(arch, "fashion_mnist")
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, *shape), np.float32)))
    return methods.find_layers(abstract["params"])


MLP = ("mlp", {"width": 5, "depth": 2})
LENET = ("lenet", {"features": [3, 4, 6], "hidden": 5})


@pytest.mark.parametrize("arch,net", [MLP, LENET])
def test_scales_multiply_units_and_first_layer_inputs(arch, net):
    layers = _layers(arch, net)
    layout, info = methods._layers.Layout(layers), units.UnitLayout(layers)
    rng = np.random.default_rng(0)
    w_hat = jnp.asarray(rng.normal(size=layout.size), jnp.float32)
    c_inv_sqr = jnp.asarray(rng.uniform(0.5, 2.0, len(layers)), jnp.float32)
    nu = jnp.asarray(rng.normal(size=info.num_units), jnp.float32)
    xi = jnp.asarray(rng.normal(size=info.num_inputs), jnp.float32)
    got = handlers.substitute(lambda: units.weights(layers), data={"c_inv_sqr": c_inv_sqr, "nu": nu, "xi": xi,
                                                                   "w_hat": w_hat})()
    ref = handlers.substitute(lambda: flat.weights(layers), data={"c_inv_sqr": c_inv_sqr, "w_hat": w_hat})()
    pruned = [l for l in layers if l.kind in ("dense", "conv") and not l.is_head]
    assert list(info.units) == [l.name for l in pruned] and info.first == pruned[0].name
    assert info.num_inputs == dict(pruned[0].shapes)["kernel"][-2]
    for layer in layers:
        g, r = got, ref
        for k in layer.path:
            g, r = g[k], r[k]
        if layer.name not in info.units:
            for leaf in layer.leaves:
                np.testing.assert_array_equal(np.asarray(g[leaf]), np.asarray(r[leaf]))
            continue
        a, b = info.units[layer.name]
        scale = np.asarray(nu[a:b])
        np.testing.assert_allclose(np.asarray(g["bias"]), np.asarray(r["bias"]) * scale, rtol=1e-6)
        want = np.asarray(r["kernel"]) * scale
        if layer.name == info.first:
            want = want * np.asarray(xi)[:, None]
        np.testing.assert_allclose(np.asarray(g["kernel"]), want, rtol=1e-5)


def _transcription(df, alpha0, beta0, iters, keep):
    alpha, beta = alpha0, beta0
    q = np.full(len(df), 0.5)
    for _ in range(iters):
        q = expit(digamma(alpha) - digamma(beta) - df)
        alpha, beta = q.sum() + alpha0, (1 - q).sum() + beta0
    if keep == "zeta":
        q = expit(digamma(alpha) - digamma(beta) - df)
    return q >= 0.5


@pytest.mark.parametrize("keep", ["zeta", "q"])
def test_prune_removes_units_and_inputs_by_the_fixed_point_over_one_scalar_each(keep):
    layers = _layers(*MLP)
    info = units.UnitLayout(layers)
    rng = np.random.default_rng(1)
    # half the scales near zero with a narrow posterior (ΔF(0) > 0: prune), half far from zero (keep)
    n = info.num_units
    mu = np.where(np.arange(n) % 2 == 0, rng.normal(0, 0.05, n), rng.normal(2.0, 0.3, n))
    sigma = rng.uniform(0.05, 0.3, n)
    xi_mu, xi_sigma = rng.normal(0, 1.0, info.num_inputs), rng.uniform(0.05, 0.9, info.num_inputs)
    params = {"nu.loc": jnp.asarray(mu), "nu.scale": jnp.asarray(sigma), "xi.loc": jnp.asarray(xi_mu),
              "xi.scale": jnp.asarray(xi_sigma)}
    masks = jax.tree.map(np.array, methods.all_kept(layers))
    masks["dense_0"]["kernel"][3, :] = False  # an earlier prune: masks accumulate
    new = bmr_units.unit_prune(units.unit_posteriors(layers, params), masks, alpha0=1.0, beta0=2.0, iters=4,
                               keep=keep)
    for name, (a, b) in info.units.items():
        want = _transcription(np.asarray(bmr.delta_f_zero(mu[a:b], sigma[a:b])), 1.0, 2.0, 4, keep)
        np.testing.assert_array_equal(np.asarray(new[name]["bias"]), want)
        kernel = np.asarray(new[name]["kernel"])
        cols = np.broadcast_to(want, kernel.shape)
        if name == info.first:
            rows = _transcription(np.asarray(bmr.delta_f_zero(xi_mu, xi_sigma)), 1.0, 2.0, 4, keep)
            rows[3] = False
            np.testing.assert_array_equal(kernel, cols & rows[:, None])
        else:
            np.testing.assert_array_equal(kernel, cols)
    assert all(np.asarray(v).all() for v in new["head"].values())


@pytest.mark.parametrize("arch,net", [MLP, LENET])
def test_prune_step_in_training_removes_whole_units_and_posterior_means_use_the_scales(arch, net):
    rng = np.random.default_rng(0)
    side = 28 if arch == "mlp" else 32
    x = rng.integers(0, 256, size=(128, side, side, 1), dtype=np.uint8)
    y = rng.integers(0, 10, size=128)
    ds = bdata.Dataset("fashion_mnist", x, y, x[:32], y[:32], 10)
    settings = resolve_settings({"batch_size": 32, "net": {arch: net}})
    trainer = Trainer(arch=arch, method="bmr_units", dataset=ds, seeds=[0], settings=settings)
    state, _ = trainer.train(trainer.init(), 5, chunk_size=5, progress=False)
    pruned = trainer.prune(state, epoch=1)
    masks = jax.tree.map(lambda m: np.asarray(m)[0], jax.device_get(pruned.masks))
    info = units.UnitLayout(trainer.layers)
    for name in info.units:
        kernel = masks[name]["kernel"].reshape(-1, masks[name]["kernel"].shape[-2], masks[name]["kernel"].shape[-1])
        assert (kernel <= masks[name]["bias"]).all()  # no kept weight in a removed unit
        if name != info.first:
            assert (kernel == masks[name]["bias"]).all()
    # E[w] = E[c] E[nu] E[xi] mu: the Gaussian scales at their means
    w = trainer.posterior_mean_weights(pruned)
    params = jax.tree.map(lambda a: a[0], trainer.params(pruned))
    lat = {"w_hat": params["w_hat.loc"], "nu": params["nu.loc"], "xi": params["xi.loc"],
           "c_inv_sqr": jnp.exp(params["c_inv_sqr.loc"] - 0.25 * params["c_inv_sqr.scale"] ** 2)}
    want = methods.weights_from_latents(trainer.built, lat, jax.tree.map(lambda m: m[0], pruned.masks))
    for a, b in zip(jax.tree.leaves(w), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- Tiered-FF's cut by its per-unit scales
def test_tiered_unit_scales_are_the_exact_mean_of_inverse_gamma_squared_and_cut_units_whole():
    from bmrsparse.methods import PruneContext, tiered, tiered_ff

    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(64, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, size=64)
    ds = bdata.Dataset("fashion_mnist", x, y, x[:16], y[:16], 10)
    settings = resolve_settings({"batch_size": 16, "net": {"mlp": {"width": 6, "depth": 2}}})
    trainer = Trainer(arch="mlp", method="tiered_ff", dataset=ds, seeds=[0], settings=settings)
    params = jax.tree.map(lambda a: np.asarray(a)[0], trainer.params(trainer.init()))
    scales = tiered.unit_scales(trainer.layers, params, tau0=settings["tau0"])
    assert list(scales) == ["dense_0", "dense_1"]
    # Monte-Carlo: E[gamma^-2] over draws of the guide's scale sites, gamma from the model's own weights
    sites = [site for site in trainer.built.sites if site.name != "w_hat"]
    draws = jax.vmap(lambda k: methods.guides.sample_latents(sites, params, k, point_estimate=False))(
        jax.random.split(jax.random.PRNGKey(0), 200_000))
    c_inv, v, tau = draws["c_inv_sqr"], draws["v_a"] / draws["v_b"], draws["tau_a"] / draws["tau_b"]
    for h, name in enumerate(scales):
        inv_gamma2 = c_inv[:, h, None] + 1.0 / (settings["tau0"] ** 2 * v[:, h, None] * tau[:, 6 * h:6 * h + 6])
        np.testing.assert_allclose(np.asarray(scales[name]), np.asarray(inv_gamma2.mean(0)) ** -0.5, rtol=0.05)
    ctx = PruneContext(trainer.built, trainer.head, trainer.settings)
    masks = jax.tree.map(np.asarray, tiered_ff.compact_masks(ctx, params, cut=0.5))
    for name, s in scales.items():
        keep = np.asarray(s) >= 0.5 * float(np.max(s))
        np.testing.assert_array_equal(masks[name]["bias"], keep)
        np.testing.assert_array_equal(masks[name]["kernel"], np.broadcast_to(keep, masks[name]["kernel"].shape))
    assert masks["head"]["kernel"].all() and tiered_ff.METHOD.structured and not tiered_ff.METHOD.prunes
