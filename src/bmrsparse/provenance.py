"""What produced a result: the library digest, the software versions and the device; the GPU guard of jobs.

* :func:`library_digest` hashes the library's source files (its core: not the workflow package, whose effect on a job
  reaches it through the job's params). The workflow passes the same digest to every rule whose output depends on
  library code (a change reruns them and misses the between-workflow cache), and :func:`provenance` writes it, with the git commit, the device, the Python, JAX/jaxlib/NumPyro/Flax/NumPy/Optax
  versions and JAX's CUDA plugin, into every metrics CSV and state header.
* :func:`check_accelerator` stops a job that the scheduler or CUDA assigned a GPU but whose JAX runs on the CPU (a
  CPU-only JAX build on a GPU node would train for hours past the time limit computed for a GPU). Only an actual
  assignment counts (:func:`scheduler_gpus`), never what the config asked for. Opt out with
  ``BMRSPARSE_ALLOW_CPU=1``.
* :func:`limit_threads` gives XLA's CPU thread pools (and NumPy's BLAS) the job's Snakemake ``threads``, before JAX
  starts; :func:`xla_threads` (recorded as ``xla_threads``) is the pool size in effect.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = [
    "ALLOW_CPU_ENV",
    "PROVENANCE_COLUMNS",
    "GPUFallbackError",
    "library_digest",
    "software_versions",
    "cuda_plugin",
    "git_commit",
    "device_description",
    "provenance",
    "scheduler_gpus",
    "check_accelerator",
    "XLA_THREADS_ENV",
    "limit_threads",
    "xla_threads",
]

#: Environment variable that allows a job given a GPU to train on the CPU anyway ("1", "true" or "yes").
ALLOW_CPU_ENV = "BMRSPARSE_ALLOW_CPU"
#: Packages whose versions are recorded with every result.
VERSIONED = ("jax", "jaxlib", "numpyro", "flax", "numpy", "optax")
#: Columns that every metrics CSV written by ``run_stage`` carries after the metrics (one value per job).
PROVENANCE_COLUMNS = ("library", "device", *VERSIONED, "cuda_plugin", "python", "commit", "xla_threads")
#: Environment variable that sizes XLA's CPU thread pools: XLA's ``DefaultThreadPoolSize()`` reads it when JAX
#: creates its CPU client (XLA_FLAGS has no flag for it; without it XLA starts one thread per schedulable core).
XLA_THREADS_ENV = "PJRT_NPROC"
#: Thread counts of the OpenMP/BLAS libraries that NumPy (and SciPy) may use beside XLA.
BLAS_THREADS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: Distribution names of JAX's CUDA plugin (``jax-cuda12-plugin``, ``jax-cuda13-plugin``, ...).
_CUDA_PLUGIN = re.compile(r"jax[-_.]cuda\d+[-_.]plugin", re.IGNORECASE)


class GPUFallbackError(RuntimeError):
    """A job was assigned a GPU by the scheduler or CUDA but JAX has no GPU backend."""


#: The subpackage the digest leaves out: the workflow layer (paths, job settings, tables, plan).
WORKFLOW_PACKAGE = "workflow"


def library_digest(root=None) -> str:
    """16 hex digits of SHA-256 over the relative path and content of every ``*.py`` under ``root`` (default: this
    package) but those of its :data:`WORKFLOW_PACKAGE`. The workflow computes the same digest of ``src/bmrsparse``
    (:func:`bmrsparse.workflow.provenance.workflow_library_digest`)."""
    root = Path(root) if root is not None else Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == WORKFLOW_PACKAGE:
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def software_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_description() -> str:
    """The device JAX computes on, e.g. ``"gpu: NVIDIA H100 80GB HBM3"`` or ``"cpu: AMD EPYC 7B13"``."""
    import jax

    devices = jax.devices()
    platform_ = devices[0].platform
    if platform_ == "cpu":
        return f"cpu: {_cpu_model()}"
    kinds = sorted({d.device_kind for d in devices})
    count = f"{len(devices)} x " if len(devices) > 1 else ""
    return f"{platform_}: {count}{', '.join(kinds)}"


def cuda_plugin() -> str:
    """JAX's installed CUDA plugin(s) as ``"jax-cuda12-plugin 0.10.2"``, or ``"none"`` (a CPU-only JAX)."""
    found = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        if _CUDA_PLUGIN.fullmatch(name):
            found.add(f"{name.lower().replace('_', '-')} {dist.version}")
    return ", ".join(sorted(found)) or "none"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


def git_commit(root=None) -> str:
    """The git commit of the checkout that holds the library source ``root`` (default: this package), with
    ``-modified`` when tracked files differ from it; ``"unknown"`` when the source is not tracked by git (an
    installed copy, e.g. in a virtual environment inside a checkout) or git is missing."""
    root = Path(root) if root is not None else Path(__file__).parent
    try:
        _git(root, "ls-files", "--error-unmatch", "--", ".")
        commit = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ":/")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-modified" if dirty else commit


def _backends_started() -> bool:
    """Whether JAX has created its backends (after that, the size of XLA's thread pools is fixed)."""
    import sys

    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge  # backends_are_initialized has no public alias

    return bool(getattr(xla_bridge, "backends_are_initialized", lambda: False)())


def limit_threads(threads, environ=None) -> int:
    """Give this process's XLA CPU thread pools, and NumPy's OpenMP/BLAS, ``threads`` threads.

    The training and timing scripts call it with ``snakemake.threads`` before JAX starts, so that a job uses the
    cores the scheduler (``--cores``, or SLURM's ``--cpus-per-task``) gave it and not every core of the node.
    XLA sizes its pools from :data:`XLA_THREADS_ENV` when JAX creates its CPU client; the BLAS variables
    (:data:`BLAS_THREADS_ENV`) are set too. Returns ``threads``. Raises ``ValueError`` for a count below 1 and
    ``RuntimeError`` when JAX's backends already exist in this process (the setting would have no effect).
    """
    if isinstance(threads, bool) or not isinstance(threads, (int, str)):
        raise ValueError(f"threads must be a whole number >= 1, not {threads!r}")
    try:
        count = int(threads)
    except ValueError:
        raise ValueError(f"threads must be a whole number >= 1, not {threads!r}") from None
    if count < 1:
        raise ValueError(f"threads must be a whole number >= 1, not {threads!r}")
    if environ is None:
        if _backends_started():
            raise RuntimeError("limit_threads() must run before JAX starts its backends (before the first "
                               "computation or jax.devices()): XLA's thread pools already exist")
        environ = os.environ
    environ[XLA_THREADS_ENV] = str(count)
    for key in BLAS_THREADS_ENV:
        environ[key] = str(count)
    return count


def xla_threads(environ=None) -> int:
    """The size of XLA's CPU thread pools in this process: :data:`XLA_THREADS_ENV` (or ``NPROC``, which XLA also
    reads) when set to a whole number, else the number of cores this process may run on."""
    env = os.environ if environ is None else environ
    for key in (XLA_THREADS_ENV, "NPROC"):
        try:
            return max(0, int(env.get(key, "")))
        except ValueError:
            continue
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def provenance() -> dict[str, str]:
    """:data:`PROVENANCE_COLUMNS` of this process: library digest, device, versions, CUDA plugin, Python, commit
    and the size of XLA's CPU thread pools."""
    out = {"library": library_digest(), "device": device_description(), **software_versions(),
           "cuda_plugin": cuda_plugin(), "python": platform.python_version(), "commit": git_commit(),
           "xla_threads": str(xla_threads())}
    return {key: out[key] for key in PROVENANCE_COLUMNS}


def _truthy(value) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


#: ``CUDA_VISIBLE_DEVICES`` values that hide every device (SLURM writes ``NoDevFiles`` when a job has no GPU).
_NO_DEVICE = ("", "-1", "nodevfiles", "none")


def scheduler_gpus(environ=None, resources_gpu: int = 0) -> list[str]:
    """What the scheduler or CUDA assigned to this process as GPUs: the evidence, or ``[]``.

    Evidence is only an actual assignment: ``CUDA_VISIBLE_DEVICES`` naming a device (not empty, ``-1``,
    ``NoDevFiles`` or ``none``), ``SLURM_JOB_GPUS`` / ``SLURM_STEP_GPUS`` / ``GPU_DEVICE_ORDINAL`` not empty, or
    ``SLURM_GPUS_ON_NODE`` > 0. What the job asked for is not: ``resources_gpu`` (the config's ``resources.gpu``)
    and ``SLURM_JOB_ID`` alone give ``[]``, so a CPU allocation (``salloc``, ``srun``, a batch script) trains on
    its CPUs. ``resources_gpu`` is kept for callers and named in no evidence.
    """
    env = os.environ if environ is None else environ
    evidence = []
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and cvd.strip().lower() not in _NO_DEVICE:
        evidence.append(f"CUDA_VISIBLE_DEVICES={cvd}")
    for key in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "GPU_DEVICE_ORDINAL"):
        if str(env.get(key) or "").strip():
            evidence.append(f"{key}={env[key]}")
    on_node = str(env.get("SLURM_GPUS_ON_NODE") or "").strip()
    try:
        if int(on_node) > 0:
            evidence.append(f"SLURM_GPUS_ON_NODE={on_node}")
    except ValueError:
        pass
    return evidence


def check_accelerator(environ=None, resources_gpu: int = 0, backend: str | None = None) -> str:
    """Stop a job that was given a GPU but whose JAX runs on the CPU; return JAX's backend otherwise.

    Raises :class:`GPUFallbackError` with the cause and the fixes unless ``BMRSPARSE_ALLOW_CPU`` is set.
    ``backend`` defaults to ``jax.default_backend()``.
    """
    env = os.environ if environ is None else environ
    if backend is None:
        import jax

        backend = jax.default_backend()
    if backend != "cpu":
        return backend
    evidence = scheduler_gpus(env, resources_gpu)
    if not evidence or _truthy(env.get(ALLOW_CPU_ENV)):
        return backend
    versions = software_versions()
    raise GPUFallbackError(
        f"this job was given a GPU ({', '.join(evidence)}) but JAX runs on the CPU: jax {versions['jax']} / "
        f"jaxlib {versions['jaxlib']} found no GPU backend, so training would run on the node's CPUs, many times "
        "slower than the GPU runtime the job's time limit was computed for. Fix one of: install JAX's CUDA build "
        "into the jobs' environment (`pip install -e '.[cuda12]'`, or '.[cuda13]' where the driver supports CUDA "
        "13, or run Snakemake with `--sdm conda`, which gives GPU jobs envs/bmrsparse-gpu.yaml); load the cluster's CUDA driver/module on the GPU nodes; or, to train "
        f"on CPUs on purpose, set `resources.gpu: 0` in the config or export {ALLOW_CPU_ENV}=1."
    )
