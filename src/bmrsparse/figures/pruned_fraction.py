"""Fig. 2 of the paper: the fraction of weights BMR-S&S pruned over epochs."""

from ._registry import Figure


_CAPTION = """Fraction of weights pruned by stochastic BMR (BMR-S&S) over epochs (Fig. 2 of the paper): one panel per dataset,
one line per architecture (mean over seeds; the band spans the seeds when there are several). Epoch 0 is the
Flat-FF warm-up, before the first prune. When the run's BMR-S&S has the schedule and settings of the authors'
side-by-side runs (FashionMNIST, 1e4 + 5 x 2e3 steps, learning rate 1e-2: the quick profile), the hatched band behind
a line is the range of the authors' code over its seeds (the figure's log says whether it is drawn, and why not)."""


def authors_reference(config) -> dict:
    """Fig. 2's extra input: the authors' side-by-side runs, when BMR-S&S runs on their schedule and settings for at
    least one configured network (:mod:`bmrsparse.reference`); else nothing, and no band is drawn."""
    from ..reference import AUTHORS_RUNS, AUTHORS_SCHEDULE, schedule_mismatch

    if AUTHORS_SCHEDULE["method"] not in config["methods"]:
        return {}
    comparable = [arch for arch in config["archs"] if not schedule_mismatch(config, arch)]
    return {"reference": str(AUTHORS_RUNS)} if comparable else {}


def draw(metrics, reference=None, config=None):
    """Fig. 2 with the authors' range behind the networks whose run is comparable to it (printed, with the reason
    for the others)."""
    from ..plots import plot_pruned_fraction
    from ..reference import AUTHORS_SCHEDULE, authors_band, read_runs, schedule_mismatch

    if not reference:
        print("authors' range not drawn: BMR-S&S does not run on the authors' schedule and settings here")
        return plot_pruned_fraction(metrics)
    runs = read_runs(reference)
    drawn = []
    for arch in sorted(set(runs["arch"]) & set(config["archs"])):
        why = schedule_mismatch(config, arch)
        print(f"authors' range for {arch}: " + ("drawn" if not why else "not drawn: " + "; ".join(why)))
        if not why:
            drawn.append(arch)
    band = authors_band(runs)
    return plot_pruned_fraction(metrics, {AUTHORS_SCHEDULE["dataset"]: band[band["arch"].isin(drawn)]})


FIGURE = Figure(
    name="fig2",
    draw="bmrsparse.figures.pruned_fraction:draw",
    extra_inputs="bmrsparse.figures.pruned_fraction:authors_reference",
    caption=_CAPTION,
    reads="metrics",
    methods=("bmr_ss",),
    rule="plot_pruned_fraction",
    order=10,
)
