"""Tidy metrics and the tables of the workflow: final metrics and the paper-claims table.

The tidy metrics table has one row per (dataset, arch, method, seed, epoch) with the columns of
:data:`METRIC_COLUMNS` (those written by :func:`bmrsparse.experiment.run_stage`). Flat-FF and BMR-S&S share
the Flat-FF warm-up as their epoch 0, so :func:`read_metrics` can relabel the warm-up rows (``as_method``).

:func:`paper_claims` judges four statements of the paper's Results section on the numbers:

1. all methods reach comparable top-1 accuracy;
2. BMR-S&S has the lowest ECE and NLL, Tiered-FF the second lowest;
3. BMR-S&S prunes a large fraction of the weights everywhere except LeNet-5 on FashionMNIST;
4. a BMR-S&S gradient step is faster than a Tiered-FF step (the paper: about 15 %), judged from a timing taken
   alone (``python -m bmrsparse.bench``) when one is given;

and one beyond the paper (when the pruning baselines ``magnitude_ss`` / ``snr_ss`` are in the grid):

5. at the sparsity BMR-S&S reaches, it has a lower NLL than magnitude and SNR pruning at the same per-layer
   sparsity;

and one on measured inference (its rows appear only when the inference table of :mod:`bmrsparse.inference` is
given):

6. a structured BMR method (one that prunes whole units: :attr:`bmrsparse.methods.Method.structured`) runs the
   MLP's compact network at least 5x faster than the dense (Flat-FF) MLP at batch 128, with a posterior-mean
   accuracy at most one point below Flat-FF's, trained in no more SVI steps than BMR-S&S; and LeNet-5's at least
   2x faster, in no more steps.

Each claim is judged per seed; the table says in how many seeds it holds.

Example::

    metrics = collect_metrics([read_metrics("warmup.csv", as_method="bmr_ss"), read_metrics("epoch1.csv")])
    write_table(final_metrics(metrics), "final.csv", "final.md", title="Final metrics")
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .data import DATASETS
from .io import atomic_write_text, read_csv
from .methods import METHODS
from .metrics import METRIC_COLUMNS as ALL_METRIC_COLUMNS
from .nets import NETWORKS

__all__ = [
    "METRIC_COLUMNS",
    "METHOD_ORDER",
    "ARCH_ORDER",
    "DATASET_ORDER",
    "read_metrics",
    "collect_metrics",
    "final_metrics",
    "paper_claims",
    "describe_settings",
    "to_markdown",
    "write_table",
]

_OPTIONAL = ("ece_width15", "elbo")  # kept when every part has them (older CSVs lack them)
#: Columns every metrics CSV must have (those run_stage writes; ``ece_width15`` and ``elbo`` are optional and kept
#: when present).
METRIC_COLUMNS = tuple(c for c in ALL_METRIC_COLUMNS if c not in _OPTIONAL)
_KEY = ["dataset", "arch", "method", "seed", "epoch"]

#: Row order of the tables: the registries' (``order`` of each declaration, then name); live views, so a method,
#: network or dataset added later takes its declared place. Names no registry holds come last.
METHOD_ORDER = METHODS
ARCH_ORDER = NETWORKS
DATASET_ORDER = DATASETS

_CLAIMS = {
    1: "Top-1 accuracies are comparable across methods",
    2: "BMR-S&S has the lowest ECE and NLL, Tiered-FF the second lowest",
    3: "BMR-S&S prunes a large fraction of the weights, except LeNet-5 on FashionMNIST",
    4: "A BMR-S&S gradient step is faster than a Tiered-FF step (paper: about 15 %)",
    5: "(beyond the paper) At the sparsity BMR-S&S reaches, it has lower NLL than magnitude and SNR pruning at the "
    "same per-layer sparsity",
    6: "(beyond the paper) A structured BMR method runs the MLP at least 5x faster than dense at batch 128 with "
    "accuracy within one point of Flat-FF, and LeNet-5 at least 2x faster, in no more training steps than BMR-S&S",
}
#: Claim 6: the speed-up asked of each network, the accuracy margin (1 point, asked of the networks listed), the
#: batch size.
STRUCTURED_SPEEDUP = {"mlp": 5.0, "lenet": 2.0}
STRUCTURED_ACC_MARGIN, STRUCTURED_ACC_ARCHS, STRUCTURED_BATCH = 0.01, ("mlp",), 128
#: The methods the paper compares (claim 2 ranks these); the pruning baselines of claim 5.
PAPER_METHODS = ("flat_map", "flat_ff", "tiered_ff", "bmr_ss")
BASELINE_METHODS = ("magnitude_ss", "snr_ss")
#: Claim 3's exception, as the paper states it: LeNet-5 on FashionMNIST (dataset, network).
PRUNING_EXCEPTION = ("fashion_mnist", "lenet")
HOLDS, FAILS, NA = "holds", "does not hold", "not applicable"


def _order_key(values: pd.Series, order: Iterable[str]) -> pd.Series:
    rank = {name: i for i, name in enumerate(order)}
    return values.map(lambda v: rank.get(v, len(rank)))


def _sorted(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    orders = {"dataset": DATASET_ORDER, "arch": ARCH_ORDER, "method": METHOD_ORDER}

    def key(col: pd.Series) -> pd.Series:
        return _order_key(col, orders[col.name]) if col.name in orders else col

    return frame.sort_values(list(by), key=key, kind="stable").reset_index(drop=True)


def read_metrics(path: str | os.PathLike, *, as_method: str | None = None) -> pd.DataFrame:
    """Read one metrics CSV written by ``run_stage``; ``as_method`` relabels its rows (the shared warm-up).

    Raises:
      DamagedFileError: the file does not match its digest file ``<path>.sha256`` (see :mod:`bmrsparse.io`).
      ValueError: the file lacks a required column or has no rows (the message names the file).
    """
    frame = read_csv(path, producer="bmrsparse.experiment.run_stage")
    missing = [c for c in METRIC_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"metrics file {path} lacks the column(s) {missing}; expected {list(METRIC_COLUMNS)}")
    if frame.empty:
        raise ValueError(f"metrics file {path} has no rows")
    if as_method is not None:
        frame["method"] = as_method
    return frame


def collect_metrics(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-stage metrics into one tidy table sorted by dataset, arch, method, seed and epoch.

    Raises:
      ValueError: no frames, or two rows for the same (dataset, arch, method, seed, epoch).
    """
    frames = list(frames)
    if not frames:
        raise ValueError("collect_metrics: no metrics given")
    columns = [c for c in ALL_METRIC_COLUMNS
               if c in METRIC_COLUMNS or all(c in f.columns for f in frames)]  # optional ones in their place
    tidy = pd.concat([f[columns] for f in frames], ignore_index=True)
    duplicated = tidy.duplicated(_KEY, keep=False)
    if duplicated.any():
        rows = tidy.loc[duplicated, _KEY].drop_duplicates().to_dict("records")
        raise ValueError(f"collect_metrics: more than one row for {rows[:5]}")
    tidy["seed"] = tidy["seed"].astype(int)
    tidy["epoch"] = tidy["epoch"].astype(int)
    return _sorted(tidy, _KEY)


def _speed_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """Rows that time a method's own gradient steps (BMR-S&S's epoch 0 is the shared Flat-FF warm-up)."""
    return metrics[~((metrics["method"] == "bmr_ss") & (metrics["epoch"] == 0))]


def final_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Metrics after the last epoch per dataset x arch x method: mean (and SD when several seeds) over seeds.

    Columns: dataset, arch, method, seeds, epoch, step, acc, acc_sd, ece, ece_sd, nll, nll_sd, pruned_fraction,
    pruned_fraction_sd, steps_per_s (mean over the method's own training epochs).
    """
    last = metrics.loc[metrics.groupby(["dataset", "arch", "method", "seed"])["epoch"].idxmax()]
    group = ["dataset", "arch", "method"]
    agg = last.groupby(group, sort=False).agg(
        seeds=("seed", "nunique"),
        epoch=("epoch", "max"),
        step=("step", "max"),
        acc=("acc", "mean"),
        acc_sd=("acc", "std"),
        ece=("ece", "mean"),
        ece_sd=("ece", "std"),
        nll=("nll", "mean"),
        nll_sd=("nll", "std"),
        pruned_fraction=("pruned_fraction", "mean"),
        pruned_fraction_sd=("pruned_fraction", "std"),
    )
    speed = _speed_rows(metrics).groupby(group, sort=False)["steps_per_s"].mean().rename("steps_per_s")
    out = agg.join(speed).reset_index()
    return _sorted(out, group)


def _fmt(x: float, digits: int = 4) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _claim_accuracy(scope: pd.DataFrame, tolerance: float) -> tuple[str, str]:
    scope = scope[scope["method"].isin(PAPER_METHODS)]  # the paper's claim is about its four methods
    if len(scope) < 2:
        return NA, f"only {len(scope)} method(s) in the grid"
    spread = scope["acc"].max() - scope["acc"].min()
    accs = ", ".join(f"{m} {_fmt(a)}" for m, a in zip(scope["method"], scope["acc"]))
    verdict = HOLDS if spread <= tolerance else FAILS
    return verdict, f"max - min = {100 * spread:.2f} points (tolerance {100 * tolerance:g}); acc: {accs}"


def _claim_calibration(scope: pd.DataFrame) -> tuple[str, str]:
    methods = set(scope["method"])
    if not {"bmr_ss", "tiered_ff"} <= methods:
        return NA, f"needs bmr_ss and tiered_ff; the grid has {sorted(methods)}"
    scope = scope[scope["method"].isin(PAPER_METHODS)]  # the paper's comparison: its four methods
    verdicts, parts = [], []
    for column in ("ece", "nll"):
        ranked = scope.sort_values(column, kind="stable")
        order = list(ranked["method"])
        verdicts.append(order[:2] == ["bmr_ss", "tiered_ff"])
        parts.append(f"{column.upper()}: " + " < ".join(f"{m} {_fmt(v)}" for m, v in zip(order, ranked[column])))
    return (HOLDS if all(verdicts) else FAILS), "; ".join(parts)


def _claim_pruning(scope: pd.DataFrame, dataset: str, arch: str, threshold: float) -> tuple[str, str]:
    row = scope[scope["method"] == "bmr_ss"]
    if row.empty:
        return NA, "no bmr_ss in the grid"
    fraction = float(row["pruned_fraction"].iloc[0])
    if (dataset, arch) == PRUNING_EXCEPTION:
        verdict = HOLDS if fraction < threshold else FAILS
        return verdict, f"pruned {100 * fraction:.1f} % (the exception: expected below {100 * threshold:g} %)"
    verdict = HOLDS if fraction >= threshold else FAILS
    return verdict, f"pruned {100 * fraction:.1f} % (threshold {100 * threshold:g} %)"


def _speed(bmr: float, tiered: float, source: str) -> tuple[str, str, float]:
    if not (np.isfinite(bmr) and np.isfinite(tiered) and tiered > 0):
        return NA, f"steps/s not finite (bmr_ss {bmr}, tiered_ff {tiered})", float("nan")
    gain = bmr / tiered - 1.0
    verdict = HOLDS if gain > 0 else FAILS
    return verdict, f"bmr_ss {bmr:.1f} vs tiered_ff {tiered:.1f} steps/s ({source}): {100 * gain:+.1f} %", gain


def _claim_speed(scope: pd.DataFrame) -> tuple[str, str, float]:
    rates = dict(zip(scope["method"], scope["steps_per_s"]))
    if "bmr_ss" not in rates or "tiered_ff" not in rates:
        return NA, "needs bmr_ss and tiered_ff", float("nan")
    return _speed(rates["bmr_ss"], rates["tiered_ff"], "training jobs, which may have shared the machine")


def _claim_speed_timed(timing: pd.DataFrame, dataset: str, arch: str) -> tuple[str, str, float]:
    sel = timing[(timing["dataset"] == dataset) & (timing["arch"] == arch)]
    rates = sel.groupby("method")["steps_per_s"].agg(["mean", "count"])
    if not {"bmr_ss", "tiered_ff"} <= set(rates.index):
        return NA, "no timing of both bmr_ss and tiered_ff for this pair", float("nan")
    device = ", ".join(sorted(set(sel["device"].astype(str)))) if "device" in sel else "?"
    runs = int(rates.loc[["bmr_ss", "tiered_ff"], "count"].min())
    source = f"timed alone on {device}, mean of {runs} run(s) each"
    return _speed(float(rates.loc["bmr_ss", "mean"]), float(rates.loc["tiered_ff", "mean"]), source)


def _claim_baselines(scope: pd.DataFrame) -> tuple[str, str]:
    nll = dict(zip(scope["method"], scope["nll"]))
    baselines = [m for m in BASELINE_METHODS if m in nll]
    if "bmr_ss" not in nll or not baselines:
        return NA, f"needs bmr_ss and {' or '.join(BASELINE_METHODS)}; the grid has {sorted(nll)}"
    lower = all(nll["bmr_ss"] < nll[m] for m in baselines)
    evidence = f"NLL: bmr_ss {_fmt(nll['bmr_ss'])}; " + ", ".join(f"{m} {_fmt(nll[m])}" for m in baselines)
    if "pruned_fraction" in scope:
        pruned = dict(zip(scope["method"], scope["pruned_fraction"]))
        evidence += "; pruned: " + ", ".join(f"{m} {100 * pruned[m]:.1f} %" for m in ["bmr_ss", *baselines])
    return (HOLDS if lower else FAILS), evidence


def _claim_structured(inference: pd.DataFrame, dataset: str, arch: str) -> tuple[str, str, str]:
    """Claim 6 in one scope from the measured inference table: (verdict, evidence, seeds). It holds in a seed when
    one structured method that prunes reaches the network's speed-up (and, for the MLP, the accuracy margin) in no
    more training steps than BMR-S&S (not asked when the table has no BMR-S&S rows or no steps)."""
    target = STRUCTURED_SPEEDUP.get(arch)
    if target is None:
        return NA, f"the claim is about {', '.join(NETWORKS[a].label for a in STRUCTURED_SPEEDUP)}", ""
    sel = inference[(inference["dataset"] == dataset) & (inference["arch"] == arch)
                    & (inference["batch"] == STRUCTURED_BATCH)]
    dense = sel[(sel["method"] == "flat_ff") & (sel["format"] == "dense")].set_index("seed")
    structured = [m for m in dict.fromkeys(sel["method"]) if m in METHODS and METHODS[m].structured
                  and METHODS[m].prunes]
    small = sel[sel["method"].isin(structured) & (sel["format"] == "compact")]
    seeds = sorted(set(dense.index) & set(small["seed"]))
    if not seeds:
        return NA, f"no flat_ff dense and structured BMR compact rows at batch {STRUCTURED_BATCH}", ""
    steps_ref = sel[sel["method"] == "bmr_ss"].groupby("seed")["train_steps"].max() if "train_steps" in sel else {}
    ok, parts = [], []
    for seed in seeds:
        d = dense.loc[seed]
        best = False
        for row in small[small["seed"] == seed].itertuples():
            speedup, drop = float(row.speedup), float(d["acc"] - row.acc)
            steps = float(getattr(row, "train_steps", math.nan))
            ref = float(steps_ref.get(seed, math.nan)) if len(steps_ref) else math.nan
            fast = speedup >= target
            accurate = drop <= STRUCTURED_ACC_MARGIN or arch not in STRUCTURED_ACC_ARCHS
            cheap = not (steps > ref)  # unknown steps (NaN) do not fail it
            best = best or (fast and accurate and cheap)
            same = getattr(row, "speedup_same_runtime", math.nan)
            parts.append(f"seed {seed} {row.method}: {speedup:.2f}x ({float(row.ms_per_batch):.3g} vs "
                         f"{float(d['ms_per_batch']):.3g} ms per batch; {float(same):.2f}x in the same runtime), "
                         f"acc {100 * row.acc:.2f} vs {100 * d['acc']:.2f} %, widths {row.widths}, "
                         f"{float(row.mac_ratio):.1f}x fewer multiply-adds, {steps:.0f} steps (BMR-S&S {ref:.0f})")
        ok.append(best)
    device = ", ".join(sorted(set(sel["device"].astype(str)))) if "device" in sel else "?"
    need = f"{target:g}x" + (f" within {100 * STRUCTURED_ACC_MARGIN:g} point" if arch in STRUCTURED_ACC_ARCHS
                             else "")
    evidence = (f"needs {need}; measured on {device}, batch {STRUCTURED_BATCH}, posterior means: "
                + "; ".join(parts))
    return (HOLDS if all(ok) else FAILS), evidence, f"{sum(ok)} of {len(ok)}"


def _judge(claim_id: int, scope: pd.DataFrame, dataset: str, arch: str, acc_tolerance: float,
           pruned_threshold: float) -> tuple[str, str]:
    if claim_id == 1:
        return _claim_accuracy(scope, acc_tolerance)
    if claim_id == 2:
        return _claim_calibration(scope)
    if claim_id == 3:
        return _claim_pruning(scope, dataset, arch, pruned_threshold)
    if claim_id == 4:
        return _claim_speed(scope)[:2]
    return _claim_baselines(scope)


def _last_epochs(metrics: pd.DataFrame) -> pd.DataFrame:
    """Each (dataset, arch, method, seed)'s row of its last epoch, with the method's mean training speed."""
    last = metrics.loc[metrics.groupby(["dataset", "arch", "method", "seed"])["epoch"].idxmax()].copy()
    speed = _speed_rows(metrics).groupby(["dataset", "arch", "method", "seed"])["steps_per_s"].mean()
    last["steps_per_s"] = [speed.get(k, np.nan) for k in zip(last["dataset"], last["arch"], last["method"],
                                                              last["seed"])]
    return last


def paper_claims(
    metrics: pd.DataFrame,
    *,
    acc_tolerance: float = 0.05,
    pruned_threshold: float = 0.5,
    timing: pd.DataFrame | None = None,
    inference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Judge the paper's Results claims (and one beyond it) on the final metrics, per seed.

    Each claim is judged in every (dataset, arch) scope once per seed, on that seed's final metrics; the column
    ``seeds`` says in how many of the seeds where it applies it holds ("2 of 3"), and the verdict is "holds" only
    when it holds in all of them. The evidence gives the numbers of the mean over seeds (:func:`final_metrics`).
    Claim 4 (speed) is judged from ``timing`` when given: rows ``dataset, arch, method, steps_per_s`` (and
    ``device``) of :mod:`bmrsparse.bench` runs that had the machine to themselves; the runs of one method are
    averaged and ``seeds`` reads "timed alone". Without ``timing`` it falls back to the training jobs' speeds.
    Claim 5 (beyond the paper) applies only when ``magnitude_ss`` or ``snr_ss`` are in the metrics.

    Args:
      metrics: the tidy metrics table (:func:`collect_metrics`).
      acc_tolerance: claim 1 holds in a scope when max - min of the methods' final accuracies is at most this
        (0.05 = 5 percentage points).
      pruned_threshold: claim 3 holds when BMR-S&S's final pruned fraction is at least this, and for the
        exception (LeNet-5 on FashionMNIST) when it is below.
      timing: speeds measured alone, for claim 4 (None: from the metrics).
      inference: the measured inference table (:func:`bmrsparse.inference.inference_table`), for claim 6 (None:
        the table has no rows of claim 6).

    Returns:
      A DataFrame with columns claim_id, claim, scope, verdict ("holds", "does not hold" or "not applicable"),
      seeds and evidence. Each claim ends with a row of scope "all": it holds when it holds in every scope where it
      applies; its ``seeds`` counts the seeds in which it holds in every such scope.
    """
    last = _last_epochs(metrics)
    mean = final_metrics(metrics)
    rows: list[dict] = []
    for claim_id, claim in _CLAIMS.items():
        if claim_id == 6 and inference is None:  # measured inference: only in grids that have the table
            continue
        scope_verdicts, gains = [], []
        seed_ok: dict[int, bool] = {}  # per seed: holds in every scope where it applies
        for (dataset, arch), scope in mean.groupby(["dataset", "arch"], sort=False):
            if claim_id == 6:
                verdict, evidence, seeds = _claim_structured(inference, dataset, arch)
            elif claim_id == 4 and timing is not None:
                verdict, evidence, gain = _claim_speed_timed(timing, dataset, arch)
                seeds = "timed alone" if verdict != NA else ""
            else:
                verdict, evidence = _judge(claim_id, scope, dataset, arch, acc_tolerance, pruned_threshold)
                if claim_id == 4:
                    gain = _claim_speed(scope)[2]
                per_seed = {}
                here = last[(last["dataset"] == dataset) & (last["arch"] == arch)]
                for seed, seed_scope in here.groupby("seed", sort=True):
                    v, _ = _judge(claim_id, seed_scope, dataset, arch, acc_tolerance, pruned_threshold)
                    if v != NA:
                        per_seed[int(seed)] = v == HOLDS
                        seed_ok[int(seed)] = seed_ok.get(int(seed), True) and v == HOLDS
                if per_seed:
                    n_hold = sum(per_seed.values())
                    seeds = f"{n_hold} of {len(per_seed)}"
                    verdict = HOLDS if n_hold == len(per_seed) else FAILS
                    if len(per_seed) > 1:
                        evidence = f"mean over seeds: {evidence}"
                        failing = [str(s) for s, ok in per_seed.items() if not ok]
                        if failing:
                            evidence += f"; fails in seed(s) {', '.join(failing)}"
                else:
                    seeds, verdict = "", NA
            if claim_id == 4 and verdict != NA:
                gains.append(gain)
            scope_verdicts.append(verdict)
            rows.append(dict(claim_id=claim_id, claim=claim, scope=f"{dataset} / {arch}", verdict=verdict,
                             seeds=seeds, evidence=evidence))
        applicable = [v for v in scope_verdicts if v != NA]
        n_hold = sum(v == HOLDS for v in applicable)
        if not applicable:
            verdict, evidence, seeds = NA, "no (dataset, arch) pair has the data", ""
        else:
            verdict = HOLDS if n_hold == len(applicable) else FAILS
            evidence = f"holds in {n_hold} of {len(applicable)} (dataset, arch) pairs"
            if claim_id == 4:
                evidence += f"; mean speed-up {100 * float(np.mean(gains)):+.1f} %"
            seeds = "timed alone" if claim_id == 4 and timing is not None else (
                f"{sum(seed_ok.values())} of {len(seed_ok)}" if seed_ok else "")
        rows.append(dict(claim_id=claim_id, claim=claim, scope="all", verdict=verdict, seeds=seeds,
                         evidence=evidence))
    return pd.DataFrame(rows, columns=["claim_id", "claim", "scope", "verdict", "seeds", "evidence"])


def describe_settings(config: Mapping, configfiles: Sequence[str] = ()) -> str:
    """One line naming the settings that produced a run's tables: config files, seeds, schedule, batch size,
    learning rates and (when the config sets them) the ELBO estimator, BMR iterations and keep rule and the guides'
    initialisation."""
    parts = []
    if configfiles:
        parts.append("config files " + ", ".join(str(f) for f in configfiles) + " (later ones override)")
    if "seeds" in config:
        parts.append("seeds " + ", ".join(str(s) for s in config["seeds"]))
    schedule = config.get("schedule", {})
    if schedule:
        parts.append(f"schedule: warm-up {schedule.get('warmup_steps')} steps, then {schedule.get('num_epochs')} "
                     f"epochs of {schedule.get('epoch_steps')} steps")
    training = config.get("training", {})
    if "batch_size" in training:
        parts.append(f"batch size {training['batch_size']}")
    rates = training.get("learning_rate")
    if isinstance(rates, Mapping):
        grid = config.get("methods") or list(rates)
        parts.append("AdaBelief learning rates " + ", ".join(f"{m} {r:g}" for m, r in rates.items() if m in grid))
    elif rates is not None:
        parts.append(f"AdaBelief learning rate {rates}")
    for key, name in (("elbo", "ELBO"), ("bmr_iters", "BMR fixed-point iterations"), ("bmr_keep", "BMR keep rule"),
                      ("init_radius", "guide init radius"), ("init_scale", "guide init scale")):
        value = training.get(key)
        if isinstance(value, Mapping):
            value = ", ".join(f"{m} {v}" for m, v in value.items()) or None
        if value is not None:
            parts.append(f"{name} {value}")
    evaluation = config.get("evaluation", {})
    if evaluation:
        subset = evaluation.get("test_subset")
        images = f"the first {subset}" if subset else "all"
        parts.append(f"{evaluation.get('num_samples')} predictive samples on {images} test images")
    return "; ".join(parts)


def to_markdown(frame: pd.DataFrame, *, title: str | None = None, note: str | None = None, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (floats with ``digits`` significant digits, NaN empty);
    ``note`` is a paragraph between the title and the table (e.g. the settings)."""

    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "" if math.isnan(value) else f"{value:.{digits}g}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    lines = ([f"# {title}", ""] if title else []) + ([note, ""] if note else []) + [header, rule, *body]
    return "\n".join(lines) + "\n"


def write_table(
    frame: pd.DataFrame,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike | None = None,
    *,
    title: str | None = None,
    note: str | None = None,
) -> None:
    """Write ``frame`` as CSV (and Markdown when ``md_path`` is given, with ``note`` under the title), each file
    atomically."""
    atomic_write_text(csv_path, frame.to_csv(index=False))
    if md_path is not None:
        atomic_write_text(md_path, to_markdown(frame, title=title, note=note))
