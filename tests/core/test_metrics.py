"""Tests of bmrsparse.metrics against small hand-computed examples (the arithmetic is written out in comments)."""

from __future__ import annotations

import numpy as np
import pytest

from bmrsparse.metrics import (
    accuracy,
    at_chance,
    ece_equal_mass,
    ece_equal_width,
    evaluate_probs,
    nll,
    pruned_fraction,
)


def _rows(confidences, correct):
    """Predictive probabilities over 3 classes whose top class is 0 with probability ``c``; label 0 if correct, else 1.

    ``[c, (1-c)/2, (1-c)/2]`` has its maximum at class 0 for any c >= 1/2, so the confidence is exactly c.
    """
    c = np.asarray(confidences, np.float64)
    probs = np.stack([c, (1 - c) / 2, (1 - c) / 2], axis=1)
    y = np.where(np.asarray(correct, bool), 0, 1)
    return probs, y


# six predictions (confidence, correct?) used by several tests
CONF6 = [0.55, 0.58, 0.70, 0.95, 0.97, 1.00]
HIT6 = [False, True, True, True, False, True]


# ---------------------------------------------------------------------------------------------------------------------
# accuracy and NLL
# ---------------------------------------------------------------------------------------------------------------------


def test_at_chance_is_below_twice_one_over_the_classes():
    assert at_chance(0.10, 10) and at_chance(0.199, 10) and not at_chance(0.2, 10) and not at_chance(0.86, 10)
    assert at_chance(0.015, 100) and not at_chance(0.10, 100)
    assert not at_chance(float("nan"), 10)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        at_chance(0.1, 1)


def test_accuracy():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]])
    y = np.array([0, 2, 2, 1])
    # argmax = [0, 1, 2, 1]; hits = [1, 0, 1, 1] -> 3/4
    assert accuracy(probs, y) == pytest.approx(0.75)
    probs6, y6 = _rows(CONF6, HIT6)
    assert accuracy(probs6, y6) == pytest.approx(4 / 6)


def test_nll():
    probs = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 1.0, 0.0], [0.125, 0.375, 0.5]])
    y = np.array([0, 2, 1, 0])
    # p(y_i) = 1/2, 1/4, 1, 1/8 -> -ln p = ln 2, 2 ln 2, 0, 3 ln 2 -> mean = 6 ln 2 / 4 = 1.5 ln 2 = 1.03972...
    assert nll(probs, y) == pytest.approx(1.5 * np.log(2.0), rel=1e-12)
    assert isinstance(nll(probs, y), float)


def test_nll_of_a_zero_probability_is_finite():
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    y = np.array([1, 0])
    # p(y_1) = 0 is clamped at the smallest normal float64 (-ln tiny = 708.4): large, but finite
    value = nll(probs, y)
    assert np.isfinite(value) and value > 300


# ---------------------------------------------------------------------------------------------------------------------
# ECE with equal-mass (quantile) bins
# ---------------------------------------------------------------------------------------------------------------------


def test_ece_equal_mass_20_bins_of_two():
    # 40 predictions in 20 pairs; pair b (b = 0..19) has confidences 0.50 + 0.02 b and 0.51 + 0.02 b, both right for
    # even b, the lower one wrong for odd b. Sorted by confidence, the 20 equal-mass bins are exactly these pairs:
    #   even b: acc 1,   conf 0.505 + 0.02 b, |gap| = 0.495 - 0.02 b; sum over b = 0, 2, .., 18: 4.95 - 0.02 * 90 = 3.15
    #   odd b:  acc 1/2, conf 0.505 + 0.02 b, |gap| = 0.005 + 0.02 b; sum over b = 1, 3, .., 19: 0.05 + 0.02 * 100
    #           = 2.05
    #   each bin weighs 2/40 = 1/20 -> ECE = (3.15 + 2.05) / 20 = 0.26
    b = np.arange(20)
    conf = np.concatenate([0.50 + 0.02 * b, 0.51 + 0.02 * b])
    hit = np.concatenate([b % 2 == 0, np.ones(20, bool)])
    perm = np.random.default_rng(0).permutation(40)  # input order must not matter
    probs, y = _rows(conf[perm], hit[perm])
    assert ece_equal_mass(probs, y) == pytest.approx(0.26, abs=1e-12)  # 20 bins is the default
    assert ece_equal_mass(probs, y, 20) == pytest.approx(0.26, abs=1e-12)
    # one bin: acc = 30/40 = 0.75, mean conf = 0.505 + 0.02 * 9.5 = 0.695 -> ECE = 0.055
    assert ece_equal_mass(probs, y, 1) == pytest.approx(0.055, abs=1e-12)


def test_ece_equal_mass_hand_examples():
    probs, y = _rows(CONF6, HIT6)
    # 3 equal-mass bins of the six, sorted by confidence:
    #   {0.55 wrong, 0.58 right}: acc 1/2, conf 0.565 -> 0.065
    #   {0.70 right, 0.95 right}: acc 1,   conf 0.825 -> 0.175
    #   {0.97 wrong, 1.00 right}: acc 1/2, conf 0.985 -> 0.485
    #   ECE = (2/6)(0.065 + 0.175 + 0.485) = 0.725 / 3 = 0.241666...
    assert ece_equal_mass(probs, y, 3) == pytest.approx(0.725 / 3, abs=1e-12)
    # 2 bins: {0.55 w, 0.58 r, 0.70 r}: acc 2/3, conf 1.83/3 = 0.61 -> 0.05666...
    #         {0.95 r, 0.97 w, 1.00 r}: acc 2/3, conf 2.92/3 = 0.97333... -> 0.30666...
    #   ECE = (3/6)(0.056666 + 0.306666) = (0.17 + 0.92) / 6 = 1.09 / 6 = 0.181666...
    assert ece_equal_mass(probs, y, 2) == pytest.approx(1.09 / 6, abs=1e-12)
    # 20 bins for 6 predictions: one prediction per non-empty bin, ECE = mean |hit - conf|
    #   = (0.55 + 0.42 + 0.30 + 0.05 + 0.97 + 0.00) / 6 = 2.29 / 6
    assert ece_equal_mass(probs, y, 20) == pytest.approx(2.29 / 6, abs=1e-12)
    # 5 predictions in 2 bins: sizes 3 and 2 (as equal as possible)
    #   {0.55 w, 0.58 r, 0.70 r}: acc 2/3, conf 0.61 -> 0.056666..., weight 3/5
    #   {0.95 r, 0.97 w}:         acc 1/2, conf 0.96 -> 0.46,        weight 2/5
    #   ECE = 0.034 + 0.184 = 0.218
    assert ece_equal_mass(probs[:5], y[:5], 2) == pytest.approx(0.218, abs=1e-12)


def test_ece_is_zero_when_calibrated():
    # 4 predictions with confidences averaging 0.75, all in one bin:
    # acc = 3/4, conf = mean(0.7499, 0.75, 0.7501, 0.75) = 0.75 -> ECE = 0
    probs, y = _rows([0.7499, 0.75, 0.7501, 0.75], [True, True, False, True])
    assert ece_equal_mass(probs, y, 1) == pytest.approx(0.0, abs=1e-12)
    # equal-width: all four in (0.7333, 0.8] -> the same single bin
    assert ece_equal_width(probs, y, 15) == pytest.approx(0.0, abs=1e-12)


def test_ece_equal_mass_puts_tied_confidences_in_one_bin():
    # 4 predictions all at confidence 0.75, 3 right: perfectly calibrated. Binning by value puts all four in one
    # bin whatever num_bins is: acc = conf = 0.75 -> ECE = 0. Splitting them into 4 bins of one gives
    # (3 * 0.25 + 0.75) / 4 = 0.375 instead.
    probs, y = _rows([0.75] * 4, [True, True, False, True])
    assert ece_equal_mass(probs, y, 20) == pytest.approx(0.0, abs=1e-12)
    # and the value must not depend on the order of the test set: 8 predictions, ties at 0.9 across 2 bins
    conf = [0.6, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    hit = [True, False, True, True, True, False, False, True]
    values = set()
    for seed in range(6):
        perm = np.random.default_rng(seed).permutation(8)
        probs, y = _rows(np.array(conf)[perm], np.array(hit)[perm])
        values.add(round(ece_equal_mass(probs, y, 2), 12))
    assert len(values) == 1, values


# ---------------------------------------------------------------------------------------------------------------------
# ECE with equal-width bins
# ---------------------------------------------------------------------------------------------------------------------


def test_ece_equal_width_15_bins():
    probs, y = _rows(CONF6, HIT6)
    # 15 bins (b/15, (b+1)/15]; edges near the data: 8/15 = 0.533, 9/15 = 0.6, 10/15 = 0.667, 11/15 = 0.733,
    # 14/15 = 0.933
    #   bin 8  (0.533, 0.6]:  0.55 wrong, 0.58 right -> acc 1/2, conf 0.565,        |gap| 0.065,   weight 2/6
    #   bin 10 (0.667, 0.733]: 0.70 right            -> acc 1,   conf 0.70,         |gap| 0.30,    weight 1/6
    #   bin 14 (0.933, 1]:    0.95 r, 0.97 w, 1.00 r -> acc 2/3, conf 2.92/3,       |gap| 0.92/3,  weight 3/6
    #   ECE = (2 * 0.065 + 0.30 + 0.92) / 6 = 1.35 / 6 = 0.225
    assert ece_equal_width(probs, y) == pytest.approx(0.225, abs=1e-12)  # 15 bins is the default
    assert ece_equal_width(probs, y, 15) == pytest.approx(0.225, abs=1e-12)


def test_ece_equal_width_bins_are_closed_on_the_right():
    # 4 bins (0, .25], (.25, .5], (.5, .75], (.75, 1]: confidences 0.5 and 0.75 are exactly on edges
    probs, y = _rows([0.5, 0.5001, 0.75, 0.7501], [True, False, True, False])
    #   (.25, .5]: 0.5 right               -> |1 - 0.5|      = 0.5,    weight 1/4
    #   (.5, .75]: 0.5001 wrong, 0.75 right -> |0.5 - 0.62505| = 0.12505, weight 2/4
    #   (.75, 1]:  0.7501 wrong             -> |0 - 0.7501|    = 0.7501, weight 1/4
    #   ECE = (0.5 + 2 * 0.12505 + 0.7501) / 4 = 1.5002 / 4 = 0.37505
    assert ece_equal_width(probs, y, 4) == pytest.approx(0.37505, abs=1e-12)
    # (left-closed bins would give {0.5, 0.5001}, {0.75, 0.7501}: (0.00005 + 0.12505) / 2 = 0.06255 instead)


def test_ece_binnings_differ():
    # the same predictions, different binnings: equal-mass 20 (one per bin) 2.29/6, equal-width 15 1.35/6
    probs, y = _rows(CONF6, HIT6)
    assert ece_equal_mass(probs, y, 20) != pytest.approx(ece_equal_width(probs, y, 15))


def test_evaluate_probs():
    probs, y = _rows(CONF6, HIT6)
    out = evaluate_probs(probs, y)
    assert set(out) == {"acc", "ece", "ece_width15", "nll"}
    assert out["acc"] == pytest.approx(4 / 6)
    assert out["ece"] == pytest.approx(2.29 / 6, abs=1e-12)  # 20 equal-mass bins
    assert out["ece_width15"] == pytest.approx(0.225, abs=1e-12)  # 15 equal-width bins
    # p(y): hits have p = c; misses have label 1 with p = (1 - c)/2: 0.225 for 0.55 and 0.015 for 0.97
    p_true = np.array([0.225, 0.58, 0.70, 0.95, 0.015, 1.00])
    assert out["nll"] == pytest.approx(-np.mean(np.log(p_true)), rel=1e-12)
    assert all(isinstance(v, float) for v in out.values())


# ---------------------------------------------------------------------------------------------------------------------
# pruned fraction
# ---------------------------------------------------------------------------------------------------------------------


def _mlp_masks():
    """Masks of a 3 -> 4 -> 3 -> 2 MLP (Flax layout: kernel [in, out], bias [out]); all kept."""
    return {
        "h1": {"kernel": np.ones((3, 4), bool), "bias": np.ones(4, bool)},
        "h2": {"kernel": np.ones((4, 3), bool), "bias": np.ones(3, bool)},
        "head": {"kernel": np.ones((3, 2), bool), "bias": np.ones(2, bool)},
    }


ORDER = ["h1", "h2", "head"]
TOTAL = 3 * 4 + 4 + 4 * 3 + 3 + 3 * 2 + 2  # = 39 weights, biases and head included


def test_pruned_fraction_nothing_pruned():
    assert pruned_fraction(_mlp_masks(), ORDER, "head") == 0.0


def test_pruned_fraction_hand_example():
    m = _mlp_masks()
    # h1: hidden unit 0 loses every incoming weight (kernel[:, 0], 3 entries, and bias[0]), plus kernel[1, 2]: 5 pruned
    m["h1"]["kernel"][:, 0] = False
    m["h1"]["bias"][0] = False
    m["h1"]["kernel"][1, 2] = False
    # h2: unit 1 fully pruned (kernel[:, 1], 4 entries, + bias[1]) = 5; unit 2 loses its 4 kernel entries but keeps its
    # bias, so it is still alive (it outputs a constant): 4 more -> 9 pruned in h2
    m["h2"]["kernel"][:, 1] = False
    m["h2"]["bias"][1] = False
    m["h2"]["kernel"][:, 2] = False
    # head: never pruned, but its input weights from the dead unit 1 of h2 count as pruned: 1 row x 2 outputs = 2.
    # (the dead unit 0 of h1 does not make h2's weights from it count: the rule is for the head's inputs only, and
    # those weights are all still kept here.)
    # total pruned = 5 + 9 + 2 = 16; denominator = all 39 weights incl. the head -> 16/39
    assert pruned_fraction(m, ORDER, "head") == pytest.approx(16 / TOTAL, abs=1e-15)


def test_pruned_fraction_whole_hidden_layer_pruned():
    m = _mlp_masks()
    for leaf in m["h2"].values():
        leaf[...] = False
    # h2: 12 + 3 = 15 pruned; all 3 of its units dead -> the head's whole kernel (3 x 2 = 6) counts, its bias does not
    # -> (15 + 6) / 39
    assert pruned_fraction(m, ORDER, "head") == pytest.approx(21 / TOTAL, abs=1e-15)


def test_pruned_fraction_head_preceded_by_a_norm_layer():
    # a LayerNorm before the head (Mixer, ViT): no kernel, so rule (ii) does not apply; its params count in the total
    m = {
        "h1": {"kernel": np.ones((3, 4), bool), "bias": np.ones(4, bool)},
        "norm": {"scale": np.ones(4, bool), "bias": np.ones(4, bool)},
        "head": {"kernel": np.ones((4, 2), bool), "bias": np.ones(2, bool)},
    }
    m["h1"]["kernel"][:, 3] = False
    m["h1"]["bias"][3] = False
    m["norm"]["scale"][0] = False
    # pruned: 3 + 1 in h1, 1 in norm = 5; total = 16 + 8 + 10 = 34
    assert pruned_fraction(m, ["h1", "norm", "head"], "head") == pytest.approx(5 / 34, abs=1e-15)


def test_pruned_fraction_only_counts_the_layer_feeding_the_head():
    m = _mlp_masks()
    # dead unit 1 in h1 (4 pruned) feeds h2, not the head: h2's weights from it are not counted unless pruned
    m["h1"]["kernel"][:, 1] = False
    m["h1"]["bias"][1] = False
    assert pruned_fraction(m, ORDER, "head") == pytest.approx(4 / TOTAL, abs=1e-15)
