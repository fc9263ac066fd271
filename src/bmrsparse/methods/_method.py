r"""The declaration of a method: everything the library, the workflow and the figures need to know about it.

A method is declared once, as ``METHOD = Method(...)`` in a module of :mod:`bmrsparse.methods` or of another
package named by an entry point of the group ``bmrsparse.methods`` (see :mod:`bmrsparse.registry`).

Warm-ups. A method declared with ``start="warmup"`` continues a warm-up of ``warmup_steps`` SVI steps, its epoch 0.
By default that is the shared Flat-FF warm-up (:data:`WARMUP_METHOD`'s model); a method that sets
``warmup_method`` to its own name warms up its own model instead (no prune before epoch 0). Which warm-up jobs a
grid needs, and their settings, the workflow decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from ..registry import NAME

__all__ = ["Method", "PruneContext", "ENTRY_POINT_GROUP", "WARMUP_METHOD", "STARTS", "GUIDES", "PRIORS"]

ENTRY_POINT_GROUP = "bmrsparse.methods"
STARTS = ("scratch", "warmup")
GUIDES = ("mean_field", "point")
PRIORS = ("flat", "tiered", "units")
#: The method whose model the shared warm-up trains: the epoch 0 of every method declared with ``start="warmup"``
#: that does not warm up its own model (:attr:`Method.warmup_method`).
WARMUP_METHOD = "flat_ff"


class PruneContext(NamedTuple):
    r"""What a method's prune function receives besides the parameters and masks (one seed; the trainer vmaps the
    prune function over seeds and compiles it, so ``key``, ``seed`` and ``epoch`` are traced arrays).

    ``built``: the :class:`~bmrsparse.methods.Built` model (:func:`~bmrsparse.methods.layer_posteriors` gives
    ``{layer: {leaf: (mu, sigma)}}`` of :math:`q(\hat w)` from guide params); ``head``: the output layer's name,
    never to be pruned; ``settings``: the run's :class:`~bmrsparse.settings.TrainingSettings`; ``key``: a PRNG
    key for this seed and epoch, independent of the training and evaluation keys (a randomised method draws from
    it, so its choices repeat with the seed); ``seed``: the run's integer seed; ``epoch``: the epoch about to be
    trained (int32; the first pruned epoch is 1).
    """

    built: Any
    head: str
    settings: Any
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
        ``"warmup"`` (continues from a warm-up of ``warmup_steps``, its epoch 0: the shared Flat-FF warm-up, which
        needs the flat prior and a mean-field guide, or its own, see :attr:`warmup_method`).
      warmup_method: the method whose model its warm-up trains (``start="warmup"`` only): None (or
        :data:`WARMUP_METHOD`) for the shared Flat-FF warm-up, or the method's own name for a method whose model has
        latents the flat model lacks (its warm-up trains its own model, with its own settings, for ``warmup_steps``,
        without pruning, as its epoch 0).
      per_epoch: one workflow job per epoch (methods that prune between epochs) instead of one job for all epochs;
        needs ``start="warmup"``.
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
    warmup_method: str | None = None
    per_epoch: bool = False
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
        if not (isinstance(self.name, str) and NAME.match(self.name)):
            problems.append(f"name must match {NAME.pattern}")
        if self.prior not in PRIORS:
            problems.append(f"prior must be one of {PRIORS}")
        if self.guide not in GUIDES:
            problems.append(f"guide must be one of {GUIDES}")
        if self.start not in STARTS:
            problems.append(f"start must be one of {STARTS}")
        if self.warmup_method not in (None, WARMUP_METHOD, self.name):
            problems.append(f"warmup_method must be None, {WARMUP_METHOD!r} or the method's own name")
        if self.warmup_method is not None and self.start != "warmup":
            problems.append("warmup_method needs start='warmup'")
        shared = self.warmup_method in (None, WARMUP_METHOD)
        if self.start == "warmup" and shared and (self.prior != "flat" or self.guide != "mean_field"):
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

    @property
    def warmup_model(self) -> str | None:
        """The method whose model its warm-up trains (:data:`WARMUP_METHOD` or its own name); None for a method
        trained from scratch."""
        if self.start != "warmup":
            return None
        return self.warmup_method or WARMUP_METHOD
