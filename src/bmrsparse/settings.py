"""Training settings: every default of a training stage, their valid values, and the one resolver.

A stage's settings are :data:`DEFAULT_SETTINGS` updated with the workflow's ``training:`` and ``evaluation:``
sections (:func:`resolve_settings`). This module is the only place that states a default: the learning rate of a
method is the one its declaration gives (:attr:`bmrsparse.methods.Method.learning_rate`, see :func:`learning_rate`),
the keep rule and ELBO estimator defaults are here, and the config schema's defaults are checked against this
module by ``tests/test_settings.py`` (the schema's ``null`` means "this module's default").

It imports nothing of JAX, so :mod:`bmrsparse.bmr` and the workflow's planning can read it cheaply.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

__all__ = [
    "DEFAULT_SETTINGS",
    "KEEP_RULES",
    "ELBOS",
    "STEP_LOOPS",
    "defaults",
    "learning_rate",
    "resolve_settings",
]

#: Keep rules of a BMR prune step (see :mod:`bmrsparse.bmr`): ``"zeta"`` keeps a weight when
#: :math:`\Delta F(\lambda=0) \le \zeta` after the :math:`k_{max}`-th update of :math:`(\alpha, \beta)` (the authors'
#: code, :math:`q^{k_{max}+1} \ge 1/2`); ``"q"`` when :math:`q^{k_{max}} \ge 1/2` (eq. 23 read literally).
KEEP_RULES = ("zeta", "q")
#: ELBO estimators of the mean-field guides: NumPyro's ``TraceGraph_ELBO`` (Monte-Carlo KL, as the authors' code) or
#: ``TraceMeanField_ELBO`` (analytic KL where known). A point estimate (MAP) always uses the latter.
ELBOS = ("trace_graph", "mean_field")
#: How a chunk of SVI steps runs: ``"device"`` one compiled loop, ``"host"`` one compiled step per call from Python,
#: ``"auto"`` host on CPU for networks with convolutions (XLA runs convolutions slower inside a loop), else device.
STEP_LOOPS = ("auto", "host", "device")

#: Settings of a training stage; every key can be overridden from the workflow's ``training:`` config section.
#: ``learning_rate`` lists only overrides: a method without one uses its declared rate (:func:`learning_rate`).
DEFAULT_SETTINGS: dict = {
    "learning_rate": {},  # Optax AdaBelief step size per method (default: the method's declared rate)
    "batch_size": 128,  # minibatch N_B
    "chunk_size": 500,  # SVI steps per chunk (progress bar, non-finite check and checkpoints between chunks)
    "step_loop": "auto",  # one of STEP_LOOPS
    "checkpoint_every": 5000,  # steps between checkpoints (rounded up to whole chunks)
    "num_eval_samples": 100,  # posterior-predictive samples (Flat-MAP always uses its point estimate)
    "eval_batch_size": 1000,  # test images per forward pass
    "test_subset": None,  # evaluate on the first n test images (None: the whole test set)
    "gamma0": 0.1,  # gamma_0 of eq. (15): prior scale of hidden-layer weights
    "tau0": 1e-2,  # tau_0 of eq. (17): global horseshoe scale
    "alpha0": 1.0,  # alpha_0 of the Beta prior over a layer's inclusion rate (eq. 22)
    "beta0": 1.0,  # beta_0
    "bmr_iters": 4,  # k_max fixed-point iterations (eq. 22)
    "bmr_keep": "zeta",  # keep rule of a prune step, one of KEEP_RULES (the authors' code's)
    "elbo": "trace_graph",  # ELBO estimator of the mean-field guides, one of ELBOS (the authors' code's)
    "init_radius": 2.0,  # guide locations start uniform in [-r, r] (the authors' r = 2)
    "init_scale": 0.1,  # guide scales start at this value (the authors')
    "dropout": 0.2,  # Flat-MAP dropout rate on dense layers (not in the Mixer)
    "net": {},  # per-architecture overrides of bmrsparse.nets.make_net, e.g. {"mlp": {"width": 32}}
}

_POSITIVE_INTS = ("batch_size", "chunk_size", "checkpoint_every", "num_eval_samples", "eval_batch_size", "bmr_iters")


def defaults() -> dict:
    """A copy of :data:`DEFAULT_SETTINGS` with every registered method's declared learning rate filled in."""
    from .methods import METHODS

    out = copy.deepcopy(DEFAULT_SETTINGS)
    out["learning_rate"] = {m: METHODS[m].learning_rate for m in METHODS}
    return out


def learning_rate(settings: Mapping, method: str) -> float:
    """The AdaBelief step size of ``method`` under ``settings``: ``settings["learning_rate"][method]`` if given,
    else the method's declared :attr:`~bmrsparse.methods.Method.learning_rate`."""
    from .methods import get_method

    rates = settings.get("learning_rate") or {}
    return float(rates[method]) if method in rates else float(get_method(method).learning_rate)


def resolve_settings(settings: Mapping | None) -> dict:
    """:func:`defaults` updated with ``settings``; unknown keys and bad values raise ``ValueError`` naming them."""
    from .methods import METHODS
    from .nets import ARCHS

    out = defaults()
    for key, value in (settings or {}).items():
        if key not in out:
            raise ValueError(f"unknown training setting {key!r}; known: {sorted(out)}")
        if key == "learning_rate":
            for m, lr in (value or {}).items():
                if m not in METHODS:
                    raise ValueError(f"training.learning_rate: unknown method {m!r}; choose from {sorted(METHODS)}")
                if not (isinstance(lr, (int, float)) and lr > 0):
                    raise ValueError(f"training.learning_rate.{m} must be a positive number, got {lr!r}")
                out[key][m] = float(lr)
        elif key == "net":
            for a in value or {}:
                if a not in ARCHS:
                    raise ValueError(f"training.net: unknown architecture {a!r}; choose from {list(ARCHS)}")
            out[key] = copy.deepcopy(value or {})
        else:
            out[key] = value
    for key in _POSITIVE_INTS:
        if not (isinstance(out[key], int) and out[key] >= 1):
            raise ValueError(f"training.{key} must be an integer >= 1, got {out[key]!r}")
    for key, allowed in (("bmr_keep", KEEP_RULES), ("elbo", ELBOS), ("step_loop", STEP_LOOPS)):
        if out[key] not in allowed:
            raise ValueError(f"training.{key} must be one of {list(allowed)}, got {out[key]!r}")
    if out["test_subset"] is not None and not (isinstance(out["test_subset"], int) and out["test_subset"] >= 1):
        raise ValueError(f"training.test_subset must be null or an integer >= 1, got {out['test_subset']!r}")
    return out
