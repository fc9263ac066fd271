"""Sparsity-accuracy curves (bmrsparse.sparsity): the three pruning scores on a hand-made posterior, and the curve
and figure of a briefly trained Flat-FF MLP on real FashionMNIST."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bmrsparse import bmr
from bmrsparse.sparsity import CURVE_COLUMNS, SCORES, keep_scores, prune_masks

# Four prunable weights in two layers and an output layer whose weights score lowest by every measure (it must
# still never be pruned). Each score removes a different weight first:
#   p: mu 0.02, sigma 0.02  -- precise and near zero: BMR's Delta F(lambda=0) = -ln 0.02 - 1/2 = 3.41 is the largest
#   q: mu 0.05, sigma 1     -- posterior = prior in scale: the smallest SNR, 0.05
#   r: mu 0.01, sigma 0.001 -- the smallest |E[w]|, 0.01 (but SNR 10 and Delta F = -43)
#   s: mu 1, sigma 0.05     -- kept by every score
MU = {"a": {"kernel": np.array([[0.02, 0.05]]), "bias": np.array([0.01])},
      "b": {"kernel": np.array([1.0])},
      "head": {"kernel": np.array([0.0, 0.0]), "bias": np.array([0.0])}}
SIGMA = {"a": {"kernel": np.array([[0.02, 1.0]]), "bias": np.array([0.001])},
         "b": {"kernel": np.array([0.05])},
         "head": {"kernel": np.array([1.0, 1.0]), "bias": np.array([1.0])}}
NAMES = {("a", "kernel", 0): "p", ("a", "kernel", 1): "q", ("a", "bias", 0): "r", ("b", "kernel", 0): "s"}
# expected removal order of each score
ORDER = {"bmr": "pqrs", "magnitude": "rpqs", "snr": "qprs"}


def posterior():
    return {layer: {leaf: (MU[layer][leaf], SIGMA[layer][leaf]) for leaf in MU[layer]} for layer in MU}


def removed(masks) -> set[str]:
    out = set()
    for layer, leaves in masks.items():
        for leaf, m in leaves.items():
            for i, keep in enumerate(np.ravel(m)):
                if not keep:
                    out.add(NAMES.get((layer, leaf, i), f"{layer}/{leaf}[{i}]"))
    return out


@pytest.mark.parametrize("score", SCORES)
def test_each_score_removes_the_weights_it_should(score):
    scores = keep_scores(posterior(), MU, score)
    for k in range(5):
        masks = prune_masks(scores, k / 4, frozen=("head",))
        assert removed(masks) == set(ORDER[score][:k]), (score, k)
        assert all(np.all(m) for m in masks["head"].values())
        assert {l: {f: np.shape(m) for f, m in v.items()} for l, v in masks.items()} == \
            {l: {f: np.shape(m) for f, m in v.items()} for l, v in MU.items()}


def test_scores_are_the_documented_quantities():
    """BMR's score is minus Delta F(lambda=0) of bmr.delta_f_zero; magnitude reads E[w], not mu."""
    post = posterior()
    got = keep_scores(post, MU, "bmr")
    np.testing.assert_allclose(got["a"]["kernel"], -np.asarray(bmr.delta_f_zero(*post["a"]["kernel"])), rtol=1e-6)
    np.testing.assert_allclose(keep_scores(post, MU, "snr")["b"]["kernel"], [20.0])
    scaled_b = {**MU, "b": {"kernel": np.array([-0.001])}}  # a layer scale can make s the smallest |E[w]|
    assert removed(prune_masks(keep_scores(post, scaled_b, "magnitude"), 0.25, frozen=("head",))) == {"s"}
    with pytest.raises(ValueError, match="unknown score"):
        keep_scores(post, MU, "random")
    with pytest.raises(ValueError, match="fraction"):
        prune_masks(keep_scores(post, MU, "snr"), 1.5)


def test_ties_still_remove_exactly_the_requested_count():
    flat = {"a": {"kernel": np.zeros((10, 10))}, "head": {"kernel": np.zeros(3)}}
    for fraction in (0.0, 0.33, 0.5, 0.99, 1.0):
        masks = prune_masks(flat, fraction, frozen=("head",))
        assert int(np.sum(~masks["a"]["kernel"])) == round(fraction * 100)
        assert masks["head"]["kernel"].all()


def test_curve_and_figure_of_a_trained_flat_ff_mlp(fmnist_small, tmp_path):
    """Train Flat-FF briefly; its unpruned point reproduces the training's own evaluation (same trainer masks,
    draws and test subset), pruning lowers the accuracy, and the figure draws the curves and the retrained points."""
    from bmrsparse.experiment import run_stage
    from bmrsparse.plots import save_figure
    from bmrsparse.plots import plot_sparsity_accuracy
    from bmrsparse.sparsity import sparsity_curve

    settings = {"net": {"mlp": {"width": 32, "depth": 2}}, "batch_size": 64, "chunk_size": 100,
                "num_eval_samples": 4, "test_subset": 300, "eval_batch_size": 300, "init_radius": 0.5}
    state = tmp_path / "posterior.npz"
    metrics = run_stage(data_path=fmnist_small, dataset="fashion_mnist", arch="mlp", method="flat_ff", seed=3,
                        schedule=[300], first_epoch=0, out_state=state, out_metrics=tmp_path / "metrics.csv",
                        settings=settings, progress=False)
    fractions = (0.0, 0.5, 0.9, 0.99)
    curve = sparsity_curve(state, fmnist_small, fractions=fractions)
    assert list(curve.columns) == list(CURVE_COLUMNS)
    assert len(curve) == len(SCORES) * len(fractions)
    assert set(curve.seed) == {3} and set(curve.arch) == {"mlp"}
    start = curve[curve.fraction == 0.0]
    assert start.acc.nunique() == 1 and start.pruned_fraction.max() == 0.0
    assert start.acc.iloc[0] == pytest.approx(metrics.acc.iloc[0])
    assert start.nll.iloc[0] == pytest.approx(metrics.nll.iloc[0], rel=1e-5)
    assert metrics.acc.iloc[0] > 0.6
    for score, rows in curve.groupby("score"):
        rows = rows.sort_values("fraction")
        assert np.all(np.diff(rows.pruned_fraction.to_numpy()) > 0), score
        # 99 % of the non-output weights gone: a pruned fraction near 0.99 of all weights (the output layer, about
        # 1 % of the weights here, stays) and an accuracy far below the unpruned network's
        assert 0.95 < rows.pruned_fraction.iloc[-1] < 0.99, score
        assert rows.acc.iloc[-1] < metrics.acc.iloc[0] - 0.2, score

    retrained = pd.DataFrame([dict(dataset="fashion_mnist", arch="mlp", method="bmr_ss", seed=3, epoch=e,
                                   acc=0.7, nll=0.8, pruned_fraction=f) for e, f in ((0, 0.0), (2, 0.6))])
    fig = plot_sparsity_accuracy(curve, retrained)
    axes = fig.get_axes()
    assert len(axes) == 2  # ACC and NLL of one (dataset, architecture)
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"BMR-S&S, retrained"} < labels and sum("not retrained" in t for t in labels) == 3
    star = [line for line in axes[0].get_lines() if line.get_marker() == "*"]
    assert [tuple(line.get_xydata()[0]) for line in star] == [(0.6, 0.7)]  # the final epoch, not epoch 0
    save_figure(fig, tmp_path / "s.pdf", tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 10_000
