"""Snakemake script of the training rules (train_warmup, train_continue, train_scratch, train_epoch).

Runs one stage of bmrsparse.experiment.run_stage; the rule's params carry the method, the schedule and the
settings. A killed job resumes from run_stage's checkpoint when the workflow is rerun.
"""

import os
import sys

# Everything, including messages that JAX's C++ side writes to file descriptor 2, goes to the rule's log.
log = open(snakemake.log[0], "a", buffering=1)
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
sys.stdout = sys.stderr = log

# Several jobs may share one GPU: take memory as needed instead of 75 % of it per process.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# JAX's persistent compilation cache (config jax_cache_dir): later jobs reuse programs earlier jobs compiled.
# It is read from the config, not from params, because it changes no result and must not trigger reruns.
if snakemake.config.get("jax_cache_dir"):
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(snakemake.config["jax_cache_dir"]))

from bmrsparse.provenance import check_accelerator, device_description, library_digest, limit_threads

# XLA's CPU thread pools (and NumPy's BLAS) get the job's `threads`, not every core of the node; before JAX starts.
limit_threads(snakemake.threads)

# No silent CPU fallback: a job the scheduler gave a GPU stops here if JAX has no GPU backend (the message names
# the fix; BMRSPARSE_ALLOW_CPU=1 allows it). A local run without a GPU passes.
check_accelerator(resources_gpu=int(getattr(snakemake.resources, "gpu", 0) or 0))
print(f"device: {device_description()}, {snakemake.threads} thread(s)", flush=True)
if snakemake.params.get("library") and snakemake.params.library != library_digest():
    print(f"warning: the workflow planned this job for library {snakemake.params.library} but the imported "
          f"bmrsparse is {library_digest()} (install the project from the workflow's folder)", flush=True)

from bmrsparse.experiment import run_stage

seeds = snakemake.params.seed  # an int, or a list of seeds trained together (config vmap_seeds)
together = isinstance(seeds, list)
init_state = snakemake.input.get("init_state")
if together and init_state:
    init_state = [init_state] if isinstance(init_state, str) else list(init_state)
# the state of the method's declared reference method at the same epoch (train_epoch; empty otherwise)
reference_state = snakemake.input.get("reference") or None
if reference_state is not None and together:
    reference_state = [reference_state] if isinstance(reference_state, str) else list(reference_state)

run_stage(
    data_path=snakemake.input.data,
    dataset=snakemake.wildcards.dataset,
    arch=snakemake.wildcards.arch,
    method=snakemake.params.method,
    seed=seeds,
    schedule=list(snakemake.params.schedule),
    first_epoch=int(snakemake.params.first_epoch),
    init_state=init_state,
    reference_state=reference_state,
    out_state=list(snakemake.output.posterior) if together else snakemake.output.posterior,
    out_metrics=list(snakemake.output.metrics) if together else snakemake.output.metrics,
    settings=snakemake.params.settings,
    progress=False,
    final_epoch=int(snakemake.params.final_epoch),
)
