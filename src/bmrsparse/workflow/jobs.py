"""What each job receives and asks for: its training settings (the rules' ``params``), its warm-up's settings and
folder tag, its runtime and memory, and the step timing of claim 4.

A training job's settings are the keyword arguments of :class:`bmrsparse.settings.TrainingSettings` that can change
its result, so it reruns (and the between-workflow cache misses) exactly when one of them changes; null config
entries are left out (the library's defaults apply).

Warm-ups. A method declared with ``start="warmup"`` continues a warm-up (its epoch 0). The shared one trains
:data:`~bmrsparse.methods.WARMUP_METHOD`'s model (Flat-FF) with Flat-FF's settings except those in
:data:`WARMUP_INHERITS`, taken from the method that starts from it: its learning rate, as the authors' code fits
BMR-S&S's warm-up at BMR-S&S's rate, and the guide's initialisation where the config sets it per method. Methods
whose warm-up settings are equal share one warm-up (one job per data set, architecture and seed); a method whose
settings differ gets its own. A method that warms up its own model (``warmup_method=<its name>``) trains it with its
own settings. :func:`warmup_tag` names a warm-up's folder (``results/warmup/{dataset}/{arch}/{tag}/seed{seed}``, e.g.
``lr0.01``; a method's own model: ``<method>-lr0.002``); it differs whenever the settings do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..methods import METHODS, WARMUP_METHOD
from .config import Config

__all__ = ["job_settings", "warmup_settings", "warmup_tag", "WARMUP_INHERITS", "runtime_minutes", "SPEED_METHODS",
           "timing_steps", "timing_minutes", "TIMING_REPEATS", "plain", "GPU_RULES", "gpu_resources"]

#: Training settings a shared warm-up takes from the method that starts from it (the rest are Flat-FF's); with the
#: letter that names each in :func:`warmup_tag`.
WARMUP_INHERITS = {"learning_rate": "lr", "init_radius": "r", "init_scale": "s"}
#: Settings null in the config means "the library's default"; given, a job receives them (when its method reads
#: them, see :data:`_METHOD_ONLY`).
_OPTIONAL = ("gamma0", "tau0", "alpha0", "beta0", "bmr_iters", "bmr_keep", "elbo", "init_radius", "init_scale",
             "dropout")
#: The timing of claim 4 (rule time_steps): the methods it times, the runs of each method per (dataset, arch).
SPEED_METHODS = ("tiered_ff", "bmr_ss")
TIMING_REPEATS = 2
#: The rules whose jobs compute on the accelerator (they train, time or evaluate networks): they ask for
#: ``resources.gpu`` GPUs, ``resources.threads`` threads and, on a cluster, the GPU partition and model
#: (:func:`gpu_resources`). Every other rule's job asks for no GPU and stays in the cluster's default partition.
GPU_RULES = ("train_warmup", "train_continue", "train_scratch", "train_epoch", "time_steps", "sparsity_curve",
             "inference")


def plain(value):
    """A (frozen, nested) config value as plain dicts and lists: what a rule's params carry."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _method_only(key: str) -> set[str] | None:
    """The methods that declare setting ``key`` their own (:attr:`Method.settings`); None: every method reads it."""
    owners = {m.name for m in METHODS.values() if key in m.settings}
    return owners or None


def job_settings(config: Config, method: str, arch: str) -> dict:
    """The settings (keyword arguments of :class:`~bmrsparse.settings.TrainingSettings`) of a training job of
    ``method`` on ``arch``: only what can change its result."""
    training, evaluation = config.training, config.evaluation
    settings = {
        "learning_rate": training.learning_rate[method],
        "batch_size": training.batch_size,
        "chunk_size": training.chunk_size,
        "checkpoint_every": training.checkpoint_every,
        "num_eval_samples": evaluation.num_samples,
        "eval_batch_size": evaluation.eval_batch_size,
        "test_subset": evaluation.test_subset,
        "final_eval_samples": evaluation.final_num_samples,
        "final_test_subset": evaluation.final_test_subset,
    }
    for key in _OPTIONAL:
        value = training.per_method(key, method)
        owners = _method_only(key)
        if value is not None and (owners is None or method in owners):
            settings[key] = value
    overrides = training.net.get(arch)
    if overrides:
        settings["net"] = {arch: plain(overrides)}
    return settings


def warmup_settings(method: str, own: Mapping, shared: Mapping) -> dict:
    """The training settings of the warm-up that ``method`` (declared with ``start="warmup"``) starts from.

    Args:
      method: the method's name.
      own: the method's own job settings (:func:`job_settings`).
      shared: the job settings of :data:`~bmrsparse.methods.WARMUP_METHOD`.

    Returns:
      ``own`` for a method that warms up its own model; else ``shared`` with the keys of :data:`WARMUP_INHERITS`
      taken from ``own`` (absent there: absent here, the library's default).
    """
    info = METHODS.get_or_fail(method)
    if info.start != "warmup":
        raise ValueError(f"method {method!r} starts from scratch, not from a warm-up")
    if "learning_rate" not in own:
        raise ValueError(f"the settings of {method!r} lack its learning rate")
    if info.warmup_model != WARMUP_METHOD:
        return dict(own)
    out = dict(shared)
    for key in WARMUP_INHERITS:
        if own.get(key) is None:
            out.pop(key, None)
        else:
            out[key] = own[key]
    return out


def warmup_tag(settings: Mapping, model: str = WARMUP_METHOD) -> str:
    """Folder name of a warm-up of ``model`` trained with ``settings`` (:func:`warmup_settings`): the inherited
    settings, e.g. ``lr0.01`` or ``lr0.01-r2-s0.1`` (those left to the library's defaults are left out), after the
    model's name when it is not the shared warm-up's (``toy_self-lr0.002``). Two warm-ups whose inherited settings
    or models differ get different names; the rest of a shared warm-up's settings are Flat-FF's."""
    if settings.get("learning_rate") is None:
        raise ValueError("warm-up settings without a learning rate")
    parts = [f"{letter}{float(settings[key]):g}" for key, letter in WARMUP_INHERITS.items()
             if settings.get(key) is not None]
    tag = "-".join(parts)
    return tag if model == WARMUP_METHOD else f"{model}-{tag}"


def runtime_minutes(config: Config, arch: str, steps: int) -> int:
    """Minutes a training job of ``steps`` SVI steps of ``arch`` asks for: overhead + safety factor x the estimate."""
    res = config.resources
    train_minutes = steps * res.ms_per_step[res.device][arch] / 60000.0
    return int(math.ceil(res.overhead_minutes + res.safety_factor * train_minutes))


def timing_steps(epoch_steps: int) -> int:
    """SVI steps of each timed run of claim 4: an epoch's, between 10 and 200."""
    return max(10, min(200, int(epoch_steps)))


def timing_minutes(config: Config) -> int:
    """Minutes of rule time_steps: each timed run estimated as a training job of :func:`timing_steps` steps."""
    runs = len(config.datasets) * len(SPEED_METHODS) * TIMING_REPEATS  # per architecture
    steps = timing_steps(config.schedule.epoch_steps)
    return runs * sum(runtime_minutes(config, arch, steps) for arch in config.archs)


def gpu_resources(config: Config) -> dict:
    """The resources by which a job of a :data:`GPU_RULES` rule asks for the accelerator: ``gpu`` (GPUs per job) and,
    when that is at least one, ``slurm_partition`` (``resources.gpu_partition``) and ``gpu_model``
    (``resources.gpu_model``; snakemake-executor-plugin-slurm submits ``--gpus=<model>:<gpu>``), each only when set:
    an unset one leaves the cluster's default (partition) or any GPU. Other executors ignore the two strings."""
    res = config.resources
    out = {"gpu": res.gpu}
    if res.gpu >= 1:
        if res.gpu_partition:
            out["slurm_partition"] = res.gpu_partition
        if res.gpu_model:
            out["gpu_model"] = res.gpu_model
    return out
