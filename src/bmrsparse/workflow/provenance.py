"""What produced a run's results, as the workflow records it: the library digest it plans its jobs for, the config
files it was given, the command that remakes a damaged file, and the provenance table read back from the jobs'
metrics (:func:`bmrsparse.provenance.provenance` writes each job's record)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path

import pandas as pd

from ..io import COMMAND_ENV, read_csv
from ..provenance import PROVENANCE_COLUMNS, library_digest

__all__ = ["workflow_library_digest", "config_files", "files_config", "record_command", "provenance_table"]


def workflow_library_digest(basedir: str | os.PathLike) -> str:
    """The library digest (:func:`bmrsparse.provenance.library_digest`) of the workflow's own ``src/bmrsparse``
    (what ``pip install -e .`` and the conda env's post-deploy script install): beside the main Snakefile in
    ``basedir`` or one folder up (``snakemake -s workflow/Snakefile``), else the importable bmrsparse (a copy of the
    workflow without ``src/``, e.g. one deployed as a module with snakedeploy). A param of every rule whose output
    depends on library code, so a library change reruns them and misses the between-workflow cache."""
    base = Path(basedir)
    found = [p for p in (base / "src" / "bmrsparse", base.parent / "src" / "bmrsparse") if p.is_dir()]
    return library_digest(found[0]) if found else library_digest()


def config_files(configfiles: Iterable, overwrite: Iterable | None) -> list[str]:
    """The config files in the order they were merged: the Snakefile's default, then those of ``--configfile``
    (compared as absolute paths: ``make reproduce`` names config/config.yaml both ways; it is listed once),
    relative to the working directory where they were given so."""
    given = [str(f) for f in overwrite or ()]
    given_abs = {os.path.abspath(f) for f in given}
    files = [str(f) for f in configfiles if os.path.abspath(f) not in given_abs] + given
    return [os.path.relpath(f) if os.path.isabs(f) else f for f in files]


def files_config(files: Iterable) -> dict:
    """The config that the config ``files`` give, merged in order as Snakemake merges them (without ``--config``):
    what a run's grid is compared with to tell a subset run (:func:`bmrsparse.workflow.paths.subset_name`)."""
    import yaml

    merged: dict = {}

    def update(into: dict, new: Mapping) -> None:
        for key, value in new.items():
            if isinstance(value, Mapping) and isinstance(into.get(key), dict):
                update(into[key], value)
            else:
                into[key] = dict(value) if isinstance(value, Mapping) else value

    for path in files:
        update(merged, yaml.safe_load(Path(path).read_text()) or {})
    return merged


def record_command(argv: Sequence[str], environ: MutableMapping = os.environ) -> None:
    """Put this run's command line into the environment of its jobs: the message of a damaged file
    (:class:`bmrsparse.io.DamagedFileError`) quotes it as the command that remakes the file. Only the main
    process records it (a cluster job's own Snakemake call runs with ``--target-jobs``)."""
    program = os.path.basename(argv[0]) if argv else ""
    if "--target-jobs" in argv or program not in ("snakemake", "__main__.py"):
        return
    environ[COMMAND_ENV] = shlex.join(["snakemake", *argv[1:]])


def provenance_table(paths) -> pd.DataFrame:
    """One row per metrics CSV (one training job): ``job`` (its folder under ``results/``) and the
    :data:`PROVENANCE_COLUMNS` it recorded ("not recorded" for a file written before they existed).

    Raises ``ValueError`` when a file records more than one value of a column (it should hold one job's rows), and
    :class:`bmrsparse.io.DamagedFileError` when a file does not match its digest file.
    """
    rows = []
    for path in paths:
        frame = read_csv(path, producer="bmrsparse.experiment.run_stage")
        job = str(Path(path).parent)
        job = job.split("results/", 1)[1] if "results/" in job else job
        row = {"job": job}
        for column in PROVENANCE_COLUMNS:
            values = frame[column].dropna().astype(str).unique() if column in frame else []
            if len(values) > 1:
                raise ValueError(f"{path}: more than one {column} ({', '.join(values)})")
            row[column] = values[0] if len(values) else "not recorded"
        rows.append(row)
    return pd.DataFrame(rows, columns=["job", *PROVENANCE_COLUMNS])
