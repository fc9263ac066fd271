"""One process, three routes of the same MLP step, compiled once each and timed alternately (A/B/C per round):
  private: main's _rng (4e2697a): JAX's private straight-line lowering rule registered for the threefry2x32 primitive
  public:  issue 32's _rng: the key's data through a PRNG implementation declared with jax.extend.random
  rolled:  neither (JAX's default CPU lowering, a loop)
Wall and process (CPU) time per step; ratios to the private route per round, medians over rounds.
usage: python inproc.py METHOD STEPS ROUNDS PATH/TO/MAINS/_rng.py (git show 4e2697a:src/bmrsparse/_rng.py)
"""
import contextlib
import importlib.util
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bmrsparse import _rng
from bmrsparse.bench import synthetic_dataset
from bmrsparse.settings import resolve_settings
from bmrsparse.train import Trainer

spec = importlib.util.spec_from_file_location("main_rng", sys.argv[4])
main_rng = importlib.util.module_from_spec(spec)
spec.loader.exec_module(main_rng)
assert main_rng.available()

method, steps, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
settings = resolve_settings({})  # the paper's MLP (5x400), minibatch of the library default
ds = synthetic_dataset("fashion_mnist", "mlp")
routes = {"private": main_rng.straight_line_threefry, "public": _rng.straight_line_threefry,
          "rolled": contextlib.nullcontext}
real = _rng.straight_line_threefry
runs = {}
for name, ctx in routes.items():
    _rng.straight_line_threefry = ctx
    tr = Trainer(arch="mlp", method=method, dataset=ds, seeds=[0], settings=settings)
    state = tr.init()
    state, _ = tr.train(state, 2, chunk_size=steps, progress=False)  # compiles
    runs[name] = (tr, state)
    print(f"{name}: compiled in {tr.compile_seconds:.1f} s", flush=True)
_rng.straight_line_threefry = real

rows = {n: [] for n in routes}
for r in range(rounds):
    for name in (list(routes) if r % 2 == 0 else list(routes)[::-1]):
        tr, state = runs[name]
        w0, c0 = time.perf_counter(), time.process_time()
        state, _ = tr.train(state, steps, chunk_size=steps, progress=False)
        jax.block_until_ready(state.svi_state)
        rows[name].append(((time.perf_counter() - w0) / steps * 1e3, (time.process_time() - c0) / steps * 1e3))
        runs[name] = (tr, state)
print(f"mlp {method}, {steps} steps x {rounds} rounds, batch {settings['batch_size']}, jax {jax.__version__}")
for name in routes:
    w = np.array(rows[name])
    rw = np.array(rows[name])[:, 0] / np.array(rows["private"])[:, 0]
    rc = np.array(rows[name])[:, 1] / np.array(rows["private"])[:, 1]
    print(f"  {name:8s} wall {np.median(w[:, 0]):7.2f} ms/step [{w[:, 0].min():.2f}-{w[:, 0].max():.2f}]  "
          f"cpu {np.median(w[:, 1]):7.2f} ms/step  wall/private {np.median(rw):.3f} [{rw.min():.3f}-{rw.max():.3f}]  "
          f"cpu/private {np.median(rc):.3f} [{rc.min():.3f}-{rc.max():.3f}]")
