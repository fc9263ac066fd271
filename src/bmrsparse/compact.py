r"""A pruned network made small: drop removed units and channels, keep a dense network of the same architecture.

:func:`compact` turns the posterior mean of a pruned MLP or LeNet-5 (its Flax params and keep-masks) into a
:class:`CompactNet`: the same layers, each with fewer units (MLP) or channels (LeNet-5), as plain dense arrays.
A hidden unit (an MLP neuron or a convolution's output channel) goes when

- every incoming weight is pruned (its kernel column or filter): its output is then the constant
  :math:`f(b)` (:math:`f` the activation, :math:`b` its bias, zero when the bias is pruned too; average pooling
  and a VALID convolution keep a constant map constant), which is added to the next layer's bias through the
  next layer's weights from it, summed over their spatial positions; or
- every outgoing weight (the next layer's weights reading it, at every position) is pruned: nothing reads it.

Removing a unit removes the matching inputs of the next layer; removals cascade (a unit whose only readers were
removed goes too). The MLP's input pixels that no kept weight reads are dropped as well (``input_index``). The
output layer keeps all its units. The compact network computes the masked network's function up to floating
point rounding (the tests hold it to 1e-5 on a batch).

Structured BMR (:mod:`bmrsparse.methods.bmr_struct`) removes whole units, so its networks shrink by exactly what
it pruned; a network pruned weight by weight shrinks only by its units with no kept incoming or outgoing
weights.

:func:`export` writes a compact network as ``<stem>.npz`` (named arrays) and ``<stem>.json`` (layer sizes and
the input preprocessing), which :mod:`bmrsparse.compact_numpy` loads and runs with numpy alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from . import compact_numpy
from .io import atomic_path, atomic_write_text
from .nets import NETWORKS

__all__ = ["compact_networks", "CompactNet", "compact", "apply", "band_matrices", "export", "num_params",
           "multiply_adds", "widths", "masked_params", "chain"]


def compact_networks() -> tuple[str, ...]:
    """The names of the registered networks :func:`compact` understands: those that declare a
    ``compact_activation`` (:class:`bmrsparse.nets.Network`)."""
    return tuple(n for n in NETWORKS if NETWORKS[n].compact_activation)


class CompactNet(NamedTuple):
    """A compact network: ``spec`` (the JSON description of :mod:`bmrsparse.compact_numpy`) and ``arrays``."""

    spec: dict
    arrays: dict


def masked_params(params: Mapping, masks: Mapping | None) -> dict:
    """``params`` (Flax, nested) with every weight whose mask is ``False`` set to exactly zero.

    ``masks`` is ``{layer: {leaf: bool}}`` with layer names ``"a/b"`` as in :func:`bmrsparse.methods.find_layers`.
    """
    out = {k: (masked_params(v, None) if isinstance(v, Mapping) else np.array(v)) for k, v in params.items()}
    for layer, leaves in (masks or {}).items():
        node = out
        for key in layer.split("/"):
            node = node[key]
        for leaf, m in leaves.items():
            node[leaf] = np.where(np.asarray(m, bool), node[leaf], 0).astype(node[leaf].dtype)
    return out


def chain(arch: str, params: Mapping, input_shape) -> list[dict]:
    """The layers of an MLP or LeNet-5 in forward order: ``name, type, kernel, bias, activation, pool, flatten``
    and ``hw`` (the spatial size of the layer's input map, for a convolution or the dense layer after it)."""
    act = NETWORKS[arch].compact_activation if arch in NETWORKS else None
    if not act:
        raise ValueError(f"compact networks exist for {compact_networks()}, not {arch!r}")
    names = sorted(params)  # sorted order is forward order (bmrsparse.nets)
    if names[-1] != "head" or any(not (n.startswith("dense_") or n.startswith("conv_")) for n in names[:-1]):
        raise ValueError(f"unexpected {arch} layers {names}")
    h, w = int(input_shape[0]), int(input_shape[1])
    convs = [n for n in names if n.startswith("conv_")]
    out, previous = [], None
    for name in names:
        kernel = np.asarray(params[name]["kernel"], np.float64)
        bias = np.asarray(params[name]["bias"], np.float64)
        if kernel.ndim == 4:
            layer = dict(name=name, type="conv", kernel=kernel, bias=bias, activation=act, flatten=False, hw=(h, w),
                         pool=2 if name != convs[-1] else 0)
            h, w = h - kernel.shape[0] + 1, w - kernel.shape[1] + 1
            if layer["pool"]:
                h, w = h // 2, w // 2
        else:
            hw = (h, w) if previous == "conv" else (1, 1)
            layer = dict(name=name, type="dense", kernel=kernel, bias=bias, flatten=previous != "dense", pool=0, hw=hw,
                         activation=act if name != "head" else "none")
        previous = layer["type"]
        out.append(layer)
    return out


def _view(layer) -> np.ndarray:
    """The kernel as ``[positions, inputs, outputs]``: the inputs are the previous layer's units (a dense layer
    after a convolution reads each channel at every position of the flattened map)."""
    k = layer["kernel"]
    if layer["type"] == "conv":
        return k.reshape(k.shape[0] * k.shape[1], k.shape[2], k.shape[3])
    positions = layer["hw"][0] * layer["hw"][1] if layer["from_conv"] else 1
    return k.reshape(positions, k.shape[0] // positions, k.shape[1])


def _set_view(layer, view: np.ndarray) -> None:
    k = layer["kernel"]
    if layer["type"] == "conv":
        layer["kernel"] = view.reshape(k.shape[0], k.shape[1], view.shape[1], view.shape[2])
    else:
        layer["kernel"] = view.reshape(view.shape[0] * view.shape[1], view.shape[2])


def _activation(name: str, x):
    return compact_numpy._ACTIVATIONS[name](x)


def compact(arch: str, params: Mapping, masks: Mapping | None = None, *, input_shape, preprocess: Mapping | None = None,
            meta: Mapping | None = None, remove: bool = True) -> CompactNet:
    """The compact network of a pruned MLP or LeNet-5.

    Args:
      arch: ``"mlp"`` or ``"lenet"``.
      params: the network's Flax params (e.g. the posterior mean :math:`E_q[w]`).
      masks: keep-masks ``{layer: {leaf: bool}}`` (``True`` = kept); None: exact zeros count as pruned.
      input_shape: ``(H, W, C)`` of the network's (preprocessed) input.
      preprocess: ``{"shape": raw [H, W, C], "mean": [C], "std": [C], "pad": p}`` stored for the export (None:
        identity on ``input_shape``).
      meta: extra JSON-able entries of the description (``dataset``, ``method``...).
      remove: False keeps every unit (the masked network in this format, e.g. to time it with sparse kernels).
    """
    layers = chain(arch, masked_params(params, masks), input_shape)
    for i, layer in enumerate(layers):
        layer["from_conv"] = layer["type"] == "dense" and i > 0 and layers[i - 1]["type"] == "conv"
    hidden = range(len(layers) - 1) if remove else range(0)
    # 1. units with no kept incoming weight: a constant, folded into the next layer's bias
    for i in hidden:
        here, nxt = layers[i], layers[i + 1]
        k = _view(here)
        dead = ~np.any(k != 0, axis=(0, 1))
        if not dead.any():
            continue
        value = _activation(here["activation"], here["bias"][dead])  # the unit's constant output
        v = _view(nxt)
        nxt["bias"] = nxt["bias"] + np.einsum("sio,i->o", v[:, dead, :], value)
        _set_view(nxt, v[:, ~dead, :])
        _set_view(here, k[:, :, ~dead])
        here["bias"] = here["bias"][~dead]
    # 2. units no kept weight of the next layer reads (cascading backwards)
    for i in reversed(hidden):
        here, nxt = layers[i], layers[i + 1]
        v = _view(nxt)
        unread = ~np.any(v != 0, axis=(0, 2))
        if not unread.any():
            continue
        _set_view(nxt, v[:, ~unread, :])
        k = _view(here)
        _set_view(here, k[:, :, ~unread])
        here["bias"] = here["bias"][~unread]
    arrays, specs = {}, []
    input_index = None
    first = layers[0]
    if first["type"] == "dense" and remove:  # the MLP: drop input pixels no kept weight reads
        read = np.any(first["kernel"] != 0, axis=1)
        if not read.all():
            input_index = "input_index"
            arrays[input_index] = np.flatnonzero(read).astype(np.int64)
            first["kernel"] = first["kernel"][read]
    for layer in layers:
        k = layer["kernel"]
        arrays[f"{layer['name']}/kernel"] = k.astype(np.float32)
        arrays[f"{layer['name']}/bias"] = layer["bias"].astype(np.float32)
        specs.append(dict(name=layer["name"], type=layer["type"], **{"in": int(k.shape[-2]), "out": int(k.shape[-1])},
                          kernel_size=list(k.shape[:2]) if layer["type"] == "conv" else None,
                          flatten=bool(layer["flatten"]), activation=layer["activation"], pool=int(layer["pool"]),
                          kernel=f"{layer['name']}/kernel", bias=f"{layer['name']}/bias"))
    prep = dict(preprocess) if preprocess else {"shape": list(input_shape), "mean": [0.0] * int(input_shape[2]),
                                                "std": [1.0] * int(input_shape[2]), "pad": 0}
    prep = {"shape": [int(s) for s in prep["shape"]], "mean": [float(m) for m in np.ravel(prep["mean"])],
            "std": [float(s) for s in np.ravel(prep["std"])], "pad": int(prep["pad"])}
    spec = {"format": compact_numpy.FORMAT, "version": compact_numpy.VERSION, "arch": arch, **dict(meta or {}),
            "input": prep, "input_index": input_index, "layers": specs}
    return CompactNet(spec, arrays)


def num_params(net: CompactNet) -> int:
    """Weights and biases the compact network holds."""
    return int(sum(net.arrays[l[k]].size for l in net.spec["layers"] for k in ("kernel", "bias")))


def multiply_adds(spec: Mapping) -> int:
    """Multiply-adds of one forward pass of one image: ``in * out`` per dense layer, ``h' * w' * kh * kw * in * out``
    per convolution (``h', w'`` its output map), from the description alone (biases, activations and pooling are
    not counted)."""
    shape = spec["input"]["shape"]
    pad = int(spec["input"]["pad"])
    h, w = int(shape[0]) + 2 * pad, int(shape[1]) + 2 * pad
    total = 0
    for layer in spec["layers"]:
        if layer["type"] == "conv":
            kh, kw = layer["kernel_size"]
            h, w = h - kh + 1, w - kw + 1
            total += h * w * kh * kw * int(layer["in"]) * int(layer["out"])
            if layer["pool"]:
                h, w = h // int(layer["pool"]), w // int(layer["pool"])
        else:
            total += int(layer["in"]) * int(layer["out"])
    return int(total)


def widths(spec: Mapping) -> list[int]:
    """The network's widths in forward order: its inputs (pixels of an MLP, channels of a convolution), then every
    layer's units or channels, e.g. ``[320, 34, 28, 28, 20, 27, 10]``."""
    return [int(spec["layers"][0]["in"])] + [int(layer["out"]) for layer in spec["layers"]]


def band_matrices(spec: Mapping, arrays: Mapping) -> dict:
    """``arrays`` with a banded matrix ``<layer>/band`` for every convolution (:func:`bmrsparse.nets._common.row_band`:
    the kernel's taps laid on diagonals), so that the convolution of an image's rows is one matrix product
    (:func:`apply`, the ``"rows"`` lowering of :func:`bmrsparse.nets._common.conv_valid`). Built once, with numpy,
    from the kernel and the width of the layer's output map (followed from ``spec["input"]``)."""
    from .nets._common import row_band

    out = dict(arrays)
    shape, pad = spec["input"]["shape"], int(spec["input"]["pad"])
    h, w = int(shape[0]) + 2 * pad, int(shape[1]) + 2 * pad
    for layer in spec["layers"]:
        if layer["type"] != "conv":
            continue
        kernel = np.asarray(arrays[layer["kernel"]], np.float32)
        kh, kw = kernel.shape[:2]
        w_out = w - kw + 1
        out[f"{layer['name']}/band"] = row_band(kernel, w_out, xp=np)
        h, w = h - kh + 1, w_out
        if layer["pool"]:
            h, w = h // int(layer["pool"]), w // int(layer["pool"])
    return out


def apply(spec: Mapping, arrays: Mapping, x, *, chunk: int | None = None):
    """The compact network's logits of preprocessed inputs ``x`` with JAX (jit it with ``spec`` closed over).

    A convolution runs as one matrix product over image rows when ``arrays`` holds its band matrix
    (:func:`band_matrices`): its time then follows its channels (``C_in * C_out``), which the full network's
    lowerings do not do for LeNet-5's few channels; else with :func:`bmrsparse.nets._common.conv_valid`, the
    lowering the full network uses on this device. ``chunk``: run a larger batch as a sequence of batches of this
    size (``lax.map``), so that a layer's activations stay in the processor's cache; None: the batch at once.
    """
    import jax
    import jax.numpy as jnp

    from .nets._common import conv_valid, rows_product

    if chunk is not None and x.shape[0] > chunk:
        n = x.shape[0]
        pad = -n % chunk
        xs = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape((-1, chunk) + x.shape[1:])
        out = jax.lax.map(lambda xb: apply(spec, arrays, xb), xs)
        return out.reshape((-1,) + out.shape[2:])[:n]
    for i, layer in enumerate(spec["layers"]):
        if layer["flatten"]:
            x = x.reshape(x.shape[0], -1)
            if i == 0 and spec.get("input_index"):
                x = jnp.take(x, arrays[spec["input_index"]], axis=1)
        kernel, bias = arrays[layer["kernel"]], arrays[layer["bias"]]
        band = arrays.get(f"{layer['name']}/band")
        if layer["type"] == "dense":
            x = x @ kernel + bias
        elif band is not None:
            x = rows_product(x, band, *kernel.shape[:2]) + bias
        else:
            x = conv_valid(x, kernel) + bias
        if layer["activation"] == "tanh":
            x = jnp.tanh(x)
        elif layer["activation"] == "swish":
            x = jax.nn.swish(x)
        if layer["pool"]:
            p = int(layer["pool"])
            b, h, w, c = x.shape
            h, w = h // p * p, w // p * p
            x = x[:, :h, :w].reshape(b, h // p, p, w // p, p, c).mean(axis=(2, 4))
    return x


def export(net: CompactNet, stem: str | os.PathLike) -> tuple[str, str]:
    """Write ``<stem>.npz`` and ``<stem>.json`` atomically; returns their paths."""
    stem = os.fspath(stem)
    npz, js = stem + ".npz", stem + ".json"
    with atomic_path(npz) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **net.arrays)
    atomic_write_text(js, json.dumps(net.spec, indent=1) + "\n")
    return npz, js
