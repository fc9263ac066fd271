"""Tests of bmrsparse.nets: shapes, exact parameter counts (paper Appendix A), naming conventions, dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bmrsparse.nets import DATASETS, NETWORKS, NUM_CLASSES, count_params, input_shape, iter_layers, make_net

# Shrunken sizes for forward passes (compile time on a 2-core machine).
SMALL = {
    "mlp": {"width": 8, "depth": 2},
    "lenet": {"features": (2, 3, 4), "hidden": 5},
    "mixer": {"hidden_dim": 8, "tokens_mlp_dim": 6, "channels_mlp_dim": 10, "num_blocks": 2},
    "vit": {"embed_dim": 8, "num_heads": 2, "mlp_dim": 12, "num_blocks": 2},
}


def _dense(n_in, n_out):
    return n_in * n_out + n_out


def _conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def _norm(d):
    return 2 * d


def expected_count(arch, dataset):
    """Parameter count of the full-size network, from the architecture formulas of Appendix A."""
    h, w, c = input_shape(arch, dataset)
    k = NUM_CLASSES[dataset]
    if arch == "mlp":
        return _dense(h * w * c, 400) + 4 * _dense(400, 400) + _dense(400, k)
    if arch == "lenet":
        f1, f2, f3, d1 = (6, 16, 120, 84) if dataset == "fashion_mnist" else (18, 48, 360, 256)
        return _conv(5, c, f1) + _conv(5, f1, f2) + _conv(5, f2, f3) + _dense(f3 * 1 * 1, d1) + _dense(d1, k)
    s, d = (h // 4) * (w // 4), 256
    assert s == 64
    if arch == "mixer":
        block = _norm(d) + _dense(s, 512) + _dense(512, s) + _norm(d) + _dense(d, 512) + _dense(512, d)
        return _conv(4, c, d) + 6 * block + _norm(d) + _dense(d, k)
    block = _norm(d) + _dense(d, 3 * d) + _dense(d, d) + _norm(d) + _dense(d, 512) + _dense(512, d)
    return _conv(4, c, d) + d + (s + 1) * d + 6 * block + _norm(d) + _dense(d, k)  # class token, positions


def full_shapes(arch, dataset):
    net = make_net(arch, dataset)
    x = jax.ShapeDtypeStruct((1,) + input_shape(arch, dataset), jnp.float32)
    return jax.eval_shape(net.init, jax.random.key(0), x)["params"]


def small_init(arch, dataset, dropout_rate=0.0, batch=3):
    net = make_net(arch, dataset, dropout_rate=dropout_rate, **SMALL[arch])
    x = jax.random.normal(jax.random.key(1), (batch,) + input_shape(arch, dataset), jnp.float32)
    return net, net.init(jax.random.key(0), x), x


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("arch", list(NETWORKS))
def test_full_size_param_count(arch, dataset):
    params = full_shapes(arch, dataset)
    assert count_params(params) == expected_count(arch, dataset)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("arch", list(NETWORKS))
def test_layer_conventions_full_size(arch, dataset):
    params = full_shapes(arch, dataset)
    layers = list(iter_layers(params))
    assert layers[-1][0] == "head" and layers[-1][1] == "dense"
    assert params["head"]["kernel"].shape[-1] == NUM_CLASSES[dataset]
    assert sum(count_params(leaf) for _, _, leaf in layers) == count_params(params)
    for path, kind, leaf in layers:
        if kind in ("dense", "conv"):
            assert set(leaf) == {"kernel", "bias"}, path
            assert leaf["bias"].shape == leaf["kernel"].shape[-1:], path
            assert len(leaf["kernel"].shape) == (2 if kind == "dense" else 4), path
        elif kind == "norm":
            assert set(leaf) == {"scale", "bias"}, path
        else:
            assert arch == "vit" and path == "embed_pos" and set(leaf) == {"cls_token", "embedding"}
            assert leaf["cls_token"].shape == (1, 1, 256) and leaf["embedding"].shape == (1, 65, 256)
    first_kernel = layers[0][2]["kernel"].shape
    if arch == "lenet":
        assert first_kernel == (5, 5, input_shape(arch, dataset)[-1], 6 if dataset == "fashion_mnist" else 18)
    if arch == "mlp":
        assert first_kernel == (int(np.prod(input_shape(arch, dataset))), 400)


def _insertion_paths(tree, prefix=()):
    """Leaf-dict paths in dict insertion order (= creation order, i.e. forward order, of an un-jitted init)."""
    out = []
    for name, node in tree.items():
        if any(isinstance(v, dict) for v in node.values()):
            out += _insertion_paths(node, prefix + (name,))
        else:
            out.append("/".join(prefix + (name,)))
    return out


@pytest.mark.parametrize("arch", list(NETWORKS))
def test_forward_order_is_sorted_order(arch):
    # Layers are created in forward order by the un-jitted init; jax.tree_util rebuilds dicts sorted, so both
    # orders must agree for the forward order to survive tree_map / jit.
    _, variables, _ = small_init(arch, "cifar10")
    params = variables["params"]
    forward = _insertion_paths(params)
    assert forward == [p for p, _, _ in iter_layers(params)]
    assert forward == _insertion_paths(jax.tree.map(lambda a: a, params))
    expected_start = {"mlp": ["dense_0", "dense_1", "head"],
                      "lenet": ["conv_0", "conv_1", "conv_2", "dense_0", "head"],
                      "mixer": ["embed", "encoder_0/mlp_0_tokens/norm", "encoder_0/mlp_0_tokens/proj_in"],
                      "vit": ["embed", "embed_pos", "encoder_0/attention/norm", "encoder_0/attention/proj_in"]}
    assert forward[: len(expected_start[arch])] == expected_start[arch]
    assert forward[-1] == "head"


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("arch", list(NETWORKS))
def test_output_shape(arch, dataset):
    net, variables, x = small_init(arch, dataset)
    y = net.apply(variables, x)
    assert y.shape == (x.shape[0], NUM_CLASSES[dataset]) and y.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("arch", list(NETWORKS))
def test_dropout(arch):
    net, variables, x = small_init(arch, "cifar10", dropout_rate=0.5)
    run = jax.jit(lambda key, train: net.apply(variables, x, train=train, rngs={"dropout": key}),
                  static_argnums=1)
    k1, k2 = jax.random.key(2), jax.random.key(3)
    eval_1, eval_2 = run(k1, False), run(k2, False)
    np.testing.assert_array_equal(eval_1, eval_2)
    train_1, train_2 = run(k1, True), run(k2, True)
    if arch == "mixer":  # no dropout in the Mixer (paper, Appendix A)
        np.testing.assert_array_equal(train_1, eval_1)
        np.testing.assert_array_equal(train_2, eval_1)
    else:
        assert not np.allclose(train_1, train_2)
        assert not np.allclose(train_1, eval_1)


def test_no_dropout_rate_means_train_is_deterministic():
    net, variables, x = small_init("vit", "fashion_mnist")
    np.testing.assert_allclose(net.apply(variables, x, train=True), net.apply(variables, x), rtol=1e-6)


def test_input_shape_and_errors():
    assert input_shape("mlp", "fashion_mnist") == (28, 28, 1)
    assert input_shape("lenet", "fashion_mnist") == (32, 32, 1)
    assert input_shape("vit", "cifar100") == (32, 32, 3)
    with pytest.raises(ValueError, match="unknown network 'resnet'; registered networks: mlp, lenet, mixer, vit"):
        make_net("resnet", "cifar10")
    with pytest.raises(ValueError, match="unknown dataset"):
        input_shape("mlp", "mnist")
    with pytest.raises(ValueError, match=r"unknown override\(s\) \['widht'\]"):
        make_net("mlp", "cifar10", widht=3)
    with pytest.raises(ValueError, match="dropout_rate"):
        make_net("mlp", "cifar10", dropout_rate=1.0)
    net = make_net("mixer", "cifar10", patch_size=5, **SMALL["mixer"])
    with pytest.raises(ValueError, match="not divisible by the patch size 5"):
        net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_vit_predicts_from_the_class_token():
    net, variables, x = small_init("vit", "cifar10")
    params = variables["params"]
    assert params["embed_pos"]["cls_token"].shape == (1, 1, 8)
    assert params["embed_pos"]["embedding"].shape == (1, 64 + 1, 8)
    moved = jax.tree.map(lambda a: a, params)
    moved["embed_pos"]["cls_token"] = params["embed_pos"]["cls_token"] + 1.0
    assert not np.allclose(net.apply({"params": moved}, x), net.apply(variables, x))
    # The head reads the class token (the first token after the final LayerNorm), not the mean over tokens.
    captured = net.apply(variables, x, capture_intermediates=lambda mdl, _: mdl.name == "encoder_norm")
    tokens = captured[1]["intermediates"]["encoder_norm"]["__call__"][0]  # [B, 1 + S, D]
    head = params["head"]
    np.testing.assert_allclose(net.apply(variables, x), tokens[:, 0] @ head["kernel"] + head["bias"], rtol=1e-5,
                               atol=1e-5)


def test_tiered_prior_gives_rows_of_every_layer_their_own_scales():
    """Tiered-FF: dense/conv output units, LayerNorm features and embedding rows (tokens) get their own local
    scales, as in the authors' code; the output layer only a global one."""
    from numpyro import handlers

    from bmrsparse.methods import _layers, tiered

    _, variables, _ = small_init("vit", "cifar10")
    layers = _layers.find_layers(variables["params"])
    by_name = {layer.name: layer for layer in layers}
    sites = {s.name: s for s in tiered.sites(layers)}
    d, s = 8, 64  # embedding dimension, patches (32x32 images, 4x4 patches)
    expected_rows = 0
    for layer in layers:
        if layer.is_head:
            continue
        if layer.kind in ("dense", "conv"):
            expected_rows += int(np.prod(layer.rows))
        elif layer.kind == "norm":
            expected_rows += d
        else:
            assert layer.name == "embed_pos"
            expected_rows += 1 + (s + 1)  # class token + positions: one row per token
    assert sites["tau_a"].shape == (expected_rows,) and sites["tau_b"].shape == (expected_rows,)

    rng = np.random.default_rng(0)
    values = {"w_hat": jnp.ones(_layers.Layout(layers).size)}  # w = gamma * w_hat: the weights are the prior scales
    for name in ("c_inv_sqr", "v_a", "v_b", "tau_a", "tau_b"):
        values[name] = jnp.asarray(rng.uniform(0.5, 2.0, sites[name].shape), jnp.float32)
    with handlers.seed(rng_seed=0), handlers.substitute(data=values):
        params = tiered.weights(layers)
    norm = params["encoder_0"]["attention"]["norm"]
    np.testing.assert_allclose(norm["scale"], norm["bias"])  # a feature's scale and shift share its scale
    assert len(np.unique(np.round(np.asarray(norm["scale"]), 6))) == d  # each feature its own
    emb = params["embed_pos"]
    for leaf in ("cls_token", "embedding"):
        value = np.asarray(emb[leaf])
        np.testing.assert_allclose(value, np.broadcast_to(value[..., :1], value.shape))  # shared along D
    tokens = np.concatenate([np.asarray(emb["cls_token"])[0, :, 0], np.asarray(emb["embedding"])[0, :, 0]])
    assert len(np.unique(np.round(tokens, 6))) == 1 + s + 1  # each token its own
    kernel = np.asarray(params["embed"]["kernel"])  # conv: one scale per output channel
    np.testing.assert_allclose(kernel, np.broadcast_to(kernel[:1, :1, :1, :], kernel.shape))
    np.testing.assert_allclose(params["embed"]["bias"], kernel[0, 0, 0])
    head = np.asarray(params["head"]["kernel"])
    assert np.unique(np.round(head, 6)).size == 1  # the output layer: one global scale
    assert by_name["head"].is_head


@pytest.mark.parametrize("arch", ["mlp", "lenet", "vit"])
def test_dropout_is_flax_dropout(arch, monkeypatch):
    """The networks' Dropout (mask drawn once per step) gives Flax's masks: same outputs and gradients."""
    import flax.linen as nn

    from bmrsparse.nets import _common, lenet, mlp, vit

    net = make_net(arch, "fashion_mnist", dropout_rate=0.3, **SMALL[arch])
    x = jax.random.normal(jax.random.PRNGKey(0), (4,) + input_shape(arch, "fashion_mnist"))
    params = net.init(jax.random.PRNGKey(1), x)["params"]
    rngs = {"dropout": jax.random.PRNGKey(2)}

    def value_and_grad():  # a new function each time: nothing cached from the other trace
        return jax.jit(jax.value_and_grad(lambda p: jnp.sum(jnp.sin(net.apply({"params": p}, x, train=True,
                                                                               rngs=rngs)))))(params)

    ours = value_and_grad()
    for module in (mlp, lenet, vit):
        monkeypatch.setattr(module, "Dropout", nn.Dropout)
    flax_ = value_and_grad()
    assert _common.Dropout is not nn.Dropout
    np.testing.assert_allclose(ours[0], flax_[0], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(ours[1]), jax.tree.leaves(flax_[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    evaluated = net.apply({"params": params}, x, train=False)
    assert not np.allclose(evaluated, net.apply({"params": params}, x, train=True, rngs=rngs))


def test_registry_declares_the_papers_networks():
    from bmrsparse import nets
    from bmrsparse.nets import NETWORKS, LeNet, Network, get_network, register

    assert list(NETWORKS) == ["mlp", "lenet", "mixer", "vit"] and not hasattr(nets, "ARCHS")  # one name: NETWORKS
    lenet = get_network("lenet")
    assert (lenet.label, lenet.module, lenet.input_size) == ("LeNet-5", LeNet, 32)
    assert lenet.sizes["cifar10"] == {"features": (18, 48, 360), "hidden": 256}
    assert get_network("mlp").input_size is None  # takes FashionMNIST's 28x28 as they are
    assert {n.name: n.mem_mb for n in NETWORKS.values()} == {"mlp": 4000, "lenet": 4000, "mixer": 8000, "vit": 8000}
    with pytest.raises(ValueError, match="two networks are named 'mlp'"):
        register(Network(name="mlp", label="other", module=LeNet))
    with pytest.raises(ValueError, match="num_classes field"):
        Network(name="bad", label="Bad", module=object)


@pytest.mark.parametrize("shape,features", [((3, 32, 32, 1), 6), ((3, 14, 14, 6), 16), ((3, 5, 5, 16), 120),
                                            ((2, 32, 32, 3), 18), ((2, 9, 7, 4), 5), ((2, 15, 15, 1), 3),
                                            ((2, 10, 6, 2), 4)])
def test_conv_valid_patches_equals_xla_convolution(shape, features):
    """The CPU lowerings of LeNet-5's convolutions (shifted views, or image rows, one matrix product) compute XLA's
    convolution, its value and its gradients with respect to the kernel and the input, to float rounding; the rows
    lowering in tiles of 4 output columns for an image's 1-3 channels, the last tile cut (11 columns), and in whole
    rows for feature maps or a row narrower than a tile."""
    from bmrsparse.nets._common import ROW_TILE, conv_valid, row_tile

    w_out = shape[2] - 4
    assert row_tile(w_out, shape[-1]) == (ROW_TILE if shape[-1] <= 3 and w_out > ROW_TILE else w_out)

    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    k = 0.2 * jax.random.normal(jax.random.PRNGKey(1), (5, 5, shape[-1], features))

    def loss(lowering):
        return lambda k, x: jnp.sum(jnp.tanh(conv_valid(x, k, lowering=lowering)) ** 2)

    y_p, y_c = conv_valid(x, k, lowering="patches"), conv_valid(x, k, lowering="conv")
    y_r = conv_valid(x, k, lowering="rows")  # one product of image rows with a banded matrix
    assert y_p.shape == y_c.shape == y_r.shape == (shape[0], shape[1] - 4, shape[2] - 4, features)
    np.testing.assert_allclose(y_p, y_c, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_r, y_c, rtol=1e-5, atol=1e-5)
    for low in ("patches", "rows"):
        for g_p, g_c in zip(jax.grad(loss(low), (0, 1))(k, x), jax.grad(loss("conv"), (0, 1))(k, x)):
            np.testing.assert_allclose(g_p, g_c, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(g_c))))
    with pytest.raises(ValueError, match="lowering"):
        conv_valid(x, k, lowering="fft")
    with pytest.raises(ValueError, match="does not match"):
        conv_valid(x[..., :1] if shape[-1] > 1 else jnp.concatenate([x, x], -1), k)


def test_lenet_convolutions_are_flax_convs():
    """LeNet-5's ConvValid layers have nn.Conv's parameters (names, shapes, initial values) and outputs, so states
    written with either load into the other."""
    import flax.linen as nn

    from bmrsparse.nets._common import ConvValid

    x = jax.random.normal(jax.random.PRNGKey(2), (4, 12, 12, 3))
    ours, flax_conv = ConvValid(7, (5, 5)), nn.Conv(7, (5, 5), padding="VALID")
    p_ours, p_flax = ours.init(jax.random.PRNGKey(3), x), flax_conv.init(jax.random.PRNGKey(3), x)
    assert jax.tree.structure(p_ours) == jax.tree.structure(p_flax)
    for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_flax)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours.apply(p_flax, x), flax_conv.apply(p_flax, x), rtol=1e-5, atol=1e-5)
    # the whole LeNet-5 against the same forward pass written with Flax's nn.Conv, on LeNet-5's own parameters
    net = make_net("lenet", "fashion_mnist")
    images = jax.random.normal(jax.random.PRNGKey(4), (5, 32, 32, 1))
    params = net.init(jax.random.PRNGKey(5), images)["params"]
    h = images
    for i, name in enumerate(["conv_0", "conv_1", "conv_2"]):
        conv = nn.Conv(params[name]["kernel"].shape[-1], (5, 5), padding="VALID")
        h = jnp.tanh(conv.apply({"params": params[name]}, h))
        h = nn.avg_pool(h, (2, 2), strides=(2, 2)) if i < 2 else h.reshape(h.shape[0], -1)
    h = jnp.tanh(h @ params["dense_0"]["kernel"] + params["dense_0"]["bias"])
    logits = h @ params["head"]["kernel"] + params["head"]["bias"]
    np.testing.assert_allclose(net.apply({"params": params}, images), logits, rtol=1e-5, atol=1e-5)


def test_conv_lowering_context_sets_the_default_lowering():
    """Within ``conv_lowering(l)`` a traced LeNet-5 uses lowering ``l`` (XLA's convolution for "conv", none on CPU
    for "patches"), outside it the backend's choice; an explicit lowering wins; unknown names are refused."""
    from bmrsparse.nets._common import conv_lowering, conv_valid
    from bmrsparse.train import uses_primitive

    net = make_net("lenet", "fashion_mnist")
    images = jnp.zeros((2, 32, 32, 1))
    params = net.init(jax.random.PRNGKey(0), images)

    def holds_conv():
        return uses_primitive(lambda p: net.apply(p, images), params, "conv_general_dilated")

    with conv_lowering("conv"):
        assert holds_conv()
        with conv_lowering("patches"):
            assert not holds_conv()
        assert holds_conv()
        k = jnp.ones((5, 5, 1, 2))
        assert not uses_primitive(lambda x: conv_valid(x, k, lowering="patches"), images, "conv_general_dilated")
    assert holds_conv() == (jax.default_backend() != "cpu")
    with pytest.raises(ValueError, match="lowering"):
        with conv_lowering("fft"):
            pass
