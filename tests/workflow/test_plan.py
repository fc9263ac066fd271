"""bmrsparse.workflow.plan: the jobs of a run and its estimated wall time before it starts (issue 18.4).

The arithmetic is tested as pure functions (given step times and a job list); the cache with a fake timer (keyed by
device and library version, a second plan does not time again); the jobs read from Snakemake's own dry run and one
tiny real timing on the test profile's shrunken MLP.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_workflow

from bmrsparse.steptime import Timing
from bmrsparse.workflow import plan
from bmrsparse.workflow.plan import Job
from bmrsparse.workflow.plan.dag import dry_run

ROOT = Path(__file__).resolve().parents[2]

CFG = {
    "datasets": ["fashion_mnist"],
    "archs": ["mlp"],
    "schedule": {"warmup_steps": 1000, "epoch_steps": 100, "num_epochs": 2},
    "training": {"batch_size": 32, "elbo": None, "dropout": None, "net": {}},
    "evaluation": {"num_samples": 4, "test_subset": 1500, "eval_batch_size": 1000},
}
# one step 10 ms (flat), 20 ms (tiered), 5 ms (MAP); one sample on one image 1 us
T = {
    ("fashion_mnist", "mlp", "flat"): Timing(init_s=0.7, compile_s=2.0, step_s=0.010, eval_compile_s=1.0, eval_s=1e-6),
    ("fashion_mnist", "mlp", "tiered"): Timing(init_s=0.9, compile_s=4.0, step_s=0.020, eval_compile_s=1.0,
                                               eval_s=1e-6),
    ("fashion_mnist", "mlp", "map"): Timing(init_s=0.3, compile_s=1.0, step_s=0.005, eval_compile_s=0.5, eval_s=1e-6),
}
STARTUP = 3.0

# The jobs of a small plan as Snakemake's dry run gives them (bmrsparse.workflow.plan.dag): a warm-up, a BMR-S&S
# epoch after it, Flat-MAP from scratch, and the target rule.
JOBS = [
    Job(4, "train_warmup", {"dataset": "fashion_mnist", "arch": "mlp", "warmup": "lr0.01", "seed": "0"}, threads=4,
        gpu=1, inputs=["results/data/fashion_mnist.npz"],
        outputs=["results/warmup/fashion_mnist/mlp/lr0.01/seed0/posterior.npz",
                 "results/warmup/fashion_mnist/mlp/lr0.01/seed0/metrics.csv"], method="flat_ff"),
    Job(7, "train_epoch", {"dataset": "fashion_mnist", "arch": "mlp", "method": "bmr_ss", "seed": "0", "epoch": "1"},
        threads=4, gpu=1, inputs=["results/data/fashion_mnist.npz",
                                  "results/warmup/fashion_mnist/mlp/lr0.01/seed0/posterior.npz"],
        outputs=["results/train/fashion_mnist/mlp/bmr_ss/seed0/epoch1/posterior.npz"], method="bmr_ss"),
    Job(9, "train_scratch", {"dataset": "fashion_mnist", "arch": "mlp", "method": "flat_map", "seed": "0"}, gpu=1,
        inputs=["results/data/fashion_mnist.npz"],
        outputs=["results/train/fashion_mnist/mlp/flat_map/seed0/posterior.npz"], method="flat_map"),
    Job(0, "all", inputs=["results/train/fashion_mnist/mlp/bmr_ss/seed0/epoch1/posterior.npz",
                          "results/train/fashion_mnist/mlp/flat_map/seed0/posterior.npz"]),
]


def test_dependencies_follow_the_files():
    # results/data/... is made by no job of the plan (it exists): no edge for it
    assert plan.dependencies(JOBS) == {4: set(), 7: {4}, 9: set(), 0: {7, 9}}


def test_training_steps_per_rule():
    s = CFG["schedule"]
    assert plan.training_steps("train_warmup", s) == (1000, 1)
    assert plan.training_steps("train_scratch", s) == (1200, 3)
    assert plan.training_steps("train_continue", s) == (200, 2)
    assert plan.training_steps("train_epoch", s) == (100, 1)
    assert plan.training_steps("tables", s) is None
    with pytest.raises(ValueError, match="train_something"):
        plan.training_steps("train_something", s)


def test_method_kinds():
    assert [plan.method_kind(m) for m in ("flat_map", "flat_ff", "bmr_ss", "magnitude_ss", "tiered_ff")] == [
        "map", "flat", "flat", "flat", "tiered"]


def test_job_seconds_arithmetic():
    warm, epoch, scratch, target = JOBS
    # evaluation: 4 samples x 2 batches of 1000 (1500 images, padded) x 1 us = 8 ms; Flat-MAP: 1 sample = 2 ms;
    # a warm-up and a method from scratch initialise a guide, an epoch job loads its state
    assert plan.job_seconds(warm, CFG, T, STARTUP) == pytest.approx(3 + 0.7 + 2 + 1 + 1000 * 0.010 + 1 * 0.008)
    assert plan.job_seconds(epoch, CFG, T, STARTUP) == pytest.approx(3 + 2 + 1 + 100 * 0.010 + 0.008)
    assert plan.job_seconds(scratch, CFG, T, STARTUP) == pytest.approx(3 + 0.3 + 1 + 0.5 + 1200 * 0.005 + 3 * 0.002)
    assert plan.job_seconds(target, CFG, T, STARTUP) == 0.0
    tiered = Job(1, "train_scratch", {"dataset": "fashion_mnist", "arch": "mlp", "method": "tiered_ff"})
    assert plan.job_seconds(tiered, CFG, T, STARTUP) == pytest.approx(3 + 0.9 + 4 + 1 + 1200 * 0.020 + 3 * 0.008)
    continued = Job(6, "train_continue", {"dataset": "fashion_mnist", "arch": "mlp", "method": "flat_ff"})
    assert plan.job_seconds(continued, CFG, T, STARTUP) == pytest.approx(3 + 2 + 1 + 200 * 0.010 + 2 * 0.008)
    # a sparsity curve: 3 scores x 10 fractions evaluations; a figure: start-up only
    curve = Job(2, "sparsity_curve", {"dataset": "fashion_mnist", "arch": "mlp", "seed": "0"})
    assert plan.job_seconds(curve, CFG, T, STARTUP) == pytest.approx(3 + 1 + 30 * 0.008)
    assert plan.job_seconds(Job(3, "plot_performance"), CFG, T, STARTUP) == 3.0
    # time_steps: Tiered-FF and BMR-S&S, twice each, compile + min(200, epoch_steps) = 100 steps
    timing = Job(5, "time_steps", threads=2)
    assert plan.job_seconds(timing, CFG, T, STARTUP) == pytest.approx(3 + 2 * (0.9 + 4 + 100 * 0.020)
                                                                      + 2 * (0.7 + 2 + 100 * 0.010))


def test_a_job_of_seeds_trained_together_costs_its_steps_and_evaluations_once_per_seed():
    outputs = [f"results/train/fashion_mnist/mlp/flat_ff/seed{s}/epoch1/{f}" for s in range(5)
               for f in ("posterior.npz", "metrics.csv")]
    vmapped = Job(6, "train_continue", {"dataset": "fashion_mnist", "arch": "mlp", "method": "flat_ff"},
                  outputs=outputs)
    assert plan.job_seeds(vmapped) == 5 and plan.job_seeds(Job(3, "plot_performance")) == 1
    # start-up and compiles once; 200 steps and 2 evaluations per seed
    assert plan.job_seconds(vmapped, CFG, T, STARTUP) == pytest.approx(3 + 2 + 1 + 5 * (200 * 0.010 + 2 * 0.008))
    est = plan.estimate([vmapped], CFG, T, STARTUP, cores=2, gpu_limit=None)
    text = plan.format_plan([vmapped], est, CFG, T, device="cpu", cores=2, gpu_limit=None, startup_s=STARTUP,
                            cached=True, configfiles=[])
    assert "1,000 SVI steps" in text and "a job of 5 seeds trained together costing 5 x one seed's" in text


def test_makespan_with_cores_threads_gpus_and_dependencies():
    ten = {j: 10.0 for j in "abcd"}
    one = {j: 1 for j in "abcd"}
    # four independent 10 s jobs of one thread: two cores run two at a time
    assert plan.makespan(ten, {}, one, {}, cores=2, gpu_limit=None) == 20.0
    assert plan.makespan(ten, {}, one, {}, cores=4, gpu_limit=None) == 10.0
    # two threads each on two cores: one at a time; more threads than cores count as all cores
    assert plan.makespan(ten, {}, {j: 2 for j in "abcd"}, {}, cores=2, gpu_limit=None) == 40.0
    assert plan.makespan(ten, {}, {j: 8 for j in "abcd"}, {}, cores=2, gpu_limit=None) == 40.0
    # a chain: b after a; c beside them
    d = {"a": 10.0, "b": 5.0, "c": 12.0}
    assert plan.makespan(d, {"b": {"a"}}, {}, {}, cores=2, gpu_limit=None) == 15.0
    assert plan.makespan(d, {"b": {"a"}}, {}, {}, cores=1, gpu_limit=None) == 27.0
    # the longest remaining chain starts first: a (then b) beside c, then e (c and e first would take 30 s)
    assert plan.makespan(ten, {"b": {"a"}}, {}, {}, cores=2, gpu_limit=None) == 20.0
    # one GPU: GPU jobs one at a time although cores are free; without a limit, GPUs do not constrain
    gpu = {j: 1 for j in "abcd"}
    assert plan.makespan(ten, {}, one, gpu, cores=16, gpu_limit=1) == 40.0
    assert plan.makespan(ten, {}, one, gpu, cores=16, gpu_limit=2) == 20.0
    assert plan.makespan(ten, {}, one, gpu, cores=16, gpu_limit=None) == 10.0
    with pytest.raises(ValueError, match="cycle"):
        plan.makespan({"a": 1.0, "b": 1.0}, {"a": {"b"}, "b": {"a"}}, {}, {}, cores=2, gpu_limit=None)


def test_estimate_and_the_printed_plan():
    jobs = JOBS
    est = plan.estimate(jobs, CFG, T, STARTUP, cores=8, gpu_limit=1)
    seconds = {j.jobid: plan.job_seconds(j, CFG, T, STARTUP) for j in jobs}
    assert est.work_s == pytest.approx(sum(seconds.values()))
    # one GPU: the three training jobs one after another
    assert est.wall_s == pytest.approx(seconds[4] + seconds[7] + seconds[9])
    # no GPU limit, 8 cores, 4 threads each: the warm-up and Flat-MAP side by side, then the epoch
    free = plan.estimate(jobs, CFG, T, STARTUP, cores=8, gpu_limit=None)
    assert free.wall_s == pytest.approx(max(seconds[4] + seconds[7], seconds[9]))
    text = plan.format_plan(jobs, est, CFG, T, device="cpu (test)", cores=8, gpu_limit=1, startup_s=STARTUP,
                            cached=True, configfiles=["config/x.yaml"])
    assert text.splitlines()[0] == "bmrsparse plan: 4 jobs for config/x.yaml"
    assert "train_epoch" in text and "cached" in text and "1 GPU(s)" in text and "assumptions:" in text
    assert f"estimated wall time: {plan.duration(est.wall_s)}" in text


def test_the_cache_is_keyed_by_device_and_version_and_a_second_plan_does_not_time(tmp_path, monkeypatch):
    calls = []

    def runner(items):
        calls.append([(d, a, k, evaluation) for d, a, k, _settings, _steps, evaluation in items])
        return [Timing(0.2, 1.0, 0.01, 0.5 if ev else math.nan, 2e-6 if ev else math.nan)
                for *_, ev in items], 2.5

    key = ["cpu:cpu (test CPU, 1 thread) | jax 0.10.2, library aaaa"]
    monkeypatch.setattr(plan.timing, "device_key", lambda threads: (key[0], key[0]))
    cache = plan.TimingCache(tmp_path / "cache" / "step-times.json")
    needed = [("fashion_mnist", "mlp", "tiered"), ("fashion_mnist", "mlp", "flat"), ("fashion_mnist", "mlp", "flat")]
    timings, startup, _, cached = plan.measure(needed, CFG, cache, 1, 10, runner=runner, log=lambda m: None)
    # each (network, kind) once; the predictive pass timed with the first kind only and shared
    assert calls == [[("fashion_mnist", "mlp", "flat", True), ("fashion_mnist", "mlp", "tiered", False)]]
    assert timings[("fashion_mnist", "mlp", "tiered")].eval_s == 2e-6 and startup == 2.5 and not cached
    again, startup2, _, cached2 = plan.measure(needed, CFG, cache, 1, 10, runner=runner, log=lambda m: None)
    assert len(calls) == 1 and cached2 and again == timings and startup2 == 2.5  # not timed again
    # another network: only it is timed; its predictive pass too
    plan.measure(needed + [("fashion_mnist", "lenet", "map")], CFG, cache, 1, 10, runner=runner, log=lambda m: None)
    assert calls[-1] == [("fashion_mnist", "lenet", "map", True)]
    # another library version (or device): timed afresh
    key[0] = key[0].replace("aaaa", "bbbb")
    plan.measure(needed, CFG, cache, 1, 10, runner=runner, log=lambda m: None)
    assert len(calls) == 3 and len(calls[-1]) == 2
    # other training settings (batch size) are another entry
    plan.measure(needed, dict(CFG, training=dict(CFG["training"], batch_size=64)), cache, 1, 10, runner=runner,
                 log=lambda m: None)
    assert len(calls) == 4
    data = json.loads(cache.path.read_text())
    assert len(data) == 2  # two device keys
    # a damaged cache is ignored (timed again), never trusted
    cache.path.write_text("{not json")
    plan.measure(needed, CFG, cache, 1, 10, runner=runner, log=lambda m: None)
    assert len(calls) == 5


def test_default_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv(plan.CACHE_ENV, str(tmp_path / "c"))
    assert plan.default_cache() == tmp_path / "c" / "step-times.json"
    monkeypatch.delenv(plan.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert plan.default_cache() == tmp_path / "x" / "bmrsparse" / "step-times.json"


def test_the_dry_run_reads_jobs_config_cores_and_gpus_from_snakemake(tmp_path):
    """Snakemake's own parser (profiles, --configfile, --config, --cores, --resources) and dry run: the jobs with
    their rule, wildcards, threads, GPUs, files and trained model; the config the Snakefile validated."""
    project = copy_workflow(tmp_path / "wf")
    run = dry_run(["--profile", "profiles/local", "--configfile", "config/paper.yaml", "--config", "archs=[mlp]",
                   "datasets=[fashion_mnist]", "methods=[flat_map,flat_ff,bmr_ss]", "seeds=[0]", "vmap_seeds=false",
                   "--cores", "3",
                   "--resources", "gpu=2"], project)
    assert run.configfiles == ["config/paper.yaml"] and run.cores == 3 and run.gpu_limit == 2
    cfg = run.grid.config
    assert cfg.archs == ("mlp",) and cfg.schedule.warmup_steps == 100000
    by_rule = {}
    for job in run.jobs:
        by_rule.setdefault(job.rule, []).append(job)
    assert {r: len(j) for r, j in by_rule.items() if r.startswith("train_")} == {
        "train_warmup": 1, "train_continue": 1, "train_scratch": 1, "train_epoch": 5}  # paper.yaml: one rate
    warm = by_rule["train_warmup"][0]
    assert warm.wildcards == {"dataset": "fashion_mnist", "arch": "mlp", "warmup": "lr0.001", "seed": "0"}
    assert warm.method == "flat_ff" and warm.threads == 3 and warm.gpu == 1  # paper.yaml: 4 threads, capped at 3
    assert warm.inputs == ["results/data/fashion_mnist.npz"]
    first = next(j for j in by_rule["train_epoch"] if j.wildcards["epoch"] == "1")
    assert first.method == "bmr_ss" and "results/warmup/fashion_mnist/mlp/lr0.001/seed0/posterior.npz" in first.inputs
    deps = plan.dependencies(run.jobs)
    assert warm.jobid in deps[first.jobid]
    with pytest.raises(RuntimeError, match="dry-run failed"):
        dry_run(["--config", "archs=[resnet]"], project)
    assert run.grid.config.datasets == ("fashion_mnist",)
    default = dry_run(["--profile", "profiles/local"], project)
    assert default.grid.config.archs == ("mlp", "lenet") and default.gpu_limit is None and default.cores >= 1
    # the two timing jobs run one after the other, never side by side (claim 4's step times, the inference table)
    timing = {j.rule: j for j in default.jobs if j.rule in ("time_steps", "inference")}
    assert timing["time_steps"].jobid in plan.dependencies(default.jobs)[timing["inference"].jobid]


@pytest.mark.slow
def test_the_test_profiles_plan_with_a_real_timing(tmp_path):
    """The CLI on a copy of the workflow: Snakemake's dry run, every training rule known, one tiny real timing
    (the test profile's shrunken MLP, Flat-FF and BMR-S&S: one kind), then the same plan from the cache."""
    project = copy_workflow(tmp_path / "wf")
    args = ["--steps", "2", "--cache", str(tmp_path / "cache.json"), "--directory", str(project), "--",
            "--configfile", "config/test.yaml", "--cores", "1", "--config", "archs=[mlp]", "methods=[flat_ff,bmr_ss]"]
    first = subprocess.run([sys.executable, "-m", "bmrsparse.workflow.plan", *args], capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "timing fashion_mnist/mlp mean-field flat" in first.stdout and "measured now" in first.stdout
    # the job counts are Snakemake's: two warm-ups (Flat-FF's, and BMR-S&S's at its own learning rate), Flat-FF's
    # continuation, two BMR-S&S epochs (test profile)
    rows = dict(line.split()[:2] for line in first.stdout.splitlines() if line.startswith("    train_"))
    assert rows == {"train_warmup": "2", "train_continue": "1", "train_epoch": "2"}
    assert "estimated wall time:" in first.stdout and "1 cores" in first.stdout
    again = subprocess.run([sys.executable, "-m", "bmrsparse.workflow.plan", *args], capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "timing" not in again.stdout and "(cached;" in again.stdout, again.stdout
