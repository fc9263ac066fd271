"""A training stage killed with SIGKILL at random points resumes from its checkpoint and ends bit-for-bit equal."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from conftest import TINY_NETS

RUN = "import json, sys; from bmrsparse.experiment import run_stage; run_stage(**json.loads(sys.argv[1]))"
SCHEDULE = [600, 600]  # two epochs: a kill can land in either, or between them


def _kwargs(data, out_dir, method="bmr_ss", init=None):
    return {
        "data_path": str(data), "dataset": "fashion_mnist", "arch": "mlp", "method": method, "seed": 3,
        "schedule": SCHEDULE, "first_epoch": 1, "init_state": init,
        "out_state": str(out_dir / "posterior.npz"), "out_metrics": str(out_dir / "metrics.csv"),
        "settings": {"num_eval_samples": 4, "test_subset": 500, "eval_batch_size": 250, "chunk_size": 25,
                     "checkpoint_every": 50, "init_radius": 0.5, "net": {"mlp": TINY_NETS["mlp"]}},
        "progress": False,
    }


def _start(kwargs, log):
    return subprocess.Popen([sys.executable, "-c", RUN, json.dumps(kwargs)], stdout=log, stderr=subprocess.STDOUT)


def test_kill_at_random_points_then_resume_gives_identical_results(fmnist_small, tmp_path):
    # a warm-up state to start BMR-S&S from (BMR prunes at the start of each epoch: resume must not prune twice)
    warm = tmp_path / "warm"
    warm.mkdir()
    wk = dict(_kwargs(fmnist_small, warm, method="flat_ff"), schedule=[200], first_epoch=0)
    subprocess.run([sys.executable, "-c", RUN, json.dumps(wk)], check=True, capture_output=True)
    init = str(warm / "posterior.npz")

    ref = tmp_path / "ref"
    ref.mkdir()
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", RUN, json.dumps(_kwargs(fmnist_small, ref, init=init))], check=True,
                   capture_output=True)
    full = time.monotonic() - t0

    run = tmp_path / "killed"
    run.mkdir()
    kw = _kwargs(fmnist_small, run, init=init)
    ckpt = run / "posterior.npz.ckpt.npz"
    rng = random.Random(1234)
    kills, resumes = 0, 0
    with open(tmp_path / "log.txt", "wb") as log:
        for attempt in range(8):
            proc = _start(kw, log)
            # wait until this attempt has written a checkpoint of its own, then kill after a random delay
            before = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
            deadline = time.monotonic() + 4 * full + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if ckpt.exists() and ckpt.stat().st_mtime_ns != before:
                    break
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
            else:
                assert proc.returncode == 0, (tmp_path / "log.txt").read_text()
                break
            if kills >= 3:
                break
        # let the last one finish uninterrupted
        if not (run / "metrics.csv").exists():
            proc = _start(kw, log)
            assert proc.wait() == 0, (tmp_path / "log.txt").read_text()
    text = (tmp_path / "log.txt").read_text()
    resumes = text.count("resuming from")
    assert kills >= 3, f"only {kills} kills landed before the run finished"
    assert resumes >= 3, text
    assert not ckpt.exists()  # removed once the outputs are complete

    cols = ["epoch", "step", "acc", "ece", "ece_width15", "nll", "pruned_fraction", "elbo"]
    a, b = pd.read_csv(ref / "metrics.csv"), pd.read_csv(run / "metrics.csv")
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    za, zb = np.load(ref / "posterior.npz"), np.load(run / "posterior.npz")
    assert sorted(za.files) == sorted(zb.files)
    for k in za.files:
        if k not in ("header", "__sha256__"):  # the digest covers the header (timings differ)
            np.testing.assert_array_equal(za[k], zb[k], err_msg=k)
