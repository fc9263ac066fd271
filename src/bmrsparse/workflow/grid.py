"""The grid of a run: which methods train, which warm-ups they need, which files each job reads and which targets
the run ends with. ``common.smk`` builds one :class:`Grid` from the validated config; its input functions and the
rules ask it.
"""

from __future__ import annotations

import re
from itertools import product
from typing import ClassVar

from ..compact import compact_networks
from ..methods import METHODS, WARMUP_METHOD
from . import paths
from .config import Config
from .figures import FIGURES, figure_rule
from .jobs import SPEED_METHODS, job_settings, warmup_settings, warmup_tag

__all__ = ["Grid", "NOTHING"]

#: A wildcard constraint that matches nothing (a rule with no job in this grid).
NOTHING = "(?!)"


def _with_references(names) -> list[str]:
    """``names`` and, recursively, the methods whose states they read (trained, though not reported, if not
    listed)."""
    out = list(names)
    for name in out:
        reference = METHODS[name].reference
        if reference is not None and reference not in out:
            out.append(reference)
    return out


class Grid:
    """The jobs a :class:`~bmrsparse.workflow.config.Config` asks for.

    Attributes:
      config: the typed config.
      run_methods: every method trained (the configured ones and the methods they read).
      warmup_of: ``{method: warm-up tag}`` of every trained method that starts from a warm-up.
      warmups: ``{tag: method}``, one warm-up job per tag, data set, network and seed; the method is the first (in
        grid order) that starts from it, whose settings it is trained with.
      subset: the name of a subset run (:func:`bmrsparse.workflow.paths.subset_name`), or None.
      summary: the folder of the run's metrics table, timing, tables and figures (``results``, or
        ``results/subsets/<subset>``; :func:`bmrsparse.workflow.paths.summary_dir`).
      metrics, timing, inference_table: the run's metrics table, claim 4's timing and the measured-inference table,
        in that folder.
    """

    #: The grid the last Snakefile parsed in this process built (what the plan reads after Snakemake's dry run).
    last: ClassVar["Grid | None"] = None

    def __init__(self, config: Config, subset: str | None = None):
        self.config = config
        self.subset = subset
        self.summary = paths.summary_dir(subset)
        self.metrics = paths.metrics_table(self.summary)
        self.timing = paths.timing_table(self.summary)
        self.inference_table = paths.inference_table(self.summary)
        self.run_methods = _with_references(config.methods)
        self.warmup_of = {m: self._warmup_tag(m) for m in self.run_methods if METHODS[m].start == "warmup"}
        self.warmups: dict[str, str] = {}
        for method, tag in self.warmup_of.items():
            self.warmups.setdefault(tag, method)
        Grid.last = self

    # ------------------------------------------------------------------ settings
    def job_settings(self, method: str, arch: str) -> dict:
        """The settings of a training job (:func:`bmrsparse.workflow.jobs.job_settings`)."""
        return job_settings(self.config, method, arch)

    def warmup_settings(self, method: str, arch: str) -> dict:
        """The settings of the warm-up ``method`` starts from."""
        shared = self.job_settings(WARMUP_METHOD, arch)
        return warmup_settings(method, self.job_settings(method, arch), shared)

    def _warmup_tag(self, method: str) -> str:
        # the inherited settings are per method, the same for every network: taken from the first
        return warmup_tag(self.warmup_settings(method, self.config.archs[0]), METHODS[method].warmup_model)

    def warmup_model(self, tag: str) -> str:
        """The method whose model the warm-up ``tag`` trains."""
        return METHODS[self.warmups[tag]].warmup_model

    # ------------------------------------------------------------------ wildcard constraints
    def methods_regex(self, **declared) -> str:
        """The trained methods whose declaration has these values (e.g. ``per_epoch=True``)."""
        names = [m for m in self.run_methods if all(getattr(METHODS[m], k) == v for k, v in declared.items())]
        return "|".join(names) or NOTHING

    def warmups_regex(self) -> str:
        return "|".join(re.escape(tag) for tag in self.warmups) or NOTHING

    def figures_regex(self, rule: str) -> str:
        """The planned figures drawn by ``rule``."""
        names = [name for name in self.figures() if figure_rule(name) == rule]
        return "|".join(re.escape(name) for name in names) or NOTHING

    # ------------------------------------------------------------------ seeds
    def seeds_of(self, seed) -> list:
        """The seeds of a training job: its own, or every seed when they train together (vmap_seeds; the job's
        ``seed`` is then None: its outputs name every seed)."""
        return list(self.config.seeds) if self.config.vmap_seeds else [seed]

    def per_seed(self, path_of_seed, seed):
        """One path (a job of one seed) or the list of every seed's (seeds trained together)."""
        found = [path_of_seed(s) for s in self.seeds_of(seed)]
        return found if self.config.vmap_seeds else found[0]

    # ------------------------------------------------------------------ training inputs
    def check_epoch(self, method: str, epoch) -> int:
        epoch, last = int(epoch), self.config.schedule.num_epochs
        if not 1 <= epoch <= last:
            raise ValueError(f"{METHODS[method].label} epoch {epoch} is outside 1..schedule.num_epochs ({last})")
        return epoch

    def warmup_posterior(self, dataset: str, arch: str, method: str, seed):
        """The warm-up state(s) ``method`` starts from."""
        tag = self.warmup_of[method]
        return self.per_seed(lambda s: f"{paths.warmup_dir(dataset, arch, s, tag)}/posterior.npz", seed)

    def epoch_init(self, dataset: str, arch: str, method: str, seed, epoch):
        """Epoch k of a per-epoch method starts from its epoch k-1 (epoch 1 from its warm-up)."""
        epoch = self.check_epoch(method, epoch)
        if epoch == 1:
            return self.warmup_posterior(dataset, arch, method, seed)
        return self.per_seed(lambda s: f"{paths.epoch_dir(dataset, arch, method, s, epoch - 1)}/posterior.npz", seed)

    def epoch_reference(self, dataset: str, arch: str, method: str, seed, epoch):
        """The declared reference method's state of the same epoch ([] for a method without one)."""
        reference = METHODS[method].reference
        if reference is None:
            return []
        epoch = self.check_epoch(method, epoch)
        return self.per_seed(lambda s: f"{paths.epoch_dir(dataset, arch, reference, s, epoch)}/posterior.npz", seed)

    def final_posterior(self, dataset: str, arch: str, method: str, seed) -> str:
        """The posterior a method ends with (a per-epoch method: the one of its last epoch)."""
        if METHODS[method].per_epoch:
            return f"{paths.epoch_dir(dataset, arch, method, seed, self.config.schedule.num_epochs)}/posterior.npz"
        return f"{paths.train_dir(dataset, arch, method, seed)}/posterior.npz"

    # ------------------------------------------------------------------ metrics
    def stage_metrics(self, dataset: str, arch: str, method: str, seed) -> list[str]:
        """Metrics CSVs of a method's stages in epoch order: its warm-up (its epoch 0) for a method that starts
        from one, then one CSV per epoch (per-epoch methods) or the CSV of its single job."""
        info = METHODS[method]
        files = []
        if info.start == "warmup":
            files.append(f"{paths.warmup_dir(dataset, arch, seed, self.warmup_of[method])}/metrics.csv")
        if info.per_epoch:
            files += [f"{paths.epoch_dir(dataset, arch, method, seed, e)}/metrics.csv"
                      for e in range(1, self.config.schedule.num_epochs + 1)]
        else:
            files.append(f"{paths.train_dir(dataset, arch, method, seed)}/metrics.csv")
        return files

    def metrics_parts(self) -> list[list[str]]:
        """[metrics CSV, method] of every stage, in grid order; a warm-up is epoch 0 of each method started from
        it."""
        c = self.config
        return [[path, method] for dataset, arch, seed in product(c.datasets, c.archs, c.seeds)
                for method in c.methods for path in self.stage_metrics(dataset, arch, method, seed)]

    def metrics_files(self) -> list[str]:
        return list(dict.fromkeys(path for path, _ in self.metrics_parts()))

    # ------------------------------------------------------------------ figures
    def figures(self) -> list[str]:
        """The registered figures that apply to the grid, by name."""
        c = self.config
        return sorted(name for name in FIGURES if FIGURES[name].applies(c.datasets, c.archs, c.methods))

    def figure_panels(self, figure: str) -> list[list[str]]:
        """[arch, method] of every final posterior a "posteriors" figure draws (first seed, its dataset)."""
        return [[arch, method] for arch in FIGURES[figure].panel_archs(self.config.archs)
                for method in self.config.methods]

    def figure_posteriors(self, figure: str) -> dict:
        """The data set and final posteriors a "posteriors" figure reads."""
        dataset = FIGURES[figure].panel_dataset(self.config.datasets)
        posteriors = [self.final_posterior(dataset, a, m, self.config.seeds[0]) for a, m in self.figure_panels(figure)]
        return {"data": paths.data_path(dataset), "posteriors": posteriors}

    def sparsity_curves(self) -> list[str]:
        c = self.config
        return [paths.sparsity_curve(d, a, s) for d, a, s in product(c.datasets, c.archs, c.seeds)]

    # ------------------------------------------------------------------ beyond the paper: measured inference
    def inference_archs(self) -> list[str]:
        """The networks of the grid that have a compact form (bmrsparse.compact)."""
        return [arch for arch in self.config.archs if arch in compact_networks()]

    def inference_methods(self) -> list[str]:
        """Methods in the inference table: the dense reference first, then the grid's methods that prune or are
        structured (Tiered-FF: its units cut by its own scales)."""
        return ["flat_ff"] + [m for m in self.config.methods if METHODS[m].prunes or METHODS[m].structured]

    def compact_methods(self) -> list[str]:
        """The grid's structured methods: their compact networks are exported (rule compact_network) and timed from
        their files."""
        return [m for m in self.config.methods if METHODS[m].structured]

    def has_inference(self) -> bool:
        """The measured-inference table needs Flat-FF, a structured method and a network with a compact form."""
        return "flat_ff" in self.config.methods and bool(self.compact_methods()) and bool(self.inference_archs())

    def inference_grid(self) -> list[list]:
        """[data, {method: final posterior}, {structured method: exported stem}] of every (dataset, arch, seed)."""
        c = self.config
        return [[paths.data_path(d), {m: self.final_posterior(d, a, m, s) for m in self.inference_methods()},
                 {m: paths.compact_stem(d, a, m, s) for m in self.compact_methods()}]
                for d, a, s in product(c.datasets, self.inference_archs(), c.seeds)]

    def inference_inputs(self) -> dict:
        """Rule inference's inputs: every posterior it times and every exported compact network."""
        grid = self.inference_grid()
        return {"data": [paths.data_path(d) for d in self.config.datasets],
                "posteriors": [p for _, states, _ in grid for p in states.values()],
                "compact": [f"{s}.{ext}" for _, _, stems in grid for s in stems.values() for ext in ("npz", "json")]}

    # ------------------------------------------------------------------ targets
    def has_timing(self) -> bool:
        """Claim 4's timing runs when the grid has both methods it compares."""
        return all(m in self.config.methods for m in SPEED_METHODS)

    def final_targets(self) -> list[str]:
        """What a run ends with (rule all): the metrics, the tables, every applicable figure, the inference table,
        in its summary folder."""
        targets = [self.metrics]
        for table in ("final_metrics", "paper_claims", "provenance"):
            targets += paths.table_files(table, self.summary)
        for name in self.figures():
            targets += paths.figure_files(name, self.summary)
        if self.has_inference():
            targets += [self.inference_table, *paths.figure_files("speedup_accuracy", self.summary)]
        return targets
