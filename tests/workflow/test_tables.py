"""The workflow's tables (bmrsparse.workflow.tables, .claims) on synthetic tidy metrics."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import FINAL, METHODS, make_metrics

from bmrsparse.io import atomic_write_verified
from bmrsparse.workflow import tables
from bmrsparse.workflow.claims import collapsed, paper_claims
from bmrsparse.workflow.tables import (collect_metrics, describe_settings, final_metrics, read_metrics, to_markdown,
                                       write_table)

def verdicts(claims: pd.DataFrame, claim_id: int) -> dict[str, str]:
    sel = claims[claims["claim_id"] == claim_id]
    return dict(zip(sel["scope"], sel["verdict"]))


def test_read_metrics_relabels_and_validates(tmp_path):
    frame = make_metrics(methods=("flat_ff",), archs=("mlp",), epochs=0)
    path = tmp_path / "warmup.csv"
    atomic_write_verified(path, frame.to_csv(index=False))  # as run_stage writes it, with path.sha256
    assert set(read_metrics(path, as_method="bmr_ss")["method"]) == {"bmr_ss"}
    assert set(read_metrics(path)["method"]) == {"flat_ff"}
    atomic_write_verified(path, frame.drop(columns=["nll"]).to_csv(index=False))
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
    assert list(claims.columns) == ["claim_id", "claim", "scope", "verdict", "seeds", "evidence"]
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
    assert set(claims[claims.claim_id < 5]["seeds"]) == {"1 of 1", "0 of 1"}
    assert verdicts(claims, 5) == {"fashion_mnist / mlp": "not applicable", "fashion_mnist / lenet": "not applicable",
                                   "all": "not applicable"}  # no pruning baselines in this grid


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


def test_paper_claims_judged_per_seed():
    metrics = make_metrics(archs=("mlp",), seeds=(0, 1, 2))
    # In seed 2 Tiered-FF beats BMR-S&S on NLL at the last epoch; the mean over seeds still ranks BMR-S&S first.
    last = (metrics.seed == 2) & (metrics.method == "tiered_ff") & (metrics.epoch == metrics.epoch.max())
    metrics.loc[last, "nll"] = 0.34
    claims = paper_claims(metrics)
    row = claims[(claims.claim_id == 2) & (claims.scope == "fashion_mnist / mlp")].iloc[0]
    assert row["seeds"] == "2 of 3" and row["verdict"] == "does not hold"
    assert row["evidence"].startswith("mean over seeds: ECE") and row["evidence"].endswith("fails in seed(s) 2")
    assert "NLL: bmr_ss 0.35 < tiered_ff 0.3533" in row["evidence"]  # the mean's ranking
    everywhere = claims[(claims.claim_id == 2) & (claims.scope == "all")].iloc[0]
    assert everywhere["seeds"] == "2 of 3" and everywhere["verdict"] == "does not hold"
    row = claims[(claims.claim_id == 1) & (claims.scope == "all")].iloc[0]
    assert row["seeds"] == "3 of 3" and row["verdict"] == "holds"


def test_a_seed_where_a_method_collapsed_is_not_judged_on_claim_2():
    metrics = make_metrics(archs=("mlp",), seeds=(0, 1, 2))
    # seed 1's Tiered-FF predicts at chance (the posterior collapsed): ECE ~0 would rank it first by construction
    last = (metrics.seed == 1) & (metrics.method == "tiered_ff") & (metrics.epoch == metrics.epoch.max())
    metrics.loc[last, ["acc", "ece", "nll"]] = [0.1, 0.001, math.log(10)]
    claims = paper_claims(metrics)
    row = claims[(claims.claim_id == 2) & (claims.scope == "fashion_mnist / mlp")].iloc[0]
    assert row["seeds"] == "2 of 2" and row["verdict"] == "holds"
    assert "seed 1 not judged: tiered_ff collapsed to chance-level predictions (acc tiered_ff 0.1)" in row["evidence"]
    # claim 1 is about the accuracies themselves: the collapsed seed counts, and fails
    row = claims[(claims.claim_id == 1) & (claims.scope == "fashion_mnist / mlp")].iloc[0]
    assert row["seeds"] == "2 of 3" and row["evidence"].endswith("fails in seed(s) 1")
    # CIFAR-100's chance is .01: .1 there is a (poor) network, not a collapse
    assert collapsed(metrics[last].assign(dataset="cifar100")) == []
    assert collapsed(metrics[last]) == ["tiered_ff"]


def test_speed_claim_from_a_timing_taken_alone():
    metrics = make_metrics(archs=("mlp", "lenet"))  # the training jobs' speeds: BMR-S&S 15 % faster
    timing = pd.DataFrame([
        dict(device="cpu", dataset="fashion_mnist", arch="mlp", method="tiered_ff", steps_per_s=100.0),
        dict(device="cpu", dataset="fashion_mnist", arch="mlp", method="bmr_ss", steps_per_s=110.0),
        dict(device="cpu", dataset="fashion_mnist", arch="mlp", method="bmr_ss", steps_per_s=130.0),
        dict(device="cpu", dataset="fashion_mnist", arch="lenet", method="tiered_ff", steps_per_s=100.0),
        dict(device="cpu", dataset="fashion_mnist", arch="lenet", method="bmr_ss", steps_per_s=95.0),
    ])
    claims = paper_claims(metrics, timing=timing)
    sel = claims[claims.claim_id == 4].set_index("scope")
    assert sel.loc["fashion_mnist / mlp", "verdict"] == "holds"
    assert "+20.0 %" in sel.loc["fashion_mnist / mlp", "evidence"]  # mean of the two BMR-S&S runs
    assert "timed alone on cpu" in sel.loc["fashion_mnist / mlp", "evidence"]
    # the paper's claim is a GPU's: a CPU verdict says what both codes measure on a CPU and on the H100
    assert "judged on this CPU, the paper's claim is a GPU's" in sel.loc["fashion_mnist / mlp", "evidence"]
    on_gpu = paper_claims(metrics, timing=timing.assign(device="gpu:NVIDIA H100 80GB HBM3"))
    assert "judged on this CPU" not in " ".join(on_gpu.loc[on_gpu.claim_id == 4, "evidence"])
    assert sel.loc["fashion_mnist / lenet", "verdict"] == "does not hold"  # the metrics say +15 %, ignored
    assert sel.loc["all", "verdict"] == "does not hold" and set(sel["seeds"]) == {"timed alone"}
    claims = paper_claims(metrics, timing=timing[timing.arch == "mlp"])
    assert verdicts(claims, 4) == {"fashion_mnist / mlp": "holds", "fashion_mnist / lenet": "not applicable",
                                   "all": "holds"}


def test_claim_beyond_the_paper_needs_the_pruning_baselines():
    final = dict(FINAL)
    final["magnitude_ss"] = dict(FINAL["bmr_ss"], nll=0.41)
    final["snr_ss"] = dict(FINAL["bmr_ss"], nll=0.37)
    methods = METHODS + ("magnitude_ss", "snr_ss")
    metrics = make_metrics(archs=("mlp",), methods=methods, final=final, seeds=(0, 1))
    claims = paper_claims(metrics)
    assert verdicts(claims, 5) == {"fashion_mnist / mlp": "holds", "all": "holds"}
    row = claims[(claims.claim_id == 5) & (claims.scope == "fashion_mnist / mlp")].iloc[0]
    assert row["seeds"] == "2 of 2" and "snr_ss 0.37" in row["evidence"]
    # The baselines stay out of the paper's claims: claim 1 ignores them, claim 2 ranks the paper's methods.
    assert verdicts(claims, 2)["all"] == "holds"
    metrics.loc[(metrics.method == "snr_ss") & (metrics.seed == 1), "nll"] = 0.30  # SNR pruning wins in seed 1
    claims = paper_claims(metrics)
    row = claims[(claims.claim_id == 5) & (claims.scope == "fashion_mnist / mlp")].iloc[0]
    assert row["seeds"] == "1 of 2" and row["verdict"] == "does not hold"
    only_magnitude = paper_claims(metrics[metrics.method != "snr_ss"])
    assert verdicts(only_magnitude, 5)["all"] == "holds"


def test_paper_claims_not_applicable_without_the_methods():
    claims = paper_claims(make_metrics(methods=("flat_ff",), archs=("vit",), datasets=("cifar10",)))
    assert set(claims["verdict"]) == {"not applicable"}
    assert len(claims) == 10  # five claims x (one scope + "all")


def test_describe_settings():
    config = {"seeds": [0, 1], "methods": ["flat_ff", "bmr_ss"], "schedule": {"warmup_steps": 100000, "epoch_steps": 20000, "num_epochs": 5},
              "training": {"batch_size": 128, "learning_rate": {"flat_map": 1e-3, "flat_ff": 1e-3, "bmr_ss": 1e-2},
                           "elbo": "trace_graph", "bmr_iters": None, "bmr_keep": "zeta",
                           "init_radius": {"flat_ff": 2.0, "bmr_ss": 2.0}},
              "evaluation": {"num_samples": 100, "test_subset": None}}
    text = describe_settings(config, ["config/paper.yaml", "config/authors-code.yaml"])
    assert text == ("config files config/paper.yaml, config/authors-code.yaml (later ones override); seeds 0, 1; "
                    "schedule: warm-up 100000 "
                    "steps, then 5 epochs of 20000 steps; batch size 128; AdaBelief learning rates flat_ff 0.001, "
                    "bmr_ss 0.01; ELBO trace_graph; BMR keep rule zeta; guide init radius flat_ff 2.0, bmr_ss 2.0; "
                    "100 predictive samples on all test images")
    reduced = describe_settings({"evaluation": {"num_samples": 20, "test_subset": 2000}})
    assert reduced == "20 predictive samples on the first 2000 test images"
    final = describe_settings({"evaluation": {"num_samples": 20, "test_subset": 2000, "final_num_samples": 100,
                                              "final_test_subset": None}})
    assert final == ("the last epoch (judged here) with 100 predictive samples on all test images, the earlier ones "
                     "with 20 on the first 2000")


def test_markdown_and_write_table(tmp_path):
    frame = pd.DataFrame({"a": ["x|y", "z"], "b": [1.234567, float("nan")]})
    text = to_markdown(frame, title="T")
    assert text.splitlines() == ["# T", "", "| a | b |", "|---|---|", "| x\\|y | 1.235 |", "| z |  |"]
    write_table(frame, tmp_path / "t.csv", tmp_path / "t.md", title="T")
    assert pd.read_csv(tmp_path / "t.csv").shape == (2, 2)
    assert (tmp_path / "t.md").read_text() == text
    write_table(frame, tmp_path / "t.csv", tmp_path / "t.md", title="T", note="Settings: x")
    assert (tmp_path / "t.md").read_text().splitlines()[:4] == ["# T", "", "Settings: x", ""]
    assert not list(tmp_path.glob(".*tmp*"))


def test_metric_columns_match_run_stage():
    experiment = pytest.importorskip("bmrsparse.experiment")
    assert set(tables.METRIC_COLUMNS) <= set(experiment.METRIC_COLUMNS)


def test_tables_follow_the_declared_order_of_a_new_method():
    from bmrsparse.methods import Method, register, unregister

    register(Method(name="early_ff", label="Early-FF", color="#123456", order=15))  # between Flat-MAP and Flat-FF
    try:
        tidy = make_metrics(methods=("flat_ff", "early_ff", "flat_map"), archs=("mlp",),
                            final={**FINAL, "early_ff": FINAL["flat_ff"]})
        order = list(final_metrics(collect_metrics([tidy]))["method"])
        assert order == ["flat_map", "early_ff", "flat_ff"]
        assert list(tables.METHOD_ORDER).index("early_ff") == list(tables.METHOD_ORDER).index("flat_map") + 1
    finally:
        unregister("early_ff")
