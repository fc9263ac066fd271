"""Profile one SVI step of one network (issue 22, part 3 of tools/gpu/measure.sh): time it and trace it.

    python tools/gpu/profile_step.py --arch vit --method flat_ff --seeds 1 8 --steps 50 --out DIR [--tiny]

Builds the step as ``python -m bmrsparse.bench`` does (FashionMNIST shapes, random images, minibatch 128, the
library's default settings), compiles it (one chunk program: a ``fori_loop`` over a step count given at run time)
and runs one step, then ``--steps`` steps in one chunk twice: once timed, once under ``jax.profiler.trace``; for each seed count in turn (one process, so the imports
are paid once). Writes into ``DIR/<arch>-x<seeds>/``:

- ``run.json``: arch, method, seeds, steps, device, compile_s, ms_per_step (the untraced run) and ``xla``: the
  optimized HLO file(s) of this run's chunk program in the XLA dump, if one is being made;
- ``trace/``: the profiler's trace (``*.trace.json.gz``, read by ``summary.py profile``: device kernels per step
  and the largest kernels by time).

Set ``XLA_FLAGS=--xla_dump_to=DIR/xla --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*chunk.*`` before it starts
to keep the compiled steps' HLO as well (``summary.py profile`` counts their work-launching ops per SVI step).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time


def _dump_dir():
    """The folder of XLA's HLO dump (``--xla_dump_to`` in ``XLA_FLAGS``), or None."""
    for flag in os.environ.get("XLA_FLAGS", "").split():
        if flag.startswith("--xla_dump_to="):
            return flag.split("=", 1)[1]
    return None


def _chunk_files(dump) -> set:
    """Absolute paths of the optimized chunk programs in the dump so far (XLA writes them at compile time)."""
    if not dump:
        return set()
    return {os.path.abspath(f) for f in glob.glob(os.path.join(dump, "*chunk*after_optimizations.txt"))}


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", required=True)
    p.add_argument("--method", default="flat_ff")
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="seed counts (each vmapped in one program)")
    p.add_argument("--steps", type=int, default=50, help="steps of the timed chunk and of the traced chunk")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--tiny", action="store_true", help="shrunken networks (CPU smoke test)")
    p.add_argument("--step-loop", default="device", choices=["device", "host", "auto"],
                   help="training.step_loop; 'device' (one compiled fori_loop per chunk) is what 'auto' picks on a "
                        "GPU, so a CPU smoke run compiles the program the GPU runs")
    p.add_argument("--out", required=True, help="folder for <arch>-x<seeds>/ (run.json and trace/)")
    a = p.parse_args(argv)
    if min(a.seeds) < 1 or a.steps < 1:
        p.error("--seeds and --steps must be at least 1")

    import jax

    from bmrsparse.bench import TINY, device_name, synthetic_dataset
    from bmrsparse.methods import METHODS
    from bmrsparse.nets import NETWORKS
    from bmrsparse.settings import TrainingSettings
    from bmrsparse.train import Trainer

    if a.arch not in NETWORKS or a.method not in METHODS:
        p.error(f"--arch must be one of {sorted(NETWORKS)} and --method one of {sorted(METHODS)}")
    settings = TrainingSettings(batch_size=a.batch_size, net=dict(TINY) if a.tiny else {}, step_loop=a.step_loop)
    ds = synthetic_dataset("fashion_mnist", a.arch)
    dump = _dump_dir()
    rows = []
    for seeds in a.seeds:
        out = os.path.join(a.out, f"{a.arch}-x{seeds}")
        os.makedirs(out, exist_ok=True)
        before = _chunk_files(dump)
        tr = Trainer(arch=a.arch, method=a.method, dataset=ds, seeds=list(range(seeds)), settings=settings)
        state = tr.init()
        # compiles the chunk program (its step count is an argument) and runs one step
        state, _ = tr.train(state, 1, chunk_size=1, progress=False)
        compile_s = tr.compile_seconds
        t0 = time.perf_counter()
        state, secs = tr.train(state, a.steps, chunk_size=a.steps, progress=False)
        wall = time.perf_counter() - t0
        with jax.profiler.trace(os.path.join(out, "trace")):
            state, _ = tr.train(state, a.steps, chunk_size=a.steps, progress=False)
            jax.block_until_ready(state.svi_state)
        row = {"arch": a.arch, "method": a.method, "seeds": seeds, "steps": a.steps, "tiny": a.tiny,
               "step_loop": tr.step_loop, "device": device_name(), "compile_s": round(compile_s, 3),
               "ms_per_step": 1e3 * secs / a.steps, "wall_s": wall,
               "xla": sorted(_chunk_files(dump) - before)}
        tmp = os.path.join(out, "run.json.part")
        with open(tmp, "w") as fh:
            json.dump(row, fh)
        os.replace(tmp, os.path.join(out, "run.json"))
        print(f"{row['device']} {a.arch} {a.method} x{seeds}: {row['ms_per_step']:.3f} ms/step, "
              f"compile {compile_s:.2f} s", flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
