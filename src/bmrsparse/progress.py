"""Progress of a training job: the lines of its log (:class:`ProgressLog`) and the optional progress bar."""

from __future__ import annotations

import datetime
import sys

import numpy as np

__all__ = ["ProgressLog", "progress_chunk", "progress_bar"]


class ProgressLog:
    """Progress lines for a training job's log, written at chunk boundaries (no host sync of their own).

    Each line reads ``step k/total, r steps/s, ETA h:mm:ss, loss L (-ELBO)``: ``k`` of the job's ``total`` SVI
    steps, the rate of its training chunks so far (compilation, pruning and evaluation not counted, so the ETA of
    the remaining steps at that rate leaves them out), and the mean training loss (the negative ELBO estimate, mean
    over seeds) of the steps since the previous line. A line is written before the steps since the previous one
    could exceed ``fraction`` of ``total`` with the next chunk (the caller keeps chunks at most ``max_chunk`` steps;
    :func:`progress_chunk` gives a size that allows one line per ``fraction``), and after the last step.
    """

    def __init__(self, total: int, *, done: int = 0, fraction: float = 0.1, max_chunk: int = 1, write=print):
        self.total, self.done, self.last = int(total), int(done), int(done)
        self.gap, self.max_chunk, self.write = fraction * int(total), int(max_chunk), write
        self.seconds, self.timed = 0.0, 0
        self.loss_sum, self.loss_steps = 0.0, 0

    def chunk(self, n: int, seconds: float, losses) -> None:
        self.done += int(n)
        self.seconds += float(seconds)
        self.timed += int(n)
        self.loss_sum += float(np.mean(losses)) * n
        self.loss_steps += int(n)
        if self.done >= self.total or self.done + self.max_chunk - self.last > self.gap:
            rate = self.timed / self.seconds if self.seconds > 0 else float("nan")
            left = (self.total - self.done) / rate if rate > 0 else float("nan")
            eta = str(datetime.timedelta(seconds=round(left))) if np.isfinite(left) else "?"
            loss = self.loss_sum / self.loss_steps
            self.write(f"step {self.done}/{self.total}, {rate:.1f} steps/s, ETA {eta}, loss {loss:.6g} (-ELBO)",
                       flush=True)
            self.last, self.loss_sum, self.loss_steps = self.done, 0.0, 0


def progress_chunk(chunk_size: int, total: int, fraction: float = 0.1) -> int:
    """The chunk size to use so that :class:`ProgressLog` can write a line at least once per ``fraction`` of a
    job's ``total`` steps: ``chunk_size`` capped at that many steps (at least 1). Speed only: the steps' numbers
    do not depend on how they are cut into chunks."""
    return max(1, min(int(chunk_size), int(fraction * int(total))))


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def progress_bar(total, desc, enabled):
    """A tqdm bar on stderr, or one that draws nothing."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
