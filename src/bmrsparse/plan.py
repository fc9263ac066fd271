r"""The plan of a run before it starts: jobs per rule and the estimated wall time on this machine.

Usage::

    python -m bmrsparse.plan -- --profile profiles/local --configfile config/config.yaml [more Snakemake args]
    python -m bmrsparse.plan --no-timing -- --configfile config/paper.yaml --cores 16 --resources gpu=1

`make reproduce` runs it with the run's own Snakemake arguments before training. It

1. asks Snakemake for the jobs still to run (``snakemake --dry-run`` with those arguments: a subset given with
   ``--config``, or a half-finished run, shows only what is left), their dependencies, threads and GPUs;
2. times each network's SVI step on this device, once per (data set, architecture, method kind) present in the
   plan: Flat-MAP (a point estimate with dropout), the mean-field flat model (Flat-FF, its warm-up, BMR-S&S and the
   pruning baselines) and the tiered model (Tiered-FF), with the config's batch size, ELBO, dropout and network
   sizes. A timing initialises and compiles the training step (timed), runs ``--steps`` steps three times (the
   median counts: a short window can meet another timing's initialisation or compilation), and, once
   per network, compiles and runs one posterior-predictive pass over one evaluation batch. Timings run in fresh
   processes, as many at once as training jobs will run at once, each on as many CPUs as a job's ``threads``, on
   synthetic images of the data set's shape (:func:`bmrsparse.bench.synthetic_dataset`: speed does not depend on
   pixel values); their import of JAX and the library is a job's start-up. Timings are cached
   (:func:`default_cache`) under a key of the device (JAX's platform and device kind, the CPU model and thread
   count on CPU), the JAX version and the library digest, so a second plan on the same machine and code does not
   time again;
3. estimates every job's seconds (:func:`job_seconds`) and the wall time of running them with the run's cores and
   GPUs (:func:`makespan`: jobs start as soon as their inputs exist and cores and GPUs are free, longest remaining
   chain first), and prints the plan with its assumptions (:func:`format_plan`).

The estimate is a sum of measured parts; what it does not know it says: the data download, Snakemake's own
bookkeeping, and whether several jobs sharing a GPU slow each other (a job that asks for a GPU waits for a free one,
so with ``--resources gpu=1`` they run one at a time, as measured).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "Job",
    "Timing",
    "KINDS",
    "parse_dry_run",
    "method_kind",
    "training_steps",
    "job_seconds",
    "makespan",
    "estimate",
    "format_plan",
    "TimingCache",
    "default_cache",
    "main",
]

#: Method kinds whose steps cost differently: label and the method timed for it.
KINDS = {"map": ("MAP", "flat_map"), "flat": ("mean-field flat", "flat_ff"), "tiered": ("tiered", "tiered_ff")}
#: Test images per data set (all three have 10000).
TEST_IMAGES = 10000
#: What rule time_steps runs per (data set, architecture) (workflow/rules/tables.smk): these methods, each this many
#: times, with min(200, epoch_steps) steps (at least 10).
TIME_STEPS_METHODS = ("tiered_ff", "bmr_ss")
TIME_STEPS_REPEATS = 2
#: Environment variable naming the timing cache's folder.
CACHE_ENV = "BMRSPARSE_CACHE_DIR"
#: Part of the cache key: entries of another format are timed again.
CACHE_FORMAT = 2


# ---------------------------------------------------------------------------------------------------------------
# The jobs: Snakemake's dry run
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One job of Snakemake's dry run."""

    jobid: int
    rule: str
    wildcards: dict = field(default_factory=dict)
    threads: int = 1
    gpu: int = 0
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)


_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):\s*$")
_FIELD = re.compile(r"^ {4}(\w+): ?(.*)$")


def _pairs(text: str) -> dict:
    out = {}
    for part in text.split(", "):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of ``snakemake --dry-run`` output: rule, wildcards, threads, GPUs (resource ``gpu``), files."""
    jobs: list[Job] = []
    current: dict | None = None

    def close():
        if current is not None and "jobid" in current:
            resources = _pairs(current.get("resources", ""))
            jobs.append(Job(
                jobid=int(current["jobid"]), rule=current["rule"], wildcards=_pairs(current.get("wildcards", "")),
                threads=int(current.get("threads", 1)), gpu=int(float(resources.get("gpu", 0) or 0)),
                inputs=[f for f in current.get("input", "").split(", ") if f],
                outputs=[f for f in current.get("output", "").split(", ") if f],
            ))

    for line in text.splitlines():
        rule = _RULE.match(line)
        if rule:
            close()
            current = {"rule": rule.group(1)}
            continue
        item = _FIELD.match(line)
        if item and current is not None:
            current.setdefault(item.group(1), item.group(2))
        elif line and not line.startswith(" ") and current is not None:
            close()
            current = None
    close()
    return jobs


def dependencies(jobs: list[Job]) -> dict[int, set[int]]:
    """For each job, the jobs of the plan whose outputs it reads."""
    producer = {path: job.jobid for job in jobs for path in job.outputs}
    return {job.jobid: {producer[p] for p in job.inputs if p in producer} - {job.jobid} for job in jobs}


# ---------------------------------------------------------------------------------------------------------------
# What a job does
# ---------------------------------------------------------------------------------------------------------------


def method_kind(method: str) -> str:
    """``"map"``, ``"flat"`` or ``"tiered"``: the kind of step a method trains with (see :data:`KINDS`)."""
    from .methods import METHODS

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
    raise ValueError(f"training rule {rule!r} is unknown to bmrsparse.plan.training_steps: say how many steps it "
                     "trains")


def starts_fresh(rule: str) -> bool:
    """Whether a training rule's job initialises a fresh guide (a warm-up, a method trained from scratch) rather
    than loading a state."""
    return rule == "train_scratch" or (rule.startswith("train_") and "warmup" in rule)


@dataclass
class Timing:
    """Measured costs of one (data set, architecture, method kind) on this device.

    ``init_s``: a fresh guide's initialisation (jobs that start from scratch); ``compile_s``: compiling the
    training step; ``step_s``: one SVI step; ``eval_compile_s``: compiling the predictive pass; ``eval_s``: one
    posterior sample on one test image (padded evaluation batches count whole).
    """

    init_s: float
    compile_s: float
    step_s: float
    eval_compile_s: float
    eval_s: float


def _eval_seconds(t: Timing, cfg: dict, kind: str) -> float:
    ev = cfg["evaluation"]
    samples = 1 if kind == "map" else int(ev["num_samples"])
    batch = int(ev["eval_batch_size"])
    images = min(int(ev["test_subset"] or TEST_IMAGES), TEST_IMAGES)
    return samples * math.ceil(images / batch) * batch * t.eval_s


def job_work(job: Job, cfg: dict) -> list[tuple[str, str, str]]:
    """The (data set, architecture, kind) timings a job's estimate needs."""
    wc = job.wildcards
    if training_steps(job.rule, cfg["schedule"]) is not None:
        return [(wc["dataset"], wc["arch"], method_kind(wc.get("method", KINDS["flat"][1])))]
    if job.rule == "sparsity_curve":
        return [(wc["dataset"], wc["arch"], "flat")]
    if job.rule == "time_steps":
        return [(d, a, method_kind(m)) for d in cfg["datasets"] for a in cfg["archs"] for m in TIME_STEPS_METHODS]
    return []


def job_seconds(job: Job, cfg: dict, timings: dict, startup_s: float) -> float:
    """Estimated seconds of one job, from measured timings ``{(dataset, arch, kind): Timing}``.

    Training: start-up + a fresh guide's initialisation (warm-ups and methods trained from scratch) + compiles +
    steps x step time + evaluations (each ``num_samples`` posterior samples on the evaluation subset; Flat-MAP
    one). sparsity_curve: start-up + 3 scores x 10 fractions evaluations of the final Flat-FF posterior.
    time_steps: what the rule times (:data:`TIME_STEPS_METHODS`). Other rules (data, tables, figures): start-up
    only. The target rule ``all`` runs nothing.
    """
    if job.rule == "all":
        return 0.0
    trained = training_steps(job.rule, cfg["schedule"])
    wc = job.wildcards
    if trained is not None:
        steps, evals = trained
        kind = method_kind(wc.get("method", KINDS["flat"][1]))
        t = timings[(wc["dataset"], wc["arch"], kind)]
        fresh = t.init_s if starts_fresh(job.rule) else 0.0
        return (startup_s + fresh + t.compile_s + t.eval_compile_s + steps * t.step_s
                + evals * _eval_seconds(t, cfg, kind))
    if job.rule == "sparsity_curve":
        from .sparsity import FRACTIONS, SCORES

        t = timings[(wc["dataset"], wc["arch"], "flat")]
        return startup_s + t.eval_compile_s + len(SCORES) * len(FRACTIONS) * _eval_seconds(t, cfg, "flat")
    if job.rule == "time_steps":
        steps = max(10, min(200, int(cfg["schedule"]["epoch_steps"])))
        total = startup_s
        for key in job_work(job, cfg):
            t = timings[key]
            total += TIME_STEPS_REPEATS * (t.init_s + t.compile_s + steps * t.step_s)
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


def _duration(seconds: float) -> str:
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
        lines.append(f"    {rule:<{width}} {n:>5}  {_duration(est.per_rule[rule]):>12}")
    train_threads = sorted({min(j.threads, cores) for j in jobs if training_steps(j.rule, cfg["schedule"])})
    lines.append(f"  step times on {device} ({'cached' if cached else 'measured now'}; job start-up "
                 f"{startup_s:.1f} s):")
    for (dataset, arch, kind), t in sorted(timings.items()):
        lines.append(f"    {dataset}/{arch:<6} {KINDS[kind][0]:<16} {1e3 * t.step_s:9.2f} ms/step  init "
                     f"{t.init_s:5.1f} s  compile {t.compile_s:5.1f} s  evaluation {_eval_seconds(t, cfg, kind):7.2f}"
                     f" s (compile {t.eval_compile_s:.1f} s)")
    steps = sum((training_steps(j.rule, cfg["schedule"]) or (0, 0))[0] for j in jobs)
    ev = cfg["evaluation"]
    lines.append(f"  estimated wall time: {_duration(est.wall_s)} ({_duration(est.work_s)} of work in all; {steps:,} "
                 f"SVI steps; {cores} cores, {'/'.join(map(str, train_threads)) or '-'} per training job"
                 + (f", {gpu_limit} GPU(s), one job per GPU at a time" if gpu_limit is not None else "") + ")")
    lines.append(
        "  assumptions: each job = start-up + its guide's initialisation (from scratch only) + its compiles + its "
        "steps at the timed rate + its evaluations "
        f"({ev['num_samples']} samples on {min(int(ev['test_subset'] or TEST_IMAGES), TEST_IMAGES)} test images, "
        "Flat-MAP 1), every job compiling afresh (the JAX compilation cache makes later ones faster); jobs run "
        "as soon as their inputs exist and cores/GPUs are free, as many at once as the cores allow, each as fast "
        "as timed alone with its own threads; data download, pruning steps and Snakemake's bookkeeping not counted")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Timing, cached per device and library version
# ---------------------------------------------------------------------------------------------------------------


def default_cache() -> Path:
    """``$BMRSPARSE_CACHE_DIR/step-times.json``, else ``$XDG_CACHE_HOME/bmrsparse/`` or ``~/.cache/bmrsparse/``."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bmrsparse"
    return Path(root) / "step-times.json"


class TimingCache:
    """Timings in a JSON file: one entry per device key (device, CPU threads, JAX version, library digest), holding
    the job start-up time and one :class:`Timing` per network and settings."""

    def __init__(self, path):
        self.path = Path(path)

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:  # a damaged cache is timed again, not trusted
            print(f"bmrsparse plan: ignoring the unreadable timing cache {self.path}", file=sys.stderr)
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, device_key: str, item_key: str):
        entry = self._read().get(device_key, {})
        if item_key == "startup_s":
            return entry.get("startup_s")
        found = entry.get("timings", {}).get(item_key)
        return Timing(**found) if found else None

    def put(self, device_key: str, item_key: str, value) -> None:
        from .io import atomic_write_text

        data = self._read()
        entry = data.setdefault(device_key, {"timings": {}})
        if item_key == "startup_s":
            entry["startup_s"] = value
        else:
            entry.setdefault("timings", {})[item_key] = asdict(value)
        entry["updated"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))


def device_key(threads: int) -> tuple[str, str]:
    """(key, description) of this device as the timings depend on it."""
    import jax

    from .bench import cpu_model, device_name
    from .provenance import library_digest

    name = device_name()
    cpu = jax.default_backend() == "cpu"
    where = f"{name} ({cpu_model() or 'unknown CPU'}, {threads} thread{'s' * (threads != 1)})" if cpu else name
    versions = f"jax {jax.__version__}, library {library_digest()}"
    return f"{where} | {versions} | cache format {CACHE_FORMAT}", f"{where}, {versions}"


def timing_settings(cfg: dict, arch: str) -> dict:
    """The training settings that change a step's cost, from the workflow config."""
    tr, ev = cfg["training"], cfg["evaluation"]
    out = {"batch_size": int(tr["batch_size"]), "eval_batch_size": int(ev["eval_batch_size"])}
    for key in ("elbo", "dropout"):
        if tr.get(key) is not None:
            out[key] = tr[key]
    net = (tr.get("net") or {}).get(arch)
    if net:
        out["net"] = {arch: net}
    return out


def time_network(dataset: str, arch: str, kind: str, settings: dict, steps: int, evaluation: bool = True) -> Timing:
    """Time one network's training step and (``evaluation``) predictive pass on this device (see the module
    docstring); without ``evaluation`` its two fields are NaN."""
    import jax

    from .bench import synthetic_dataset
    from .experiment import resolve_settings
    from .train import Trainer

    method = KINDS[kind][1]
    s = resolve_settings(dict(settings, test_subset=None))
    batch = int(s["eval_batch_size"])
    ds = synthetic_dataset(dataset, arch, n_train=max(4096, int(s["batch_size"])), n_test=batch)
    tr = Trainer(arch=arch, method=method, dataset=ds, seeds=[0], settings=s)
    t0 = time.perf_counter()
    state = tr.init()
    jax.block_until_ready(state.svi_state)
    init_s = time.perf_counter() - t0
    state, _ = tr.train(state, 1, chunk_size=1, progress=False)  # compiles (timed inside) and warms up
    compile_s = tr.compile_seconds
    # the median of three windows: the other timing process may be initialising or compiling during one of them
    # (seen: the MLP's Tiered-FF timed at 35-39 ms a step in one 10-step window, where its training job ran at 24)
    windows = []
    for _ in range(3):
        state, secs = tr.train(state, steps, chunk_size=steps, progress=False)
        windows.append(secs)
    secs = sorted(windows)[1]
    if not evaluation:
        return Timing(init_s=init_s, compile_s=compile_s, step_s=secs / steps, eval_compile_s=math.nan,
                      eval_s=math.nan)
    samples = 2
    keys = tr.eval_keys(0)
    t0 = time.perf_counter()
    tr.predictive_probs(state, keys, samples)  # compiles
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    tr.predictive_probs(state, keys, samples)
    run = time.perf_counter() - t0
    per = 1 if kind == "map" else samples
    return Timing(init_s=init_s, compile_s=compile_s, step_s=secs / steps, eval_compile_s=max(0.0, first - run),
                  eval_s=run / (per * batch))


def time_startup() -> float:
    """Seconds a fresh Python takes to import the library and start JAX (every job pays it)."""
    code = "import jax, bmrsparse.experiment; jax.devices()"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


_STARTUP_S = math.nan


def _init_worker(cpu_sets) -> None:
    """A timing process: its own CPUs (as many as a training job's threads) before JAX sizes its thread pool; its
    import of JAX and the library is timed (what every job pays at its start)."""
    global _STARTUP_S
    try:
        os.sched_setaffinity(0, cpu_sets.get_nowait())
    except Exception:  # no affinity on this system: time with what there is
        pass
    t0 = time.perf_counter()
    import jax

    from . import experiment  # noqa: F401

    jax.devices()
    _STARTUP_S = time.perf_counter() - t0


def _time_one(item) -> dict:
    dataset, arch, kind, settings, steps, evaluation = item
    return dict(asdict(time_network(dataset, arch, kind, settings, steps, evaluation=evaluation)),
                startup_s=_STARTUP_S)


def time_in_processes(items: list[tuple], threads: int, workers: int) -> tuple[list[Timing], float]:
    """Run :func:`time_network` for ``items`` in ``workers`` fresh processes side by side, each on its own
    ``threads`` CPUs, as the run's training jobs will share the machine; also the processes' start-up seconds."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        allowed = list(range(os.cpu_count() or 1))
    cpu_sets = ctx.Queue()
    for w in range(workers):
        cpu_sets.put(set(allowed[w * threads:(w + 1) * threads]) or set(allowed))
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(cpu_sets,)) as pool:
        rows = list(pool.map(_time_one, items))
    startup = max(r.pop("startup_s") for r in rows)
    return [Timing(**r) for r in rows], startup


def measure(needed: list[tuple[str, str, str]], cfg: dict, cache: TimingCache, threads: int, steps: int,
            workers: int = 1, runner=None, startup_timer=time_startup, log=print) -> tuple[dict, float, str, bool]:
    """The timings of ``needed`` (data set, architecture, kind) and the start-up time: from ``cache`` when it has
    them for this device and library, else measured now (``runner(items) -> ([Timing], startup_s)``, default
    :func:`time_in_processes` with ``workers`` processes) and stored. Returns (timings, startup_s, device, cached).

    The predictive pass is timed with one kind of each network and shared by its other kinds (the same network's
    forward pass; Flat-MAP draws one sample where the others draw ``num_samples``).
    """
    key, description = device_key(threads)
    runner = runner or (lambda items: time_in_processes(items, threads, workers))
    t0 = time.perf_counter()
    startup = cache.get(key, "startup_s")
    cached = startup is not None
    timings, missing = {}, []
    for dataset, arch, kind in sorted(set(needed), key=lambda k: (k[0], k[1], list(KINDS).index(k[2]))):
        settings = timing_settings(cfg, arch)
        item = json.dumps({"dataset": dataset, "arch": arch, "kind": kind, "settings": settings}, sort_keys=True)
        found = cache.get(key, item)
        if found is None:
            missing.append((dataset, arch, kind, settings, item))
        else:
            timings[(dataset, arch, kind)] = found
    if missing:
        cached = False
        has_eval = {(d, a) for (d, a, _), t in timings.items() if not math.isnan(t.eval_s)}
        jobs = []
        for dataset, arch, kind, settings, _ in missing:
            jobs.append((dataset, arch, kind, settings, steps, (dataset, arch) not in has_eval))
            has_eval.add((dataset, arch))
        names = ", ".join(f"{d}/{a} {KINDS[k][0]}" for d, a, k, *_ in missing)
        log(f"bmrsparse plan: timing {names} ({steps} steps each after compiling, {workers} at a time)...")
        measured, started = runner(jobs)
        for (dataset, arch, kind, _, item), t in zip(missing, measured):
            timings[(dataset, arch, kind)] = t
        if startup is None:
            startup = started
            cache.put(key, "startup_s", startup)
        for (dataset, arch, kind, _, item) in missing:
            t = timings[(dataset, arch, kind)]
            if math.isnan(t.eval_s):
                sibling = next(s for (d, a, _), s in timings.items() if (d, a) == (dataset, arch)
                               and not math.isnan(s.eval_s))
                t = timings[(dataset, arch, kind)] = Timing(t.init_s, t.compile_s, t.step_s, sibling.eval_compile_s,
                                                            sibling.eval_s)
            cache.put(key, item, t)
        log(f"bmrsparse plan: timed in {time.perf_counter() - t0:.0f} s (kept for the next plan in {cache.path})")
    if startup is None:  # every step time cached but not the start-up (a cache written by hand)
        startup = startup_timer()
        cache.put(key, "startup_s", startup)
    return timings, startup, description, cached


# ---------------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------------


def snakemake_settings(args: list[str], workdir: Path) -> dict:
    """Config files, config (merged as Snakemake merges it), cores and GPU limit of a Snakemake command line."""
    import yaml
    from snakemake.cli import get_argument_parser, parse_config
    from snakemake.utils import available_cpu_count, update_config

    parsed, _ = get_argument_parser().parse_known_args(args)
    profile = {}
    for name in parsed.profile or []:
        path = Path(name) if Path(name).is_absolute() else workdir / name
        if (path / "config.yaml").is_file():
            profile.update(yaml.safe_load((path / "config.yaml").read_text()) or {})
    snakefile = (workdir / "Snakefile").read_text() if (workdir / "Snakefile").is_file() else ""
    base = re.search(r'^configfile:\s*"([^"]+)"', snakefile, re.M)
    files = ([base.group(1)] if base else []) + [str(f) for f in (parsed.configfile or [])]
    cfg: dict = {}
    for f in files:
        update_config(cfg, yaml.safe_load((workdir / f).read_text()) or {})
    update_config(cfg, parse_config(parsed.config or []))
    cores = parsed.cores if parsed.cores is not None else profile.get("cores")
    cores = available_cpu_count() if cores in (None, "all") else int(cores)
    gpu_limit = None
    if parsed.resources and "gpu" in parsed.resources:  # {name: Resource} from --resources
        gpu_limit = int(getattr(parsed.resources["gpu"], "value", parsed.resources["gpu"]))
    elif not parsed.resources:
        for r in profile.get("resources") or []:  # the profile's list of "name=value"
            name, _, value = str(r).partition("=")
            if name.strip() == "gpu":
                gpu_limit = int(value)
    return {"configfiles": files[1:] if base else files, "config": cfg, "cores": cores, "gpu_limit": gpu_limit}


def dry_run(args: list[str], workdir: Path) -> str:
    run = subprocess.run([sys.executable, "-m", "snakemake", *args, "--dry-run"], cwd=workdir, capture_output=True,
                         text=True)
    if run.returncode != 0:
        raise RuntimeError(f"snakemake --dry-run failed (exit {run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}")
    return run.stdout + run.stderr


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bmrsparse.plan", description=__doc__.split("\n")[0],
                                usage="%(prog)s [options] -- SNAKEMAKE_ARGS ...")
    p.add_argument("--steps", type=int, default=10, help="SVI steps timed per network after compiling (default 10)")
    p.add_argument("--cache", default=None, help=f"timing cache (default: {default_cache()})")
    p.add_argument("--no-timing", action="store_true", help="print the jobs per rule only")
    p.add_argument("--directory", default=".", help="the workflow's folder (default: .)")
    p.add_argument("snakemake_args", nargs="*", help="the run's Snakemake arguments (after --)")
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error("--steps must be >= 1")
    workdir = Path(a.directory).resolve()
    # several processes may share a GPU while timing (and the training jobs after): none takes most of its memory
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    smk = snakemake_settings(a.snakemake_args, workdir)
    try:
        jobs = parse_dry_run(dry_run(a.snakemake_args, workdir))
    except RuntimeError as e:
        print(f"bmrsparse plan: {e}", file=sys.stderr)
        return 1
    cfg, cores = smk["config"], smk["cores"]
    if a.no_timing or not jobs:
        counts = Counter(j.rule for j in jobs)
        print(f"bmrsparse plan: {len(jobs)} jobs: " + ", ".join(f"{r} {n}" for r, n in counts.most_common()))
        return 0
    needed = [w for j in jobs for w in job_work(j, cfg)]
    threads = max([min(j.threads, cores) for j in jobs if training_steps(j.rule, cfg["schedule"])] or [1])
    # as many timings at once as training jobs will run at once: cores / threads, and one per GPU
    workers = max(1, min(len(set(needed)), cores // threads, smk["gpu_limit"] or cores))
    cache = TimingCache(a.cache or default_cache())
    try:
        timings, startup, device, cached = measure(needed, cfg, cache, threads, a.steps, workers=workers,
                                                   log=lambda m: print(m, flush=True))
    except Exception as e:  # the run does not depend on its estimate
        print(f"bmrsparse plan: could not time the steps ({type(e).__name__}: {e}); no estimate", file=sys.stderr)
        counts = Counter(j.rule for j in jobs)
        print(f"bmrsparse plan: {len(jobs)} jobs: " + ", ".join(f"{r} {n}" for r, n in counts.most_common()))
        return 0
    est = estimate(jobs, cfg, timings, startup, cores, smk["gpu_limit"])
    print(format_plan(jobs, est, cfg, timings, device=device, cores=cores, gpu_limit=smk["gpu_limit"],
                      startup_s=startup, cached=cached, configfiles=smk["configfiles"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
