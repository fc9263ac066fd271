"""A network's SVI step and predictive pass timed on this device, in fresh processes as training jobs run them.

:func:`time_network` initialises and compiles a method's training step on a network (timed), runs ``steps`` steps
three times (the median counts: a short window can meet another timing's initialisation or compilation), and
optionally compiles and runs one posterior-predictive pass over one evaluation batch, on synthetic images of the
data set's shape (:func:`bmrsparse.bench.synthetic_dataset`: speed does not depend on pixel values).
:func:`time_in_processes` runs several such timings in fresh processes side by side, each on as many CPUs as a
training job's threads; a process's import of JAX and of the library is timed as a job's start-up. This module
imports neither at its top, so that a fresh timing process does not import them before its CPUs are set and its
start-up is timed.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

__all__ = ["Timing", "time_network", "time_startup", "time_in_processes"]


@dataclass
class Timing:
    """Measured costs of one (data set, network, method) on this device.

    ``init_s``: a fresh guide's initialisation (jobs that start from scratch); ``compile_s``: compiling the
    training step; ``step_s``: one SVI step; ``eval_compile_s``: compiling the predictive pass; ``eval_s``: one
    posterior sample on one test image (padded evaluation batches count whole).
    """

    init_s: float
    compile_s: float
    step_s: float
    eval_compile_s: float
    eval_s: float


def time_network(dataset: str, arch: str, method: str, settings, steps: int, evaluation: bool = True) -> Timing:
    """Time ``method``'s training step on network ``arch`` and (``evaluation``) its predictive pass (see the module
    docstring); without ``evaluation`` its two fields are NaN. ``settings``: the training settings that change a
    step's cost (a mapping of :class:`bmrsparse.settings.TrainingSettings` fields)."""
    import jax

    from .bench import synthetic_dataset
    from .settings import TrainingSettings
    from .train import Trainer

    s = TrainingSettings.from_mapping(dict(settings, test_subset=None))
    batch = int(s.eval_batch_size)
    ds = synthetic_dataset(dataset, arch, n_train=max(4096, int(s.batch_size)), n_test=batch)
    tr = Trainer(arch=arch, method=method, dataset=ds, seeds=[0], settings=s)
    t0 = time.perf_counter()
    state = tr.init()
    jax.block_until_ready(state.svi_state)
    init_s = time.perf_counter() - t0
    state, _ = tr.train(state, 1, chunk_size=1, progress=False)  # compiles (timed inside) and warms up
    compile_s = tr.compile_seconds
    windows = []
    for _ in range(3):  # the median of three windows: one may meet another timing's start (docs/design-notes.md)
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
    per = 1 if tr.method.point_estimate else samples  # a point estimate draws one sample
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
    dataset, arch, method, settings, steps, evaluation = item
    return dict(asdict(time_network(dataset, arch, method, settings, steps, evaluation=evaluation)),
                startup_s=_STARTUP_S)


def time_in_processes(items: list[tuple], threads: int, workers: int) -> tuple[list[Timing], float]:
    """:func:`time_network` of each ``(dataset, arch, method, settings, steps, evaluation)`` in ``workers`` fresh
    processes side by side, each on its own ``threads`` CPUs, as a run's training jobs share the machine; also the
    processes' start-up seconds."""
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
