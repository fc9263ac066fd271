"""The estimate of a plan: what each job does (SVI steps, evaluations, the timings it needs), its seconds from
measured step times, and the wall time of running the jobs with the run's cores and GPUs."""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from ...methods import METHODS, WARMUP_METHOD
from ...sparsity import FRACTIONS, SCORES
from ...steptime import Timing
from ..jobs import SPEED_METHODS, TIMING_REPEATS, timing_steps

__all__ = ["Job", "Timing", "KINDS", "TEST_IMAGES", "dependencies", "method_kind", "training_steps", "starts_fresh",
           "job_work", "job_seconds", "makespan", "Estimate", "estimate", "format_plan", "duration"]

#: Method kinds whose steps cost differently: label and the method timed for it.
KINDS = {"map": ("MAP", "flat_map"), "flat": ("mean-field flat", "flat_ff"), "tiered": ("tiered", "tiered_ff")}
#: Test images per data set (all three have 10000).
TEST_IMAGES = 10000
#: a seed's folder in an output path (results/train/.../seed3/epoch1/...)
_SEED_DIR = re.compile(r"/seed(\d+)/")


@dataclass
class Job:
    """One job of Snakemake's dry run: its id, rule, wildcards, threads, GPUs (resource ``gpu``), files, and the
    method whose model it trains (training jobs)."""

    jobid: int
    rule: str
    wildcards: dict = field(default_factory=dict)
    threads: int = 1
    gpu: int = 0
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    method: str | None = None


def dependencies(jobs: list[Job]) -> dict[int, set[int]]:
    """For each job, the jobs of the plan whose outputs it reads."""
    producer = {path: job.jobid for job in jobs for path in job.outputs}
    return {job.jobid: {producer[p] for p in job.inputs if p in producer} - {job.jobid} for job in jobs}




def method_kind(method: str) -> str:
    """``"map"``, ``"flat"`` or ``"tiered"``: the kind of step a method trains with (see :data:`KINDS`)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    info = METHODS[method]
    if info.guide == "point":
        return "map"
    return "tiered" if info.prior == "tiered" else "flat"


def training_steps(rule: str, schedule: dict) -> tuple[int, int] | None:
    """(SVI steps, evaluations) of a job of a training rule (workflow/rules/train.smk); None for other rules.
    :func:`starts_fresh` says which of them initialise a guide.

    A warm-up trains ``warmup_steps`` and evaluates once; a method trained from scratch trains the warm-up budget and
    every epoch (one evaluation each); a continuation trains every epoch; a per-epoch job one epoch.
    """
    w, e, n = (int(schedule[k]) for k in ("warmup_steps", "epoch_steps", "num_epochs"))
    if not rule.startswith("train_"):
        return None
    if "warmup" in rule:
        return w, 1
    if rule == "train_scratch":
        return w + n * e, 1 + n
    if rule == "train_continue":
        return n * e, n
    if rule == "train_epoch":
        return e, 1
    raise ValueError(f"training rule {rule!r} is unknown to bmrsparse.workflow.plan.training_steps: say how many "
                     "steps it trains")


def starts_fresh(rule: str) -> bool:
    """Whether a training rule's job initialises a fresh guide (a warm-up, a method trained from scratch) rather
    than loading a state."""
    return rule == "train_scratch" or (rule.startswith("train_") and "warmup" in rule)


def _eval_seconds(t: Timing, cfg: dict, kind: str, final: bool = False) -> float:
    """One evaluation: ``evaluation.num_samples`` on ``test_subset`` images, or for the run's last epoch
    (``final``) ``final_num_samples`` on ``final_test_subset``."""
    ev = cfg["evaluation"]
    prefix = "final_" if final else ""
    samples = 1 if kind == "map" else int(ev.get(f"{prefix}num_samples", ev["num_samples"]))
    batch = int(ev["eval_batch_size"])
    subset = ev.get(f"{prefix}test_subset", ev["test_subset"]) if final else ev["test_subset"]
    images = min(int(subset or TEST_IMAGES), TEST_IMAGES)
    return samples * math.ceil(images / batch) * batch * t.eval_s


def _evaluates_last_epoch(job: Job, cfg: dict) -> bool:
    """Whether a training job evaluates the run's last epoch (every job but a warm-up and the earlier epochs of a
    per-epoch method)."""
    if "warmup" in job.rule:
        return False
    if job.rule == "train_epoch":
        return int(job.wildcards["epoch"]) == int(cfg["schedule"]["num_epochs"])
    return True


def trained_method(job: Job) -> str:
    """The method whose model a training job trains: :attr:`Job.method`, else its {method} wildcard, else the
    shared warm-up's (a warm-up)."""
    return job.method or job.wildcards.get("method") or WARMUP_METHOD


def job_work(job: Job, cfg: dict) -> list[tuple[str, str, str]]:
    """The (data set, architecture, kind) timings a job's estimate needs."""
    wc = job.wildcards
    if training_steps(job.rule, cfg["schedule"]) is not None:
        return [(wc["dataset"], wc["arch"], method_kind(trained_method(job)))]
    if job.rule == "sparsity_curve":
        return [(wc["dataset"], wc["arch"], "flat")]
    if job.rule == "time_steps":
        return [(d, a, method_kind(m)) for d in cfg["datasets"] for a in cfg["archs"] for m in SPEED_METHODS]
    return []


def job_seeds(job: Job) -> int:
    """The seeds a job trains together (vmapped): the distinct ``seed<N>`` folders of its outputs, at least 1."""
    return max(1, len({m.group(1) for f in job.outputs for m in [_SEED_DIR.search(f)] if m}))


def job_seconds(job: Job, cfg: dict, timings: dict, startup_s: float) -> float:
    """Estimated seconds of one job, from measured timings ``{(dataset, arch, kind): Timing}``.

    Training: start-up + a fresh guide's initialisation (warm-ups and methods trained from scratch) + compiles +
    steps x step time + evaluations (each ``num_samples`` posterior samples on the evaluation subset; Flat-MAP
    one). sparsity_curve: start-up + 3 scores x 10 fractions evaluations of the final Flat-FF posterior.
    time_steps: what the rule times (:data:`bmrsparse.workflow.jobs.SPEED_METHODS`). Other rules (data, tables, figures): start-up
    only. The target rule ``all`` runs nothing.
    """
    if job.rule == "all":
        return 0.0
    trained = training_steps(job.rule, cfg["schedule"])
    wc = job.wildcards
    if trained is not None:
        steps, evals = trained
        kind = method_kind(trained_method(job))
        t = timings[(wc["dataset"], wc["arch"], kind)]
        fresh = t.init_s if starts_fresh(job.rule) else 0.0
        last = _evaluates_last_epoch(job, cfg)
        per_seed = (steps * t.step_s + (evals - last) * _eval_seconds(t, cfg, kind)
                    + last * _eval_seconds(t, cfg, kind, final=True))
        return startup_s + fresh + t.compile_s + t.eval_compile_s + job_seeds(job) * per_seed
    if job.rule == "sparsity_curve":
        t = timings[(wc["dataset"], wc["arch"], "flat")]
        return startup_s + t.eval_compile_s + len(SCORES) * len(FRACTIONS) * _eval_seconds(t, cfg, "flat")
    if job.rule == "time_steps":
        steps = timing_steps(int(cfg["schedule"]["epoch_steps"]))
        total = startup_s
        for key in job_work(job, cfg):
            t = timings[key]
            total += TIMING_REPEATS * (t.init_s + t.compile_s + steps * t.step_s)
        return total
    return startup_s


def makespan(durations: dict, deps: dict, threads: dict, gpus: dict, cores: int, gpu_limit: int | None) -> float:
    """Wall time of running jobs ``durations`` (seconds) with ``cores`` cores and ``gpu_limit`` GPUs (None: GPUs
    not limited), each job needing ``threads[j]`` cores (at most ``cores``) and ``gpus[j]`` GPUs, after its
    ``deps[j]``. A job starts as soon as it may, longest remaining chain of work first (a list schedule)."""
    if cores < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")
    order, seen = [], set()

    def visit(j, stack=()):
        if j in seen:
            return
        if j in stack:
            raise ValueError(f"the jobs' dependencies have a cycle through job {j}")
        for d in deps.get(j, ()):
            visit(d, stack + (j,))
        seen.add(j)
        order.append(j)

    for j in durations:
        visit(j)
    children = {j: [] for j in durations}
    for j in durations:
        for d in deps.get(j, ()):
            children[d].append(j)
    chain = {}
    for j in reversed(order):
        chain[j] = durations[j] + max((chain[c] for c in children[j]), default=0.0)

    waiting = {j: len(deps.get(j, ())) for j in durations}
    ready = [j for j in durations if waiting[j] == 0]
    running: list[tuple[float, int]] = []
    now, free_cores, free_gpus = 0.0, cores, gpu_limit
    need_cores = {j: max(1, min(int(threads.get(j, 1)), cores)) for j in durations}
    need_gpus = {j: int(gpus.get(j, 0)) if gpu_limit is not None else 0 for j in durations}
    for j, g in need_gpus.items():
        if gpu_limit is not None and g > gpu_limit:
            raise ValueError(f"job {j} needs {g} GPUs, more than the {gpu_limit} given")
    done = 0
    while done < len(durations):
        ready.sort(key=lambda j: -chain[j])
        started = []
        for j in ready:
            if need_cores[j] <= free_cores and (free_gpus is None or need_gpus[j] <= free_gpus):
                free_cores -= need_cores[j]
                if free_gpus is not None:
                    free_gpus -= need_gpus[j]
                heapq.heappush(running, (now + durations[j], j))
                started.append(j)
        ready = [j for j in ready if j not in started]
        finish, j = heapq.heappop(running)
        now = finish
        free_cores += need_cores[j]
        if free_gpus is not None:
            free_gpus += need_gpus[j]
        done += 1
        for c in children[j]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    return now


@dataclass
class Estimate:
    wall_s: float
    work_s: float
    per_rule: dict
    seconds: dict


def estimate(jobs: list[Job], cfg: dict, timings: dict, startup_s: float, cores: int,
             gpu_limit: int | None) -> Estimate:
    """Seconds per job and the wall time of the whole plan (see :func:`job_seconds`, :func:`makespan`)."""
    seconds = {j.jobid: job_seconds(j, cfg, timings, startup_s) for j in jobs}
    per_rule: dict = {}
    for j in jobs:
        per_rule[j.rule] = per_rule.get(j.rule, 0.0) + seconds[j.jobid]
    wall = makespan(seconds, dependencies(jobs), {j.jobid: j.threads for j in jobs},
                    {j.jobid: j.gpu for j in jobs}, cores, gpu_limit) if jobs else 0.0
    return Estimate(wall, sum(seconds.values()), per_rule, seconds)


def duration(seconds: float) -> str:
    """A number of seconds as ``12 s``, ``3 min 04 s`` or ``1 h 05 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


def format_plan(jobs: list[Job], est: Estimate, cfg: dict, timings: dict, *, device: str, cores: int,
                gpu_limit: int | None, startup_s: float, cached: bool, configfiles: list[str]) -> str:
    """The plan as printed before the run: jobs per rule, the step times, the estimate and its assumptions."""
    counts = Counter(j.rule for j in jobs)
    lines = [f"bmrsparse plan: {len(jobs)} jobs for {' + '.join(configfiles) or 'the default config'}"]
    if not jobs:
        lines.append("  nothing to do: every output is up to date")
        return "\n".join(lines)
    width = max(len(r) for r in counts)
    lines.append("  jobs per rule (estimated seconds of work):")
    for rule, n in counts.most_common():
        lines.append(f"    {rule:<{width}} {n:>5}  {duration(est.per_rule[rule]):>12}")
    train_threads = sorted({min(j.threads, cores) for j in jobs if training_steps(j.rule, cfg["schedule"])})
    lines.append(f"  step times on {device} ({'cached' if cached else 'measured now'}; job start-up "
                 f"{startup_s:.1f} s):")
    for (dataset, arch, kind), t in sorted(timings.items()):
        lines.append(f"    {dataset}/{arch:<6} {KINDS[kind][0]:<16} {1e3 * t.step_s:9.2f} ms/step  init "
                     f"{t.init_s:5.1f} s  compile {t.compile_s:5.1f} s  evaluation {_eval_seconds(t, cfg, kind):7.2f}"
                     f" s (compile {t.eval_compile_s:.1f} s)")
    steps = sum((training_steps(j.rule, cfg["schedule"]) or (0, 0))[0] * job_seeds(j) for j in jobs)
    vmapped = max((job_seeds(j) for j in jobs), default=1)
    ev = cfg["evaluation"]
    lines.append(f"  estimated wall time: {duration(est.wall_s)} ({duration(est.work_s)} of work in all; {steps:,} "
                 f"SVI steps; {cores} cores, {'/'.join(map(str, train_threads)) or '-'} per training job"
                 + (f", {gpu_limit} GPU(s), one job per GPU at a time" if gpu_limit is not None else "") + ")")
    lines.append(
        "  assumptions: each job = start-up + its guide's initialisation (from scratch only) + its compiles + its "
        "steps at the timed rate + its evaluations "
        f"({ev['num_samples']} samples on {min(int(ev['test_subset'] or TEST_IMAGES), TEST_IMAGES)} test images, "
        "Flat-MAP 1), "
        + (f"a job of {vmapped} seeds trained together costing {vmapped} x one seed's steps and evaluations (as on "
           "a CPU; on a GPU vmapped seeds share the device and cost less: 8 seeds 2.5-4.5 x one on an H100), "
           if vmapped > 1 else "")
        + "every job compiling afresh (the JAX compilation cache makes later ones faster); jobs run "
        "as soon as their inputs exist and cores/GPUs are free, as many at once as the cores allow, each as fast "
        "as timed alone with its own threads; data download, pruning steps and Snakemake's bookkeeping not counted")
    return "\n".join(lines)
