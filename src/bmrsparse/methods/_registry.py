r"""The method registry: everything the library, the workflow and the figures need to know about a method.

A method is declared once, as ``METHOD = Method(...)`` in a module. It is registered

- by being a module of the package :mod:`bmrsparse.methods` (every module whose name does not start with ``_``
  and that defines ``METHOD``), or
- from another installed package, through an entry point of the group ``bmrsparse.methods`` that names either
  such a module or a :class:`Method` object, e.g. in that package's ``pyproject.toml``::

      [project.entry-points."bmrsparse.methods"]
      my_method = "my_package.my_method"

- or, at run time, by :func:`register` (tests, notebooks; a Snakemake workflow does not see such methods).

:data:`METHODS` maps names to declarations, in the order of :attr:`Method.order` (then name).

Warm-ups. A method declared with ``start="warmup"`` continues a Flat-FF warm-up (:data:`WARMUP_METHOD` trained for
``warmup_steps``), its epoch 0. That warm-up is trained with Flat-FF's settings except those in
:data:`WARMUP_INHERITS`, which it takes from the method that starts from it: its learning rate, as the authors' code
fits BMR-S&S's warm-up at BMR-S&S's rate, and the guide's initialisation where the config sets it per method.
Methods whose warm-up settings are equal share one warm-up (one job per data set, architecture and seed); a
method whose settings differ from Flat-FF's gets its own. :func:`warmup_settings` gives a method's warm-up
settings and :func:`warmup_tag` the short name of a warm-up's folder, which differs whenever those settings do
(``results/warmup/{dataset}/{arch}/{tag}/seed{seed}``, e.g. ``lr0.01``). With one learning rate for every method
(config/paper.yaml) every method starts from the one warm-up.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import pkgutil
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple

__all__ = [
    "Method",
    "PruneContext",
    "METHODS",
    "ENTRY_POINT_GROUP",
    "register",
    "get_method",
    "discover",
    "fill_schema",
    "MethodAttribute",
    "WARMUP_METHOD",
    "WARMUP_INHERITS",
    "warmup_settings",
    "warmup_tag",
]

ENTRY_POINT_GROUP = "bmrsparse.methods"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
STARTS = ("scratch", "warmup")
GUIDES = ("mean_field", "point")
PRIORS = ("flat", "tiered", "units")
#: The method whose first ``warmup_steps`` are the warm-up of every method declared with ``start="warmup"``.
WARMUP_METHOD = "flat_ff"
#: Training settings a warm-up takes from the method that starts from it (the rest are Flat-FF's); with the
#: letter that names each in :func:`warmup_tag`.
WARMUP_INHERITS = {"learning_rate": "lr", "init_radius": "r", "init_scale": "s"}


class PruneContext(NamedTuple):
    r"""What a method's prune function receives besides the parameters and masks (one seed; the trainer vmaps the
    prune function over seeds and compiles it, so ``key``, ``seed`` and ``epoch`` are traced arrays).

    ``built``: the :class:`~bmrsparse.methods.Built` model (:func:`~bmrsparse.methods.layer_posteriors` gives
    ``{layer: {leaf: (mu, sigma)}}`` of :math:`q(\hat w)` from guide params); ``head``: the output layer's name,
    never to be pruned; ``settings``: the resolved training settings (:mod:`bmrsparse.settings`); ``key``: a PRNG
    key for this seed and epoch, independent of the training and evaluation keys (a randomised method draws from
    it, so its choices repeat with the seed); ``seed``: the run's integer seed; ``epoch``: the epoch about to be
    trained (int32; the first pruned epoch is 1).
    """

    built: Any
    head: str
    settings: dict
    key: Any = None
    seed: Any = None
    epoch: Any = None


@dataclass(frozen=True)
class Method:
    """Declaration of an inference method.

    Attributes:
      name: identifier used in configs, paths and the ``{method}`` wildcard (``[a-z][a-z0-9_]*``).
      label: name in figures and tables.
      color: matplotlib colour of its lines.
      prior: ``"flat"`` (eq. 15) or ``"tiered"`` (regularised horseshoe, eq. 17).
      guide: ``"mean_field"`` (fully factorised, eqs. 16/18) or ``"point"`` (MAP).
      learning_rate: default AdaBelief step size (``training.learning_rate.<name>`` overrides it).
      start: ``"scratch"`` (trains ``warmup_steps + num_epochs * epoch_steps`` steps from a fresh guide) or
        ``"warmup"`` (continues from the shared Flat-FF warm-up, which is its epoch 0; needs the flat prior and
        a mean-field guide).
      per_epoch: one workflow job per epoch (methods that prune between epochs) instead of one job for all epochs;
        needs ``start="warmup"``.
      warmup_method: the method whose model the warm-up trains: None for the shared Flat-FF warm-up
        (:data:`WARMUP_METHOD`), or the method's own name for a method whose model has latents the flat model lacks
        (its warm-up trains its own model for ``warmup_steps``, without pruning, as its epoch 0).
      prune: ``prune(ctx, params, masks, reference) -> masks``, called for one seed before each epoch of a
        per-epoch method (:class:`PruneContext`; ``params``: constrained guide params; ``masks``: current
        keep-masks ``{layer: {leaf: bool}}``, ``True`` = kept; ``reference``: the keep-masks of the
        :attr:`reference` method's state of the same epoch, or None). Masks must accumulate and the output layer
        (``ctx.head``) must stay whole. None: the method never prunes.
      reference: name of a per-epoch method whose state of the same epoch this method's epoch job reads (a DAG edge
        between methods), or None.
      structured: the method removes whole units (an MLP neuron, a convolution's output channel) or finds them
        through :attr:`compact_masks`, so its network shrinks: the workflow exports its compact network
        (:mod:`bmrsparse.compact`) and times it (:mod:`bmrsparse.inference`).
      compact_masks: for a structured method that does not prune, ``compact_masks(ctx, params) -> masks``: the
        keep-masks ``{layer: {leaf: bool}}`` of the units its posterior switches off (:class:`PruneContext` without
        key, seed and epoch; constrained guide params of one seed), by a rule the method states (Tiered-FF: its
        per-unit scales). None: the state's keep-masks.
      dropout: the network uses dropout while training (``training.dropout``).
      settings: training settings only this method reads (a job of another method does not receive them, so
        changing them reruns only this method's jobs).
      order: position in tables and legends (then by name).
      description: one line for the docs and the config schema.
    """

    name: str
    label: str
    color: str
    prior: str = "flat"
    guide: str = "mean_field"
    learning_rate: float = 1e-3
    start: str = "scratch"
    per_epoch: bool = False
    warmup_method: str | None = None
    prune: Callable | None = field(default=None, compare=False)
    reference: str | None = None
    dropout: bool = False
    structured: bool = False
    compact_masks: Callable | None = field(default=None, compare=False)
    settings: tuple = ()
    order: float = 100.0
    description: str = ""

    def __post_init__(self):
        problems = []
        if not _NAME.match(self.name):
            problems.append(f"name must match {_NAME.pattern}")
        if self.prior not in PRIORS:
            problems.append(f"prior must be one of {PRIORS}")
        if self.guide not in GUIDES:
            problems.append(f"guide must be one of {GUIDES}")
        if self.start not in STARTS:
            problems.append(f"start must be one of {STARTS}")
        if self.warmup_method not in (None, self.name):
            problems.append("warmup_method must be None (the Flat-FF warm-up) or the method's own name")
        if self.warmup_method is not None and self.start != "warmup":
            problems.append("warmup_method needs start='warmup'")
        if self.start == "warmup" and self.warmup_method is None and (self.prior != "flat"
                                                                     or self.guide != "mean_field"):
            problems.append("start='warmup' continues the Flat-FF warm-up: it needs prior='flat', guide='mean_field' "
                            "(or warmup_method=<its own name>)")
        if self.per_epoch and self.start != "warmup":
            problems.append("per_epoch=True needs start='warmup'")
        if self.prune is not None and not self.per_epoch:
            problems.append("a method that prunes between epochs needs per_epoch=True")
        if self.reference is not None and (self.prune is None or self.reference == self.name):
            problems.append("reference is read by the prune function: it needs prune= and another method's name")
        if self.compact_masks is not None and (self.prune is not None or not self.structured):
            problems.append("compact_masks is for a structured method that does not prune (its keep-masks come "
                            "from the posterior, not from pruning)")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            problems.append("learning_rate must be a positive number")
        if problems:
            raise ValueError(f"method {self.name!r}: " + "; ".join(problems))

    @property
    def point_estimate(self) -> bool:
        return self.guide == "point"

    @property
    def prunes(self) -> bool:
        return self.prune is not None


class _Registry(Mapping):
    """Name -> :class:`Method`, ordered by (order, name)."""

    def __init__(self):
        self._methods: dict[str, Method] = {}

    def __getitem__(self, name: str) -> Method:
        return self._methods[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._methods, key=lambda n: (self._methods[n].order, n)))

    def __len__(self) -> int:
        return len(self._methods)

    def __repr__(self) -> str:
        return f"METHODS({', '.join(self)})"


METHODS: Mapping[str, Method] = _Registry()


def register(method: Method, *, replace: bool = False, origin: str = "") -> Method:
    """Add ``method`` to :data:`METHODS`; a second method of the same name is an error unless ``replace``."""
    if not isinstance(method, Method):
        raise TypeError(f"register() wants a bmrsparse.methods.Method, got {type(method).__name__} {origin}")
    old = METHODS._methods.get(method.name)  # type: ignore[attr-defined]
    if old is not None and old is not method and not replace:
        raise ValueError(f"two methods are named {method.name!r}{' (' + origin + ')' if origin else ''}")
    METHODS._methods[method.name] = method  # type: ignore[attr-defined]
    return method


def unregister(name: str) -> None:
    """Remove a method registered at run time (tests)."""
    METHODS._methods.pop(name, None)  # type: ignore[attr-defined]


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; registered methods: {', '.join(METHODS)}") from None


def _from_object(obj, origin: str) -> Method:
    method = getattr(obj, "METHOD", obj)
    if not isinstance(method, Method):
        raise TypeError(f"{origin} is neither a Method nor a module defining METHOD = Method(...)")
    return method


def discover(package_path, package_name: str, skip=()) -> None:
    """Register the methods of the modules in ``package_path`` (but ``skip``), then those of the entry-point group."""
    for info in pkgutil.iter_modules(package_path):
        if info.name.startswith("_") or info.name in skip:
            continue
        module = importlib.import_module(f"{package_name}.{info.name}")
        if hasattr(module, "METHOD"):
            register(_from_object(module, module.__name__), origin=module.__name__)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name} = {ep.value} of group {ENTRY_POINT_GROUP}"
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plug-in is named, not silently skipped
            raise ImportError(f"cannot load {origin}: {exc}") from exc
        method = _from_object(obj, origin)
        if method.name != ep.name:
            raise ValueError(f"{origin} declares a method named {method.name!r}; name the entry point after it")
        register(method, origin=origin)
    for method in METHODS.values():
        if method.reference is not None:
            ref = METHODS.get(method.reference)
            if ref is None or not ref.per_epoch:
                raise ValueError(f"method {method.name!r} reads {method.reference!r}, which is not a registered "
                                 "per-epoch method")


def fill_schema(schema: dict) -> dict:
    """The config schema with the registry filled in: the ``method`` enum and ``training.learning_rate``."""
    schema = copy.deepcopy(schema)
    names = list(METHODS)
    schema["$defs"]["method"]["enum"] = names
    lr = schema["properties"]["training"]["properties"]["learning_rate"]
    lr["properties"] = {
        m.name: {"type": "number", "exclusiveMinimum": 0, "default": m.learning_rate,
                 "description": f"learning rate of {m.label}"}
        for m in METHODS.values()
    }
    lr["additionalProperties"] = False
    return schema


class MethodAttribute(Mapping):
    """A live read-only view ``{name: getattr(method, attribute)}`` of the registry (e.g. labels, colours)."""

    def __init__(self, attribute: str):
        self._attribute = attribute

    def __getitem__(self, name: str):
        return getattr(METHODS[name], self._attribute)

    def __iter__(self):
        return iter(METHODS)

    def __len__(self):
        return len(METHODS)


def warmup_settings(method: str, own: Mapping, warmup: Mapping) -> dict:
    """The training settings of the warm-up that ``method`` (declared with ``start="warmup"``) starts from.

    Args:
      method: the method's name.
      own: the method's own training settings (``{"learning_rate": {method: lr}, "init_radius": r, ...}``, as a
        workflow job of ``method`` receives them; an absent key is the library's default).
      warmup: the settings of a job of :data:`WARMUP_METHOD`.

    Returns:
      ``warmup`` with the keys of :data:`WARMUP_INHERITS` taken from ``own`` (the learning rate under
      :data:`WARMUP_METHOD`'s name, as the warm-up job trains that method).
    """
    info = get_method(method)
    if info.start != "warmup":
        raise ValueError(f"method {method!r} starts from scratch, not from a warm-up")
    out = copy.deepcopy(dict(warmup))
    for key in WARMUP_INHERITS:
        value = own.get(key)
        if key == "learning_rate":
            rates = value or {}
            if method not in rates:
                raise ValueError(f"the settings of {method!r} lack its learning rate (learning_rate.{method})")
            out[key] = {WARMUP_METHOD: rates[method]}
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def warmup_tag(settings: Mapping) -> str:
    """Short folder name of a warm-up from its :func:`warmup_settings`: the inherited settings it was trained with,
    e.g. ``lr0.01`` or ``lr0.01-r2-s0.1`` (those the settings leave to the library's defaults are left out). Two warm-ups whose
    inherited settings differ get different names; the rest of a warm-up's settings are the same for all of a
    run's warm-ups (Flat-FF's)."""
    parts = []
    for key, letter in WARMUP_INHERITS.items():
        value = settings.get(key)
        if key == "learning_rate":
            value = (value or {}).get(WARMUP_METHOD)
            if value is None:
                raise ValueError(f"warm-up settings without learning_rate.{WARMUP_METHOD}")
        if value is not None:
            parts.append(f"{letter}{float(value):g}")
    return "-".join(parts)
