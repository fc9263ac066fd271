"""The figure registry: what a figure shows, what it reads and how it is drawn, so the workflow plans it.

A figure is declared once, as ``FIGURE = Figure(...)`` in a module of :mod:`bmrsparse.figures` or of another
package named by an entry point of the group ``bmrsparse.figures``; :func:`register` adds one at run time. Every
registered dataset also has its performance figure (ACC, ECE and NLL over epochs,
:func:`bmrsparse.plots.plot_performance`), named by :attr:`bmrsparse.data.DatasetInfo.figure`, without a module of
its own. :data:`FIGURES` maps names to declarations; the workflow draws each one that :meth:`Figure.applies` to the
configured grid.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..data import DATASETS
from ..registry import Registry

__all__ = ["Figure", "FIGURES", "ENTRY_POINT_GROUP", "READS", "register", "unregister", "get_figure", "draw_figure",
           "performance_figure"]

ENTRY_POINT_GROUP = "bmrsparse.figures"
#: What a figure can read: ``"metrics"`` the tidy metrics table (results/metrics/metrics.csv), ``"posteriors"`` the
#: final posteriors of the first seed of one dataset, one per (network, method) panel, as
#: :func:`bmrsparse.experiment.posterior_summaries` summarises them; ``"sparsity"`` the sparsity curves of
#: :mod:`bmrsparse.sparsity` with the metrics table.
READS = ("metrics", "posteriors", "sparsity")
_FIGURE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Figure:
    """Declaration of a figure.

    Attributes:
      name: the file name (``results/figures/<name>.pdf`` and ``.png``) and the ``{figure}`` wildcard.
      caption: its caption in the report (reStructuredText).
      draw: ``draw(data, **draw_args) -> matplotlib.figure.Figure``; ``data`` is what :attr:`reads` names: the
        metrics as a DataFrame, or ``{arch: {method: posterior summary}}``. (A figure module that should load
        without matplotlib, so the workflow plans fast, imports it inside ``draw``.)
      reads: one of :data:`READS`.
      datasets, archs: the datasets / networks it draws (None: every configured one); it applies when the grid has
        at least one of each. A ``"posteriors"`` figure draws the first configured one of ``datasets``.
      methods: methods the grid must have for it to apply.
      draw_args: keyword arguments of ``draw``.
      order: position among the figures (then by name).
    """

    name: str
    caption: str
    draw: Callable = field(compare=False)
    reads: str = "metrics"
    datasets: tuple | None = None
    archs: tuple | None = None
    methods: tuple = ()
    draw_args: dict = field(default_factory=dict, compare=False)
    order: float = 100.0

    def __post_init__(self):
        problems = []
        if not _FIGURE_NAME.match(self.name):
            problems.append(f"name must match {_FIGURE_NAME.pattern}")
        if self.reads not in READS:
            problems.append(f"reads must be one of {READS}")
        if not callable(self.draw):
            problems.append("draw must be a function")
        if problems:
            raise ValueError(f"figure {self.name!r}: " + "; ".join(problems))
        for key in ("datasets", "archs"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(getattr(self, key)))
        object.__setattr__(self, "methods", tuple(self.methods))

    def panel_dataset(self, datasets: Iterable[str]) -> str | None:
        """The dataset a ``"posteriors"`` figure draws from the configured ``datasets`` (None: none applies)."""
        datasets = list(datasets)
        return next((d for d in (self.datasets or datasets) if d in datasets), None)

    def panel_archs(self, archs: Iterable[str]) -> list[str]:
        """The configured networks it draws, in its own order."""
        archs = list(archs)
        return [a for a in (self.archs or archs) if a in archs]

    def applies(self, datasets: Iterable[str], archs: Iterable[str], methods: Iterable[str]) -> bool:
        """Whether the grid (configured datasets, networks, methods) has what the figure draws."""
        methods = set(methods)
        return (self.panel_dataset(datasets) is not None and bool(self.panel_archs(archs))
                and all(m in methods for m in self.methods))

    def drawer(self) -> Callable:
        """The drawing function with :attr:`draw_args` bound."""
        return functools.partial(self.draw, **self.draw_args)


def _draw_performance(metrics, dataset: str):
    """Fig. 1 / S1 / S2 (:func:`bmrsparse.plots.plot_performance`); matplotlib is imported when drawn."""
    from ..plots import plot_performance

    return plot_performance(metrics, dataset)


def performance_figure(dataset: str) -> Figure:
    """The performance figure of a registered dataset (Fig. 1, S1, S2 for the paper's; any dataset has one)."""
    info = DATASETS[dataset]
    where = f" ({info.paper_figure} of the paper)" if info.paper_figure else ""
    caption = (
        f"Classification performance on {info.label}{where}: test accuracy (ACC), expected calibration error (ECE) "
        "and negative log-likelihood (NLL) after every epoch, one row per architecture (columns ACC, ECE, NLL, as "
        "the paper), one line per method (mean over seeds; the band spans the seeds when there are several)."
    )
    return Figure(name=info.figure, caption=caption, draw=_draw_performance, reads="metrics", datasets=(dataset,),
                  draw_args={"dataset": dataset}, order=info.order)


class _Figures(Registry):
    """The declared figures and the performance figure of every registered dataset."""

    def _all(self) -> dict:
        out = {d.figure: performance_figure(d.name) for d in DATASETS.values()}
        out.update(self._items)
        return out

    def __getitem__(self, name: str):
        return self._all()[name]

    def __iter__(self):
        items = self._all()
        return iter(sorted(items, key=lambda n: (items[n].order, n)))

    def __len__(self) -> int:
        return len(self._all())

    def register(self, item, *, replace: bool = False, origin: str = ""):
        """Add ``item``; a name that is a dataset's performance figure is refused too (unless ``replace``)."""
        performance = {d.figure for d in DATASETS.values()}
        if isinstance(item, Figure) and item.name in performance and not replace:
            raise ValueError(f"figure {item.name!r} is the performance figure of a registered dataset"
                             f"{' (' + origin + ')' if origin else ''}")
        return super().register(item, replace=replace, origin=origin)

    def get_or_fail(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown figure {name!r}; registered figures: {', '.join(self)}") from None


FIGURES: Registry = _Figures("figure", Figure, "FIGURE", ENTRY_POINT_GROUP)
register = FIGURES.register
unregister = FIGURES.unregister
get_figure = FIGURES.get_or_fail


def draw_figure(name: str, data, **extra):
    """Draw figure ``name`` from ``data`` (what its :attr:`Figure.reads` names), with ``extra`` keyword arguments
    for its drawing function; a matplotlib Figure."""
    return get_figure(name).drawer()(data, **extra)
