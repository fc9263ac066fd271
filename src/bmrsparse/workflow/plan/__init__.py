r"""The plan of a run before it starts: jobs per rule and the estimated wall time on this machine.

Usage::

    python -m bmrsparse.workflow.plan -- --profile profiles/local --configfile config/config.yaml [more Snakemake args]
    python -m bmrsparse.workflow.plan --no-timing -- --configfile config/paper.yaml --cores 16 --resources gpu=1

`make reproduce` runs it with the run's own Snakemake arguments before training. It

1. asks Snakemake for the jobs still to run: its own command-line parser and dry run with those arguments, in this
   process (:mod:`.dag`: a subset given with ``--config``, or a half-finished run, shows only what is left), their
   dependencies, threads and GPUs;
2. times each network's SVI step on this device, once per (data set, architecture, method kind) present in the
   plan: Flat-MAP (a point estimate with dropout), the mean-field flat model (Flat-FF, its warm-up, BMR-S&S and the
   pruning baselines) and the tiered model (Tiered-FF), with the config's batch size, ELBO, dropout and network
   sizes. A timing initialises and compiles the training step (timed), runs ``--steps`` steps three times (the
   median counts: a short window can meet another timing's initialisation or compilation), and, once
   per network, compiles and runs one posterior-predictive pass over one evaluation batch. Timings run in fresh
   processes, as many at once as training jobs will run at once, each on as many CPUs as a job's ``threads``, on
   synthetic images of the data set's shape (:func:`bmrsparse.bench.synthetic_dataset`: speed does not depend on
   pixel values; :mod:`bmrsparse.steptime`); their import of JAX and the library is a job's start-up. Timings are
   cached (:func:`~.timing.default_cache`) under a key of the device (JAX's platform and device kind, the CPU model and thread
   count on CPU), the JAX version and the library digest, so a second plan on the same machine and code does not
   time again;
3. estimates every job's seconds (:func:`~.estimate.job_seconds`) and the wall time of running them with the run's
   cores and GPUs (:func:`~.estimate.makespan`: jobs start as soon as their inputs exist and cores and GPUs are free,
   longest remaining chain first), and prints the plan with its assumptions (:func:`~.estimate.format_plan`).

The estimate is a sum of measured parts; what it does not know it says: the data download, Snakemake's own
bookkeeping, and whether several jobs sharing a GPU slow each other (a job that asks for a GPU waits for a free one,
so with ``--resources gpu=1`` they run one at a time, as measured).
"""

from . import timing
from .estimate import (KINDS, Estimate, Job, dependencies, duration, estimate, format_plan, job_seconds, job_seeds,
                       job_work, makespan, method_kind, starts_fresh, training_steps)
from .timing import CACHE_ENV, TimingCache, default_cache, device_key, measure, time_in_processes, timing_settings

__all__ = ["timing", "Job", "KINDS", "Estimate", "dependencies", "duration", "estimate", "format_plan", "job_seconds",
           "job_seeds", "job_work", "makespan", "method_kind", "starts_fresh", "training_steps", "CACHE_ENV",
           "TimingCache", "default_cache", "device_key", "measure", "time_in_processes", "timing_settings"]
