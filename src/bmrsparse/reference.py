"""The authors' code as a reference: its BMR-S&S runs on the authors' schedule, and when a run is comparable to them.

The library ships the side-by-side runs of ``docs/authors-schedule/`` (the authors' code and ours, several seeds,
FashionMNIST, the authors' schedule at 1/10 of the paper's) as ``reference_data/authors_schedule.csv``. Fig. 2
draws the range of the authors' seeds behind our curves, but only for a run whose schedule and settings are the ones
those numbers were measured with (:data:`AUTHORS_SCHEDULE`): a band from another schedule would mislead.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Mapping

import pandas as pd

__all__ = ["AUTHORS_SCHEDULE", "AUTHORS_RUNS", "authors_band", "read_runs", "schedule_mismatch"]

#: The runs of ``docs/authors-schedule/`` (columns side, arch, seed, epoch, pruned_fraction, acc, nll; side is
#: ``authors`` or ``bmrsparse``), shipped with the library.
AUTHORS_RUNS: Path = Path(str(resources.files("bmrsparse") / "reference_data" / "authors_schedule.csv"))

#: What those runs were measured with: dataset, schedule, and BMR-S&S's training settings (its warm-up ran at its own
#: learning rate, as in the authors' code). The pruned fraction does not depend on the evaluation, so the evaluation
#: settings are not part of it.
AUTHORS_SCHEDULE: dict = {
    "dataset": "fashion_mnist",
    "method": "bmr_ss",
    "schedule": {"warmup_steps": 10_000, "epoch_steps": 2_000, "num_epochs": 5},
    "settings": {"learning_rate": 1e-2, "batch_size": 128, "init_radius": 2.0, "init_scale": 0.1, "alpha0": 1.0,
                 "beta0": 1.0, "bmr_iters": 4, "bmr_keep": "zeta", "elbo": "trace_graph"},
}

_COLUMNS = ["side", "arch", "seed", "epoch", "pruned_fraction", "acc", "nll"]


def read_runs(path=AUTHORS_RUNS) -> pd.DataFrame:
    """The side-by-side runs, checked: the columns above, sides ``authors``/``bmrsparse``, epochs 1.., fractions in
    [0, 1]. Raises ``ValueError`` naming the file and the problem."""
    runs = pd.read_csv(path)
    missing = [c for c in _COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (expected {_COLUMNS})")
    if not set(runs["side"]) <= {"authors", "bmrsparse"}:
        raise ValueError(f"{path}: side must be 'authors' or 'bmrsparse', got {sorted(set(runs['side']))}")
    if not runs["pruned_fraction"].between(0, 1).all() or (runs["epoch"] < 1).any():
        raise ValueError(f"{path}: pruned fractions must lie in [0, 1] and epochs start at 1")
    return runs


def schedule_mismatch(config: Mapping, arch: str) -> list[str]:
    """Why a workflow config's BMR-S&S run of ``arch`` is *not* comparable to :data:`AUTHORS_SCHEDULE` (empty: it is).

    ``config`` is the workflow's config (``datasets``, ``schedule``, ``training``); ``null`` training values mean the
    library's defaults (:func:`bmrsparse.settings.resolve_settings`).
    """
    from .settings import DEFAULT_SETTINGS, resolve_settings

    ref = AUTHORS_SCHEDULE
    why = []
    if ref["dataset"] not in (config.get("datasets") or []):
        why.append(f"dataset {ref['dataset']} is not in the run")
    schedule = config.get("schedule") or {}
    for key, value in ref["schedule"].items():
        if schedule.get(key) != value:
            why.append(f"schedule.{key} is {schedule.get(key)!r}, the reference's {value!r}")
    training = {k: v for k, v in (config.get("training") or {}).items() if v is not None}
    settings = resolve_settings({k: v for k, v in training.items() if k in DEFAULT_SETTINGS})
    for key, value in ref["settings"].items():
        got = settings[key][ref["method"]] if key == "learning_rate" else settings[key]
        if got != value:
            why.append(f"training.{key} is {got!r}, the reference's {value!r}")
    if (settings.get("net") or {}).get(arch):
        why.append(f"training.net overrides {arch}'s size")
    return why


def authors_band(runs: pd.DataFrame, column: str = "pruned_fraction") -> pd.DataFrame:
    """Per architecture and epoch, the range of the authors' seeds: columns arch, epoch, lo, hi, seeds. Epoch 0 (the
    warm-up, nothing pruned) is added for ``pruned_fraction``."""
    authors = runs[runs["side"] == "authors"]
    band = (authors.groupby(["arch", "epoch"])[column].agg(lo="min", hi="max").reset_index()
            .merge(authors.groupby("arch")["seed"].nunique().rename("seeds").reset_index(), on="arch"))
    if column == "pruned_fraction":
        start = band.groupby("arch", as_index=False)["seeds"].first().assign(epoch=0, lo=0.0, hi=0.0)
        band = pd.concat([start[band.columns], band], ignore_index=True)
    return band.sort_values(["arch", "epoch"], ignore_index=True)
