r"""Measured inference: what pruning buys when the network runs (beyond the paper).

For one data set and architecture (the MLP or LeNet-5) and the final posteriors of several methods, every network
is run as its posterior mean :math:`E_q[w]` (:meth:`bmrsparse.train.Trainer.posterior_mean_weights`, pruned weights
exactly zero), in one or more *formats*:

==========  ===========================================================================================
``dense``   the unpruned network (Flat-FF) as it trains, with its own lowering: the reference every
            ``speedup`` is measured against
``masked``  a pruned network as it trains: the same dense arrays, pruned weights set to zero
``bcoo``    the masked network with its dense layers' kernels as ``jax.experimental.sparse.BCOO`` matrices
            (convolutions stay dense)
``compact`` the compact network (:func:`bmrsparse.compact.compact`): removed units and channels cut out, run by
            :func:`bmrsparse.compact.apply` (convolutions as row products in batches of 128); Flat-FF's compact
            row is the whole network in that runtime, the reference of ``speedup_same_runtime``
==========  ===========================================================================================

Which networks run: Flat-FF as ``dense`` and ``compact``; every method that prunes, and every structured method
that derives its cut from its posterior (:attr:`bmrsparse.methods.Method.compact_masks`: Tiered-FF), as ``masked``
and ``compact`` (BMR-S&S also as ``bcoo``).

Each (network, format) is timed at each batch size as a jitted forward pass of preprocessed test images, one call
at a time (each waits for its result), on the device JAX runs on; every measurement is the mean of enough calls to
last ``min_seconds``, and the rounds of all networks are interleaved so that a drift of the machine's speed
affects them alike; the table gives the median over ``repeats`` rounds. ``speedup`` is the dense network's
``ms_per_batch`` over the row's, both from the same run; ``speedup_same_runtime`` separates what the removed units
buy from what the compact runtime buys. ``acc`` and ``nll`` are those of the posterior-mean
network on the whole test set (one deterministic forward pass, not the posterior-predictive mean of the metrics
table), each from the format's own outputs (the formats of one network compute the same function: their outputs
are checked to agree to 1e-4). ``widths``, ``inputs_kept`` and ``macs`` describe the network each format computes
with (:func:`bmrsparse.compact.widths`, :func:`bmrsparse.compact.multiply_adds`).

Example::

    table = inference_table({"flat_ff": "flat_ff.npz", "bmr_struct": "bmr_struct.npz"}, "fashion_mnist.npz")
    fig = plot_speedup_accuracy(table)
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import pandas as pd

from . import compact, compact_numpy, nets
from . import data as bdata
from .methods import PruneContext
from .provenance import device_description
from .settings import TrainingSettings
from .state import read_state
from .train import Trainer

__all__ = ["COLUMNS", "FORMATS", "load_network", "export_compact", "inference_table"]

#: Columns of the inference table. ``widths``: inputs, then units or channels of every layer (``"320-34-28-10"``);
#: ``macs``: multiply-adds per image (:func:`bmrsparse.compact.multiply_adds`), ``mac_ratio`` the dense network's
#: over the row's; ``train_steps`` and ``train_seconds``: the SVI steps and seconds of the method's whole training,
#: warm-up included (when the caller gives them); ``speedup``: the dense network's time (its own lowering) over the
#: row's; ``speedup_same_runtime`` (compact rows): the unpruned network's time in the compact runtime over the row's,
#: the gain of the removed units alone.
COLUMNS = ("dataset", "arch", "method", "format", "seed", "widths", "inputs_kept", "macs", "mac_ratio", "params",
           "params_kept_fraction", "acc", "nll", "batch", "ms_per_batch", "speedup", "speedup_same_runtime",
           "train_steps", "train_seconds", "device")
FORMATS = ("dense", "masked", "bcoo", "compact")
#: The compact runtime runs larger batches of a network with convolutions as batches of this size
#: (:func:`bmrsparse.compact.apply`): their activation maps then stay in the processor's cache.
COMPACT_CHUNK = 128


def load_network(state_path, data_path) -> dict:
    """The posterior-mean network of a single-seed state file, with its test set preprocessed.

    Returns ``{dataset, arch, method, seed, net, params, masks, input_shape, preprocess, x_test, y_test, total}``:
    ``params`` the Flax params of :math:`E_q[w]` with pruned weights exactly zero, ``masks`` the keep-masks (None for
    a method that does not prune), ``preprocess`` the raw-image standardisation and padding (see
    :mod:`bmrsparse.compact_numpy`), ``total`` the number of parameters of the unpruned network.
    """
    with np.load(state_path, allow_pickle=False) as z:
        head = json.loads(str(z["header"]))
    settings = TrainingSettings.from_mapping({**((head.get("extra") or {}).get("settings") or {}), "test_subset": None})
    ds = bdata.load_prepared(data_path)
    trainer = Trainer(arch=head["arch"], method=head["method"], dataset=ds, seeds=head["seeds"][:1], settings=settings)
    state, head = read_state(trainer, state_path)
    w = trainer.posterior_mean_weights(state, index=0)
    masks = None
    if trainer.method.prunes:
        masks = jax.tree.map(lambda m: np.asarray(m)[0], jax.device_get(state.masks))
    elif trainer.method.compact_masks is not None:  # the units the method's posterior switches off (Tiered-FF)
        one = jax.tree.map(lambda a: a[0], trainer.params(trainer.select(state, 0)))
        ctx = PruneContext(trainer.built, trainer.head, trainer.settings)
        masks = jax.tree.map(np.asarray, jax.device_get(trainer.method.compact_masks(ctx, one)))
    params = compact.masked_params(w, masks)
    mean, std = bdata.channel_stats(ds.x_train)
    raw = tuple(int(s) for s in ds.x_train.shape[1:])
    pad = (trainer.input_shape[0] - raw[0]) // 2
    x_test = np.concatenate([np.asarray(trainer.preprocess(ds.x_test[i:i + 1000]))
                             for i in range(0, len(ds.x_test), 1000)])
    return dict(dataset=head["dataset"], arch=head["arch"], method=head["method"], seed=int(head["seeds"][0]),
                net=trainer.net, params=params, masks=masks, input_shape=trainer.input_shape,
                preprocess={"shape": list(raw), "mean": mean.tolist(), "std": std.tolist(), "pad": int(pad)},
                x_test=x_test, y_test=np.asarray(ds.y_test), total=nets.count_params(params))


def export_compact(state_path, data_path, stem) -> compact.CompactNet:
    """Compact the final posterior mean of ``state_path`` and write it as ``<stem>.npz`` / ``<stem>.json``."""
    n = load_network(state_path, data_path)
    if n["arch"] not in compact.compact_networks():
        raise ValueError(f"{state_path}: compact networks exist for {compact.compact_networks()}, not {n['arch']!r}")
    small = compact.compact(n["arch"], n["params"], n["masks"], input_shape=n["input_shape"],
                            preprocess=n["preprocess"],
                            meta={"dataset": n["dataset"], "method": n["method"], "seed": n["seed"]})
    compact.export(small, stem)
    return small


def _scores(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(np.mean(logits.argmax(axis=1) == y)), float(-np.mean(logp[np.arange(len(y)), y]))


def _logits(fn, args, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    return np.concatenate([np.asarray(fn(args, x[i:i + batch])) for i in range(0, len(x), batch)])


def _case_fns(n: Mapping, method: str, formats: Sequence[str], exported: str | None):
    """``{format: (jitted fn(args, x), args, params kept, description)}`` of one network; the description
    (:mod:`bmrsparse.compact_numpy`'s) gives the widths and multiply-adds the format computes with."""
    from jax.experimental import sparse

    out = {}
    dense_fn = jax.jit(lambda p, x, net=n["net"]: net.apply({"params": p}, x))
    kept = (n["total"] if n["masks"] is None
            else int(sum(np.count_nonzero(m) for leaves in n["masks"].values() for m in leaves.values())))
    full = compact.compact(n["arch"], n["params"], None, input_shape=n["input_shape"], remove=False)
    for fmt in formats:
        if fmt in ("dense", "masked"):
            out[fmt] = (dense_fn, jax.device_put(n["params"]), kept, full.spec)
        elif fmt == "bcoo":
            arrays = {k: (sparse.BCOO.fromdense(v) if k.endswith("/kernel") and v.ndim == 2 else jax.device_put(v))
                      for k, v in full.arrays.items()}
            fn = jax.jit(lambda a, x, spec=full.spec: compact.apply(spec, a, x))
            out[fmt] = (fn, arrays, kept, full.spec)
        elif fmt == "compact":
            if exported is not None:
                loaded = compact_numpy.load(exported)
                small = compact.CompactNet(loaded["spec"], loaded["arrays"])
            else:
                small = compact.compact(n["arch"], n["params"], n["masks"], input_shape=n["input_shape"])
            convolves = any(layer["type"] == "conv" for layer in small.spec["layers"])
            chunk = COMPACT_CHUNK if convolves else None  # dense layers: one product per layer is best
            fn = jax.jit(lambda a, x, spec=small.spec, chunk=chunk: compact.apply(spec, a, x, chunk=chunk))
            arrays = jax.device_put(compact.band_matrices(small.spec, small.arrays))
            out[fmt] = (fn, arrays, compact.num_params(small), small.spec)
        else:
            raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    return out


def _call_ms(fn, args, x, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(args, x).block_until_ready()
    return 1000.0 * (time.perf_counter() - t0) / calls


def _formats(method: str, n: Mapping, dense: str, bcoo: Sequence[str]) -> list[str]:
    """The formats a network runs in: the dense reference alone; a pruned or cut network masked and compact (and
    as BCOO when listed)."""
    if method == dense:
        return ["dense", "compact"]
    return ["masked", "compact"] + (["bcoo"] if method in bcoo else [])


def _time_cases(cases: list, repeats: int, min_seconds: float) -> dict:
    """``{key: [ms per call, one per round]}`` of ``cases`` ``(key, fn, args, x)``, the rounds interleaved."""
    calls = {}
    for key, fn, args, x in cases:  # compile, warm up, and choose how many calls one measurement makes
        fn(args, x).block_until_ready()
        once = _call_ms(fn, args, x, 1) / 1000.0
        calls[key] = max(1, min(10_000, math.ceil(min_seconds / max(once, 1e-7))))
    times: dict = {key: [] for key, *_ in cases}
    for _ in range(int(repeats)):
        for key, fn, args, x in cases:
            times[key].append(_call_ms(fn, args, x, calls[key]))
    return times


def inference_table(states: Mapping[str, str], data_path, *, exported: Mapping[str, str] | None = None,
                    batches: Sequence[int] = (1, 128, 1024), repeats: int = 15, min_seconds: float = 0.02,
                    bcoo: Sequence[str] = ("bmr_ss",), dense: str = "flat_ff",
                    training: Mapping[str, tuple[int, float]] | None = None) -> pd.DataFrame:
    """Time and score the posterior-mean networks of one (dataset, arch, seed).

    Args:
      states: ``{method: final single-seed state file}``; ``dense`` (Flat-FF) is the unpruned reference and runs as
        ``dense``; every method that prunes, or that declares
        :attr:`~bmrsparse.methods.Method.compact_masks` (Tiered-FF), runs ``masked`` and ``compact`` (and ``bcoo``
        when listed in ``bcoo``).
      data_path: the prepared data set (its whole test set is scored; its first images are timed).
      exported: ``{method: stem}`` of exported compact networks to time instead of compacting in memory.
      batches: batch sizes timed.
      repeats: interleaved rounds; the table gives the median.
      min_seconds: each measurement calls the network until this long has passed (at least once).
      training: ``{method: (SVI steps, seconds)}`` of each method's whole training (warm-up included), copied into
        the columns ``train_steps`` and ``train_seconds`` (NaN for a method not given).

    Returns:
      A table with :data:`COLUMNS`, one row per method, format and batch size.
    """
    if dense not in states:
        raise ValueError(f"the dense reference {dense!r} is not among the states {sorted(states)}")
    exported, training = dict(exported or {}), dict(training or {})
    cases, meta = [], {}
    for method, path in states.items():
        n = load_network(path, data_path)
        if n["arch"] not in compact.compact_networks():
            raise ValueError(f"{path}: inference is measured for {compact.compact_networks()}, not {n['arch']!r}")
        if n["masks"] is None and method != dense:
            raise ValueError(f"{path}: {method} neither prunes nor declares compact_masks; only {dense!r} runs as "
                             "the dense reference")
        fns = _case_fns(n, method, _formats(method, n, dense, bcoo), exported.get(method))
        scored = {}
        steps, seconds = training.get(method, (math.nan, math.nan))
        for fmt, (fn, args, params, spec) in fns.items():
            logits = _logits(fn, args, n["x_test"])
            if fmt in ("dense", "masked"):
                scored["ref"] = logits
            elif "ref" in scored and not np.allclose(logits, scored["ref"], atol=1e-4, rtol=1e-4):
                raise AssertionError(f"{method} {fmt}: outputs differ from the masked network by "
                                     f"{np.max(np.abs(logits - scored['ref'])):.3g}")
            acc, nll = _scores(logits, n["y_test"])
            widths = compact.widths(spec)
            meta[(method, fmt)] = dict(dataset=n["dataset"], arch=n["arch"], method=method, format=fmt, seed=n["seed"],
                                       widths="-".join(map(str, widths)), inputs_kept=widths[0],
                                       macs=compact.multiply_adds(spec), params=int(params),
                                       params_kept_fraction=params / n["total"], acc=acc, nll=nll,
                                       train_steps=steps, train_seconds=seconds)
            for b in batches:
                x = jax.device_put(n["x_test"][:b])
                cases.append(((method, fmt, b), fn, args, x))
    arches = {(m["dataset"], m["arch"], m["seed"]) for m in meta.values()}
    if len(arches) != 1:
        raise ValueError(f"the states are of different (dataset, arch, seed): {sorted(arches)}")
    times = _time_cases(cases, repeats, min_seconds)
    device = device_description()
    rows = []
    for (method, fmt, b), ts in times.items():
        rows.append(dict(meta[(method, fmt)], batch=int(b), ms_per_batch=statistics.median(ts), device=device))
    table = pd.DataFrame(rows)
    ref = table[(table.method == dense) & (table.format == "dense")]
    base = ref.set_index("batch")["ms_per_batch"]
    table["speedup"] = [base[b] / ms for b, ms in zip(table.batch, table.ms_per_batch)]
    same = table[(table.method == dense) & (table.format == "compact")].set_index("batch")["ms_per_batch"]
    table["speedup_same_runtime"] = [same[b] / ms if fmt == "compact" else math.nan
                                     for b, ms, fmt in zip(table.batch, table.ms_per_batch, table.format)]
    table["mac_ratio"] = float(ref.macs.iloc[0]) / table.macs
    return table[list(COLUMNS)]
