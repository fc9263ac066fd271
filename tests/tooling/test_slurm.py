"""The config/test.yaml workflow on a real (local, single-node) SLURM through profiles/slurm.

Needs root and a SLURM brought up by ``tools/slurm/local-slurm.sh start`` (the test calls it; it is idempotent).
Skips when that is impossible, unless ``BMRSPARSE_REQUIRE_SLURM=1`` (set in CI), where it fails instead.

Checks, from SLURM's own records (``scontrol show job``; the local cluster has no accounting, finished jobs stay
visible for MinJobAge=600 s): every training job (and claim 4's timing, the measured inference) went through sbatch
under this run's job name to the partition ``gpu`` (``resources.gpu_partition``), asked for and was given one GPU of
the model ``fake`` (``resources.gpu_model``; the cluster's fake ``gpu:fake`` gres), and completed; the CPU job (the
compact-network export) went to the cluster's default partition ``debug`` without a GPU; light rules did not go to
SLURM. Then the final metrics equal those of a plain local run of the same config, which runs beside the SLURM run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_workflow
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCAL_SLURM = ROOT / "tools" / "slurm" / "local-slurm.sh"
TRAINING_RULES = ("train_warmup", "train_continue", "train_scratch", "train_epoch")
#: The rules whose jobs the test run submits with a GPU (bmrsparse.workflow.jobs.GPU_RULES that the tables need:
#: claim 4's timing and the measured inference besides training), and without one (the compact-network export).
GPU_JOB_RULES = (*TRAINING_RULES, "time_steps", "inference")
CPU_JOB_RULES = ("compact_network",)
LIGHT_RULES = ("prepare_dataset", "collect_metrics", "tables")
TARGET = "results/tables/final_metrics.csv"
#: What a SLURM without accounting (the local test cluster) needs on top of profiles/slurm.
LOCAL_CLUSTER_ARGS = (
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--latency-wait",
    "5",
)
COMPARED_COLUMNS = ["acc", "ece", "nll", "pruned_fraction"]
#: The local cluster's partitions and the model of its fake GPU (tools/slurm/local-slurm.sh).
DEFAULT_PARTITION, GPU_PARTITION, GPU_MODEL = "debug", "gpu", "fake"
#: Merged over config/test.yaml: one architecture still runs every training rule and method (six jobs, which the
#: single fake GPU runs one after another); all four would take ~4x longer on a 2-core CI machine. test.yaml asks
#: for no GPU (a CPU profile); this run asks for one, as config/paper.yaml does on a cluster, in the GPU partition
#: and of the fake GPU's model (issue 31: the CPU jobs stay in the default partition).
CONFIG_OVERRIDE = f"archs: [mlp]\nresources: {{gpu: 1, gpu_partition: {GPU_PARTITION}, gpu_model: {GPU_MODEL}}}\n"

pytestmark = pytest.mark.slow


def _unavailable(reason: str):
    if os.environ.get("BMRSPARSE_REQUIRE_SLURM") == "1":
        pytest.fail(f"BMRSPARSE_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def local_slurm():
    """A running single-node SLURM with one fake GPU (brought up if needed)."""
    if os.geteuid() != 0:
        _unavailable("needs root to run tools/slurm/local-slurm.sh (a local SLURM cluster)")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        _unavailable("no SLURM installed and no apt-get to install it")
    proc = subprocess.run(["bash", str(LOCAL_SLURM), "start"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        _unavailable(f"could not start a local SLURM:\n{proc.stderr[-2000:]}")


def _copy_workflow(dest: Path) -> Path:
    return copy_workflow(dest, CONFIG_OVERRIDE)


#: Runs `_start_snakemake` started in the current test (the `_stop_leftover_runs` fixture ends those still going).
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _stop_leftover_runs():
    """A test that fails while a second run still goes (e.g. the SLURM run failed; the local one is not awaited)
    does not leave that run working beside the next tests."""
    _STARTED.clear()
    yield
    for proc in _STARTED:
        _stop(proc)
    _STARTED.clear()


def _start_snakemake(workdir: Path, *args: str, timeout: int = 1800) -> subprocess.Popen:
    """Start Snakemake from this interpreter in `workdir` (its own process group, output to a file beside
    `workdir`), so that two runs can go at once; `_finish` waits for it."""
    env = dict(os.environ)
    # Jobs (local or under sbatch --export=ALL) find this venv's python first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The local cluster's GPU is fake and this JAX is CPU-only: without the opt-out every training job would stop
    # at once ("given a GPU but JAX runs on the CPU", bmrsparse.provenance.check_accelerator).
    env["BMRSPARSE_ALLOW_CPU"] = "1"
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "override.yaml", *args]
    # A file, not a pipe: a pipe nobody reads while the other run is awaited would fill and stall Snakemake.
    output = workdir.parent / f"{workdir.name}.snakemake.out"
    with open(output, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    proc.cmd, proc.workdir, proc.output = cmd, workdir, output
    proc.deadline = time.monotonic() + timeout
    _STARTED.append(proc)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    """End a run that is still going, with its jobs (SIGTERM first: Snakemake then cancels its SLURM jobs)."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


def _finish(proc: subprocess.Popen) -> str:
    """Wait for a run `_start_snakemake` started; return its output, failing the test with it on error."""
    try:
        proc.wait(timeout=max(0.0, proc.deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _stop(proc)
        out = proc.output.read_text()
        pytest.fail(f"{' '.join(proc.cmd)} timed out in {proc.workdir}:\n{out[-6000:]}")
    out = proc.output.read_text()
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(proc.cmd)} failed in {proc.workdir} (exit {proc.returncode}):\n{out[-6000:]}")
    return out


def _snakemake(workdir: Path, *args: str, timeout: int = 1800) -> str:
    """Run Snakemake from this interpreter in `workdir`; return its output, failing the test with it on error."""
    return _finish(_start_snakemake(workdir, *args, timeout=timeout))


def _scontrol_job(job_id: str) -> dict[str, str]:
    """`scontrol show job -d` of one job as {key: value} (the values SLURM itself stores)."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-d", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    fields = {}
    for token in out.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def _final_metrics(workdir: Path) -> pd.DataFrame:
    frame = pd.read_csv(workdir / TARGET)
    return frame.sort_values(["dataset", "arch", "method"]).reset_index(drop=True)


def test_test_workflow_on_slurm_requests_gpus_and_matches_local_run(local_slurm, tmp_path):
    slurm_dir = _copy_workflow(tmp_path / "slurm")
    local_dir = _copy_workflow(tmp_path / "local")
    # The plain local run goes at the same time (on one core: the SLURM jobs take one of the machine's two).
    on_slurm_run = _start_snakemake(slurm_dir, "--profile", "profiles/slurm", *LOCAL_CLUSTER_ARGS, TARGET)
    local_run = _start_snakemake(local_dir, "--cores", "1", TARGET)
    out = _finish(on_slurm_run)

    run_id = re.search(r"SLURM run ID: (\S+)", out)
    assert run_id, f"no 'SLURM run ID' in the Snakemake output; was the slurm executor used?\n{out[-3000:]}"
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert submitted, f"no job was submitted to SLURM:\n{out[-3000:]}"

    # SLURM's own record of every job of this run (looked up by the job name Snakemake gave them).
    listed = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--name={run_id.group(1)}", "--format=%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(listed, key=int) == sorted(submitted, key=int), "squeue and Snakemake disagree on the jobs"
    jobs = [_scontrol_job(job_id) for job_id in submitted]
    rules = [re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"]).group(1) for job in jobs]

    gpu_cpus = {job["NumCPUs"] for job, rule in zip(jobs, rules) if rule in GPU_JOB_RULES}
    for job, rule in zip(jobs, rules):
        name = f"SLURM job {job['JobId']} ({rule})"
        assert job["JobState"] == "COMPLETED", f"{name} is {job['JobState']}"
        assert job["WorkDir"] == str(slurm_dir)
        # claim 4's timing (time_steps) and the measured inference run as jobs like the training jobs, not on the
        # submitting host: in the GPU partition, asking for a GPU of the configured model, on the same CPUs
        if rule in GPU_JOB_RULES:
            assert job["Partition"] == GPU_PARTITION, f"{name} ran in {job['Partition']}"
            assert job.get("TresPerJob") == f"gres:gpu:{GPU_MODEL}:1", f"{name} asked for no {GPU_MODEL} GPU: {job}"
            assert job.get("JOB_GRES") == f"gpu:{GPU_MODEL}:1", f"{name} was not given the GPU: {job}"
        else:  # a CPU job: the cluster's default partition, no GPU
            assert rule in CPU_JOB_RULES, f"rule {rule} went to SLURM; it should run locally"
            assert job["Partition"] == DEFAULT_PARTITION, f"{name} ran in {job['Partition']}, not the default"
            assert "TresPerJob" not in job and job.get("JOB_GRES") in (None, "(null)"), f"{name} has a GPU: {job}"
    assert len(gpu_cpus) == 1, f"the GPU jobs got different CPUs: {gpu_cpus}"
    assert set(rules) == {*GPU_JOB_RULES, *CPU_JOB_RULES}, f"rules seen by SLURM: {sorted(set(rules))}"
    # One SLURM job per training job: two warm-ups (Flat-FF's learning rate and BMR-S&S's own, as the authors' code
    # does), Flat-FF, Flat-MAP, Tiered-FF and one per BMR-S&S epoch.
    config = yaml.safe_load((slurm_dir / "config" / "test.yaml").read_text())
    assert sorted(config["methods"]) == sorted(["flat_map", "flat_ff", "tiered_ff", "bmr_ss"])
    from bmrsparse.methods import METHODS  # test.yaml gives no rates: each method's declared one

    rates = {m: config["training"].get("learning_rate", {}).get(m, METHODS[m].learning_rate) for m in METHODS}
    assert rates["flat_ff"] != rates["bmr_ss"]
    # + time_steps, inference and Tiered-FF's compact network (the grid's structured method)
    assert len(jobs) == (5 + config["schedule"]["num_epochs"] + 1) * len(config["seeds"]) + 2
    for rule in LIGHT_RULES:
        assert re.search(rf"^localrule {rule}:$", out, flags=re.M), f"{rule} did not run on the submitting host"

    _finish(local_run)
    on_slurm, local = _final_metrics(slurm_dir), _final_metrics(local_dir)
    assert len(on_slurm) > 0
    pd.testing.assert_frame_equal(
        on_slurm[["dataset", "arch", "method", "epoch", "step"]], local[["dataset", "arch", "method", "epoch", "step"]]
    )
    pd.testing.assert_frame_equal(on_slurm[COMPARED_COLUMNS], local[COMPARED_COLUMNS], rtol=1e-5, atol=1e-6)



#: Merged over config/test.yaml for the retry test: one MLP warm-up. Runtime = ceil(overhead_minutes +
#: safety_factor * steps * ms_per_step / 60000) * attempt; the step estimate is ~0 here, so attempt k asks SLURM
#: for k minutes (1 + steps * 1e-20 / 60000 rounds to exactly 1.0). The number of steps is chosen from a calibration
#: run so that the warm-up needs about
#: TARGET_SECONDS: over the first attempt's minute (SLURM checks limits every 30 s and kills some seconds later),
#: well under the 2 minutes of the second attempt once it resumes from the checkpoint.
RETRY_OVERRIDE = """\
archs: [mlp]
methods: [flat_ff]
schedule: {{warmup_steps: {steps}}}
training:
  checkpoint_every: 1000
  chunk_size: 500
resources:
  overhead_minutes: 1
  safety_factor: 1.0
  ms_per_step:
    gpu: {{mlp: 1.0e-20}}
    cpu: {{mlp: 1.0e-20}}
"""
RETRY_TARGET = "results/warmup/fashion_mnist/mlp/lr0.005/seed0/metrics.csv"
CALIBRATION_STEPS = 4000
TARGET_SECONDS = 140


def test_timed_out_job_is_retried_with_more_time_and_resumes_bit_identical(local_slurm, tmp_path):
    calibration = copy_workflow(tmp_path / "calibration", RETRY_OVERRIDE.format(steps=CALIBRATION_STEPS))
    _snakemake(calibration, "--cores", "1", "--", RETRY_TARGET)
    steps_per_s = float(pd.read_csv(calibration / RETRY_TARGET)["steps_per_s"].iloc[0])
    steps = max(20000, int(steps_per_s * TARGET_SECONDS) // 1000 * 1000)
    override = RETRY_OVERRIDE.format(steps=steps)

    slurm_dir = copy_workflow(tmp_path / "slurm", override)
    local_dir = copy_workflow(tmp_path / "local", override)
    # The uninterrupted local run goes at the same time, on the core the SLURM job leaves free.
    retried_run = _start_snakemake(slurm_dir, "--profile", "profiles/slurm", *LOCAL_CLUSTER_ARGS, "--",
                                   RETRY_TARGET, timeout=1500)
    local_run = _start_snakemake(local_dir, "--cores", "1", "--", RETRY_TARGET, timeout=1500)
    out = _finish(retried_run)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    states = [(job["JobState"], job["TimeLimit"]) for job in map(_scontrol_job, submitted)]
    # attempt 1: 1 minute, killed by SLURM at its limit; the next attempt asks for 2 (then 3) minutes and completes
    assert states[0] == ("TIMEOUT", "00:01:00"), (steps, states)
    # test.yaml's CPU training (resources.gpu: 0) asks for no GPU partition: the cluster's default
    assert {job["Partition"] for job in map(_scontrol_job, submitted)} == {DEFAULT_PARTITION}
    assert states[-1][0] == "COMPLETED", (steps, states)
    assert [limit for _, limit in states] == [f"00:0{k}:00" for k in range(1, len(states) + 1)], states
    log = (slurm_dir / "logs/train_warmup/fashion_mnist/mlp/lr0.005/seed0.log").read_text()
    assert "resuming from" in log, log[-3000:]

    _finish(local_run)
    compared = ["epoch", "step", "acc", "ece", "nll", "pruned_fraction"]
    retried = pd.read_csv(slurm_dir / RETRY_TARGET)[compared]
    uninterrupted = pd.read_csv(local_dir / RETRY_TARGET)[compared]
    assert retried["step"].tolist() == [steps]
    pd.testing.assert_frame_equal(retried, uninterrupted, check_exact=True)


#: Environment variables through which SLURM or CUDA assign GPUs (bmrsparse.provenance.scheduler_gpus).
GPU_ASSIGNMENT_ENV = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE",
                      "GPU_DEVICE_ORDINAL")


@pytest.mark.parametrize("asked", ["", "resources: {gpu: 1}\n"], ids=["test_profile", "config_asks_for_gpu"])
def test_test_profile_trains_inside_a_cpu_allocation(local_slurm, tmp_path, asked):
    """`srun snakemake ...` with config/test.yaml inside a SLURM allocation without GPUs: the training job runs on
    the CPU with no opt-out, also when the config asks for a GPU (before, SLURM_JOB_ID + resources.gpu counted as
    a GPU and every training job was refused)."""
    workdir = copy_workflow(tmp_path / "wf", "archs: [mlp]\n" + asked)
    env = {k: v for k, v in os.environ.items() if k not in ("BMRSPARSE_ALLOW_CPU", *GPU_ASSIGNMENT_ENV)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    target = "results/warmup/fashion_mnist/mlp/lr0.005/seed0/metrics.csv"  # Flat-FF's warm-up
    cmd = ["srun", "--ntasks=1", "--cpus-per-task=1", "--time=10", "--export=ALL", sys.executable, "-c",
           "import os, sys, subprocess; print('SLURM_JOB_ID=' + os.environ['SLURM_JOB_ID'], flush=True); "
           "sys.exit(subprocess.call(sys.argv[1:]))",
           sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "config/test.yaml", "override.yaml",
           "--", target]
    proc = subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert re.search(r"^SLURM_JOB_ID=\d+$", proc.stdout, flags=re.M), proc.stdout[-3000:]  # it ran under SLURM
    log = (workdir / "logs/train_warmup/fashion_mnist/mlp/lr0.005/seed0.log").read_text()
    assert "GPUFallbackError" not in log
    metrics = pd.read_csv(workdir / target)
    assert len(metrics) > 0 and metrics["device"].astype(str).str.startswith("cpu: ").all()
