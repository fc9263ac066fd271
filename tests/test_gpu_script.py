"""The prepared GPU measurement (tools/gpu, issue 13) works before a device session spends its minutes on it.

- the schedule planner: the paper's schedule when the estimate fits, else the largest scale that fits, written
  as a config overlay; ``paper`` forces it; no bench rows -> the config's ms/step guesses;
- the summary: the issue's targets judged from bench rows, rows of a cut architecture read back from the log;
- measure.sh itself in its CPU smoke mode (bench + XLA dump parts, shrunken MLP, this venv, no wheels): it writes
  env.txt, bench.csv, xla.txt and summary.txt with the expected rows. (The workflow part and the carried wheels
  are checked by hand: tools/gpu/README.md, "CPU smoke run".)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = ROOT / "tools" / "gpu" / "summary.py"
MEASURE = ROOT / "tools" / "gpu" / "measure.sh"
FOUR = "flat_map flat_ff tiered_ff bmr_ss"


def run_summary(*args, cwd=None):
    res = subprocess.run([sys.executable, str(SUMMARY), *map(str, args)], capture_output=True, text=True,
                         cwd=cwd or ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def bench_csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def mlp_rows(ms):
    return [{"device": "gpu:test", "arch": "mlp", "method": m, "seeds": 1, "ms_per_step": ms, "compile_s": 2.0,
             "prune_ms": float("nan")} for m in FOUR.split()]


def test_plan_paper_schedule_when_it_fits(tmp_path):
    csv = bench_csv(tmp_path / "bench.csv", mlp_rows(0.5))
    overlay = tmp_path / "overlay.yaml"
    # 7e5 steps x 0.5 ms = 350 s of GPU work + 6 chained jobs x 20 s + 60 s = 530 s
    out = run_summary("plan", csv, ROOT / "config" / "paper.yaml", "auto", 530, "mlp", FOUR, overlay)
    assert "needs about 530 s" in out and "it fits" in out
    assert not overlay.exists()


def test_plan_scales_to_the_largest_factor_that_fits(tmp_path):
    csv = bench_csv(tmp_path / "bench.csv", mlp_rows(0.5))
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("stale: true\n")  # a leftover overlay must not survive a plan
    # x0.25: 87.5 + 180 = 267.5 s > 260; x0.2: 70 + 180 = 250 s
    out = run_summary("plan", csv, ROOT / "config" / "paper.yaml", "auto", 260, "mlp", FOUR, overlay)
    assert "SCALED schedule x0.2" in out
    assert yaml.safe_load(overlay.read_text()) == {
        "schedule": {"warmup_steps": 20000, "epoch_steps": 4000, "num_epochs": 5}}


def test_plan_paper_forced_and_guesses_without_bench_rows(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    out = run_summary("plan", tmp_path / "missing.csv", ROOT / "config" / "paper.yaml", "paper", 10, "mlp", FOUR,
                      overlay)
    assert "no bench row for mlp/flat_ff; using the config's guess" in out
    assert "(forced)" in out and not overlay.exists()
    out = run_summary("plan", tmp_path / "missing.csv", ROOT / "config" / "paper.yaml", "0.5", 10, "mlp", FOUR,
                      overlay)
    assert yaml.safe_load(overlay.read_text())["schedule"]["warmup_steps"] == 50000


def test_plan_reads_the_rows_of_a_cut_bench_from_the_log(tmp_path):
    (tmp_path / "measure.log").write_text("".join(
        # the device name as the bench prints it on an H100 (with spaces: the first device run lost every row)
        f"gpu:NVIDIA H100 80GB HBM3    mlp {m:>10} x1     0.50 ms/step   2000.0 steps/s  compile   2.00 s\n"
        for m in FOUR.split()))
    out = run_summary("plan", tmp_path / "bench.csv", ROOT / "config" / "paper.yaml", "auto", 530, "mlp", FOUR,
                      tmp_path / "overlay.yaml")
    assert "guess" not in out and "needs about 530 s" in out and "it fits" in out


def test_summary_judges_the_targets_and_reads_cut_rows_from_the_log(tmp_path):
    rows = mlp_rows(0.08)
    rows[2]["ms_per_step"] = 0.16  # tiered_ff: 2x MAP
    rows.append({**rows[1], "seeds": 8, "ms_per_step": 0.096, "compile_s": 12.5})  # flat_ff, 8 seeds: 1.2x
    bench_csv(tmp_path / "bench.csv", rows)
    (tmp_path / "measure.log").write_text(
        "    gpu:test    vit   flat_map x1     1.50 ms/step    666.7 steps/s  compile   3.00 s\n")
    out = run_summary("summary", tmp_path, cwd=tmp_path)
    assert "MLP Flat-FF 0.080 ms/step <= 0.095: met" in out
    assert "mlp tiered_ff / MAP = 2.00 <= 1.5: MISSED" in out
    assert "mlp bmr_ss / MAP = 1.00 <= 1.5: met" in out
    assert "mlp flat_ff 8 seeds / one seed = 1.20 <= 1.5: met" in out
    assert "compile at most 12.50 s (mlp flat_ff x8) <= 10.0: MISSED" in out
    assert "   vit   flat_map     1     1.500" in out and "1.00 *" in out and "come from the log" in out
    assert "no training job finished" in out


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="bash and coreutils' timeout")
def test_measure_smoke_bench_and_xla_parts(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "MEASURE_MODE": "smoke", "PARTS": "bench xla", "BUDGET_S": "400",
           "BENCH_BUDGET_S": "300", "BENCH_PLAN": "mlp:2:2:1", "METHODS": "flat_ff", "PY": sys.executable,
           "WHEELS": str(tmp_path / "no-wheels"), "JAX_PLATFORMS": "cpu"}
    res = subprocess.run(["bash", str(MEASURE)], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["bench.csv", "env.txt", "measure.log", "summary.txt", "xla.txt"]
    assert "jax.devices(): [CpuDevice" in (out / "env.txt").read_text()
    bench = pd.read_csv(out / "bench.csv")
    assert sorted(zip(bench.method, bench.seeds)) == [("flat_ff", 1), ("flat_ff", 2)]
    assert (bench.ms_per_step > 0).all() and (bench.arch == "mlp").all()
    xla = (out / "xla.txt").read_text()
    assert xla.count("work-launching ops per SVI step") == 2, xla
    summary = (out / "summary.txt").read_text()
    assert "MLP Flat-FF" in summary and "mlp flat_ff 2 seeds / one seed" in summary
    # the summary is the last thing printed (the device call returns the end of the output)
    assert res.stdout.rstrip().endswith(summary.rstrip().splitlines()[-1])
