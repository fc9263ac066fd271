"""The benchmark entry point on a shrunken grid (a smoke test, not a timed test)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bmrsparse import bench


def test_bench_writes_a_row_per_arch_method_and_seed_count(tmp_path):
    out = tmp_path / "bench.csv"
    bench.main(["--tiny", "--steps", "3", "--archs", "mlp", "lenet", "--methods", "flat_map", "bmr_ss",
                "--seeds", "2", "--out", str(out)])
    df = pd.read_csv(out)
    assert len(df) == 2 * 2 * 2  # archs x methods x {1 seed, 2 seeds}
    assert {"device", "ms_per_step", "steps_per_s", "compile_s", "prune_ms", "prune_share",
            "cost_vs_one_seed"} <= set(df.columns)
    assert (df.ms_per_step > 0).all() and (df.compile_s > 0).all()
    np.testing.assert_allclose(df.ms_per_step * df.steps_per_s, 1000.0, rtol=1e-6)
    bmr = df[df.method == "bmr_ss"]
    assert (bmr.prune_ms > 0).all() and (bmr.prune_share > 0).all()
    assert df[df.method == "flat_map"].prune_ms.isna().all()
    assert (df[df.seeds == 1].cost_vs_one_seed == 1.0).all()


def test_bench_command_line_rejects_bad_steps():
    run = subprocess.run([sys.executable, "-m", "bmrsparse.bench", "--steps", "0"], capture_output=True, text=True)
    assert run.returncode != 0 and "--steps must be >= 1" in run.stderr


STUB_REFERENCE = """
import json, os, sys
# a stand-in for the driver of the authors' code: fixed times, so the ratios are known
ms = {"Flat-MAP": 4.0, "Flat-FF": 10.0}
assert sys.argv[1] == "steps" and os.path.isdir(os.path.join(os.environ["BMR4PML_DIR"], "bmr4pml"))
for m in os.environ["METHODS"].split(","):
    print(json.dumps({"arch": sys.argv[3], "method": m, "ms_per_step": ms[m], "first_call_s": 1.0}))
"""


def test_compare_table_ratios_and_spread():
    ours = pd.DataFrame({"arch": ["mlp"] * 4, "method": ["flat_map", "flat_map", "flat_ff", "flat_ff"],
                         "ms_per_step": [2.0, 4.0, 6.0, 8.0], "compile_s": [1.0, 2.0, 3.0, 1.0]})
    theirs = pd.DataFrame({"arch": ["mlp"] * 4, "method": ["flat_map", "flat_map", "flat_ff", "flat_ff"],
                           "ms_per_step": [6.0, 6.0, 10.0, 12.0]})
    t = bench.compare_table(ours, theirs).set_index("method")
    assert list(t.index) == ["flat_map", "flat_ff"] and (t.repeats == 2).all()
    np.testing.assert_allclose(t.ours_ms, [3.0, 7.0])
    np.testing.assert_allclose(t.ref_ms, [6.0, 11.0])
    np.testing.assert_allclose(t.ratio, [0.5, 7.0 / 11.0])
    np.testing.assert_allclose(t.vs_map_ours, [1.0, 7.0 / 3.0])
    np.testing.assert_allclose(t.vs_map_ref, [1.0, 11.0 / 6.0])
    np.testing.assert_allclose(t.ours_min, [2.0, 6.0])
    np.testing.assert_allclose(t.ref_max, [6.0, 12.0])
    np.testing.assert_allclose(t.ours_compile_s_max, [2.0, 3.0])
    assert "| mlp | Flat-FF | 11.00 (10.00-12.00) | 7.00 (6.00-8.00) | 0.64 |" in bench.format_compare(t.reset_index())


def test_compare_reference_with_a_stub_reference(tmp_path, capsys):
    (tmp_path / "ref" / "bmr4pml").mkdir(parents=True)
    script = tmp_path / "stub_ref.py"
    script.write_text(STUB_REFERENCE)
    out = tmp_path / "compare.csv"
    bench.main(["--tiny", "--steps", "2", "--archs", "mlp", "--methods", "flat_map", "flat_ff", "--compare-reference",
                "--reference-dir", str(tmp_path / "ref"), "--reference-script", str(script), "--repeats", "2",
                "--out", str(out)])
    df = pd.read_csv(out)
    assert list(df.method) == ["flat_map", "flat_ff"] and (df.repeats == 2).all()
    np.testing.assert_allclose(df.ref_ms, [4.0, 10.0])
    np.testing.assert_allclose(df.ratio, df.ours_ms / df.ref_ms)
    assert (df.ours_ms > 0).all() and df.cpu.notna().all()
    assert "ratio ours/theirs" in capsys.readouterr().out


def test_compare_reference_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("BMR4PML_DIR", raising=False)
    run = subprocess.run([sys.executable, "-m", "bmrsparse.bench", "--compare-reference"], capture_output=True,
                         text=True, env={k: v for k, v in __import__("os").environ.items() if k != "BMR4PML_DIR"})
    assert run.returncode == 2 and "--reference-dir" in run.stderr
    run = subprocess.run([sys.executable, "-m", "bmrsparse.bench", "--compare-reference", "--reference-dir",
                          str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2 and "bmr4pml/" in run.stderr


def test_bench_one_times_a_training_jobs_own_settings():
    """Rule time_steps passes the training jobs' settings as they are (no patching of the library)."""
    job = {"batch_size": 16, "net": {"mlp": {"width": 8, "depth": 1}}, "learning_rate": 0.02}
    row = bench.bench_one("fashion_mnist", "mlp", "bmr_ss", steps=2, epoch_steps=10, settings=job)
    assert row["batch_size"] == 16 and row["ms_per_step"] > 0 and row["prune_ms"] > 0
    with pytest.raises(ValueError, match="either settings or tiny/batch_size/elbo"):
        bench.bench_one("fashion_mnist", "mlp", "bmr_ss", steps=2, epoch_steps=10, batch_size=16, settings=job)
    with pytest.raises(ValueError, match="unknown training setting 'batch'"):
        bench.bench_one("fashion_mnist", "mlp", "bmr_ss", steps=2, epoch_steps=10, settings={"batch": 16})


def test_bench_one_reuse_compiles_once_and_starts_each_round_afresh(monkeypatch):
    """reuse=True (rule time_steps' rounds): the second round of the same timing compiles nothing, starts from the
    same initial state as the first (the same first-step loss), and gives the first compile's compile_s."""
    from bmrsparse.train import Trainer

    compiles, losses = [], []
    real_compile, real_train = Trainer._compile, Trainer.train
    monkeypatch.setattr(Trainer, "_compile", lambda self, state: (compiles.append(1), real_compile(self, state))[1])

    def train(self, state, num_steps, **kw):
        if num_steps == 1:  # the first (compiling) step: its loss
            kw["on_loss"] = lambda n, dt, mean_losses: losses.append(mean_losses.tolist())
        return real_train(self, state, num_steps, **kw)

    monkeypatch.setattr(Trainer, "train", train)
    monkeypatch.setattr(bench, "_TRAINERS", {})
    job = {"batch_size": 16, "net": {"mlp": {"width": 8, "depth": 1}}}
    rows = [bench.bench_one("fashion_mnist", "mlp", "flat_ff", steps=2, epoch_steps=10, settings=job, reuse=True)
            for _ in range(2)]
    assert len(compiles) == 1 and len(bench._TRAINERS) == 1
    assert rows[0]["compile_s"] == rows[1]["compile_s"] and all(r["ms_per_step"] > 0 for r in rows)
    assert losses[0] == losses[1]
    bench.bench_one("fashion_mnist", "mlp", "flat_ff", steps=2, epoch_steps=10, settings=job)  # reuse=False
    assert len(compiles) == 2 and len(bench._TRAINERS) == 1
