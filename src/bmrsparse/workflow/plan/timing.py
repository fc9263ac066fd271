"""Step timings on this device: each network's SVI step and predictive pass timed in fresh processes (as the run's
training jobs will share the machine), cached per device and library version."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import jax

from ... import steptime
from ...bench import cpu_model, device_name
from ...io import atomic_write_text
from ...provenance import library_digest
from ...steptime import Timing
from .estimate import KINDS

__all__ = ["CACHE_ENV", "CACHE_FORMAT", "default_cache", "TimingCache", "device_key", "timing_settings",
           "time_in_processes", "measure"]

#: Environment variable naming the timing cache's folder.
CACHE_ENV = "BMRSPARSE_CACHE_DIR"
#: Part of the cache key: entries of another format are timed again.
CACHE_FORMAT = 2


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


def time_in_processes(items: list[tuple], threads: int, workers: int) -> tuple[list[Timing], float]:
    """:func:`bmrsparse.steptime.time_in_processes` of ``(dataset, arch, kind, settings, steps, evaluation)`` items,
    each kind timed with its method (:data:`KINDS`)."""
    return steptime.time_in_processes([(d, a, KINDS[k][1], *rest) for d, a, k, *rest in items], threads, workers)


def measure(needed: list[tuple[str, str, str]], cfg: dict, cache: TimingCache, threads: int, steps: int,
            workers: int = 1, runner=None, startup_timer=steptime.time_startup, log=print) -> tuple[dict, float, str, bool]:
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
