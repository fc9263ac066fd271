"""Compact networks: the same function as the masked network (MLP, LeNet-5), the right sizes, the numpy export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bmrsparse import compact, nets
from bmrsparse.methods import find_layers

ROOT = Path(__file__).resolve().parents[2]


def _net_and_params(arch, seed=0):
    net = nets.make_net(arch, "fashion_mnist")
    shape = nets.input_shape(arch, "fashion_mnist")
    params = net.init(jax.random.PRNGKey(seed), jnp.zeros((1, *shape)))["params"]
    rng = np.random.default_rng(seed)
    # non-zero biases, so that a unit without incoming weights has a constant output to fold
    params = jax.tree_util.tree_map_with_path(
        lambda p, v: rng.normal(0, 0.5, v.shape).astype(np.float32) if p[-1].key == "bias" else np.asarray(v), params)
    return net, params, shape


def _masks(params, rng, *, group=0.3, weight=0.5, structured=False):
    """Keep-masks: whole units removed (group), random single weights (unless structured), units with no incoming
    weight but a kept bias, units with no outgoing weight; the output layer whole."""
    layers = [l for l in find_layers(params)]
    masks = {}
    for i, layer in enumerate(layers):
        shapes = dict(layer.shapes)
        if layer.is_head:
            masks[layer.name] = {k: np.ones(s, bool) for k, s in shapes.items()}
            continue
        units = shapes["bias"][0]
        keep_unit = rng.random(units) >= group
        keep_unit[0] = True
        kernel = np.broadcast_to(keep_unit, shapes["kernel"]).copy()
        bias = keep_unit.copy()
        if not structured:
            kernel &= rng.random(shapes["kernel"]) >= weight
            kernel[..., 1] = False  # no incoming weight, bias kept: a constant
            bias[1] = True
        masks[layer.name] = {"kernel": kernel, "bias": bias}
    if not structured:  # a unit of the first hidden layer that nothing reads
        second = layers[1]
        k = masks[second.name]["kernel"]
        k[..., 2, :] = False
    return masks


def _masked_logits(net, params, masks, x):
    return np.asarray(net.apply({"params": compact.masked_params(params, masks)}, x))


@pytest.mark.parametrize("arch", compact.compact_networks())
@pytest.mark.parametrize("structured", [True, False])
@pytest.mark.parametrize("runtime", ["network lowering", "row products, batches of 6"])
def test_compact_network_computes_the_masked_networks_outputs(arch, structured, runtime):
    net, params, shape = _net_and_params(arch)
    masks = _masks(params, np.random.default_rng(1), structured=structured)
    x = np.random.default_rng(2).normal(size=(16, *shape)).astype(np.float32)
    small = compact.compact(arch, params, masks, input_shape=shape)
    want = _masked_logits(net, params, masks, x)
    arrays, chunk = small.arrays, None
    if runtime != "network lowering":
        arrays, chunk = compact.band_matrices(small.spec, small.arrays), 6  # 16 = 6 + 6 + 4 (padded)
        assert {f"{l['name']}/band" for l in small.spec["layers"] if l["type"] == "conv"} <= set(arrays)
    got = np.asarray(jax.jit(lambda a, x: compact.apply(small.spec, a, x, chunk=chunk))(arrays, x))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert compact.num_params(small) < nets.count_params(params)


@pytest.mark.parametrize("arch,macs,widths", [
    ("mlp", 784 * 400 + 4 * 400 * 400 + 400 * 10, [784, 400, 400, 400, 400, 400, 10]),
    # conv 28x28x25x1x6 + 10x10x25x6x16 + 1x1x25x16x120, dense 120x84, head 84x10
    ("lenet", 117_600 + 240_000 + 48_000 + 10_080 + 840, [1, 6, 16, 120, 84, 10]),
])
def test_multiply_adds_and_widths_of_the_paper_networks(arch, macs, widths):
    _, params, shape = _net_and_params(arch)
    full = compact.compact(arch, params, None, input_shape=shape, remove=False)
    assert compact.multiply_adds(full.spec) == macs and compact.widths(full.spec) == widths
    masks = _masks(params, np.random.default_rng(3), structured=True)
    small = compact.compact(arch, params, masks, input_shape=shape)
    assert compact.multiply_adds(small.spec) < macs


@pytest.mark.parametrize("arch", compact.compact_networks())
def test_a_structured_network_keeps_exactly_its_kept_units(arch):
    net, params, shape = _net_and_params(arch)
    masks = _masks(params, np.random.default_rng(3), structured=True)
    small = compact.compact(arch, params, masks, input_shape=shape)
    sizes = {l["name"]: l["out"] for l in small.spec["layers"]}
    for name, m in masks.items():
        assert sizes[name] == int(m["bias"].sum())
    assert small.spec["input_index"] is None  # whole units only: every input pixel is still read


@pytest.mark.parametrize("arch,empty,upstream", [("mlp", "dense_2", 3), ("lenet", "conv_1", 2)])
def test_removals_cascade_and_empty_layers_still_compute(arch, empty, upstream, tmp_path):
    net, params, shape = _net_and_params(arch)
    masks = _masks(params, np.random.default_rng(4), structured=True)
    masks[empty] = {k: np.zeros_like(v) for k, v in masks[empty].items()}  # a whole layer removed
    small = compact.compact(arch, params, masks, input_shape=shape)
    sizes = [l["out"] for l in small.spec["layers"]]
    assert sizes[:upstream] == [0] * upstream  # nothing upstream of the empty layer is read any more
    if arch == "mlp":
        assert small.spec["input_index"] == "input_index" and small.arrays["input_index"].size == 0
    x = np.random.default_rng(5).normal(size=(4, *shape)).astype(np.float32)
    for arrays in (small.arrays, compact.band_matrices(small.spec, small.arrays)):
        got = np.asarray(compact.apply(small.spec, arrays, jnp.asarray(x)))
        np.testing.assert_allclose(got, _masked_logits(net, params, masks, x), atol=1e-5, rtol=0)
    # the numpy loader's checks (issue 31.1) take the export with its empty layers
    from bmrsparse import compact_numpy

    compact.export(small, tmp_path / "net")
    np.testing.assert_allclose(compact_numpy.forward(compact_numpy.load(tmp_path / "net"), x),
                               _masked_logits(net, params, masks, x), atol=1e-5, rtol=0)


def test_the_compactable_architectures_are_registered_networks_and_the_others_are_refused():
    # workflow/rules/inference.smk constrains rule compact_network's {arch} to the grid's compact networks
    assert compact.compact_networks() and set(compact.compact_networks()) <= set(nets.NETWORKS)
    other = next(a for a in nets.NETWORKS if a not in compact.compact_networks())
    net = nets.make_net(other, "fashion_mnist")
    shape = nets.input_shape(other, "fashion_mnist")
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))["params"]
    with pytest.raises(ValueError, match="compact networks exist for"):
        compact.compact(other, params, None, input_shape=shape)
    rule = (ROOT / "workflow" / "rules" / "inference.smk").read_text()
    assert 'arch="|".join(GRID.inference_archs()) or NOTHING' in rule
    from bmrsparse.workflow import Config, Grid
    from bmrsparse.workflow.schema import validated

    grid = Grid(Config.from_mapping(validated({"archs": list(nets.NETWORKS)})))
    assert grid.inference_archs() == list(compact.compact_networks())


def test_exact_zeros_count_as_pruned_without_masks():
    net, params, shape = _net_and_params("lenet")
    masks = _masks(params, np.random.default_rng(6), structured=True)
    a = compact.compact("lenet", compact.masked_params(params, masks), None, input_shape=shape)
    b = compact.compact("lenet", params, masks, input_shape=shape)
    assert [l["out"] for l in a.spec["layers"]] == [l["out"] for l in b.spec["layers"]]


_LOADER = r"""
import importlib.util, json, sys
import numpy as np
spec = importlib.util.spec_from_file_location("loader", sys.argv[1])
loader = importlib.util.module_from_spec(spec)
spec.loader.exec_module(loader)
net = loader.load(sys.argv[2])
images = np.load(sys.argv[3])
np.save(sys.argv[4], loader.predict(net, images))
assert not any(m == "jax" or m.startswith(("jax.", "bmrsparse")) for m in sys.modules), "loader imported jax"
"""


@pytest.mark.parametrize("arch", compact.compact_networks())
def test_export_loads_and_runs_with_numpy_alone(arch, tmp_path):
    net, params, shape = _net_and_params(arch)
    masks = _masks(params, np.random.default_rng(7), structured=False)
    raw_shape = (28, 28, 1)
    pad = (shape[0] - raw_shape[0]) // 2
    prep = {"shape": raw_shape, "mean": [72.9], "std": [90.0], "pad": pad}
    small = compact.compact(arch, params, masks, input_shape=shape, preprocess=prep,
                            meta={"dataset": "fashion_mnist", "method": "test"})
    stem = tmp_path / "net"
    npz, js = compact.export(small, stem)
    spec = json.loads(Path(js).read_text())
    assert spec["format"] == "bmrsparse-compact" and spec["arch"] == arch and spec["input"]["pad"] == pad
    images = np.random.default_rng(8).integers(0, 256, size=(8, *raw_shape)).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    run = subprocess.run([sys.executable, "-c", _LOADER, str(ROOT / "src" / "bmrsparse" / "compact_numpy.py"),
                          str(stem), str(tmp_path / "images.npy"), str(tmp_path / "out.npy")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    got = np.load(tmp_path / "out.npy")
    x = (images.astype(np.float32) - 72.9) / 90.0
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    np.testing.assert_allclose(got, _masked_logits(net, params, masks, x), atol=1e-4, rtol=0)


def test_loader_rejects_a_description_that_does_not_match_its_arrays(tmp_path):
    from bmrsparse import compact_numpy

    _, params, shape = _net_and_params("mlp")
    small = compact.compact("mlp", params, None, input_shape=shape)
    compact.export(small, tmp_path / "net")
    spec = json.loads((tmp_path / "net.json").read_text())
    spec["layers"][0]["out"] += 1
    (tmp_path / "net.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="dense_0"):
        compact_numpy.load(tmp_path / "net")
