"""Snakemake script of rule compact_network: a method's final posterior mean as a compact network, exported as
.npz + JSON (bmrsparse.compact_numpy loads it with numpy alone)."""

import os
import sys

log = open(snakemake.log[0], "w", buffering=1)
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
sys.stdout = sys.stderr = log

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from bmrsparse.provenance import limit_threads

limit_threads(snakemake.threads)  # XLA's CPU thread pools: the job's `threads`, before JAX starts

from bmrsparse.compact import num_params
from bmrsparse.inference import export_compact

stem = snakemake.output.npz[: -len(".npz")]
small = export_compact(snakemake.input.posterior, snakemake.input.data, stem)
sizes = " -> ".join(f"{layer['name']} {layer['out']}" for layer in small.spec["layers"])
print(f"{snakemake.input.posterior}: {num_params(small)} parameters; {sizes}", flush=True)
