"""``python -m bmrsparse.workflow.plan [options] -- SNAKEMAKE_ARGS``: the plan of a run before it starts (see
:mod:`bmrsparse.workflow.plan`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from .dag import dry_run
from .estimate import estimate, format_plan, job_work, training_steps
from .timing import TimingCache, default_cache, measure


def _counts(jobs) -> str:
    counts = Counter(j.rule for j in jobs)
    return f"bmrsparse plan: {len(jobs)} jobs: " + ", ".join(f"{r} {n}" for r, n in counts.most_common())


def _arguments(argv):
    p = argparse.ArgumentParser(prog="python -m bmrsparse.workflow.plan",
                                description="The plan of a run before it starts: jobs per rule and the estimated "
                                            "wall time on this machine.",
                                usage="%(prog)s [options] -- SNAKEMAKE_ARGS ...")
    p.add_argument("--steps", type=int, default=10, help="SVI steps timed per network after compiling (default 10)")
    p.add_argument("--cache", default=None, help=f"timing cache (default: {default_cache()})")
    p.add_argument("--no-timing", action="store_true", help="print the jobs per rule only")
    p.add_argument("--directory", default=".", help="the workflow's folder (default: .)")
    p.add_argument("snakemake_args", nargs="*", help="the run's Snakemake arguments (after --)")
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error("--steps must be >= 1")
    return a


def main(argv=None) -> int:
    a = _arguments(argv)
    # several processes may share a GPU while timing (and the training jobs after): none takes most of its memory
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        run = dry_run(a.snakemake_args, Path(a.directory).resolve())
    except RuntimeError as e:
        print(f"bmrsparse plan: {e}", file=sys.stderr)
        return 1
    jobs, cfg, cores = run.jobs, run.grid.config.as_dict(), run.cores
    if a.no_timing or not jobs:
        print(_counts(jobs))
        return 0
    needed = [w for j in jobs for w in job_work(j, cfg)]
    threads = max([min(j.threads, cores) for j in jobs if training_steps(j.rule, cfg["schedule"])] or [1])
    # as many timings at once as training jobs will run at once: cores / threads, and one per GPU
    workers = max(1, min(len(set(needed)), cores // threads, run.gpu_limit or cores))
    cache = TimingCache(a.cache or default_cache())
    try:
        timings, startup, device, cached = measure(needed, cfg, cache, threads, a.steps, workers=workers,
                                                   log=lambda m: print(m, flush=True))
    except Exception as e:  # the run does not depend on its estimate
        print(f"bmrsparse plan: could not time the steps ({type(e).__name__}: {e}); no estimate", file=sys.stderr)
        print(_counts(jobs))
        return 0
    est = estimate(jobs, cfg, timings, startup, cores, run.gpu_limit)
    print(format_plan(jobs, est, cfg, timings, device=device, cores=cores, gpu_limit=run.gpu_limit,
                      startup_s=startup, cached=cached, configfiles=run.configfiles), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
