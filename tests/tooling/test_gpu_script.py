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

ROOT = Path(__file__).resolve().parents[2]
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


# ---- issue 22: `make reproduce` on the device (part 5) and the ViT/Mixer profile (part 6) ----------------------
FAKE_MAKEFILE = """\
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-cuda
reproduce: $(STAMP)
\t@echo "GPU found (nvidia-smi): installing JAX's CUDA build, running config/paper.yaml"
\t@echo "plan: 7 jobs, ETA 1 h 10 min (timed on this device: mlp 0.200 ms/step, lenet 0.300 ms/step)"
\t@mkdir -p logs/train/fashion_mnist/mlp
\t@for i in 1 2 3; do echo "step $${i}000/10000 250.0 steps/s ETA 0:00:28 loss 1.5 device gpu:NVIDIA H200" \\
\t    >> logs/train/fashion_mnist/mlp/warmup.log; sleep 1; done; sleep 120
$(STAMP):
\t$(VENV)/bin/python -m pip install -q jax-cuda-not-carried==9.9
\ttouch $@
"""


def fake_repo(tmp_path):
    """A git repository with tools/gpu and a Makefile whose install fails offline unless its stamp is made."""
    repo = tmp_path / "repo"
    (repo / "tools" / "gpu").mkdir(parents=True)
    for name in ("measure.sh", "summary.py", "kernels.py", "reproduce_log.py", "profile_step.py"):
        (repo / "tools" / "gpu" / name).write_text((ROOT / "tools" / "gpu" / name).read_text())
    (repo / "Makefile").write_text(FAKE_MAKEFILE)
    (repo / "src").mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "fake"], check=True)
    return repo


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="bash, make, setsid and coreutils' timeout")
def test_measure_reproduce_part_falls_back_and_stops_after_the_progress_lines(tmp_path):
    repo = fake_repo(tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "MEASURE_MODE": "smoke", "PARTS": "reproduce", "BUDGET_S": "200",
           "REPRO_BUDGET_S": "150", "PY": sys.executable, "WHEELS": str(tmp_path / "no-wheels"),
           "SITE": str(tmp_path / "site"), "JAX_PLATFORMS": "cpu"}
    res = subprocess.run(["bash", str(repo / "tools" / "gpu" / "measure.sh")], env=env, cwd=repo,
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    log = (out / "reproduce.log").read_text()
    # lock: pip may use the carried wheels only, so the uncarried package stops the install: no plan line
    assert "==== attempt lock: plan line after (none) s" in log
    assert "No matching distribution" in log or "Could not find" in log
    # image: the same install in a .venv made beforehand: still missing; stamp: make skips the install
    assert "==== attempt image: plan line after (none) s" in log
    assert "touched STAMP=.venv/.installed-cuda" in res.stdout
    m = [x for x in log.splitlines() if x.startswith("==== attempt stamp: plan line after")]
    assert m and "(none)" not in m[0] and ("2 progress lines" in m[0] or "3 progress lines" in m[0]), m
    summary = (out / "summary.txt").read_text()
    assert "attempt stamp (stopped" in summary  # stopped by the watcher, not by its 120 s sleep
    assert "GPU found (nvidia-smi)" in summary
    assert "measured: 250.0 steps/s = 4.000 ms/step (last progress line, mlp)" in summary
    assert "the plan assumed 0.200 ms/step for mlp: measured / assumed = 20.00" in summary
    assert "the plan's ETA: 4200 s" in summary
    assert sorted(p.name for p in out.iterdir()) == ["env.txt", "measure.log", "reproduce.log", "summary.txt"]


def write_trace(path, kernels, steps):
    """A jax.profiler-like Chrome trace: a host process and a GPU process with kernel events per step."""
    import gzip
    import json

    ev = [{"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
          {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
          {"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 5000, "name": "PjitFunction(chunk)"}]
    for _ in range(steps):
        for name, dur in kernels:
            ev.append({"ph": "X", "pid": 2, "tid": 7, "ts": 1, "dur": dur, "name": name})
    path.mkdir(parents=True)
    with gzip.open(path / "vm.trace.json.gz", "wt") as fh:
        json.dump({"traceEvents": ev}, fh)


def test_profile_summary_counts_kernels_per_step_and_compares_seeds(tmp_path):
    import json

    for seeds, ms, kernels in ((1, 4.0, [("gemm_a", 30.0), ("loop_fusion", 2.0), ("loop_fusion", 2.0)]),
                               (8, 12.0, [("gemm_a", 200.0), ("loop_fusion", 9.0)])):
        d = tmp_path / f"vit-x{seeds}"
        write_trace(d / "trace" / "plugins" / "profile" / "t", kernels, steps=10)
        (d / "run.json").write_text(json.dumps({"arch": "vit", "method": "flat_ff", "seeds": seeds, "steps": 10,
                                                "device": "gpu:NVIDIA H200", "compile_s": 5.0,
                                                "ms_per_step": ms, "xla": []}))
    (tmp_path / "mixer-x8").mkdir()  # a run cut before its run.json
    out = run_summary("profile", tmp_path)
    assert "vit flat_ff x1 (gpu:NVIDIA H200" in out and "4.000 ms/step" in out
    assert "trace (/device:GPU:0): 3 kernel launches per step, 0.034 ms of kernel time per step (1% of the step)" in out
    assert "     30.0 us  x  1.0  gemm_a" in out and "      4.0 us  x  2.0  loop_fusion" in out
    assert "vit flat_ff: 8 seeds / one seed = 3.00 (goal 1.5), kernel launches x0.67" in out
    assert "not finished (cut or failed; see measure.log): mixer-x8" in out


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="bash and coreutils' timeout")
def test_measure_smoke_profile_part(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "MEASURE_MODE": "smoke", "PARTS": "profile", "BUDGET_S": "400",
           "PROFILE_BUDGET_S": "360", "PROFILE_ARCHS": "mixer", "PROFILE_SEEDS": "2", "PY": sys.executable,
           "WHEELS": str(tmp_path / "no-wheels"), "JAX_PLATFORMS": "cpu"}
    res = subprocess.run(["bash", str(MEASURE)], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    prof = (out / "profile.txt").read_text()
    assert "mixer flat_ff x1 (cpu:cpu, step_loop device, tiny)" in prof
    assert "mixer flat_ff x2 (cpu:cpu, step_loop device, tiny)" in prof
    assert prof.count("work-launching ops per SVI step") == 2, prof
    assert "mixer flat_ff: 2 seeds / one seed =" in prof and "XLA ops x" in prof
    import tarfile

    names = tarfile.open(out / "profile.tar.gz").getnames()
    assert any(n.endswith("mixer-x2/run.json") for n in names)
    assert any(n.endswith(".trace.json.gz") for n in names)
    assert sum("after_optimizations" in n for n in names) == 2
    assert not any(n.endswith((".ll", ".o")) for n in names)
    assert "seeds:" in (out / "summary.txt").read_text()
