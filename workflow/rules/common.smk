# The config, validated against workflow/schemas/config.schema.yaml, and the input functions of the rules. What the
# rules need to know (paths, each job's settings, warm-ups, figures, targets) is in the package bmrsparse.workflow:
# GRID (bmrsparse.workflow.Grid) holds the typed config (GRID.config) and the jobs it asks for.

import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from bmrsparse.workflow import Config, Grid, paths
from bmrsparse.workflow.figures import FIGURES, figure_inputs
from bmrsparse.workflow.grid import NOTHING
from bmrsparse.workflow.jobs import SPEED_METHODS, TIMING_REPEATS, runtime_minutes, timing_minutes, timing_steps
from bmrsparse.workflow.jobs import gpu_resources
from bmrsparse.workflow.paths import subset_name
from bmrsparse.workflow.provenance import config_files, files_config, record_command, workflow_library_digest
from bmrsparse.workflow.schema import config_error, registry_schema, type_command_line

ENV = "../../envs/bmrsparse.yaml"
#: Training rules under --sdm conda: JAX's CUDA build when the config asks for GPUs (resources.gpu >= 1).
GPU_ENV = "../../envs/bmrsparse-gpu.yaml"


# The schema with the registries' names and defaults filled in; `--config` strings typed first. A failure names
# every bad key. (validate() honours a module's skip_validation and sets the schema's defaults.)
with registry_schema(workflow.source_path("../schemas/config.schema.yaml")) as schema:
    type_command_line(config, schema.content)
    try:
        validate(config, schema=schema.path)
    except WorkflowError as error:
        raise config_error(config, schema.content, error) from None


#: The config files in the order they were merged (named by every table).
CONFIG_FILES = config_files(workflow.configfiles, workflow.overwrite_configfiles)
# A run whose --config leaves out part of the config files' grid (e.g. 'archs=[vit]') is a subset run: its metrics
# table, timing, tables and figures go to results/subsets/<name>/ (GRID.summary), not over the whole grid's in results/.
GRID = Grid(Config.from_mapping(config), subset=subset_name(files_config(CONFIG_FILES), config))
CFG = GRID.config
#: The folder of this run's metrics table, timing, tables and figures: results, or results/subsets/<name>.
SUMMARY = GRID.summary
#: Library code digest: a param of every rule whose output depends on it (bmrsparse.workflow.provenance).
LIBRARY_DIGEST = workflow_library_digest(workflow.basedir)
TRAIN_ENV = GPU_ENV if CFG.resources.gpu >= 1 else ENV
#: The resources by which the GPU rules' jobs (bmrsparse.workflow.jobs.GPU_RULES) ask for the accelerator: `gpu`,
#: and `slurm_partition`/`gpu_model` from resources.gpu_partition/gpu_model when set (none for the other rules).
GPU_JOB = gpu_resources(CFG)
# This run's command line, for the message of a damaged file (bmrsparse.io.DamagedFileError), in the jobs' environment.
record_command(sys.argv)


wildcard_constraints:
    dataset="|".join(CFG.datasets),
    arch="|".join(CFG.archs),
    method="|".join(GRID.run_methods),
    seed="|".join(str(s) for s in CFG.seeds),
    epoch=r"\d+",
    warmup=GRID.warmups_regex(),


# ----------------------------------------------------------------------------------------------------------------
# Outputs and logs of training jobs (one seed, or every seed with vmap_seeds)
# ----------------------------------------------------------------------------------------------------------------


def per_seed(template):
    """Output paths of a training job: its own seed's, or every seed's when the seeds train together."""
    return expand(template, seed=CFG.seeds, allow_missing=True) if CFG.vmap_seeds else template


def seed_tag(template):
    """Log/benchmark path of a training job: ``seed{seed}`` becomes ``seeds0-1-2`` when the seeds train together."""
    return template.replace("seed{seed}", "seeds" + "-".join(map(str, CFG.seeds))) if CFG.vmap_seeds else template


def job_seeds(wildcards):
    """The seed of the job, or the list of all seeds when they train together."""
    return list(CFG.seeds) if CFG.vmap_seeds else int(wildcards.seed)


# ----------------------------------------------------------------------------------------------------------------
# Input functions
# ----------------------------------------------------------------------------------------------------------------


def get_data(wildcards):
    return paths.data_path(wildcards.dataset)


def get_warmup_posterior(wildcards):
    """The warm-up state(s) the job's method starts from."""
    return GRID.warmup_posterior(wildcards.dataset, wildcards.arch, wildcards.method, wildcards.get("seed"))


def get_epoch_init(wildcards):
    """Epoch k of a per-epoch method starts from its epoch k-1 (epoch 1 from its warm-up)."""
    w = wildcards
    return GRID.epoch_init(w.dataset, w.arch, w.method, w.get("seed"), w.epoch)


def get_epoch_reference(wildcards):
    """The declared reference method's state of the same epoch (the matched pruning baselines read BMR-S&S's)."""
    w = wildcards
    return GRID.epoch_reference(w.dataset, w.arch, w.method, w.get("seed"), w.epoch)


def get_final_posterior(method=None):
    """Input function: the final posterior of the job's method (or of ``method``)."""
    return lambda w: GRID.final_posterior(w.dataset, w.arch, method or w.method, w.seed)


def get_figure_inputs(wildcards):
    """What the figure's declaration says it reads (bmrsparse.workflow.figures)."""
    return figure_inputs(wildcards.figure, GRID)


# ----------------------------------------------------------------------------------------------------------------
# Params and resources
# ----------------------------------------------------------------------------------------------------------------


def settings_of(method=None):
    """Params function: the training settings of a job of ``method`` (or the {method} wildcard)."""
    return lambda wildcards: GRID.job_settings(method or wildcards.method, wildcards.arch)


def warmup_settings_of(wildcards):
    """Params function of train_warmup: the settings of the warm-up named by the {warmup} wildcard."""
    return GRID.warmup_settings(GRID.warmups[wildcards.warmup], wildcards.arch)


def warmup_method_of(wildcards):
    """Params function of train_warmup: the method whose model the warm-up trains."""
    return GRID.warmup_model(wildcards.warmup)


def train_runtime(steps):
    """Resource function: minutes of a training job of ``steps`` SVI steps; attempt k (Snakemake's `retries`) asks
    for k times the estimate: a job killed at its time limit resumes from its checkpoint with a longer limit."""
    return lambda wildcards, attempt: runtime_minutes(CFG, wildcards.arch, steps) * attempt


def train_mem_mb(wildcards):
    return CFG.resources.mem_mb[wildcards.arch]


def timing_runtime(wildcards, attempt):
    """Resource function of time_steps: its timed runs, each as a training job; attempt k asks for k times as much."""
    return timing_minutes(CFG) * attempt
