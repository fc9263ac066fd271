"""XLA uses a job's `threads` (bmrsparse.provenance.limit_threads): the size of XLA's CPU thread pools follows the
count given before JAX starts, the value is recorded with every result (xla_threads), and a count that cannot take
effect is refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bmrsparse import provenance as prov

#: Starts JAX after limit_threads(N), runs one computation, and prints how many threads XLA's intra-op pool
#: (named tf_XLAEigen by XLA) has, and what xla_threads() reports.
CHILD = """
import os, sys
from bmrsparse.provenance import limit_threads, xla_threads
limit_threads(int(sys.argv[1]))
import jax, jax.numpy as jnp
x = jnp.ones((256, 256)); (x @ x).block_until_ready()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(names.count("tf_XLAEigen"), xla_threads(), os.environ["OMP_NUM_THREADS"])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads through /proc")
def test_limit_threads_sizes_xlas_thread_pool():
    seen = {}
    for threads in (1, 3):
        run = subprocess.run([sys.executable, "-c", CHILD, str(threads)], capture_output=True, text=True,
                             timeout=300, env={k: v for k, v in __import__("os").environ.items()
                                               if k not in (prov.XLA_THREADS_ENV, "NPROC")})
        assert run.returncode == 0, run.stderr[-3000:]
        seen[threads] = run.stdout.split()
    # the pool follows the job's count, also above the machine's cores (so the count, not the machine, decides)
    assert seen == {1: ["1", "1", "1"], 3: ["3", "3", "3"]}


def test_limit_threads_sets_the_environment_and_validates():
    env = {}
    assert prov.limit_threads(4, env) == 4
    assert env[prov.XLA_THREADS_ENV] == "4"
    assert all(env[key] == "4" for key in prov.BLAS_THREADS_ENV)
    assert prov.xla_threads(env) == 4
    for bad in (0, -2, "many", 1.5, True, None):
        with pytest.raises(ValueError, match="threads must be a whole number >= 1"):
            prov.limit_threads(bad, {})


def test_limit_threads_after_jax_started_is_refused(monkeypatch):
    import jax

    jax.devices()  # JAX's backends exist in this process: its thread pools are sized already
    monkeypatch.delenv(prov.XLA_THREADS_ENV, raising=False)
    with pytest.raises(RuntimeError, match="before JAX starts"):
        prov.limit_threads(2)
    import os

    assert prov.XLA_THREADS_ENV not in os.environ


def test_provenance_records_the_pool_size(monkeypatch):
    monkeypatch.setenv(prov.XLA_THREADS_ENV, "5")
    assert prov.provenance()["xla_threads"] == "5"
    monkeypatch.delenv(prov.XLA_THREADS_ENV)
    monkeypatch.delenv("NPROC", raising=False)
    import os

    assert prov.xla_threads() == len(os.sched_getaffinity(0)) >= 1
