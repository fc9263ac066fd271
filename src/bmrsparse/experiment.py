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
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import pandas as pd

from . import data as bdata
from .io import atomic_write_verified
from .methods import METHODS, get_method
from .metrics import METRIC_COLUMNS, at_chance
from .nets import NETWORKS
from .provenance import provenance
from .settings import TrainingSettings
from .state import load_state, read_state, save_state
from .train import NonFiniteLossError, ProgressLog, State, StateMismatchError, Trainer, progress_chunk

__all__ = [
    "METHODS",
    "METRIC_COLUMNS",
    "TrainingSettings",
    "run_stage",
    "posterior_summary",
    "posterior_summaries",
    "NonFiniteLossError",
    "StateMismatchError",
]


def _fingerprint(**kw) -> str:
    return json.dumps(kw, sort_keys=True, default=str)


def _names(paths):
    """The file names of one path or a list of paths (a checkpoint's fingerprint: the folder may move)."""
    if not paths:
        return None
    return [os.path.basename(str(p)) for p in paths] if isinstance(paths, (list, tuple)) else \
        os.path.basename(str(paths))


def _per_seed(seed, out_state, out_metrics, init_state, reference_state):
    """The seeds and the per-seed output paths; with a list of seeds every path argument is a list as long."""
    many = isinstance(seed, (list, tuple))
    seeds = [int(x) for x in seed] if many else [int(seed)]
    out_states = list(out_state) if many else [out_state]
    out_csvs = list(out_metrics) if many else [out_metrics]
    if len(out_states) != len(seeds) or len(out_csvs) != len(seeds):
        raise ValueError("give one out_state and one out_metrics path per seed")
    if init_state is not None and many and len(init_state) != len(seeds):
        raise ValueError("give one init_state path per seed")
    if reference_state is not None and many and len(reference_state) != len(seeds):
        raise ValueError("give one reference_state path per seed")
    return seeds, out_states, out_csvs


def _reference_masks(trainer: Trainer, reference_state, schedule: list[int], first_epoch: int):
    """The keep-masks of the declared reference method's state, for a method that prunes against it in this stage
    (one epoch per stage); None for any other method or a stage that does not prune (a warm-up, epoch 0)."""
    meth = trainer.method
    prunes_here = meth.prunes and first_epoch + len(schedule) - 1 >= 1
    if meth.reference is None or not prunes_here:
        return None
    if reference_state is None or len(schedule) != 1:
        raise ValueError(f"method {meth.name!r} prunes against {meth.reference!r}'s state of the same epoch: run one "
                         "epoch per stage and give that state as reference_state")
    ref_state, ref_head = read_state(trainer, reference_state)
    if ref_head.get("method") != meth.reference:
        raise StateMismatchError(f"{reference_state} is a state of {ref_head.get('method')!r}; method "
                                 f"{meth.name!r} prunes against {meth.reference!r}")
    return ref_state.masks


class _Stage:
    """The loop of :func:`run_stage`: where it is (epoch, steps done in it), the rows so far, the ELBO tail and the
    checkpoint that records all of them."""

    def __init__(self, trainer: Trainer, *, dataset: str, schedule: list[int], first_epoch: int, ckpt: str,
                 fingerprint: str, reference, progress: bool, final_test=None):
        self.trainer, self.dataset, self.schedule, self.first_epoch = trainer, dataset, schedule, int(first_epoch)
        self.final_test = final_test  # (epoch, images, labels) of the run's last epoch's evaluation, or None
        self.ckpt, self.fingerprint, self.reference, self.progress = ckpt, fingerprint, reference, progress
        self.seeds = trainer.seeds
        self.rows: list[dict] = []
        self.epoch_idx, self.done_in_epoch, self.seconds_in_epoch = 0, 0, 0.0
        self.tail = self._empty_tail()
        s = trainer.settings
        self.every = int(s.checkpoint_every)
        self.chunk = progress_chunk(min(int(s.chunk_size), self.every), sum(schedule))

    def _empty_tail(self):
        """Loss sum per seed and steps of the current epoch's last 10 % (column elbo)."""
        return [0.0] * len(self.seeds), 0

    def start(self, init_state) -> State:
        """The state to train from: the stage's checkpoint when one exists, else ``init_state``, else fresh."""
        if os.path.exists(self.ckpt):
            state, head = read_state(self.trainer, self.ckpt, require_method=True)
            extra = head["extra"]
            if extra.get("fingerprint") != self.fingerprint:
                raise StateMismatchError(f"checkpoint {self.ckpt} belongs to a run with other settings or schedule; "
                                         "delete it to start afresh")
            self.rows = extra["rows"]
            self.epoch_idx, self.done_in_epoch = extra["epoch_idx"], extra["done_in_epoch"]
            self.seconds_in_epoch = extra["seconds_in_epoch"]
            self.tail = tuple(extra.get("elbo_tail", self.tail))
            print(f"resuming from {self.ckpt} at step {state.step} (epoch {self.first_epoch + self.epoch_idx})",
                  flush=True)
            return state
        if init_state:
            return read_state(self.trainer, init_state)[0]
        return self.trainer.init()

    def save_checkpoint(self, state: State, done: int, seconds: float) -> None:
        save_state(self.trainer, state, self.ckpt, extra={
            "fingerprint": self.fingerprint, "rows": self.rows, "epoch_idx": self.epoch_idx, "done_in_epoch": done,
            "seconds_in_epoch": seconds, "elbo_tail": [list(self.tail[0]), self.tail[1]]})

    def prune(self, state: State, epoch: int) -> State:
        """The method's prune step before ``epoch`` (epochs >= 1 only: nothing is pruned before a warm-up)."""
        if not self.trainer.method.prunes or self.done_in_epoch != 0 or epoch < 1:
            return state
        t0 = time.perf_counter()
        state = self.trainer.prune(state, self.reference, epoch=epoch)
        jax.block_until_ready(state.masks)
        fractions = ", ".join(f"{f:.4f}" for f in self.trainer.pruned_fraction(state))
        print(f"epoch {epoch}: prune took {time.perf_counter() - t0:.3f} s; pruned fraction {fractions}", flush=True)
        return state

    def train_epoch(self, state: State, log: ProgressLog, epoch: int) -> tuple[State, float]:
        """The rest of the current epoch's steps, checkpointing between chunks; returns the state and its seconds."""
        steps = self.schedule[self.epoch_idx]
        last_ckpt_step = state.step
        t_start = time.perf_counter()
        tail_from = steps - math.ceil(0.1 * steps)  # chunks ending after this step count towards elbo
        at = self.done_in_epoch

        def on_loss(n: int, secs: float, losses) -> None:
            nonlocal at
            at += n
            log.chunk(n, secs, losses)
            if at > tail_from:
                self.tail = [a + float(b) * n for a, b in zip(self.tail[0], losses)], self.tail[1] + n

        def on_chunk(st: State, done: int) -> None:
            nonlocal last_ckpt_step
            if st.step - last_ckpt_step >= self.every and self.done_in_epoch + done < steps:
                elapsed = self.seconds_in_epoch + time.perf_counter() - t_start  # wall time; only used after a resume
                self.save_checkpoint(st, self.done_in_epoch + done, elapsed)
                last_ckpt_step = st.step

        trainer = self.trainer
        state, secs = trainer.train(
            state, steps - self.done_in_epoch, chunk_size=self.chunk, on_chunk=on_chunk, on_loss=on_loss,
            progress=self.progress, desc=f"{self.dataset}/{trainer.arch}/{trainer.method.name} epoch {epoch}",
        )
        if trainer.compile_seconds and self.epoch_idx == 0:
            print(f"compiled the training chunk in {trainer.compile_seconds:.2f} s", flush=True)
        return state, self.seconds_in_epoch + secs

    def evaluate(self, state: State, epoch: int, seconds: float) -> None:
        """One metrics row per seed after ``epoch``."""
        trainer, steps = self.trainer, self.schedule[self.epoch_idx]
        t0 = time.perf_counter()
        elbo = [-a / self.tail[1] for a in self.tail[0]]
        samples, x, y = int(trainer.settings.num_eval_samples), trainer.x_test, trainer.y_test
        if self.final_test is not None and epoch == self.final_test[0]:  # the run's last epoch: as the authors do
            samples, x, y = int(trainer.settings.final_eval_samples), self.final_test[1], self.final_test[2]
        samples = 1 if trainer.method.point_estimate else samples
        for i, (sd, m) in enumerate(zip(self.seeds, trainer.evaluate(state, epoch, samples, x, y))):
            print(f"epoch {epoch} seed {sd}: step {state.step} acc {m['acc']:.4f} ece {m['ece']:.4f} "
                  f"nll {m['nll']:.4f} pruned {m['pruned_fraction']:.4f}", flush=True)
            if at_chance(m["acc"], trainer.num_classes):
                print(f"warning: seed {sd} predicts at chance level after epoch {epoch} (acc {m['acc']:.4f}, nll "
                      f"{m['nll']:.4f}; ln {trainer.num_classes} = {math.log(trainer.num_classes):.4f}): its "
                      "posterior collapsed; the claims table leaves this seed out of claim 2 "
                      "(docs/tiered-collapse.md)", flush=True)
            self.rows.append(
                dict(dataset=self.dataset, arch=trainer.arch, method=trainer.method.name, seed=sd, epoch=epoch,
                     step=int(state.step), **m, seconds=seconds,
                     steps_per_s=steps / seconds if seconds > 0 else float("nan"), elbo=elbo[i],
                     eval_samples=samples, eval_images=len(y))
            )
        print(f"evaluated in {time.perf_counter() - t0:.1f} s ({samples} samples, {len(y)} test images)", flush=True)

    def run(self, state: State) -> State:
        """Every remaining epoch: prune (a pruning method), train, evaluate, checkpoint between epochs."""
        log = ProgressLog(sum(self.schedule), done=sum(self.schedule[:self.epoch_idx]) + self.done_in_epoch,
                          max_chunk=self.chunk)
        while self.epoch_idx < len(self.schedule):
            epoch = self.first_epoch + self.epoch_idx
            state = self.prune(state, epoch)
            state, seconds = self.train_epoch(state, log, epoch)
            self.evaluate(state, epoch, seconds)
            self.epoch_idx, self.done_in_epoch, self.seconds_in_epoch = self.epoch_idx + 1, 0, 0.0
            self.tail = self._empty_tail()
            if self.epoch_idx < len(self.schedule):
                self.save_checkpoint(state, 0, 0.0)
        return state


def _write_outputs(trainer: Trainer, state: State, rows: list[dict], out_states, out_csvs) -> pd.DataFrame:
    """Each seed's state file and metrics CSV (with the provenance columns); the metrics of all seeds."""
    df = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    prov = provenance()
    for i, sd in enumerate(trainer.seeds):
        mine = df[df.seed == sd]
        save_state(trainer, state, out_states[i], extra={"metrics": mine.to_dict("records"),
                                                          "settings": trainer.settings.to_dict(), "provenance": prov},
                   index=i)
        atomic_write_verified(out_csvs[i], mine.assign(**prov).to_csv(index=False))
    return df


def _final_test(ds, s: TrainingSettings, final_epoch: int | None):
    """(final epoch, images, labels) of the last epoch's evaluation, or None when the stage does not know it."""
    if final_epoch is None:
        return None
    n = min(int(s.final_test_subset or len(ds.x_test)), len(ds.x_test))
    return int(final_epoch), np.asarray(ds.x_test[:n]), np.asarray(ds.y_test[:n])


def run_stage(
    *,
    data_path,
    dataset: str,
    arch: str,
    method: str,
    seed,
    schedule: Sequence[int],
    first_epoch: int,
    init_state=None,
    reference_state=None,
    out_state,
    out_metrics,
    settings: TrainingSettings | Mapping | None = None,
    checkpoint_path=None,
    progress: bool = True,
    final_epoch: int | None = None,
) -> pd.DataFrame:
    """Train ``method`` for the epochs in ``schedule`` and evaluate after each (see the module docstring).

    Args:
      data_path: a prepared data set (``.npz`` from :func:`bmrsparse.data.prepare_dataset`).
      dataset, arch, method: names.
      seed: an integer seed, or a list of seeds trained together in one compiled program (vmapped over seeds);
        then ``init_state``, ``out_state`` and ``out_metrics`` are lists with one path per seed.
      schedule: SVI steps of each epoch; epochs are numbered ``first_epoch, first_epoch + 1, ...``. A method that
        prunes does so before every epoch from 1 on (epoch 0, a warm-up of its own model, is not pruned).
      init_state: state file of a previous stage to continue from (same data set, architecture and prior), or None.
      reference_state: for a method that declares a :attr:`~bmrsparse.methods.Method.reference`, the state file of
        that method's same epoch (one epoch per stage), whose keep-masks the prune function reads; else None.
      out_state, out_metrics: the state file and the tidy metrics CSV to write (atomically, at the end; the CSV's
        SHA-256 goes to ``<out_metrics>.sha256``, the state's into the file, see :mod:`bmrsparse.state`).
      settings: the stage's :class:`~bmrsparse.settings.TrainingSettings` (a mapping of some of its fields, or None
        for the defaults).
      checkpoint_path: where to checkpoint every ``checkpoint_every`` steps (default: the first ``out_state`` +
        ``".ckpt.npz"``); an existing checkpoint of the same stage is resumed; it is removed once the outputs are
        written.
      progress: draw a progress bar on stderr (the log lines of :class:`bmrsparse.train.ProgressLog` come anyway:
        at least one per 10 % of the stage's steps, with step, steps/s, ETA and running loss).
      final_epoch: the last epoch of the whole run (None: not in this stage's knowledge); when this stage
        evaluates it, it does so with ``settings.final_eval_samples`` on ``settings.final_test_subset`` test images
        (the authors' evaluation: 100 samples, all 10 000), the other epochs with ``num_eval_samples`` on
        ``test_subset``. Each metrics row names its evaluation (``eval_samples``, ``eval_images``).

    Returns:
      The metrics as a DataFrame with :data:`METRIC_COLUMNS` (all seeds); its ``elbo`` is the epoch's training ELBO
      estimate: minus the mean training loss of the chunks that end in the epoch's last 10 % of steps (at least its
      last chunk), per seed (Flat-MAP: the log joint of its point estimate). The CSV files also carry the
      provenance columns (:data:`bmrsparse.provenance.PROVENANCE_COLUMNS`: library digest, device, versions,
      commit), and each state header has them under ``extra["provenance"]``.
    """
    seeds, out_states, out_csvs = _per_seed(seed, out_state, out_metrics, init_state, reference_state)
    get_method(method)
    if arch not in NETWORKS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {list(NETWORKS)}")
    schedule = [int(s) for s in schedule]
    if not schedule or any(s < 1 for s in schedule):
        raise ValueError(f"schedule must be a non-empty list of positive step counts, got {schedule}")
    s = TrainingSettings.from_mapping(settings)
    ds = bdata.load_prepared(data_path)
    if ds.name != dataset:
        raise ValueError(f"{data_path} holds data set {ds.name!r}, not {dataset!r}")
    trainer = Trainer(arch=arch, method=method, dataset=ds, seeds=seeds, settings=s)
    reference = _reference_masks(trainer, reference_state, schedule, int(first_epoch))
    ckpt = str(checkpoint_path or f"{out_states[0]}.ckpt.npz")
    fingerprint = _fingerprint(
        dataset=dataset, arch=arch, method=method, seeds=seeds, schedule=schedule, first_epoch=int(first_epoch),
        init_state=_names(init_state), settings=s.to_dict(), reference_state=_names(reference_state),
        final_epoch=final_epoch,
    )
    stage = _Stage(trainer, dataset=dataset, schedule=schedule, first_epoch=first_epoch, ckpt=ckpt,
                   fingerprint=fingerprint, reference=reference, progress=progress,
                   final_test=_final_test(ds, s, final_epoch))
    state = stage.run(stage.start(init_state))
    df = _write_outputs(trainer, state, stage.rows, out_states, out_csvs)
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
