"""The figures as the workflow plans and draws them: which rule draws each registered figure
(:mod:`bmrsparse.figures`), what its job reads, and what its drawing function receives beyond its data.

The paper's figures keep rules of their own (their jobs and logs keep these names, :data:`FIGURE_RULES`); every
dataset's performance figure is drawn by rule ``plot_performance``, every other registered figure (a plug-in's) by
rule ``plot_figure``. Fig. 2 also reads the authors' runs when the grid's BMR-S&S is comparable to them
(:mod:`.reference`).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..data import DATASETS
from ..figures import FIGURES
from .config import Config
from .reference import AUTHORS_RUNS, comparable_archs, reference_band

__all__ = ["FIGURES", "FIGURE_RULES", "PERFORMANCE_RULE", "GENERIC_RULE", "figure_rule", "extra_inputs",
           "draw_arguments"]

#: The rule of each of the paper's figures (and of the sparsity-accuracy figure, drawn from the sparsity curves).
FIGURE_RULES = {"fig2": "plot_pruned_fraction", "fig3": "plot_posterior_cdf", "fig4": "plot_first_layer",
                "sparsity_accuracy": "plot_sparsity_accuracy"}
#: The rule of every dataset's performance figure (Fig. 1, S1, S2 and a plug-in dataset's).
PERFORMANCE_RULE = "plot_performance"
#: The rule of every other registered figure.
GENERIC_RULE = "plot_figure"
#: Fig. 2: the figure that draws the authors' range behind its lines when the run is comparable to it.
REFERENCE_FIGURE = "fig2"


def figure_rule(name: str) -> str:
    """The rule that draws figure ``name``."""
    if name in FIGURE_RULES:
        return FIGURE_RULES[name]
    if name in {d.figure for d in DATASETS.values()}:
        return PERFORMANCE_RULE
    return GENERIC_RULE


def extra_inputs(name: str, config: Config) -> dict:
    """Files figure ``name`` reads beyond what its declaration says: the authors' runs for Fig. 2 when a network
    of the grid runs BMR-S&S on their schedule and settings (else no band is drawn)."""
    if name == REFERENCE_FIGURE and comparable_archs(config):
        return {"reference": str(AUTHORS_RUNS)}
    return {}


def draw_arguments(name: str, inputs: Mapping, config: Config) -> dict:
    """Keyword arguments of figure ``name``'s drawing function beyond its data, from its job's ``inputs``."""
    if name == REFERENCE_FIGURE:
        if "reference" not in inputs:
            print("authors' range not drawn: BMR-S&S does not run on the authors' schedule and settings here")
            return {}
        return {"reference": reference_band(config, inputs["reference"])}
    return {}


def figure_inputs(name: str, grid) -> dict:
    """The inputs of figure ``name``'s job in ``grid`` (a :class:`~bmrsparse.workflow.grid.Grid`)."""
    info = FIGURES[name]
    if info.reads == "metrics":
        return {"metrics": grid.metrics, **extra_inputs(name, grid.config)}
    if info.reads == "posteriors":
        return grid.figure_posteriors(name)
    raise ValueError(f"figure {name!r} reads {info.reads!r}, which rule {figure_rule(name)} draws")
