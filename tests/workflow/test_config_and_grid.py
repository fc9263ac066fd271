"""The workflow's settings, resolved once (bmrsparse.workflow.config, .jobs) and the jobs a config asks for
(bmrsparse.workflow.grid), as Python, without Snakemake."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from bmrsparse.workflow import Config, Grid
from bmrsparse.workflow.jobs import job_settings, runtime_minutes, timing_steps
from bmrsparse.workflow.schema import validated

ROOT = Path(__file__).resolve().parents[2]


def config(**changes) -> Config:
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for key, value in changes.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    return Config.from_mapping(validated(raw))


def test_the_config_is_typed_and_frozen():
    cfg = config()
    assert cfg.archs == ("mlp", "lenet") and cfg.schedule.warmup_steps == 10000
    assert cfg.training.learning_rate["bmr_ss"] == 1e-2  # the method's declared rate: config.yaml gives none
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seeds = (1,)
    with pytest.raises(TypeError):
        cfg.training.learning_rate["bmr_ss"] = 0.5  # nested mappings are read-only too
    assert cfg.as_dict()["training"]["net"] == {} and cfg.resources.device == "cpu"


def test_a_job_receives_only_what_can_change_its_result():
    cfg = config(training={"tau0": 0.02, "init_radius": {"bmr_ss": 0.5}, "net": {"mlp": {"width": 8}}})
    tiered, bmr = job_settings(cfg, "tiered_ff", "mlp"), job_settings(cfg, "bmr_ss", "lenet")
    assert tiered["tau0"] == 0.02 and "tau0" not in bmr  # tau0 is Tiered-FF's own setting
    assert bmr["init_radius"] == 0.5 and "init_radius" not in tiered  # set for BMR-S&S only
    assert tiered["net"] == {"mlp": {"width": 8}} and "net" not in bmr  # this job's network only
    assert bmr["learning_rate"] == 1e-2 and tiered["learning_rate"] == 5e-3
    assert not any(value is None for key, value in bmr.items() if key not in ("test_subset", "final_test_subset"))  # nulls left out


def test_runtimes_follow_the_step_counts():
    cfg = config()
    # overhead 10 min + 2 x steps x 15 ms (MLP on CPU) / 60000
    assert runtime_minutes(cfg, "mlp", 10000) == 10 + 5
    assert timing_steps(2000) == 200 and timing_steps(5) == 10


def test_the_grid_of_the_quick_profile():
    grid = Grid(config())
    assert grid.run_methods == ["flat_map", "flat_ff", "tiered_ff", "bmr_ss", "bmr_rhs", "bmr_units"]
    # BMR-S&S and BMR-RHS share the flat warm-up at 1e-2; BMR over units warms up its own model (scales included)
    assert grid.warmups == {"lr0.005": "flat_ff", "lr0.01": "bmr_ss", "bmr_units-lr0.01": "bmr_units"}
    parts = grid.metrics_parts()
    bmr = [path for path, method in parts if method == "bmr_ss" and "/mlp/" in path]
    assert bmr[0] == "results/warmup/fashion_mnist/mlp/lr0.01/seed0/metrics.csv"  # its epoch 0 first
    assert bmr[1:] == [f"results/train/fashion_mnist/mlp/bmr_ss/seed0/epoch{e}/metrics.csv" for e in range(1, 6)]
    assert grid.figures() == ["fig1", "fig2", "fig3", "fig4", "sparsity_accuracy"]
    targets = grid.final_targets()
    assert "results/tables/inference.csv" in targets and "results/figures/fig4.png" in targets
    assert grid.final_posterior("fashion_mnist", "mlp", "bmr_ss", 0).endswith("bmr_ss/seed0/epoch5/posterior.npz")
    with pytest.raises(ValueError, match="outside 1..schedule.num_epochs"):
        grid.epoch_init("fashion_mnist", "mlp", "bmr_ss", 0, 6)
    assert grid.methods_regex(per_epoch=True) == "bmr_ss|bmr_rhs|bmr_units"
    assert grid.compact_methods() == ["tiered_ff", "bmr_rhs", "bmr_units"]  # the structured ones


def test_seeds_trained_together_name_every_seed():
    grid = Grid(config(seeds=[0, 1], vmap_seeds=True))
    assert grid.warmup_posterior("fashion_mnist", "mlp", "flat_ff", None) == [
        f"results/warmup/fashion_mnist/mlp/lr0.005/seed{s}/posterior.npz" for s in (0, 1)]
