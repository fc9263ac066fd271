"""Structured BMR-S&S: the group ΔF (sum, quadrature), the fixed point over groups, and the prune step in training."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.special import digamma, expit

from bmrsparse import bmr, data as bdata, methods
from bmrsparse.methods import bmr_struct
from bmrsparse.train import Trainer
from bmrsparse.settings import TrainingSettings


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
    settings = TrainingSettings.from_mapping({"batch_size": 32, "net": {arch: net}, "init_radius": 0.5})
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
        want = _transcription(df, s.alpha0, s.beta0, s.bmr_iters, s.bmr_keep) >= 0.5
        np.testing.assert_array_equal(m["bias"], want)
    # masks accumulate: a second step never brings a unit back
    second = jax.tree.map(lambda m: np.asarray(m)[0], jax.device_get(trainer.prune(first).masks))
    for layer in trainer.layers:
        for leaf in masks[layer.name]:
            assert not (second[layer.name][leaf] & ~masks[layer.name][leaf]).any()


# ---------------------------------------------------------------- option group_inputs="live"
def test_live_group_delta_f_drops_exactly_the_weights_of_dead_inputs():
    rng = np.random.default_rng(3)
    mu, sigma = rng.normal(size=(6, 4)), rng.uniform(0.1, 1.0, size=(6, 4))
    bmu, bsigma = rng.normal(size=4), rng.uniform(0.1, 1.0, size=4)
    live = np.array([True, False, True, True, False, True])
    got = np.asarray(bmr_struct.group_delta_f({"kernel": (mu, sigma), "bias": (bmu, bsigma)}, live=live))
    want = np.asarray(bmr.delta_f_zero(mu[live], sigma[live])).sum(axis=0) + np.asarray(bmr.delta_f_zero(bmu, bsigma))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # a conv filter: the input-channel axis is the kernel's second-to-last
    k_mu, k_sigma = rng.normal(size=(3, 3, 2, 4)), rng.uniform(0.1, 1.0, size=(3, 3, 2, 4))
    got = np.asarray(bmr_struct.group_delta_f({"kernel": (k_mu, k_sigma), "bias": (bmu, bsigma)},
                                              live=np.array([False, True])))
    want = np.asarray(bmr.delta_f_zero(k_mu[:, :, 1], k_sigma[:, :, 1])).sum(axis=(0, 1)) + np.asarray(
        bmr.delta_f_zero(bmu, bsigma))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    with pytest.raises(ValueError, match="live must be a vector"):
        bmr_struct.group_delta_f({"kernel": (mu, sigma), "bias": (bmu, bsigma)}, live=live[:5])


def _net_layers(arch, net):
    from bmrsparse import nets

    model = nets.make_net(arch, "fashion_mnist", **net)
    shape = nets.input_shape(arch, "fashion_mnist")
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, *shape), np.float32)))
    return methods.find_layers(abstract["params"])


def test_live_inputs_follow_removed_units_through_dense_and_flattened_conv_layers():
    layers = _net_layers("lenet", {"features": [3, 4, 5], "hidden": 8})
    masks = jax.tree.map(np.array, methods.all_kept(layers))
    names = [l.name for l in layers]
    conv_last, dense = names[2], names[3]
    assert layers[2].kind == "conv" and layers[3].kind == "dense"
    masks[names[0]]["kernel"][..., 1] = False  # channel 1 of the first convolution removed (filter and bias)
    masks[names[0]]["bias"][1] = False
    masks[conv_last]["kernel"][..., 2] = False  # channel 2 of the last convolution: filter gone, bias kept
    masks[dense]["kernel"][:, 6] = False  # dense unit 6 removed
    masks[dense]["bias"][6] = False
    live = {k: np.asarray(v) for k, v in bmr_struct.live_inputs(masks, layers).items()}
    assert live[names[0]].all()  # the image
    np.testing.assert_array_equal(live[names[1]], [True, False, True])
    assert live[dense].all()  # a unit with a kept bias outputs a constant f(b): not dead
    masks[conv_last]["bias"][2] = False
    live = {k: np.asarray(v) for k, v in bmr_struct.live_inputs(masks, layers).items()}
    rows = dict(layers[3].shapes)["kernel"][0]
    np.testing.assert_array_equal(live[dense], np.arange(rows) % 5 != 2)  # flattened [H, W, C]: channel fastest
    want_head = np.ones(8, bool)
    want_head[6] = False
    np.testing.assert_array_equal(live["head"], want_head)
    with pytest.raises(ValueError, match="chain of dense/conv layers"):
        bmr_struct.live_inputs(methods.all_kept(_net_layers("vit", {"patch_size": 8, "embed_dim": 8, "num_heads": 2,
                                                                    "mlp_dim": 8, "num_blocks": 1})),
                               _net_layers("vit", {"patch_size": 8, "embed_dim": 8, "num_heads": 2, "mlp_dim": 8,
                                                   "num_blocks": 1}))


def test_live_option_ignores_weights_that_read_a_removed_unit():
    """A hidden unit whose only strong weight reads a removed unit: kept by the sum over all its weights, removed
    when that weight counts with its exact ΔF = 0 (group_inputs="live"); equal to the default before any removal."""
    layers = _net_layers("mlp", {"width": 4, "depth": 2})
    names = [l.name for l in layers]  # dense_0, dense_1, head
    shapes = {l.name: dict(l.shapes) for l in layers}
    post = {}
    for name in names:
        post[name] = {leaf: (np.zeros(shape, np.float32), np.full(shape, 0.3, np.float32))
                      for leaf, shape in shapes[name].items()}
    post["dense_0"]["kernel"][0][:, :] = 2.0  # dense_0's units carry their data: kept
    post["dense_1"]["kernel"][0][:, :] = 2.0
    post["dense_1"]["kernel"][0][:, 3] = 0.0  # dense_1 unit 3: near-prior weights ...
    post["dense_1"]["kernel"][0][1, 3] = 3.0  # ... but for one that reads dense_0's unit 1
    post = {n: {k: tuple(jax.numpy.asarray(a) for a in v) for k, v in leaves.items()} for n, leaves in post.items()}
    kept = methods.all_kept(layers)
    removed = jax.tree.map(np.array, kept)
    removed["dense_0"]["kernel"][:, 1] = False
    removed["dense_0"]["bias"][1] = False

    def units(masks, option):
        new = bmr_struct.structured_prune(post, masks, layers, "head", group_inputs=option)
        return np.asarray(new["dense_1"]["bias"])

    np.testing.assert_array_equal(units(kept, "live"), units(kept, "all"))
    assert units(removed, "all")[3]
    assert not units(removed, "live")[3]
    assert units(removed, "live")[:3].all()
    with pytest.raises(ValueError, match="group_inputs must be one of"):
        bmr_struct.structured_prune(post, kept, layers, "head", group_inputs="alive")


@pytest.mark.parametrize("option", [None, "live"])
def test_the_prune_step_in_training_reads_the_group_inputs_setting(option, monkeypatch):
    seen = []
    original = bmr_struct.structured_prune

    def spy(*args, **kwargs):
        seen.append(kwargs.get("group_inputs"))
        return original(*args, **kwargs)

    monkeypatch.setattr(bmr_struct, "structured_prune", spy)
    trainer = _trainer("mlp", {"width": 16, "depth": 2})
    if option is not None:
        trainer.settings = trainer.settings.replace(bmr_group_inputs=option)
    trainer.prune(trainer.init())
    assert seen == [option or "all"]
