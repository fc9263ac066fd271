"""Tests of bmrsparse.tables on synthetic tidy metrics."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bmrsparse import tables
from bmrsparse.tables import collect_metrics, final_metrics, paper_claims, read_metrics, to_markdown, write_table

METHODS = ("flat_map", "flat_ff", "tiered_ff", "bmr_ss")
# Final-epoch numbers per method, shaped like the paper's claims (BMR lowest ECE/NLL, Tiered-FF next).
FINAL = {
    "flat_map": dict(acc=0.88, ece=0.06, nll=0.40, pruned_fraction=0.0, steps_per_s=300.0),
    "flat_ff": dict(acc=0.87, ece=0.05, nll=0.38, pruned_fraction=0.0, steps_per_s=200.0),
    "tiered_ff": dict(acc=0.86, ece=0.03, nll=0.36, pruned_fraction=0.0, steps_per_s=100.0),
    "bmr_ss": dict(acc=0.87, ece=0.02, nll=0.35, pruned_fraction=0.8, steps_per_s=115.0),
}


def make_metrics(datasets=("fashion_mnist",), archs=("mlp", "lenet"), methods=METHODS, seeds=(0,), epochs=3,
                 final=FINAL, noise=0.0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for dataset, arch, method, seed in itertools.product(datasets, archs, methods, seeds):
        for epoch in range(epochs + 1):
            f = dict(final[method])
            progress = (epoch + 1) / (epochs + 1)
            row = dict(dataset=dataset, arch=arch, method=method, seed=seed, epoch=epoch, step=100 * (epoch + 1),
                       acc=f["acc"] * progress + noise * rng.normal(), ece=f["ece"] / progress,
                       ece_width15=f["ece"], nll=f["nll"] / progress,
                       pruned_fraction=f["pruned_fraction"] * epoch / max(epochs, 1), seconds=1.0,
                       steps_per_s=f["steps_per_s"])
            if method == "bmr_ss" and epoch == 0:  # the shared warm-up is a Flat-FF stage
                row["steps_per_s"] = final["flat_ff"]["steps_per_s"]
            rows.append(row)
    return pd.DataFrame(rows)


def verdicts(claims: pd.DataFrame, claim_id: int) -> dict[str, str]:
    sel = claims[claims["claim_id"] == claim_id]
    return dict(zip(sel["scope"], sel["verdict"]))


def test_read_metrics_relabels_and_validates(tmp_path):
    frame = make_metrics(methods=("flat_ff",), archs=("mlp",), epochs=0)
    path = tmp_path / "warmup.csv"
    frame.to_csv(path, index=False)
    assert set(read_metrics(path, as_method="bmr_ss")["method"]) == {"bmr_ss"}
    assert set(read_metrics(path)["method"]) == {"flat_ff"}
    frame.drop(columns=["nll"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"lacks the column.*nll"):
        read_metrics(path)


def test_collect_metrics_sorts_and_rejects_duplicates():
    frame = make_metrics()
    shuffled = frame.sample(frac=1.0, random_state=1)
    tidy = collect_metrics([shuffled.iloc[:5], shuffled.iloc[5:]])
    assert list(tidy.columns[:5]) == ["dataset", "arch", "method", "seed", "epoch"]
    assert "ece_width15" in tidy.columns
    assert list(tidy["arch"].drop_duplicates()) == ["mlp", "lenet"]  # the paper's order, not alphabetical
    assert list(tidy["method"].drop_duplicates()) == list(METHODS)
    assert len(tidy) == len(frame)
    with pytest.raises(ValueError, match="more than one row"):
        collect_metrics([frame, frame.iloc[:1]])
    with pytest.raises(ValueError, match="no metrics"):
        collect_metrics([])


def test_final_metrics_takes_last_epoch_and_averages_seeds():
    frame = make_metrics(seeds=(0, 1), noise=0.01)
    final = final_metrics(frame)
    assert len(final) == 2 * len(METHODS)
    assert (final["epoch"] == 3).all() and (final["seeds"] == 2).all()
    sel = frame[(frame.arch == "mlp") & (frame.method == "bmr_ss") & (frame.epoch == 3)]
    row = final[(final.arch == "mlp") & (final.method == "bmr_ss")].iloc[0]
    assert row["acc"] == pytest.approx(sel["acc"].mean())
    assert row["acc_sd"] == pytest.approx(sel["acc"].std())
    # BMR-S&S speed leaves out its epoch 0 (the Flat-FF warm-up).
    assert row["steps_per_s"] == pytest.approx(FINAL["bmr_ss"]["steps_per_s"])


def test_paper_claims_hold_on_paper_like_numbers():
    claims = paper_claims(make_metrics(), acc_tolerance=0.05, pruned_threshold=0.5)
    assert list(claims.columns) == ["claim_id", "claim", "scope", "verdict", "evidence"]
    assert verdicts(claims, 1) == {"fashion_mnist / mlp": "holds", "fashion_mnist / lenet": "holds", "all": "holds"}
    assert verdicts(claims, 2)["all"] == "holds"
    # LeNet-5 on FashionMNIST is the paper's exception: it prunes 80 % here, so that scope does not hold.
    assert verdicts(claims, 3) == {"fashion_mnist / mlp": "holds", "fashion_mnist / lenet": "does not hold",
                                   "all": "does not hold"}
    assert verdicts(claims, 4)["all"] == "holds"
    speed = claims[(claims.claim_id == 4) & (claims.scope == "all")]["evidence"].iloc[0]
    assert "+15.0 %" in speed
    ece = claims[(claims.claim_id == 2) & (claims.scope == "fashion_mnist / mlp")]["evidence"].iloc[0]
    assert ece.startswith("ECE: bmr_ss 0.02 < tiered_ff 0.03")


def test_paper_claims_fail_when_numbers_disagree():
    final = {m: dict(v) for m, v in FINAL.items()}
    final["flat_map"]["acc"] = 0.70  # 17 points below the others
    final["tiered_ff"]["nll"] = 0.30  # beats BMR-S&S on NLL
    final["bmr_ss"]["steps_per_s"] = 90.0  # slower than Tiered-FF
    final["bmr_ss"]["pruned_fraction"] = 0.3
    claims = paper_claims(make_metrics(final=final, archs=("mlp", "lenet")))
    assert verdicts(claims, 1)["fashion_mnist / mlp"] == "does not hold"
    assert verdicts(claims, 2)["fashion_mnist / mlp"] == "does not hold"
    assert verdicts(claims, 3) == {"fashion_mnist / mlp": "does not hold", "fashion_mnist / lenet": "holds",
                                   "all": "does not hold"}
    assert verdicts(claims, 4)["all"] == "does not hold"
    assert "-10.0 %" in claims[(claims.claim_id == 4) & (claims.scope == "all")]["evidence"].iloc[0]


def test_paper_claims_not_applicable_without_the_methods():
    claims = paper_claims(make_metrics(methods=("flat_ff",), archs=("vit",), datasets=("cifar10",)))
    assert set(claims["verdict"]) == {"not applicable"}
    assert len(claims) == 8  # four claims x (one scope + "all")


def test_markdown_and_write_table(tmp_path):
    frame = pd.DataFrame({"a": ["x|y", "z"], "b": [1.234567, float("nan")]})
    text = to_markdown(frame, title="T")
    assert text.splitlines() == ["# T", "", "| a | b |", "|---|---|", "| x\\|y | 1.235 |", "| z |  |"]
    write_table(frame, tmp_path / "t.csv", tmp_path / "t.md", title="T")
    assert pd.read_csv(tmp_path / "t.csv").shape == (2, 2)
    assert (tmp_path / "t.md").read_text() == text
    assert not list(tmp_path.glob(".*tmp*"))


def test_metric_columns_match_run_stage():
    experiment = pytest.importorskip("bmrsparse.experiment")
    assert set(tables.METRIC_COLUMNS) <= set(experiment.METRIC_COLUMNS)
