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
    """``{"spec": the JSON description, "arrays": {name: array}}`` of the export ``<stem>.json`` / ``<stem>.npz``."""
    stem = os.fspath(stem)
    for suffix in (".json", ".npz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    with open(stem + ".json") as handle:
        spec = json.load(handle)
    if spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise ValueError(f"{stem}.json is not a {FORMAT} description of version {VERSION}")
    with np.load(stem + ".npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for layer in spec["layers"]:
        for key in ("kernel", "bias"):
            if layer[key] not in arrays:
                raise ValueError(f"{stem}.npz lacks the array {layer[key]!r} of layer {layer['name']!r}")
        kernel, bias = arrays[layer["kernel"]], arrays[layer["bias"]]
        if kernel.shape[-2:] != (layer["in"], layer["out"]) or bias.shape != (layer["out"],):
            raise ValueError(f"{stem}: layer {layer['name']!r} has kernel {kernel.shape} and bias {bias.shape}, "
                             f"the description says {layer['in']} -> {layer['out']}")
    return {"spec": spec, "arrays": arrays}


def preprocess(net: dict, images) -> np.ndarray:
    """Raw images ``[B, H, W, C]`` (uint8 or float in [0, 255]) to the network's input: standardised, padded."""
    spec = net["spec"]["input"]
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or list(x.shape[1:]) != list(spec["shape"]):
        raise ValueError(f"expected images [B, {', '.join(map(str, spec['shape']))}], got {x.shape}")
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
