"""Figures: a registry of declarations, so the workflow plans every figure that applies to the configured grid.

Every figure is declared once as ``FIGURE = Figure(...)`` in a module of this package (the paper's Figs. 2-4 and
the sparsity-accuracy figure) or of another package named by an entry point of the group ``bmrsparse.figures``;
every registered dataset has its performance figure (Fig. 1, S1, S2 for the paper's three). See
:mod:`bmrsparse.figures._registry`. The drawing functions live in :mod:`bmrsparse.plots`.
"""

from ._registry import (
    ENTRY_POINT_GROUP,
    FIGURES,
    READS,
    Figure,
    draw_figure,
    get_figure,
    performance_figure,
    register,
    unregister,
)

__all__ = ["ENTRY_POINT_GROUP", "FIGURES", "READS", "Figure", "draw_figure", "get_figure", "performance_figure",
           "register", "unregister"]

FIGURES.discover(__path__, __name__)
