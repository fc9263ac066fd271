"""The jobs still to run, read from Snakemake itself: its command-line parser (profiles, the workflow profile,
``--configfile``, ``--config``, ``--cores``, ``--resources``) and its dry run, in this process, whose job events
(``LogEvent.JOB_INFO``: rule, wildcards, threads, resources, files) are collected as :class:`Job` objects. The
validated config is the one the Snakefile built (:attr:`bmrsparse.workflow.grid.Grid.last`)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from snakemake.cli import args_to_api, parse_args
from snakemake.utils import available_cpu_count
from snakemake_interface_logger_plugins.common import LogEvent

from ..grid import Grid
from .estimate import Job

__all__ = ["DryRun", "dry_run"]


@dataclass
class DryRun:
    """What Snakemake's dry run of a command line plans.

    Attributes:
      jobs: the jobs still to run (a subset given with ``--config``, or a half-finished run, shows only what is
        left), with the method whose model each training job trains.
      grid: the grid the Snakefile built from the validated config.
      configfiles: the ``--configfile`` files (the Snakefile's own ``config/config.yaml`` comes first).
      cores: the cores Snakemake may use (``--cores``, the profile's, else every core).
      gpu_limit: the ``gpu`` resource limit (``--resources gpu=N`` or the profile's), None when not limited.
    """

    jobs: list[Job]
    grid: Grid
    configfiles: list[str]
    cores: int
    gpu_limit: int | None


class _JobEvents(logging.Handler):
    """Collects the dry run's job events (one per job, with its rule, wildcards, threads, resources and files)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == LogEvent.JOB_INFO:
            self.records.append(record)


def _job(record: logging.LogRecord, grid: Grid) -> Job:
    resources = dict(record.resources.items()) if hasattr(record.resources, "items") else {}
    wildcards = {k: str(v) for k, v in (record.wildcards or {}).items()}
    method = wildcards.get("method")
    if "warmup" in wildcards and wildcards["warmup"] in grid.warmups:
        method = grid.warmup_model(wildcards["warmup"])
    return Job(jobid=int(record.jobid), rule=record.rule_name, wildcards=wildcards, threads=int(record.threads or 1),
               gpu=int(float(resources.get("gpu", 0) or 0)), inputs=[str(f) for f in record.input or []],
               outputs=[str(f) for f in record.output or []], method=method)


def _gpu_limit(resources) -> int | None:
    """The ``gpu`` limit of ``--resources`` (a Snakemake ``Resource`` or a number), None when not given."""
    gpu = (resources or {}).get("gpu")
    value = getattr(gpu, "value", gpu)
    return None if value is None else int(value)


def dry_run(args: list[str], workdir: Path) -> DryRun:
    """Snakemake's dry run of the command line ``args`` in ``workdir`` (raises ``RuntimeError`` with Snakemake's
    messages when it fails)."""
    events, logger = _JobEvents(), logging.getLogger("snakemake")
    messages = io.StringIO()
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(messages), contextlib.redirect_stderr(messages):
            parser, parsed = parse_args([*args, "--dry-run"])
            logger.addHandler(events)
            ok = args_to_api(parsed, parser)
    except SystemExit:  # Snakemake's parser refused the arguments
        ok = False
    finally:
        logger.removeHandler(events)
        os.chdir(previous)
    if not ok or Grid.last is None:
        raise RuntimeError(f"snakemake --dry-run failed:\n{messages.getvalue()[-3000:]}")
    grid = Grid.last
    jobs = [_job(record, grid) for record in events.records]
    cores = parsed.cores if parsed.cores not in (None, "all") else available_cpu_count()
    return DryRun(jobs=jobs, grid=grid, configfiles=[str(f) for f in parsed.configfile or []], cores=int(cores),
                  gpu_limit=_gpu_limit(parsed.resources))
