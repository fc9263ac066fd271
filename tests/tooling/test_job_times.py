"""tools/job_times.py: per-job start and end times from Snakemake's console log (the docs' measured runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "job_times.py"

LOG = """\
Building DAG of jobs...
[Mon Dec  7 17:46:11 2026]
localrule prepare_dataset:
    output: results/data/fashion_mnist.npz
    jobid: 3
    wildcards: dataset=fashion_mnist
[Mon Dec  7 17:46:12 2026]
Finished jobid: 3 (Rule: prepare_dataset)
1 of 3 steps (33%) done

[Mon Dec  7 17:46:12 2026]
rule train_warmup:
    jobid: 7
    wildcards: dataset=fashion_mnist, arch=mlp, warmup=lr0.01, seed=0
    threads: 1
[Mon Dec  7 17:46:12 2026]
localrule train_warmup:
    jobid: 8
    wildcards: dataset=fashion_mnist, arch=lenet, warmup=lr0.01, seed=0
[Mon Dec  7 17:49:33 2026]
Finished jobid: 8 (Rule: train_warmup)
[Mon Dec  7 17:50:12 2026]
Finished jobid: 7 (Rule: train_warmup)
[Mon Dec  7 17:50:13 2026]
rule killed_before_the_end:
    jobid: 9
"""


def _run(tmp_path, *args):
    log = tmp_path / "run.log"
    log.write_text(LOG)
    return subprocess.run([sys.executable, str(TOOL), str(log), *args], capture_output=True, text=True, check=True)


def test_jobs_csv_has_each_finished_job_from_the_first_start(tmp_path):
    lines = _run(tmp_path).stdout.splitlines()
    assert lines == [
        "rule,wildcards,start_s,end_s,seconds",
        "prepare_dataset,dataset=fashion_mnist,0,1,1",
        "train_warmup,dataset=fashion_mnist; arch=lenet; warmup=lr0.01; seed=0,1,202,201",
        "train_warmup,dataset=fashion_mnist; arch=mlp; warmup=lr0.01; seed=0,1,241,240",
    ]  # the unfinished job is not counted


def test_rules_sum_the_work_and_give_the_wall_time(tmp_path):
    out = _run(tmp_path, "--rules").stdout
    assert "train_warmup               2 jobs     441 s" in out
    assert "wall 241 s (4.0 min) for 3 jobs, 442 s of work" in out


def test_a_log_without_jobs_is_refused(tmp_path):
    log = tmp_path / "empty.log"
    log.write_text("Nothing to be done.\n")
    res = subprocess.run([sys.executable, str(TOOL), str(log)], capture_output=True, text=True)
    assert res.returncode == 1 and "no finished Snakemake job" in res.stderr
