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
    return json.loads(str(load_npz(path, producer=STATE_PRODUCER)["header"]))


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


def _read_one(trainer, path, require_method, seeds):
    arrays = load_npz(path, producer=STATE_PRODUCER)
    head = json.loads(str(arrays.pop("header")))
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
        leaves.append(jnp.asarray(arrays[name], t.dtype))
    svi_state = jax.tree_util.tree_unflatten(treedef, leaves)
    masks = {
        l.name: {leaf: jnp.asarray(arrays[f"mask/{l.name}/{leaf}"]) for leaf, _ in l.shapes} for l in trainer.layers
    }
    return State(svi_state, jnp.asarray(arrays["data_key"]), masks, int(head["step"])), head


def load_state(path, data_path=None, *, settings: Mapping | None = None, seeds=None):
    """A trainer matching a state file, and the file's state: ``(trainer, state, header)``.

    The trainer is built from the file's header (data set, architecture, method, seeds) and the training settings
    the file was trained with (``extra["settings"]``, else the defaults), updated with ``settings`` (e.g. the
    evaluation ones). ``data_path``: the prepared data set (needed to train or evaluate); without it a placeholder
    of the right shape stands in, enough for the posterior and the masks. ``seeds``: the file's seeds to read
    (default all of them).
    """
    head = read_state_header(path)
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
    trainer, state, head = load_state(path)
    if not 0 <= int(index) < len(trainer.seeds):
        raise IndexError(f"{path} holds {len(trainer.seeds)} seeds; index {index} is out of range")
    params = jax.device_get(trainer.params(state))
    masks = jax.device_get(state.masks)
    layout = Layout(trainer.layers)
    mu = np.asarray(params["w_hat.loc"])[index]
    sigma = np.asarray(params["w_hat.scale"])[index] if "w_hat.scale" in params else None
    out = {}
    for layer in trainer.layers:
        out[layer.name] = {
            leaf: {"kept": np.asarray(masks[layer.name][leaf])[index],
                   "mu": layout.leaf(mu, layer.name, leaf),
                   "sigma": None if sigma is None else layout.leaf(sigma, layer.name, leaf)}
            for leaf, _ in layer.shapes
        }
    return out
