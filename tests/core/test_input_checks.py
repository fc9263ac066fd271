"""The front door refuses bad numbers (issue 31.1): the BMR functions, the compact export's numpy loader and state
loading end in a ValueError that names the argument and the problem for non-finite values, non-positive scales and
shapes that do not fit, instead of a NaN result or a keep-mask that prunes everything.

Inside jit/vmap (the training's prune step) the arrays are tracers: the checks there cover shapes only, leave the
compiled program without host callbacks and give the same masks as the checked eager call.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bmrsparse import bmr

from conftest import TINY_MLP_SETTINGS, noise_dataset

RNG = np.random.default_rng(31)
MU = RNG.normal(0.0, 0.5, 40).astype(np.float32)
SIGMA = RNG.uniform(0.05, 0.5, 40).astype(np.float32)


def _with(array, index, value):
    out = np.array(array, copy=True)
    out[index] = value
    return out


# ---------------------------------------------------------------------------------------------------------- BMR
@pytest.mark.parametrize("fn", ["spike_and_slab", "delta_f_zero", "delta_f"])
@pytest.mark.parametrize("bad, match", [
    (dict(mu=_with(MU, 3, np.nan)), r"mu has 1 non-finite value\(s\).*at index 3"),
    (dict(mu=_with(MU, 0, np.inf)), r"mu has 1 non-finite"),
    (dict(sigma=_with(SIGMA, 7, -0.1)), r"sigma must be > 0 .*-0\.1.* at index 7"),
    (dict(sigma=_with(SIGMA, 2, 0.0)), r"sigma must be > 0"),
    (dict(sigma=_with(SIGMA, 2, np.nan)), r"sigma has 1 non-finite"),
    (dict(sigma=np.full(40, 1e-50)), r"sigma must be > 0"),  # positive in float64, 0 in the float32 computation
    (dict(sigma=SIGMA[:39]), r"mu \(40,\).*sigma \(39,\)|sigma \(39,\).*mu \(40,\)"),
    (dict(mu=["a"] * 40), r"mu must be an array of real numbers"),
])
def test_bmr_functions_refuse_bad_posteriors_by_name(fn, bad, match):
    args = {"mu": MU, "sigma": SIGMA, **bad}
    call = {"spike_and_slab": lambda: bmr.spike_and_slab(args["mu"], args["sigma"]),
            "delta_f_zero": lambda: bmr.delta_f_zero(args["mu"], args["sigma"]),
            "delta_f": lambda: bmr.delta_f(args["mu"], args["sigma"], 0.1)}[fn]
    with pytest.raises(ValueError, match=match):
        call()


def test_spike_and_slab_refuses_a_sigma_that_broadcasts_past_mu_and_bad_parameters():
    with pytest.raises(ValueError, match=r"does not fit mu \(40,\)"):
        bmr.spike_and_slab(MU, np.tile(SIGMA, (2, 1)))
    q, keep = bmr.spike_and_slab(MU, np.float32(0.1))  # one sigma for every weight still fits
    assert q.shape == keep.shape == MU.shape
    for kwargs, match in [(dict(alpha0=0.0), "alpha0 must be a finite number > 0"),
                          (dict(beta0=-1.0), "beta0 must be a finite number > 0"),
                          (dict(alpha0=float("nan")), "alpha0"),
                          (dict(beta0=float("inf")), "beta0"),
                          (dict(iters=-1), r"iters must be a whole number >= 0"),
                          (dict(iters=2.5), r"iters must be a whole number >= 0"),
                          (dict(keep="paper"), "keep rule")]:
        with pytest.raises(ValueError, match=match):
            bmr.spike_and_slab(MU, SIGMA, **kwargs)


def test_delta_f_refuses_a_negative_theta_and_an_undefined_rho():
    with pytest.raises(ValueError, match=r"theta must be >= 0"):
        bmr.delta_f(MU, SIGMA, -0.5)
    with pytest.raises(ValueError, match=r"theta has 1 non-finite"):
        bmr.delta_f(MU, SIGMA, np.nan)
    # sigma > 1 and a wide theta: rho^2 = theta^2 + sigma^2 - theta^2 sigma^2 <= 0, where eq. 19 has no value
    with pytest.raises(ValueError, match=r"rho\^2 .* <= 0 \(e\.g\. sigma=2\.0, theta=2\.0 at index 1\)"):
        bmr.delta_f(np.zeros(3), np.array([0.5, 2.0, 0.5]), 2.0)
    with pytest.raises(ValueError, match=r"do not broadcast"):
        bmr.delta_f(MU, SIGMA, np.zeros(3))
    assert np.isfinite(np.asarray(bmr.delta_f(0.0, 2.0, 1.0)))  # theta <= 1: defined for any sigma


def _network():
    post = {name: {"kernel": (RNG.normal(0, 0.3, (6, 5)).astype(np.float32),
                              RNG.uniform(0.05, 0.4, (6, 5)).astype(np.float32)),
                   "bias": (RNG.normal(0, 0.3, 5).astype(np.float32), RNG.uniform(0.05, 0.4, 5).astype(np.float32))}
            for name in ("a", "b", "head")}
    masks = {name: {leaf: np.ones(np.shape(pair[0]), bool) for leaf, pair in leaves.items()}
             for name, leaves in post.items()}
    return post, masks


def test_spike_and_slab_layers_names_the_layer_and_leaf():
    post, masks = _network()
    bad = {**post, "b": {**post["b"], "bias": (post["b"]["bias"][0], _with(post["b"]["bias"][1], 4, 0.0))}}
    with pytest.raises(ValueError, match=r"posterior\['b'\]\['bias'\] sigma must be > 0.* at index 4"):
        bmr.spike_and_slab_layers(bad, masks, frozen=("head",))
    bad = {**post, "a": {**post["a"], "kernel": (_with(post["a"]["kernel"][0], (1, 2), np.nan), post["a"]["kernel"][1])}}
    with pytest.raises(ValueError, match=r"posterior\['a'\]\['kernel'\] mu has 1 non-finite.*at index \(1, 2\)"):
        bmr.spike_and_slab_layers(bad, masks, frozen=("head",))
    with pytest.raises(ValueError, match=r"masks\['a'\]\['kernel'\] has shape \(5, 6\), its posterior mu \(6, 5\)"):
        bmr.spike_and_slab_layers(post, {**masks, "a": {**masks["a"], "kernel": np.ones((5, 6), bool)}})
    with pytest.raises(ValueError, match=r"masks has no layer 'b'"):
        bmr.spike_and_slab_layers(post, {k: v for k, v in masks.items() if k != "b"})
    with pytest.raises(ValueError, match=r"frozen names \['output'\] that posterior does not have"):
        bmr.spike_and_slab_layers(post, masks, frozen=("output",))
    with pytest.raises(ValueError, match=r"frozen must be a collection of layer names"):
        bmr.spike_and_slab_layers(post, masks, frozen="head")
    with pytest.raises(ValueError, match=r"posterior\['a'\]\['kernel'\] must be a pair \(mu, sigma\)"):
        bmr.spike_and_slab_layers({**post, "a": {**post["a"], "kernel": post["a"]["kernel"][0]}}, masks)
    with pytest.raises(ValueError, match=r"posterior\['a'\]\['kernel'\] sigma \(6, 1, 5\) does not fit"):
        bmr.spike_and_slab_layers({**post, "a": {**post["a"], "kernel": (post["a"]["kernel"][0],
                                                                         post["a"]["kernel"][1][:, None])}}, masks)


def test_first_prune_fraction_refuses_bad_numbers():
    post, _ = _network()
    with pytest.raises(ValueError, match=r"posterior\['a'\]\['bias'\] sigma must be > 0"):
        bmr.first_prune_fraction({**post, "a": {**post["a"], "bias": (post["a"]["bias"][0], -post["a"]["bias"][1])}})
    with pytest.raises(ValueError, match=r"no weights outside frozen"):
        bmr.first_prune_fraction({"head": post["head"]}, frozen=("head",))
    with pytest.raises(ValueError, match=r"iters\[\] must be a whole number >= 0"):
        bmr.first_prune_fraction(post, iters=(4, -2))
    with pytest.raises(ValueError, match=r"tol must be a finite number > 0"):
        bmr.first_prune_fraction(post, iters=(None,), tol=0.0)
    assert set(bmr.first_prune_fraction(post, frozen=("head",), iters=(1, None))) == {1, "converged"}


def test_inside_jit_and_vmap_shapes_are_checked_values_are_not_and_masks_are_the_eager_ones():
    """The training prunes inside jit(vmap(...)); there the numbers are tracers: no value check, no host callback,
    the same masks as the checked eager call."""
    post, masks = _network()
    seeds = 3
    stack = lambda tree: jax.tree.map(lambda a: np.stack([a] * seeds), tree)  # noqa: E731

    def prune(p, m):
        return bmr.spike_and_slab_layers(p, m, frozen=("head",))[0]

    compiled = jax.jit(jax.vmap(prune))
    got = compiled(stack(post), stack(masks))
    want = prune(post, masks)
    for layer in want:
        for leaf in want[layer]:
            for s in range(seeds):
                np.testing.assert_array_equal(np.asarray(got[layer][leaf][s]), np.asarray(want[layer][leaf]))
    jaxpr = str(jax.make_jaxpr(jax.vmap(prune))(stack(post), stack(masks)))
    assert "callback" not in jaxpr and "debug" not in jaxpr
    # a structural mistake is still caught while tracing
    bad_masks = {**masks, "a": {**masks["a"], "kernel": np.ones((5, 6), bool)}}
    with pytest.raises(ValueError, match=r"masks\['a'\]\['kernel'\] has shape"):
        compiled(stack(post), stack(bad_masks))
    # values under jit are the caller's business (the trainer stops on a non-finite loss before it prunes)
    nan_post = jax.tree.map(lambda a: np.full_like(a, np.nan), stack(post))
    compiled(nan_post, stack(masks))


def test_under_jit_concrete_constants_are_still_checked_and_tracers_pass():
    """Inside jit a numpy constant or a Python number is concrete (checked while tracing); the traced argument is
    not. A check that converted the constant with jnp first would meet a tracer there and fail."""
    mu = jnp.asarray(MU)
    got = jax.jit(lambda m, s: bmr.delta_f(m, s, 0.5))(mu, jnp.asarray(SIGMA))
    np.testing.assert_allclose(np.asarray(got), np.asarray(bmr.delta_f(MU, SIGMA, 0.5)), rtol=1e-6)
    got = jax.jit(lambda m: bmr.spike_and_slab(m, SIGMA)[0])(mu)
    np.testing.assert_allclose(np.asarray(got), np.asarray(bmr.spike_and_slab(MU, SIGMA)[0]), rtol=1e-6)
    with pytest.raises(ValueError, match=r"sigma must be > 0"):
        jax.jit(lambda m: bmr.delta_f(m, -SIGMA, 0.5))(mu)
    with pytest.raises(ValueError, match=r"theta must be >= 0"):
        jax.jit(lambda m, s: bmr.delta_f(m, s, -1.0))(mu, jnp.asarray(SIGMA))


def test_the_trainers_prune_step_still_runs_vmapped(tmp_path):
    """BMR-S&S's prune inside the trainer's jit(vmap) program, two seeds, on a network without training data."""
    from bmrsparse.settings import TrainingSettings
    from bmrsparse.train import Trainer

    ds = noise_dataset(16)
    settings = TrainingSettings.from_mapping(TINY_MLP_SETTINGS)
    for method in ("bmr_ss", "bmr_struct"):
        trainer = Trainer(arch="mlp", method=method, dataset=ds, seeds=[0, 1], settings=settings)
        fractions = trainer.pruned_fraction(trainer.prune(trainer.init(), epoch=1))
        assert len(fractions) == 2 and all(0.0 <= f < 1.0 for f in fractions)


# ------------------------------------------------------------------------------------ the compact export's loader
@pytest.fixture
def export(tmp_path):
    """A compact LeNet-5 export (convolutions, pooling, a dense layer after a flatten): ``(stem, spec, arrays)``."""
    from bmrsparse import compact, nets

    shape = nets.input_shape("lenet", "fashion_mnist")
    net = nets.make_net("lenet", "fashion_mnist")
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))["params"]
    pad = (shape[0] - 28) // 2
    small = compact.compact("lenet", jax.device_get(params), None, input_shape=shape,
                            preprocess={"shape": (28, 28, 1), "mean": [72.9], "std": [90.0], "pad": pad})
    stem = tmp_path / "net"
    compact.export(small, stem)
    return stem, json.loads((tmp_path / "net.json").read_text()), dict(np.load(tmp_path / "net.npz"))


def _rewrite(stem, spec, arrays):
    stem.with_suffix(".json").write_text(json.dumps(spec))
    np.savez(stem.with_suffix(".npz"), **arrays)


def test_the_loader_takes_a_good_export(export):
    from bmrsparse import compact_numpy

    stem, _, _ = export
    net = compact_numpy.load(stem)
    logits = compact_numpy.predict(net, np.zeros((2, 28, 28, 1), np.uint8))
    assert logits.shape == (2, 10) and np.isfinite(logits).all()


def _spec_change(spec, change):
    spec = json.loads(json.dumps(spec))
    change(spec)
    return spec


@pytest.mark.parametrize("change, match", [
    (lambda s: s["input"].update(std=[0.0]), r"input std must be > 0"),
    (lambda s: s["input"].update(std=[-90.0]), r"input std must be > 0"),
    (lambda s: s["input"].update(mean=[float("nan")]), r"input mean has 1 non-finite"),
    (lambda s: s["input"].update(mean=[72.9, 1.0]), r"input mean must list one number per channel \(1\)"),
    (lambda s: s["input"].update(pad=-1), r"input pad must be a whole number >= 0"),
    (lambda s: s["input"].update(shape=[28, 28]), r"input shape must be \[H, W, C\]"),
    (lambda s: s["layers"][0].update(activation="relu"), r"layer 'conv_0': activation must be one of"),
    (lambda s: s["layers"][0].update(pool=-2), r"layer 'conv_0': pool must be a whole number >= 0"),
    (lambda s: s["layers"][0].update(type="attention"), r"layer 'conv_0': type must be"),
    (lambda s: s["layers"][0].update(kernel_size=[3, 3]), r"layer 'conv_0' \(conv\) has kernel \(5, 5, 1, 6\), its "
                                                          r"kernel_size is \[3, 3\]"),
    (lambda s: s["input"].update(shape=[32, 32, 1]), r"layer 'dense_\d' \(dense, kernel .*\) reads 120 features, but "
                                                     r"the layer before gives 480"),
])
def test_the_loader_refuses_a_bad_description_by_name(export, change, match):
    from bmrsparse import compact_numpy

    stem, spec, arrays = export
    _rewrite(stem, _spec_change(spec, change), arrays)
    with pytest.raises(ValueError, match=match):
        compact_numpy.load(stem)


def test_the_loader_refuses_non_finite_weights_and_a_broken_chain(export):
    from bmrsparse import compact_numpy

    stem, spec, arrays = export
    name = spec["layers"][1]["kernel"]
    _rewrite(stem, spec, {**arrays, name: _with(arrays[name], (0, 0, 0, 0), np.nan)})
    with pytest.raises(ValueError, match=rf"array '{name}' has 1 non-finite value"):
        compact_numpy.load(stem)
    # the second convolution given one more input channel, in both its arrays and its description: each layer on
    # its own is consistent, the chain is not
    layer = spec["layers"][1]
    wider = dict(arrays)
    wider[layer["kernel"]] = np.concatenate([arrays[layer["kernel"]], arrays[layer["kernel"]][:, :, :1]], axis=2)
    _rewrite(stem, _spec_change(spec, lambda s: s["layers"][1].update({"in": layer["in"] + 1})), wider)
    with pytest.raises(ValueError, match=rf"layer '{layer['name']}' \(conv, kernel .*\) cannot read the "):
        compact_numpy.load(stem)


def test_the_loader_refuses_an_input_index_outside_the_image(tmp_path):
    from bmrsparse import compact, compact_numpy, nets

    shape = nets.input_shape("mlp", "fashion_mnist")
    params = nets.make_net("mlp", "fashion_mnist").init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))["params"]
    params = jax.tree.map(np.array, jax.device_get(params))
    first = sorted(params)[0]
    params[first]["kernel"][:10] = 0.0  # ten pixels no weight reads: the export keeps an input_index
    small = compact.compact("mlp", params, None, input_shape=shape)
    compact.export(small, tmp_path / "net")
    spec = json.loads((tmp_path / "net.json").read_text())
    arrays = dict(np.load(tmp_path / "net.npz"))
    assert spec["input_index"] and arrays[spec["input_index"]].min() == 10
    arrays[spec["input_index"]] = arrays[spec["input_index"]] + 10  # past the 784 pixels
    _rewrite(tmp_path / "net", spec, arrays)
    with pytest.raises(ValueError, match=r"input_index must be a vector of whole numbers in \[0, 784\)"):
        compact_numpy.load(tmp_path / "net")


def test_predict_and_forward_refuse_non_finite_or_misshapen_inputs(export):
    from bmrsparse import compact_numpy

    stem, spec, _ = export
    net = compact_numpy.load(stem)
    images = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match=r"images has 1 non-finite"):
        compact_numpy.predict(net, _with(images, (1, 3, 3, 0), np.inf))
    side = 28 + 2 * spec["input"]["pad"]
    with pytest.raises(ValueError, match=r"x has 1 non-finite"):
        compact_numpy.forward(net, _with(np.zeros((2, side, side, 1), np.float32), (0, 0, 0, 0), np.nan))
    with pytest.raises(ValueError, match=rf"expected preprocessed x \[B, {side}, {side}, 1\], got \(2, 28, 28, 1\)"):
        compact_numpy.forward(net, images)


# ------------------------------------------------------------------------------------------------ state loading
@pytest.fixture
def state_file(tmp_path):
    """A two-seed BMR-S&S state file of a tiny MLP and its arrays (written by save_state)."""
    from bmrsparse.io import load_npz
    from bmrsparse.settings import TrainingSettings
    from bmrsparse.state import save_state
    from bmrsparse.train import Trainer

    ds = noise_dataset(16)
    settings = TrainingSettings.from_mapping(TINY_MLP_SETTINGS)
    trainer = Trainer(arch="mlp", method="bmr_ss", dataset=ds, seeds=[3, 4], settings=settings)
    path = tmp_path / "state.npz"
    save_state(trainer, trainer.init(), path, extra={"settings": settings})
    return path, load_npz(path)


def _resave(path, arrays, header_change=None):
    from bmrsparse.io import atomic_savez

    arrays = dict(arrays)
    if header_change:
        head = json.loads(str(arrays["header"]))
        header_change(head)
        arrays["header"] = np.asarray(json.dumps(head))
    atomic_savez(path, **arrays)  # a valid digest: the numbers, not the bytes, are wrong


def test_state_loading_refuses_non_finite_parameters_by_name(state_file):
    from bmrsparse.state import load_state, state_layers

    path, arrays = state_file
    name = next(k for k in arrays if k.endswith("['w_hat.loc']") and "mu" not in k and "nu" not in k)
    _resave(path, {**arrays, name: _with(arrays[name], (1, 5), np.nan)})
    with pytest.raises(ValueError, match=rf"parameter svi\.{name[4:]}".replace("[", r"\[").replace("]", r"\]")
                       + r" has 1 non-finite value"):
        load_state(path)
    with pytest.raises(ValueError, match="non-finite"):
        state_layers(path)


def test_state_loading_refuses_a_zero_scale(state_file):
    from bmrsparse.state import load_state, state_layers

    path, arrays = state_file
    name = next(k for k in arrays if k.endswith("['w_hat.scale']") and "mu" not in k and "nu" not in k)
    _resave(path, {**arrays, name: _with(arrays[name], (0, 7), -1e4)})  # the unconstrained scale: sigma = 0
    load_state(path)  # a state to train on: the optimiser may move it back
    with pytest.raises(ValueError, match=r"1 posterior standard deviation\(s\) of seed index 0 are not > 0"):
        state_layers(path, index=0)
    assert state_layers(path, index=1)  # the other seed's posterior is fine


def test_state_loading_refuses_misshapen_masks_and_bad_headers(state_file):
    from bmrsparse.state import load_state, read_state_header, state_layers

    path, arrays = state_file
    _resave(path, {**arrays, "mask/dense_0/kernel": np.ones((2, 8, 784), bool)})
    with pytest.raises(ValueError, match=r"keep-mask mask/dense_0/kernel must be bool of shape \(2, 784, 8\), got "
                                         r"bool \(2, 8, 784\)"):
        load_state(path)
    _resave(path, {**arrays, "mask/head/bias": np.ones((2, 10), np.float32)})
    with pytest.raises(ValueError, match=r"keep-mask mask/head/bias must be bool"):
        load_state(path)
    _resave(path, arrays, lambda h: h.update(step=-3))
    with pytest.raises(ValueError, match=r"header step must be a whole number >= 0, got -3"):
        read_state_header(path)
    _resave(path, arrays, lambda h: h.update(image_shape=[28, 0, 1]))
    with pytest.raises(ValueError, match=r"header image_shape must be \[H, W, C\]"):
        load_state(path)
    _resave(path, arrays)
    with pytest.raises(ValueError, match=r"index must be a whole number"):
        state_layers(path, index=0.5)
