"""The workflow layer: the one package that knows the config, the paths, the rules' job settings, the plan, the
tables, provenance and the reference data. The core (:mod:`bmrsparse.bmr`, ``methods``, ``nets``, ``data``,
``metrics``, ``train``, ``compact``, ``inference`` ...) imports nothing from it and names no rule; the ``.smk`` files
declare the rules and call it; the scripts in ``workflow/scripts/`` are glue.

================  ==========================================================================================
module            what it knows
================  ==========================================================================================
:mod:`.schema`    the config schema with the registries filled in; typing ``--config`` strings; messages that
                  name a bad key
:mod:`.config`    the validated config as typed, frozen objects (:class:`Config`), resolved once
:mod:`.paths`     where every file of a run is
:mod:`.jobs`      each training job's settings, its warm-up's settings and folder tag, runtimes and memory
:mod:`.grid`      the jobs a config asks for (:class:`Grid`): trained methods, warm-ups, inputs, targets
:mod:`.figures`   which rule draws each registered figure and what it reads
:mod:`.tables`    tidy metrics, the final-metrics table, the settings line; :mod:`.claims` the claims table
:mod:`.provenance`  the library digest the jobs are planned for, config files, the provenance table
:mod:`.reference`  the authors' side-by-side runs shipped in ``reference_data/`` and when a run compares
:mod:`.plan`      the plan before a run: Snakemake's own DAG and the estimated wall time
================  ==========================================================================================
"""

from .config import Config
from .grid import Grid

__all__ = ["Config", "Grid"]
