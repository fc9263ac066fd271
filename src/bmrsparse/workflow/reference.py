"""The authors' code as a reference: its BMR-S&S runs on the authors' schedule, and when a run is comparable to them.

The package ships the side-by-side runs of ``docs/authors-schedule/`` (the authors' code and ours, several seeds,
FashionMNIST, the authors' schedule at 1/10 of the paper's) as ``reference_data/authors_schedule.csv``, and what
they were measured with as ``reference_data/authors_schedule.json`` (:data:`AUTHORS_SCHEDULE`). Fig. 2 draws the
range of the authors' seeds behind our curves, but only for a run whose schedule and settings are those (a band from
another schedule would mislead): :func:`reference_band` gives the band the workflow passes to its drawing function.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd

from ..settings import TrainingSettings
from .config import Config
from .jobs import job_settings

__all__ = ["AUTHORS_SCHEDULE", "AUTHORS_RUNS", "authors_band", "read_runs", "schedule_mismatch", "comparable_archs",
           "reference_band"]

_DATA = resources.files("bmrsparse.workflow") / "reference_data"
#: The runs of ``docs/authors-schedule/`` (columns side, arch, seed, epoch, pruned_fraction, acc, nll; side is
#: ``authors`` or ``bmrsparse``), shipped with the package.
AUTHORS_RUNS: Path = Path(str(_DATA / "authors_schedule.csv"))
#: What those runs were measured with: dataset, method, schedule and the method's training settings.
AUTHORS_SCHEDULE: dict = json.loads((_DATA / "authors_schedule.json").read_text())

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


def schedule_mismatch(config: Config, arch: str) -> list[str]:
    """Why a run's BMR-S&S on ``arch`` is *not* comparable to :data:`AUTHORS_SCHEDULE` (empty: it is): the settings
    its training jobs receive, the library's defaults for the rest."""
    ref = AUTHORS_SCHEDULE
    why = []
    if ref["dataset"] not in config.datasets:
        why.append(f"dataset {ref['dataset']} is not in the run")
    schedule = config.schedule.as_dict()
    for key, value in ref["schedule"].items():
        if schedule.get(key) != value:
            why.append(f"schedule.{key} is {schedule.get(key)!r}, the reference's {value!r}")
    settings = TrainingSettings.from_mapping(job_settings(config, ref["method"], arch))
    for key, value in ref["settings"].items():
        got = getattr(settings, key)
        if got != value:
            why.append(f"training.{key} is {got!r}, the reference's {value!r}")
    if settings.net_overrides(arch):
        why.append(f"training.net overrides {arch}'s size")
    return why


def comparable_archs(config: Config) -> list[str]:
    """The configured networks whose BMR-S&S run is comparable to the reference (none without BMR-S&S)."""
    if AUTHORS_SCHEDULE["method"] not in config.methods:
        return []
    return [arch for arch in config.archs if not schedule_mismatch(config, arch)]


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


def reference_band(config: Config, path=AUTHORS_RUNS) -> dict:
    """Fig. 2's reference: ``{dataset: band}`` of the authors' range for the networks whose run is comparable to it
    (printed, with the reason for the others), the argument ``reference`` of
    :func:`bmrsparse.plots.plot_pruned_fraction`."""
    runs = read_runs(path)
    drawn = []
    for arch in sorted(set(runs["arch"]) & set(config.archs)):
        why = schedule_mismatch(config, arch)
        print(f"authors' range for {arch}: " + ("drawn" if not why else "not drawn: " + "; ".join(why)))
        if not why:
            drawn.append(arch)
    band = authors_band(runs)
    return {AUTHORS_SCHEDULE["dataset"]: band[band["arch"].isin(drawn)]}
