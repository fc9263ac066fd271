"""The settings of a training stage: one typed, frozen object whose constructor holds every default.

:class:`TrainingSettings` is what :class:`bmrsparse.train.Trainer`, :func:`bmrsparse.experiment.run_stage` and the
functions built on them read. Its field defaults are the library's: a method's learning rate is the one its
declaration gives (:attr:`bmrsparse.methods.Method.learning_rate`, used when ``learning_rate`` is None), the BMR
step's are those of :func:`bmrsparse.bmr.spike_and_slab`. A workflow builds one per job from its validated config
(:mod:`bmrsparse.workflow.jobs`) and hands it over as keyword arguments::

    settings = TrainingSettings(batch_size=32, net={"mlp": {"width": 64}})
    TrainingSettings.from_mapping({"batch_size": 32})   # a plain mapping (a state file's header, a job's params)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .bmr import KEEP_RULES, check_keep
from .methods.bmr_struct import GROUP_INPUTS
from .nets import NETWORKS

__all__ = ["TrainingSettings", "KEEP_RULES", "ELBOS", "STEP_LOOPS"]

#: ELBO estimators of the mean-field guides: NumPyro's ``TraceGraph_ELBO`` (Monte-Carlo KL, as the authors' code) or
#: ``TraceMeanField_ELBO`` (analytic KL where known). A point estimate (MAP) always uses the latter.
ELBOS = ("trace_graph", "mean_field")
#: How a chunk of SVI steps runs: ``"device"`` one compiled loop, ``"host"`` one compiled step per call from Python,
#: ``"auto"`` host on CPU for networks with convolutions (XLA runs convolutions slower inside a loop), else device.
STEP_LOOPS = ("auto", "host", "device")

_POSITIVE_INTS = ("batch_size", "chunk_size", "checkpoint_every", "num_eval_samples", "final_eval_samples",
                  "eval_batch_size", "bmr_iters")
_POSITIVE_NUMBERS = ("gamma0", "tau0", "alpha0", "beta0", "init_radius", "init_scale")


@dataclass(frozen=True)
class TrainingSettings:
    """Settings of a training stage; every field has the library's default.

    Attributes:
      learning_rate: Optax AdaBelief step size; None: the method's declared
        :attr:`~bmrsparse.methods.Method.learning_rate`.
      batch_size: minibatch size :math:`N_B`.
      chunk_size: SVI steps per compiled chunk (progress, non-finite check and checkpoints between chunks).
      step_loop: how a chunk runs, one of :data:`STEP_LOOPS`.
      checkpoint_every: steps between checkpoints (rounded up to whole chunks).
      num_eval_samples: posterior-predictive samples per evaluation (Flat-MAP always uses its point estimate).
      eval_batch_size: test images per forward pass.
      test_subset: evaluate on the first n test images (None: the whole test set).
      final_eval_samples: posterior-predictive samples of the evaluation of a run's last epoch (the run's
        ``final_epoch``, :func:`bmrsparse.experiment.run_stage`; the authors': 100).
      final_test_subset: test images of that evaluation (None: the whole test set, the authors').
      gamma0: :math:`\\gamma_0` of eq. (15), the prior scale of hidden-layer weights.
      tau0: :math:`\\tau_0` of eq. (17), the global horseshoe scale.
      alpha0, beta0: :math:`\\alpha_0, \\beta_0` of the Beta prior over a layer's inclusion rate (eq. 22).
      bmr_iters: :math:`k_{max}`, fixed-point iterations of a BMR prune step (eq. 22).
      bmr_keep: keep rule of a BMR prune step, one of :data:`KEEP_RULES` (the authors' code's).
      elbo: ELBO estimator of the mean-field guides, one of :data:`ELBOS` (the authors' code's).
      init_radius: mean-field guide locations start uniform in :math:`[-r, r]` (the authors' r = 2).
      init_scale: guide scales start at this value (the authors').
      dropout: Flat-MAP's dropout rate on dense layers (not in the Mixer).
      bmr_group_inputs: what a group's :math:`\\Delta F` sums in structured BMR, one of
        :data:`bmrsparse.methods.bmr_struct.GROUP_INPUTS` (``"all"``: every weight of the group, the method as
        specified).
      net: per-network keyword arguments of :func:`bmrsparse.nets.make_net`, e.g. ``{"mlp": {"width": 32}}``.
    """

    learning_rate: float | None = None
    batch_size: int = 128
    chunk_size: int = 500
    step_loop: str = "auto"
    checkpoint_every: int = 5000
    num_eval_samples: int = 100
    eval_batch_size: int = 1000
    test_subset: int | None = None
    final_eval_samples: int = 100
    final_test_subset: int | None = None
    gamma0: float = 0.1
    tau0: float = 1e-2
    alpha0: float = 1.0
    beta0: float = 1.0
    bmr_iters: int = 4
    bmr_keep: str = "zeta"
    elbo: str = "trace_graph"
    init_radius: float = 2.0
    init_scale: float = 0.1
    dropout: float = 0.2
    bmr_group_inputs: str = "all"
    net: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        for key in _POSITIVE_INTS:
            value = getattr(self, key)
            if isinstance(value, bool) or not (isinstance(value, int) and value >= 1):
                raise ValueError(f"training.{key} must be an integer >= 1, got {value!r}")
        for key in _POSITIVE_NUMBERS:
            value = getattr(self, key)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"training.{key} must be a positive number, got {value!r}")
        lr = self.learning_rate
        if lr is not None and (isinstance(lr, bool) or not (isinstance(lr, (int, float)) and lr > 0)):
            raise ValueError(f"training.learning_rate must be a positive number or None, got {lr!r}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ValueError(f"training.dropout must lie in [0, 1), got {self.dropout!r}")
        for key in ("test_subset", "final_test_subset"):
            subset = getattr(self, key)
            if subset is not None and (isinstance(subset, bool) or not (isinstance(subset, int) and subset >= 1)):
                raise ValueError(f"training.{key} must be null or an integer >= 1, got {subset!r}")
        try:
            check_keep(self.bmr_keep)
        except ValueError as e:
            raise ValueError(f"training.bmr_keep: {e}") from None
        for key, allowed in (("elbo", ELBOS), ("step_loop", STEP_LOOPS), ("bmr_group_inputs", GROUP_INPUTS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"training.{key} must be one of {list(allowed)}, got {getattr(self, key)!r}")
        unknown = [a for a in self.net if a not in NETWORKS]
        if unknown:
            raise ValueError(f"training.net: unknown architecture {unknown[0]!r}; choose from {list(NETWORKS)}")

    @classmethod
    def from_mapping(cls, settings: Mapping | None) -> "TrainingSettings":
        """The settings of a plain mapping (a job's params, a state file's header); an unknown key raises
        ``ValueError`` naming it."""
        if isinstance(settings, TrainingSettings):
            return settings
        known = {f.name for f in dataclasses.fields(cls)}
        for key in settings or {}:
            if key not in known:
                raise ValueError(f"unknown training setting {key!r}; known: {sorted(known)}")
        return cls(**dict(settings or {}))

    def replace(self, **changes) -> "TrainingSettings":
        """A copy with ``changes`` (e.g. the evaluation settings of another job)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as a plain dict (a state file's header, a checkpoint's fingerprint)."""
        out = dataclasses.asdict(self)
        out["net"] = {arch: dict(values) for arch, values in self.net.items()}
        return out

    def net_overrides(self, arch: str) -> dict:
        """The :func:`bmrsparse.nets.make_net` keyword arguments of network ``arch`` (empty: its paper sizes)."""
        return dict(self.net.get(arch) or {})
