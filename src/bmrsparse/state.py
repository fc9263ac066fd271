r"""Training state files: ``results/**/posterior.npz`` (a finished run's posterior and keep-masks) and the
checkpoints a run continues from.

A state file is everything a :class:`bmrsparse.train.State` holds (the SVI state with the guide parameters, the
optimiser state and the SVI PRNG key; the minibatch PRNG key; the keep-masks; the step counter) as an ``.npz`` of
named arrays, plus a JSON header naming the data set, architecture, network shape, prior, method, seeds and step,
and the caller's ``extra`` (the run's settings and metrics). It is written through :func:`bmrsparse.io.atomic_savez`,
so it carries a SHA-256 digest and is never a pickle: a damaged file is refused with the command that remakes it
(:class:`bmrsparse.io.DamagedFileError`), and a file for another model is refused by name
(:class:`bmrsparse.train.StateMismatchError`) instead of being read into the wrong shapes.

The layout of the arrays is private to this module: :func:`save_state` writes it, :func:`read_state` reads it into a
given trainer, :func:`load_state` builds the trainer from the file (what every reader uses), and
:func:`state_layers` gives each layer's keep-masks and posterior, the public way to read a file's contents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from . import data as bdata
from .io import atomic_savez, load_npz
from .methods._layers import Layout
from .settings import TrainingSettings
from .train import State, StateMismatchError, Trainer, select

__all__ = ["STATE_PRODUCER", "save_state", "read_state", "read_state_header", "load_state", "state_layers"]

#: The function that writes state files (named in the remake instructions of a damaged one).
STATE_PRODUCER = "bmrsparse.experiment.run_stage"


def _jsonable(value):
    """The header's JSON form of a value JSON has none for: training settings as their fields."""
    if isinstance(value, TrainingSettings):
        return value.to_dict()
    raise TypeError(f"a state header cannot hold a {type(value).__name__}")


def _keystr(path) -> str:
    return jax.tree_util.keystr(path)


def save_state(trainer, state, path, *, extra: dict | None = None, index: int | None = None) -> None:
    """Write a training state (:class:`bmrsparse.train.State` of ``trainer``) and JSON-able ``extra`` to ``path``
    atomically as ``.npz`` of named arrays plus a JSON header, with its digest (never a pickle).

    With ``index``, only that seed's state is written (a file for a single seed). The layout of the arrays is
    private to this module and :func:`read_state`; read a file's layers with :func:`state_layers`.
    """
    seeds = list(trainer.seeds)
    if index is not None:
        state = select(state, index)
        seeds = [seeds[index]]
    head = trainer.model.header(seeds)
    arrays = {}
    for p, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(state.svi_state))[0]:
        arrays["svi" + _keystr(p)] = np.asarray(leaf)
    for layer, leaves in jax.device_get(state.masks).items():
        for leaf, m in leaves.items():
            arrays[f"mask/{layer}/{leaf}"] = np.asarray(m)
    arrays["data_key"] = np.asarray(state.data_key)
    head = dict(head, method=trainer.method.name, step=int(state.step), extra=extra or {})
    arrays["header"] = np.asarray(json.dumps(head, default=_jsonable))
    atomic_savez(path, **arrays)  # with its digest: load_npz refuses a damaged file


def read_state_header(path) -> dict:
    """The JSON header of a state file (data set, architecture, method, seeds, step, ``extra``), verified."""
    return _header(path, load_npz(path, producer=STATE_PRODUCER))


def read_state(trainer, path, *, require_method: bool = False):
    """Read a state written by :func:`save_state` into ``trainer`` (a compatible method's, e.g. the Flat-FF
    warm-up for BMR-S&S).

    ``path`` may be a list of single-seed files, one per seed of ``trainer``, in order. Raises
    :class:`bmrsparse.train.StateMismatchError` naming the difference when a file is for another data set,
    architecture, network shape, prior or seed (or, with ``require_method``, another method), and
    :class:`bmrsparse.io.DamagedFileError` (naming the file and the command that remakes it) when a file is cut
    short, changed or without its digest. Returns ``(state, header)`` (the header of the first file).
    """
    if isinstance(path, (list, tuple)):
        if len(path) != len(trainer.seeds):
            raise StateMismatchError(f"{len(path)} state files for {len(trainer.seeds)} seeds")
        parts = [_read_one(trainer, p, require_method, [s]) for p, s in zip(path, trainer.seeds)]
        states = [p[0] for p in parts]
        cat = lambda *a: jnp.concatenate(a, axis=0)  # noqa: E731
        state = State(jax.tree.map(cat, *[s.svi_state for s in states]), cat(*[s.data_key for s in states]),
                      jax.tree.map(cat, *[s.masks for s in states]), states[0].step)
        return state, parts[0][1]
    return _read_one(trainer, path, require_method, trainer.seeds)


def _header(path, arrays) -> dict:
    """The file's JSON header (taken out of ``arrays``), its step a whole number >= 0, its seeds whole numbers."""
    if "header" not in arrays:
        raise StateMismatchError(f"{path} has no header: it is not a bmrsparse state file; delete it")
    try:
        head = json.loads(str(arrays.pop("header")))
    except ValueError as e:
        raise StateMismatchError(f"{path}: its header is not JSON ({e}); delete the file") from None
    if not isinstance(head, dict):
        raise StateMismatchError(f"{path}: its header is not a JSON object; delete the file")
    step = head.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"{path}: header step must be a whole number >= 0, got {step!r}; delete the file")
    seeds = head.get("seeds")
    if not isinstance(seeds, list) or not seeds or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds):
        raise ValueError(f"{path}: header seeds must be a non-empty list of whole numbers, got {seeds!r}; "
                         "delete the file")
    return head


def _check_numbers(path, name, array) -> None:
    """A float array of the file must be finite (a run that diverges never writes one: it stops at its last finite
    checkpoint, :class:`bmrsparse.train.NonFiniteLossError`)."""
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValueError(f"{path}: {name} has {int(bad.sum())} non-finite value(s) (NaN or infinity) of "
                             f"{array.size}; the file was changed or written by a run that diverged: delete it")


def _read_one(trainer, path, require_method, seeds):
    arrays = load_npz(path, producer=STATE_PRODUCER)
    head = _header(path, arrays)
    mine = trainer.model.header(seeds)
    for k in ("format", "dataset", "arch", "prior", "point_estimate", "layers", "image_shape", "seeds"):
        if head.get(k) != mine.get(k):
            raise StateMismatchError(
                f"{path} was written for {k}={head.get(k)!r}, but this run has {k}={mine.get(k)!r} "
                f"(dataset={trainer.dataset_name}, arch={trainer.arch}, method={trainer.method.name}). "
                "Delete the file or point the run at a state of the same data set, architecture and prior."
            )
    if require_method and head.get("method") != trainer.method.name:
        raise StateMismatchError(
            f"{path} is a checkpoint of method {head.get('method')!r}, not {trainer.method.name!r}; delete it."
        )
    template = jax.eval_shape(trainer.init)
    n = len(seeds)
    flat, treedef = jax.tree_util.tree_flatten_with_path(template.svi_state)
    flat = [(p, jax.ShapeDtypeStruct((n,) + t.shape[1:], t.dtype)) for p, t in flat]
    leaves = []
    for p, t in flat:
        name = "svi" + _keystr(p)
        if name not in arrays or arrays[name].shape != t.shape:
            raise StateMismatchError(f"{path}: parameter {name} missing or of another shape; delete the file")
        _check_numbers(path, f"parameter {name}", arrays[name])
        leaves.append(jnp.asarray(arrays[name], t.dtype))
    svi_state = jax.tree_util.tree_unflatten(treedef, leaves)
    masks = {}
    for l in trainer.layers:
        masks[l.name] = {}
        for leaf, shape in l.shapes:
            name, want = f"mask/{l.name}/{leaf}", (n, *shape)
            if name not in arrays or arrays[name].shape != want or arrays[name].dtype != bool:
                got = "missing" if name not in arrays else f"{arrays[name].dtype} {arrays[name].shape}"
                raise StateMismatchError(f"{path}: keep-mask {name} must be bool of shape {want}, got {got}; delete "
                                         "the file")
            masks[l.name][leaf] = jnp.asarray(arrays[name])
    key = template.data_key
    if "data_key" not in arrays or arrays["data_key"].shape != (n, *key.shape[1:]):
        raise StateMismatchError(f"{path}: data_key missing or of another shape; delete the file")
    return State(svi_state, jnp.asarray(arrays["data_key"]), masks, head["step"]), head


def load_state(path, data_path=None, *, settings: Mapping | None = None, seeds=None):
    """A trainer matching a state file, and the file's state: ``(trainer, state, header)``.

    The trainer is built from the file's header (data set, architecture, method, seeds) and the training settings
    the file was trained with (``extra["settings"]``, else the defaults), updated with ``settings`` (e.g. the
    evaluation ones). ``data_path``: the prepared data set (needed to train or evaluate); without it a placeholder
    of the right shape stands in, enough for the posterior and the masks. ``seeds``: the file's seeds to read
    (default all of them).
    """
    head = read_state_header(path)
    for key in ("arch", "method", "dataset"):
        if not isinstance(head.get(key), str):
            raise StateMismatchError(f"{path}: header {key} must be a name, got {head.get(key)!r}; delete the file")
    shape = head.get("image_shape")
    if not isinstance(shape, list) or len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                                              for v in shape):
        raise ValueError(f"{path}: header image_shape must be [H, W, C] of whole numbers >= 1, got {shape!r}; "
                         "delete the file")
    s = TrainingSettings.from_mapping({**((head.get("extra") or {}).get("settings") or {}), **dict(settings or {})})
    if data_path is not None:
        ds = bdata.load_prepared(data_path)
    else:
        x = np.zeros((s.batch_size, *head["image_shape"]), np.uint8)
        y = np.zeros(len(x), np.int64)
        ds = bdata.Dataset(head["dataset"], x, y, x, y, bdata.NUM_CLASSES[head["dataset"]])
    seeds = head["seeds"] if seeds is None else seeds
    trainer = Trainer(arch=head["arch"], method=head["method"], dataset=ds, seeds=seeds, settings=s)
    state, head = read_state(trainer, path)
    return trainer, state, head


def state_layers(path, index: int = 0) -> dict:
    r"""Per-layer keep-masks and posteriors of one seed of a state file, in the network's forward order.

    Returns ``{layer: {leaf: {"kept": bool array, "mu": array, "sigma": array or None}}}``: ``kept`` is the
    keep-mask (``True`` = in the model, ``False`` = pruned), ``mu`` and ``sigma`` the mean and standard deviation of
    :math:`q(\hat w) = \mathcal{N}(\mu, \sigma^2)` (a point estimate has ``sigma`` None), each in the leaf's
    natural shape (e.g. ``[784, 400]`` for the MLP's first kernel). ``index`` picks the seed (the file's order).
    Layers are named as in :func:`bmrsparse.methods.find_layers` (``"head"`` is the output layer); leaves are
    ``"kernel"``, ``"bias"``, ``"scale"`` or ``"value"``.
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"index must be a whole number (the seed's position in the file), got {index!r}")
    trainer, state, head = load_state(path)
    if not 0 <= int(index) < len(trainer.seeds):
        raise IndexError(f"{path} holds {len(trainer.seeds)} seeds; index {index} is out of range")
    params = jax.device_get(trainer.params(state))
    masks = jax.device_get(state.masks)
    layout = Layout(trainer.layers)
    mu = np.asarray(params["w_hat.loc"])[index]
    sigma = np.asarray(params["w_hat.scale"])[index] if "w_hat.scale" in params else None
    if sigma is not None and not (sigma > 0).all():  # an unconstrained scale far below zero is 0 in float32
        bad = ~(sigma > 0)
        raise ValueError(f"{path}: {int(bad.sum())} posterior standard deviation(s) of seed index {index} are not > 0 "
                         f"(e.g. {sigma[bad][0]}): not a Gaussian posterior that BMR can read; delete the file")
    out = {}
    for layer in trainer.layers:
        out[layer.name] = {
            leaf: {"kept": np.asarray(masks[layer.name][leaf])[index],
                   "mu": layout.leaf(mu, layer.name, leaf),
                   "sigma": None if sigma is None else layout.leaf(sigma, layer.name, leaf)}
            for leaf, _ in layer.shapes
        }
    return out
