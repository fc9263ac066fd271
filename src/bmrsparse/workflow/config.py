"""The workflow's settings, resolved once: typed, frozen objects built from the validated config.

``common.smk`` validates the config against the schema (which fills in every default; :mod:`.schema`) and builds a
:class:`Config` from it; everything the rules, the tables and the plan need is read from that object. Each section
of the config file is one class here, with the config file's key names; ``workflow/schemas/config.schema.yaml``
describes each key and holds its default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["Config", "Schedule", "Training", "Evaluation", "Resources", "Claims"]


def _frozen(mapping) -> Mapping:
    """A read-only copy of a (nested) mapping."""
    if isinstance(mapping, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in mapping.items()})
    if isinstance(mapping, list):
        return tuple(_frozen(v) for v in mapping)
    return mapping


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Schedule:
    """``schedule:``, in SVI steps."""

    warmup_steps: int  #: steps of a warm-up (epoch 0); methods from scratch train as many in their epoch 0
    epoch_steps: int  #: steps of every later epoch (a pruning method prunes before each)
    num_epochs: int  #: epochs after the warm-up

    def as_dict(self) -> dict:
        return {"warmup_steps": self.warmup_steps, "epoch_steps": self.epoch_steps, "num_epochs": self.num_epochs}


@dataclass(frozen=True)
class Training:
    """``training:``; None means the library's default (:class:`bmrsparse.settings.TrainingSettings`)."""

    learning_rate: Mapping[str, float]  #: AdaBelief step size of every registered method (default: its declared one)
    batch_size: int  #: minibatch size N_B
    chunk_size: int  #: SVI steps per compiled chunk (speed only)
    checkpoint_every: int  #: steps between resumable checkpoints
    dropout: float | None  #: Flat-MAP's dropout rate
    gamma0: float | None  #: gamma_0 of eq. (15)
    tau0: float | None  #: tau_0 of eq. (17)
    alpha0: float | None  #: alpha_0 of eq. (22)
    beta0: float | None  #: beta_0 of eq. (22)
    bmr_iters: int | None  #: k_max of eq. (22)
    bmr_keep: str | None  #: keep rule of a BMR prune step
    elbo: str | None  #: ELBO estimator of the mean-field guides
    init_radius: float | Mapping[str, float] | None  #: guide locations start in [-r, r] (one r, or one per method)
    init_scale: float | None  #: guide scales start here
    net: Mapping[str, Mapping[str, Any]]  #: network size overrides per architecture

    def per_method(self, key: str, method: str):
        """The value of setting ``key`` for ``method`` (a per-method mapping is looked up; None: library default)."""
        value = getattr(self, key)
        return value.get(method) if isinstance(value, Mapping) else value


@dataclass(frozen=True)
class Evaluation:
    """``evaluation:``, after every epoch."""

    num_samples: int  #: posterior-predictive samples per test image (Flat-MAP: 1)
    test_subset: int | None  #: the first this many test images (None: all)
    final_num_samples: int  #: samples of the evaluation of the last epoch (schedule.num_epochs)
    final_test_subset: int | None  #: test images of that evaluation (None: all)
    eval_batch_size: int  #: test images per forward pass (memory and speed only, not the numbers)


@dataclass(frozen=True)
class Resources:
    """``resources:``, what a training job asks the scheduler for."""

    gpu: int  #: GPUs per job of a GPU rule (jobs.GPU_RULES; 0: CPU only)
    gpu_partition: str | None  #: SLURM partition of the GPU jobs when gpu >= 1 (None: the cluster's default)
    gpu_model: str | None  #: GPU model (gres type) the GPU jobs ask for when gpu >= 1 (None: any)
    threads: int  #: CPU threads per job of a GPU rule
    mem_mb: Mapping[str, int]  #: MB per training job, per architecture
    ms_per_step: Mapping[str, Mapping[str, float]]  #: estimated ms per SVI step, {gpu, cpu} x architecture
    overhead_minutes: int  #: minutes added to every training job's runtime
    safety_factor: float  #: factor on the estimated training time

    @property
    def device(self) -> str:
        """``"gpu"`` when training jobs ask for a GPU, else ``"cpu"`` (the ``ms_per_step`` estimates used)."""
        return "gpu" if self.gpu >= 1 else "cpu"


@dataclass(frozen=True)
class Claims:
    """``claims:``, the tolerances of the paper-claims table."""

    acc_tolerance: float  #: accuracies are comparable when max - min is at most this
    pruned_threshold: float  #: a "large" pruned fraction is at least this


@dataclass(frozen=True)
class Config:
    """The whole validated config (``config/config.yaml`` merged with ``--configfile`` and ``--config``)."""

    datasets: tuple[str, ...]  #: datasets of the grid
    archs: tuple[str, ...]  #: networks of the grid (registered names, bmrsparse.nets.NETWORKS)
    methods: tuple[str, ...]  #: methods reported (a listed method's reference method is trained too)
    seeds: tuple[int, ...]  #: one training run per seed
    vmap_seeds: bool  #: all seeds of a stage in one job
    data_dir: str | None  #: folder with local copies of the datasets
    download: bool  #: download a dataset that has no local copy
    jax_cache_dir: str | None  #: JAX's compilation cache shared by the jobs (speed only)
    schedule: Schedule
    training: Training
    evaluation: Evaluation
    resources: Resources
    claims: Claims

    def as_dict(self) -> dict:
        """The config as plain dicts and lists (the validated config mapping it was built from)."""
        return _plain({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_mapping(cls, config: Mapping) -> "Config":
        """The typed config of a validated config mapping (every key present: the schema filled the defaults)."""
        sections = {"schedule": Schedule, "training": Training, "evaluation": Evaluation, "resources": Resources,
                    "claims": Claims}
        values = {}
        for key in cls.__dataclass_fields__:
            value = config[key]
            if key in sections:
                value = sections[key](**{k: _frozen(v) for k, v in value.items()})
            elif isinstance(value, list):
                value = tuple(value)
            values[key] = value
        return cls(**values)
