"""Experiment stages as the workflow runs them: train a method for a schedule of epochs, evaluate after each epoch.

The paper's schedule (section 2.7): a Flat-FF warm-up of ``W`` SVI steps (epoch 0), then five epochs of ``E``
steps. Flat-FF continues from the warm-up; BMR-S&S starts from the warm-up and prunes before each of its epochs;
Flat-MAP and Tiered-FF train from scratch for the same total ``W + 5E`` steps.

:func:`run_stage` is the one entry point the workflow scripts call. It checkpoints its whole state every
``checkpoint_every`` steps and resumes from the checkpoint when rerun, so a killed run continues where it was and
ends with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
import numpy as np
import pandas as pd

from . import data as bdata
from .io import atomic_write_verified
from .state import load_state, read_state, save_state
from .methods import METHODS, get_method
from .metrics import METRIC_COLUMNS
from .nets import ARCHS
from .provenance import provenance
from .settings import DEFAULT_SETTINGS, resolve_settings
from .train import NonFiniteLossError, ProgressLog, State, StateMismatchError, Trainer, progress_chunk

__all__ = [
    "METHODS",
    "DEFAULT_SETTINGS",
    "METRIC_COLUMNS",
    "resolve_settings",
    "run_stage",
    "posterior_summary",
    "posterior_summaries",
    "NonFiniteLossError",
    "StateMismatchError",
]

def _fingerprint(**kw) -> str:
    return json.dumps(kw, sort_keys=True, default=str)


def run_stage(
    *,
    data_path,
    dataset: str,
    arch: str,
    method: str,
    seed,
    schedule: list[int],
    first_epoch: int,
    init_state=None,
    reference_state=None,
    out_state,
    out_metrics,
    settings: dict | None = None,
    checkpoint_path=None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train ``method`` for the epochs in ``schedule`` and evaluate after each (see the module docstring).

    Args:
      data_path: a prepared data set (``.npz`` from :func:`bmrsparse.data.prepare_dataset`).
      dataset, arch, method: names.
      seed: an integer seed, or a list of seeds trained together in one compiled program (vmapped over seeds);
        then ``init_state``, ``out_state`` and ``out_metrics`` are lists with one path per seed.
      schedule: SVI steps of each epoch; epochs are numbered ``first_epoch, first_epoch + 1, ...``.
      init_state: state file of a previous stage to continue from (same data set, architecture and prior), or None.
      reference_state: for a method that declares a :attr:`~bmrsparse.methods.Method.reference`, the state file of
        that method's same epoch (one epoch per stage), whose keep-masks the prune function reads; else None.
      out_state, out_metrics: the state file and the tidy metrics CSV to write (atomically, at the end; the CSV's
        SHA-256 goes to ``<out_metrics>.sha256``, the state's into the file, see :mod:`bmrsparse.state`).
      settings: overrides of :data:`DEFAULT_SETTINGS`.
      checkpoint_path: where to checkpoint every ``checkpoint_every`` steps (default: the first ``out_state`` +
        ``".ckpt.npz"``);
        an existing checkpoint of the same stage is resumed; it is removed once the outputs are written.

    Progress: the log (stdout) gets a line at least once per 10 % of the stage's steps
    (:class:`bmrsparse.train.ProgressLog`: step, steps/s, ETA, running loss); chunks are cut to allow that.

    Returns:
      The metrics as a DataFrame with :data:`METRIC_COLUMNS` (all seeds); its ``elbo`` is the epoch's training ELBO
      estimate: minus the mean training loss of the chunks that end in the epoch's last 10 % of steps (at least its
      last chunk), per seed (Flat-MAP: the log joint of its point estimate). The CSV files also carry the
      provenance columns (:data:`bmrsparse.provenance.PROVENANCE_COLUMNS`: library digest, device, versions,
      commit), and
      each state header has them under ``extra["provenance"]``.
    """
    many = isinstance(seed, (list, tuple))
    seeds = [int(x) for x in seed] if many else [int(seed)]
    out_states = list(out_state) if many else [out_state]
    out_metrics_ = list(out_metrics) if many else [out_metrics]
    if len(out_states) != len(seeds) or len(out_metrics_) != len(seeds):
        raise ValueError("give one out_state and one out_metrics path per seed")
    if init_state is not None and many and len(init_state) != len(seeds):
        raise ValueError("give one init_state path per seed")
    if reference_state is not None and many and len(reference_state) != len(seeds):
        raise ValueError("give one reference_state path per seed")
    meth = get_method(method)
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {list(ARCHS)}")
    schedule = [int(s) for s in schedule]
    if not schedule or any(s < 1 for s in schedule):
        raise ValueError(f"schedule must be a non-empty list of positive step counts, got {schedule}")
    s = resolve_settings(settings)
    ds = bdata.load_prepared(data_path)
    if ds.name != dataset:
        raise ValueError(f"{data_path} holds data set {ds.name!r}, not {dataset!r}")
    trainer = Trainer(arch=arch, method=method, dataset=ds, seeds=seeds, settings=s)
    if meth.reference is not None and (reference_state is None or len(schedule) != 1):
        raise ValueError(f"method {method!r} prunes against {meth.reference!r}'s state of the same epoch: run one "
                         "epoch per stage and give that state as reference_state")
    reference = None
    if meth.reference is not None:
        ref_state, ref_head = read_state(trainer, reference_state)
        if ref_head.get("method") != meth.reference:
            raise StateMismatchError(f"{reference_state} is a state of {ref_head.get('method')!r}; method "
                                     f"{method!r} prunes against {meth.reference!r}")
        reference = ref_state.masks
    ckpt = str(checkpoint_path or f"{out_states[0]}.ckpt.npz")
    fingerprint = _fingerprint(
        dataset=dataset, arch=arch, method=method, seeds=seeds, schedule=schedule, first_epoch=int(first_epoch),
        init_state=[os.path.basename(str(p)) for p in init_state] if many and init_state else
        (os.path.basename(str(init_state)) if init_state else None), settings=s,
        reference_state=[os.path.basename(str(p)) for p in reference_state] if many and reference_state else
        (os.path.basename(str(reference_state)) if reference_state else None),
    )

    rows: list[dict] = []
    epoch_idx, done_in_epoch, seconds_in_epoch = 0, 0, 0.0
    tail = [0.0] * len(seeds), 0  # loss sum per seed and steps of the current epoch's last 10 % (column elbo)
    state: State | None = None
    if os.path.exists(ckpt):
        state, head = read_state(trainer, ckpt, require_method=True)
        extra = head["extra"]
        if extra.get("fingerprint") != fingerprint:
            raise StateMismatchError(
                f"checkpoint {ckpt} belongs to a run with other settings or schedule; delete it to start afresh"
            )
        rows = extra["rows"]
        epoch_idx, done_in_epoch = extra["epoch_idx"], extra["done_in_epoch"]
        seconds_in_epoch = extra["seconds_in_epoch"]
        tail = tuple(extra.get("elbo_tail", tail))
        print(f"resuming from {ckpt} at step {state.step} (epoch {first_epoch + epoch_idx})", flush=True)
    elif init_state:
        state, _ = read_state(trainer, init_state)
    else:
        state = trainer.init()

    every = int(s["checkpoint_every"])
    total_steps = sum(schedule)
    chunk = progress_chunk(min(int(s["chunk_size"]), every), total_steps)
    log = ProgressLog(total_steps, done=sum(schedule[:epoch_idx]) + done_in_epoch, max_chunk=chunk)

    def save_checkpoint(st: State, e_idx: int, done: int, secs: float, rows_now: list, tail_now) -> None:
        save_state(
            trainer, st, ckpt,
            extra={"fingerprint": fingerprint, "rows": rows_now, "epoch_idx": e_idx, "done_in_epoch": done,
                   "seconds_in_epoch": secs, "elbo_tail": [list(tail_now[0]), tail_now[1]]},
        )

    while epoch_idx < len(schedule):
        epoch = int(first_epoch) + epoch_idx
        steps = schedule[epoch_idx]
        if meth.prunes and done_in_epoch == 0 and epoch > 0:  # epoch 0 is a warm-up: nothing to prune yet
            t0 = time.perf_counter()
            state = trainer.prune(state, reference, epoch=epoch)
            jax.block_until_ready(state.masks)
            fractions = ", ".join(f"{f:.4f}" for f in trainer.pruned_fraction(state))
            print(f"epoch {epoch}: prune took {time.perf_counter() - t0:.3f} s; pruned fraction {fractions}",
                  flush=True)
        last_ckpt_step = state.step
        t_start = time.perf_counter()

        tail_from = steps - math.ceil(0.1 * steps)  # chunks ending after this step count towards elbo
        at = done_in_epoch

        def on_loss(n: int, secs: float, losses) -> None:
            nonlocal tail, at
            at += n
            log.chunk(n, secs, losses)
            if at > tail_from:
                tail = [a + float(b) * n for a, b in zip(tail[0], losses)], tail[1] + n

        def on_chunk(st: State, done: int) -> None:
            nonlocal last_ckpt_step
            if st.step - last_ckpt_step >= every and done_in_epoch + done < steps:
                elapsed = seconds_in_epoch + time.perf_counter() - t_start  # wall time; only used after a resume
                save_checkpoint(st, epoch_idx, done_in_epoch + done, elapsed, rows, tail)
                last_ckpt_step = st.step

        state, secs = trainer.train(
            state, steps - done_in_epoch, chunk_size=chunk, on_chunk=on_chunk, on_loss=on_loss, progress=progress,
            desc=f"{dataset}/{arch}/{method} epoch {epoch}",
        )
        if trainer.compile_seconds and epoch_idx == 0:
            print(f"compiled the training chunk in {trainer.compile_seconds:.2f} s", flush=True)
        seconds = seconds_in_epoch + secs
        t0 = time.perf_counter()
        elbo = [-a / tail[1] for a in tail[0]]
        for i, (sd, m) in enumerate(zip(seeds, trainer.evaluate(state, epoch, int(s["num_eval_samples"])))):
            print(f"epoch {epoch} seed {sd}: step {state.step} acc {m['acc']:.4f} ece {m['ece']:.4f} "
                  f"nll {m['nll']:.4f} pruned {m['pruned_fraction']:.4f}", flush=True)
            rows.append(
                dict(dataset=dataset, arch=arch, method=method, seed=sd, epoch=epoch, step=int(state.step),
                     **m, seconds=seconds, steps_per_s=steps / seconds if seconds > 0 else float("nan"),
                     elbo=elbo[i])
            )
        print(f"evaluated in {time.perf_counter() - t0:.1f} s", flush=True)
        epoch_idx, done_in_epoch, seconds_in_epoch = epoch_idx + 1, 0, 0.0
        tail = [0.0] * len(seeds), 0
        if epoch_idx < len(schedule):
            save_checkpoint(state, epoch_idx, 0, 0.0, rows, tail)

    df = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    prov = provenance()
    for i, sd in enumerate(seeds):
        mine = df[df.seed == sd]
        save_state(trainer, state, out_states[i], extra={"metrics": mine.to_dict("records"), "settings": s,
                                                  "provenance": prov}, index=i)
        atomic_write_verified(out_metrics_[i], mine.assign(**prov).to_csv(index=False))
    if os.path.exists(ckpt):
        os.remove(ckpt)
    return df



def posterior_summary(state_path, data_path=None) -> list[dict]:
    """Per-layer posterior means of a trained network, in forward order.

    Returns a list of ``{name, kind, mean, pruned}``: ``kind`` is ``"dense"``, ``"conv"``, ``"norm"`` or
    ``"other"``; ``mean`` is :math:`E_q[w]` of the layer's kernel (``scale`` for norms) in its natural shape
    (e.g. ``[784, 400]`` for the MLP's first layer, ``[5, 5, 1, 6]`` for LeNet-5's first conv); ``pruned`` is a bool
    array of the same shape (``True`` = removed by BMR) or ``None`` for methods that do not prune.
    """
    trainer, state, head = load_state(state_path, data_path)
    w = trainer.posterior_mean_weights(state, index=0)
    masks = jax.tree.map(lambda m: np.asarray(m)[0], jax.device_get(trainer.select(state, 0).masks))
    out = []
    for layer in trainer.layers:
        node = w
        for k in layer.path:
            node = node[k]
        leaf = "kernel" if "kernel" in layer.leaves else ("scale" if "scale" in layer.leaves else layer.leaves[0])
        value = node[leaf] if isinstance(node, dict) else node
        pruned = None
        if trainer.method.prunes:
            pruned = ~np.asarray(masks[layer.name][leaf])
        out.append({"name": layer.name, "kind": layer.kind, "mean": np.asarray(value), "pruned": pruned})
    return out


def posterior_summaries(panels, state_paths, data_path=None) -> dict:
    """``{arch: {method: posterior_summary(path)}}`` for ``(arch, method)`` panels and their state files."""
    out: dict = {}
    for (arch, method), path in zip(panels, state_paths, strict=True):
        out.setdefault(arch, {})[method] = posterior_summary(path, data_path)
    return out
