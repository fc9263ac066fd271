"""The authors' runs as a reference: shipped data, when a run is comparable, and Fig. 2's hatched band."""

import subprocess
import sys
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import yaml
from conftest import copy_workflow

from bmrsparse.plots import plot_pruned_fraction
from bmrsparse.workflow import Config
from bmrsparse.workflow.reference import AUTHORS_RUNS, authors_band, read_runs, schedule_mismatch
from bmrsparse.workflow.schema import validated

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[2]


def config(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


def typed(config: dict) -> Config:
    """A config file's content as the workflow sees it: validated, with the schema's defaults."""
    return Config.from_mapping(validated(config))


def test_the_shipped_runs_hold_both_sides_and_three_authors_seeds_of_the_mlp():
    runs = read_runs()
    assert set(runs["side"]) == {"authors", "bmrsparse"}
    assert runs[(runs["side"] == "authors") & (runs["arch"] == "mlp")]["seed"].nunique() == 3
    assert set(runs["epoch"]) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.drop(columns="nll"), "missing columns"),
    (lambda d: d.assign(pruned_fraction=d["pruned_fraction"] + 1.5), "pruned fractions"),
    (lambda d: d.assign(side="theirs"), "side must be"),
])
def test_a_bad_reference_table_is_refused_naming_the_file(tmp_path, damage, message):
    path = tmp_path / "runs.csv"
    damage(pd.read_csv(AUTHORS_RUNS)).to_csv(path, index=False)
    with pytest.raises(ValueError, match=message) as info:
        read_runs(path)
    assert str(path) in str(info.value)


def test_the_quick_profile_is_comparable_and_the_others_say_why_not():
    quick = config("config.yaml")
    assert schedule_mismatch(typed(quick), "mlp") == [] and schedule_mismatch(typed(quick), "lenet") == []
    paper = " ".join(schedule_mismatch(typed(config("paper.yaml")), "mlp"))
    assert "schedule.warmup_steps is 100000" in paper and "learning_rate" in paper
    test = " ".join(schedule_mismatch(typed(config("test.yaml")), "mlp"))
    assert "schedule.num_epochs" in test and "overrides mlp" in test
    other = {**quick, "training": {**quick["training"], "init_radius": 0.5}}
    assert schedule_mismatch(typed(other), "mlp") == ["training.init_radius is 0.5, the reference's 2.0"]
    assert "dataset fashion_mnist" in " ".join(schedule_mismatch(typed({**quick, "datasets": ["cifar10"]}), "mlp"))


def test_the_band_is_the_range_of_the_authors_seeds_from_nothing_pruned():
    runs = read_runs()
    band = authors_band(runs).set_index(["arch", "epoch"])
    assert band.loc[("mlp", 0), ["lo", "hi"]].tolist() == [0.0, 0.0]
    authors = runs[(runs["side"] == "authors") & (runs["arch"] == "mlp") & (runs["epoch"] == 1)]["pruned_fraction"]
    assert band.loc[("mlp", 1), "lo"] == authors.min() and band.loc[("mlp", 1), "hi"] == authors.max()
    assert band.loc[("mlp", 1), "seeds"] == 3 and (band["lo"] <= band["hi"]).all()


def _metrics() -> pd.DataFrame:
    rows = [dict(dataset="fashion_mnist", arch=arch, method="bmr_ss", seed=0, epoch=e, pruned_fraction=0.15 * e)
            for arch in ("mlp", "lenet") for e in range(6)]
    return pd.DataFrame(rows)


def _labels(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_fig2_draws_the_authors_range_hatched_behind_our_curve_only_when_given():
    band = authors_band(read_runs())
    fig = plot_pruned_fraction(_metrics(), {"fashion_mnist": band[band["arch"] == "mlp"]})
    assert "MLP, authors' code (3 seeds)" in _labels(fig)
    hatched = [c for c in fig.axes[0].collections if c.get_hatch()]
    assert len(hatched) == 1
    top = hatched[0].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(band[band["arch"] == "mlp"]["hi"].max())
    plain = plot_pruned_fraction(_metrics())
    assert not any("authors" in label for label in _labels(plain))
    assert not [c for c in plain.axes[0].collections if c.get_hatch()]


def _fig2_inputs(project: Path, *args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--printshellcmds", "--forceall",
                          "results/figures/fig2.png", *args], cwd=project, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    block = run.stdout.split("rule plot_pruned_fraction:")[1].split("\n\n")[0]
    return next(line for line in block.splitlines() if line.strip().startswith("input:"))


def test_the_workflow_gives_fig2_the_reference_for_the_quick_profile_only(tmp_path):
    project = copy_workflow(tmp_path / "wf")
    assert str(AUTHORS_RUNS) in _fig2_inputs(project, "--cores", "1")
    assert str(AUTHORS_RUNS) not in _fig2_inputs(project, "--cores", "1", "--configfile", "config/test.yaml")
