"""What each rule's jobs ask a scheduler for (issue 31, item 5), without a cluster: the GPU rules' partition, GPU
model and threads from the config, the other rules' nothing of the kind; no script takes more threads than its job
was given; and a subset run's summary folder.

The dry run is Snakemake's own: the resources it prints are those snakemake-executor-plugin-slurm turns into sbatch
options (``slurm_partition`` -> ``-p``, ``gpu``/``gpu_model`` -> ``--gpus=<model>:<n>``, ``threads`` ->
``--cpus-per-task``). tests/tooling/test_slurm.py submits such jobs to a local two-partition SLURM.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_workflow

from bmrsparse.workflow import Config, Grid, paths
from bmrsparse.workflow.jobs import GPU_RULES, gpu_resources
from bmrsparse.workflow.schema import validated

ROOT = Path(__file__).resolve().parents[2]
#: More threads than this machine has cores: a job that asked for the host's core count would show fewer.
THREADS = (os.cpu_count() or 1) + 1
GPU_CONFIG = f"resources={{gpu: 1, gpu_partition: gpu, gpu_model: fake, threads: {THREADS}}}"


def _config(**resources) -> Config:
    return Config.from_mapping(validated({"resources": resources}))


def test_gpu_resources_only_when_set_and_only_for_gpu_jobs():
    assert gpu_resources(_config(gpu=1)) == {"gpu": 1}  # no partition, no model: the cluster's default, any GPU
    assert gpu_resources(_config(gpu=2, gpu_partition="gpu", gpu_model="a100")) == {
        "gpu": 2, "slurm_partition": "gpu", "gpu_model": "a100"}
    assert gpu_resources(_config(gpu=1, gpu_model="h100")) == {"gpu": 1, "gpu_model": "h100"}
    # CPU training (gpu: 0) asks for neither: its jobs stay in the default partition
    assert gpu_resources(_config(gpu=0, gpu_partition="gpu", gpu_model="a100")) == {"gpu": 0}
    with pytest.raises(ValueError, match="resources.gpu_model"):
        _config(gpu=1, gpu_model="'a100'")  # the plugin refuses quotes; the schema says so first


def _jobs(output: str) -> list[tuple[str, int, str]]:
    """(rule, threads, resources line) of every job of a dry run's output."""
    jobs = []
    for block in re.split(r"\n(?=\[)", output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, flags=re.M)
        if not rule or rule.group(1) == "all":
            continue
        threads = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        jobs.append((rule.group(1), int(threads.group(1)) if threads else 1, resources.group(1) if resources else ""))
    return jobs


@pytest.fixture(scope="module")
def gpu_dry_run(tmp_path_factory) -> list[tuple[str, int, str]]:
    """Every job of config/test.yaml asking for a GPU in partition `gpu`, of model `fake`, on THREADS threads."""
    project = copy_workflow(tmp_path_factory.mktemp("resources") / "project")
    run = subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--cores", str(THREADS + 8),
                          "--configfile", "config/test.yaml", "--config", GPU_CONFIG],
                         cwd=project, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return _jobs(run.stdout)


def test_gpu_rules_ask_for_the_gpu_partition_model_and_threads(gpu_dry_run):
    seen = {rule for rule, _, _ in gpu_dry_run}
    assert set(GPU_RULES) <= seen, f"the test profile plans no job of {set(GPU_RULES) - seen}"
    for rule, threads, resources in gpu_dry_run:
        if rule not in GPU_RULES:
            continue
        assert re.search(r"\bgpu=1\b", resources), (rule, resources)
        assert "slurm_partition=gpu," in resources and "gpu_model=fake," in resources, (rule, resources)
        # resources.threads, not the submitting host's core count (rule inference asked for os.cpu_count())
        assert threads == THREADS, (rule, threads)


def test_cpu_rules_ask_for_no_gpu_partition_or_model(gpu_dry_run):
    cpu_jobs = [job for job in gpu_dry_run if job[0] not in GPU_RULES]
    assert {"prepare_dataset", "compact_network", "collect_metrics", "tables", "provenance",
            "plot_performance"} <= {rule for rule, _, _ in cpu_jobs}
    for rule, threads, resources in cpu_jobs:
        # no slurm_partition: the cluster's default partition (also when --default-resources names one)
        assert "slurm_partition" not in resources and "gpu" not in resources, (rule, resources)
        assert threads == 1, (rule, threads)


SCRIPTS = sorted((ROOT / "workflow" / "scripts").glob("*.py"))
#: What a script may import before it has bounded its thread pools (none of these starts one).
_BEFORE_LIMIT = {"os", "sys", "time", "bmrsparse.provenance"}


def _is_limit_call(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "limit_threads"
            and ast.unparse(node.value.args[0]) == "snakemake.threads")


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_every_script_bounds_its_threads_to_the_job_before_numpy_or_jax(script):
    """NumPy's BLAS and XLA size their thread pools from the machine's cores when they start, unless told: each script
    first calls limit_threads(snakemake.threads) (the job's `threads`), before it imports them."""
    body = ast.parse(script.read_text()).body
    calls = [i for i, node in enumerate(body) if _is_limit_call(node)]
    assert calls, f"{script.name} never calls limit_threads(snakemake.threads)"
    for node in body[: calls[0]]:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module]
        else:
            continue
        assert set(names) <= _BEFORE_LIMIT, f"{script.name} imports {names} before limit_threads"


def test_no_rule_or_script_asks_for_the_hosts_core_count():
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk")), *SCRIPTS]
    for path in files:
        text = path.read_text()
        assert "cpu_count" not in text and "sched_getaffinity" not in text, path.name


# ---------------------------------------------------------------------------------------------------------- subsets


def test_a_subset_is_a_run_that_leaves_out_part_of_the_config_files_grid():
    files = {"datasets": ["cifar10"], "archs": ["mlp", "lenet", "mixer", "vit"], "methods": ["flat_ff", "bmr_ss"],
             "seeds": [0, 1]}
    assert paths.subset_name(files, files) is None
    assert paths.subset_name(files, {**files, "archs": ["vit"]}) == "archs-vit"
    assert paths.subset_name(files, {**files, "seeds": [0, 1, 2]}) is None  # more seeds: no subset
    assert paths.subset_name(files, {**files, "archs": ["vit"], "seeds": [0, 1, 2]}) == "archs-vit_seeds-0+1+2"
    assert paths.summary_dir(None) == "results"
    grid = Grid(_config(), subset="archs-vit")
    assert grid.summary == "results/subsets/archs-vit"
    assert grid.metrics == "results/subsets/archs-vit/metrics/metrics.csv"
    assert all(t.startswith("results/subsets/archs-vit/") for t in grid.final_targets())
    assert all(t.startswith(("results/metrics/", "results/tables/", "results/figures/"))
               for t in Grid(_config()).final_targets())
