"""Load and run an exported compact network with numpy alone (no JAX, no training code; copy this file anywhere).

An export (:func:`bmrsparse.compact.export`) is two files with the same stem:

- ``<stem>.json``: the description, ``{"format": "bmrsparse-compact", "version": 1, "arch", "dataset", "method",
  "input": {"shape": [H, W, C], "mean": [C], "std": [C], "pad": p}, "input_index": name or null,
  "layers": [{"name", "type": "dense" | "conv", "in", "out", "kernel_size", "flatten", "activation", "pool",
  "kernel", "bias"}, ...]}``;
- ``<stem>.npz``: the named arrays the description refers to (``"<layer>/kernel"``, ``"<layer>/bias"`` and, for the
  MLP, ``"input_index"``).

The forward pass, layer by layer: ``flatten`` (reshape to ``[B, -1]``; for the first layer then keep the
``input_index`` columns), a dense layer ``x @ kernel + bias`` (kernel ``[in, out]``) or a VALID, stride-1 convolution
(kernel ``[kh, kw, in, out]``, images ``[B, H, W, C]``), the ``activation`` (``"swish"``, ``"tanh"`` or ``"none"``),
then 2x2 average pooling of stride 2 when ``pool`` is 2. The input is the raw image ``[B, H, W, C]`` in [0, 255]
units, standardised by ``(x - mean) / std`` and zero-padded by ``pad`` pixels on each side. The outputs are logits.

Example::

    net = load("results/compact/fashion_mnist/mlp/bmr_struct/seed0")
    probs = softmax(predict(net, images))
"""

from __future__ import annotations

import json
import os

import numpy as np

__all__ = ["FORMAT", "VERSION", "load", "preprocess", "forward", "predict", "softmax"]

FORMAT = "bmrsparse-compact"
VERSION = 1
_ACTIVATIONS = {
    "none": lambda x: x,
    "tanh": np.tanh,
    "swish": lambda x: x / (1.0 + np.exp(-x)),
}


def load(stem: str | os.PathLike) -> dict:
    """``{"spec": the JSON description, "arrays": {name: array}}`` of the export ``<stem>.json`` / ``<stem>.npz``.

    Everything is checked before it is returned, so that :func:`predict` cannot turn a bad file into NaN logits:
    the input's shape, mean, std (> 0) and padding, every layer's type, activation, pooling and shapes along the
    whole chain (each layer reads what the one before gives), ``input_index`` (whole numbers inside the flattened
    image), and every array finite. A problem raises :class:`ValueError` naming the file, the layer or key and what
    is wrong.
    """
    stem = os.fspath(stem)
    for suffix in (".json", ".npz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    with open(stem + ".json") as handle:
        try:
            spec = json.load(handle)
        except ValueError as e:
            raise ValueError(f"{stem}.json is not JSON ({e})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise ValueError(f"{stem}.json is not a {FORMAT} description of version {VERSION}")
    with np.load(stem + ".npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    _check(stem, spec, arrays)
    return {"spec": spec, "arrays": arrays}


def _whole(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _finite(where: str, array: np.ndarray) -> None:
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{where} must hold real numbers, not dtype {array.dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{where} has {int(bad.sum())} non-finite value(s) (NaN or infinity)")


def _check(stem: str, spec: dict, arrays: dict) -> None:
    """The checks of :func:`load` (see there); raises ValueError naming what is wrong."""
    inp = spec.get("input")
    if not isinstance(inp, dict):
        raise ValueError(f"{stem}.json has no \"input\" description")
    shape = inp.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_whole(s, 1) for s in shape)):
        raise ValueError(f"{stem}.json: input shape must be [H, W, C] of whole numbers >= 1, got {shape!r}")
    channels = shape[2]
    for key in ("mean", "std"):
        values = inp.get(key)
        if not isinstance(values, list) or len(values) != channels:
            raise ValueError(f"{stem}.json: input {key} must list one number per channel ({channels}), got {values!r}")
        try:
            numbers = np.asarray(values, np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{stem}.json: input {key} must be numbers, got {values!r}") from None
        _finite(f"{stem}.json: input {key}", numbers)
        if key == "std" and (numbers <= 0).any():
            raise ValueError(f"{stem}.json: input std must be > 0 (it divides the image), got {values!r}")
    if not _whole(inp.get("pad"), 0):
        raise ValueError(f"{stem}.json: input pad must be a whole number >= 0, got {inp.get('pad')!r}")
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{stem}.json has no layers")
    for name, array in arrays.items():
        _finite(f"{stem}.npz: array {name!r}", array)
    index = spec.get("input_index")
    here = (shape[0] + 2 * inp["pad"], shape[1] + 2 * inp["pad"], channels)  # what the next layer reads
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ValueError(f"{stem}.json: layer {i} is not a description, got {layer!r}")
        name = layer.get("name", i)
        where = f"{stem}: layer {name!r}"
        for key in ("kernel", "bias"):
            if layer.get(key) not in arrays:
                raise ValueError(f"{stem}.npz lacks the array {layer.get(key)!r} of layer {name!r}")
        kernel, bias = arrays[layer["kernel"]], arrays[layer["bias"]]
        if not (_whole(layer.get("in"), 0) and _whole(layer.get("out"), 0)):
            raise ValueError(f"{where}: in and out must be whole numbers, got {layer.get('in')!r}, {layer.get('out')!r}")
        if kernel.shape[-2:] != (layer["in"], layer["out"]) or bias.shape != (layer["out"],):
            raise ValueError(f"{where} has kernel {kernel.shape} and bias {bias.shape}, "
                             f"the description says {layer['in']} -> {layer['out']}")
        if layer.get("activation") not in _ACTIVATIONS:
            raise ValueError(f"{where}: activation must be one of {sorted(_ACTIVATIONS)}, got {layer.get('activation')!r}")
        pool = layer.get("pool")
        if not _whole(pool, 0):
            raise ValueError(f"{where}: pool must be a whole number >= 0 (0: none), got {pool!r}")
        if layer.get("flatten"):
            here = (int(np.prod(here)),)
            if i == 0 and index:
                if index not in arrays:
                    raise ValueError(f"{stem}.npz lacks the input_index array {index!r}")
                idx = arrays[index]
                if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or (idx < 0).any() \
                        or (idx >= here[0]).any():
                    raise ValueError(f"{stem}.npz: input_index must be a vector of whole numbers in [0, {here[0]}) "
                                     f"(pixels of the flattened input), got dtype {idx.dtype} shape {idx.shape} "
                                     f"range [{idx.min() if idx.size else '-'}, {idx.max() if idx.size else '-'}]")
                here = (idx.size,)
        if layer.get("type") == "dense":
            if kernel.ndim != 2 or here != (layer["in"],):
                raise ValueError(f"{where} (dense, kernel {kernel.shape}) reads {layer['in']} features, but the "
                                 f"layer before gives {'x'.join(map(str, here))}")
            if pool:
                raise ValueError(f"{where}: a dense layer cannot pool (pool {pool})")
            here = (layer["out"],)
        elif layer.get("type") == "conv":
            size = layer.get("kernel_size")
            if kernel.ndim != 4 or list(kernel.shape[:2]) != size:
                raise ValueError(f"{where} (conv) has kernel {kernel.shape}, its kernel_size is {size!r}")
            if len(here) != 3 or here[2] != layer["in"] or here[0] < size[0] or here[1] < size[1]:
                raise ValueError(f"{where} (conv, kernel {kernel.shape}) cannot read the "
                                 f"{'x'.join(map(str, here))} input the layer before gives")
            here = (here[0] - size[0] + 1, here[1] - size[1] + 1, layer["out"])
            if pool:
                here = (here[0] // pool, here[1] // pool, here[2])
        else:
            raise ValueError(f"{where}: type must be \"dense\" or \"conv\", got {layer.get('type')!r}")


def preprocess(net: dict, images) -> np.ndarray:
    """Raw images ``[B, H, W, C]`` (uint8 or float in [0, 255]) to the network's input: standardised, padded."""
    spec = net["spec"]["input"]
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or list(x.shape[1:]) != list(spec["shape"]):
        raise ValueError(f"expected images [B, {', '.join(map(str, spec['shape']))}], got {x.shape}")
    _finite("images", x)
    x = (x - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    p = int(spec["pad"])
    if p:
        x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    return x


def _conv_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # [B, H', W', C, kh, kw]
    return np.einsum("bhwcij,ijco->bhwo", windows, kernel, optimize=True)


def _avg_pool(x: np.ndarray, size: int) -> np.ndarray:
    b, h, w, c = x.shape
    h, w = h // size * size, w // size * size
    return x[:, :h, :w].reshape(b, h // size, size, w // size, size, c).mean(axis=(2, 4))


def forward(net: dict, x) -> np.ndarray:
    """Logits of the preprocessed input ``x`` (see :func:`preprocess`)."""
    spec, arrays = net["spec"], net["arrays"]
    x = np.asarray(x, np.float32)
    inp = spec["input"]
    pad = int(inp["pad"])
    want = [inp["shape"][0] + 2 * pad, inp["shape"][1] + 2 * pad, inp["shape"][2]]
    if x.ndim != 4 or list(x.shape[1:]) != want:
        raise ValueError(f"expected preprocessed x [B, {', '.join(map(str, want))}], got {x.shape}")
    _finite("x", x)
    for i, layer in enumerate(spec["layers"]):
        if layer["flatten"]:
            x = x.reshape(x.shape[0], -1)
            if i == 0 and spec.get("input_index"):
                x = x[:, arrays[spec["input_index"]]]
        kernel, bias = arrays[layer["kernel"]], arrays[layer["bias"]]
        if layer["type"] == "dense":
            x = x @ kernel + bias
        else:
            x = _conv_valid(x, kernel) + bias
        x = _ACTIVATIONS[layer["activation"]](x)
        if layer["pool"]:
            x = _avg_pool(x, int(layer["pool"]))
    return x


def predict(net: dict, images) -> np.ndarray:
    """Logits of raw images ``[B, H, W, C]``."""
    return forward(net, preprocess(net, images))


def softmax(logits) -> np.ndarray:
    z = np.asarray(logits) - np.max(logits, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
