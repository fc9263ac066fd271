# Configuration, validated against workflow/schemas/config.schema.yaml, and the input functions of the rules.

import math
import os
import re
import shlex
import sys
import tempfile
from itertools import product

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The registries: every module of bmrsparse.methods / .data / .nets / .figures and every entry point of the groups
# "bmrsparse.methods", "bmrsparse.datasets", "bmrsparse.nets", "bmrsparse.figures".
from bmrsparse.compact import ARCHS as COMPACT_ARCHS
from bmrsparse.data import fill_schema as fill_dataset_schema
from bmrsparse.figures import FIGURES as FIGURE_INFO
from bmrsparse.methods import METHODS as METHOD_INFO, WARMUP_METHOD, fill_schema, warmup_settings, warmup_tag
from bmrsparse.nets import fill_schema as fill_network_schema
from bmrsparse.settings import learning_rate as method_learning_rate

ENV = "../../envs/bmrsparse.yaml"
#: Training rules under --sdm conda: JAX's CUDA build when the config asks for GPUs (resources.gpu >= 1).
GPU_ENV = "../../envs/bmrsparse-gpu.yaml"


# ----------------------------------------------------------------------------------------------------------------
# Config validation
# ----------------------------------------------------------------------------------------------------------------


def _resolve(schema, root):
    while "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _types(schema):
    types = schema.get("type", [])
    return {types} if isinstance(types, str) else set(types)


def _parse_leaves(value):
    """Read every string leaf of a free-form value as YAML ("8" -> 8, "null" -> None)."""
    if isinstance(value, dict):
        return {k: _parse_leaves(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_parse_leaves(v) for v in value]
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def _coerce(value, schema, root):
    """Turn strings from `--config key=value` (Snakemake keeps them as strings) into the type the schema wants."""
    schema = _resolve(schema, root)
    if isinstance(value, dict) and "properties" not in schema:  # free-form (training.net.<arch>)
        return _parse_leaves(value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _coerce(v, props[k], root) if k in props else v for k, v in value.items()}
    if isinstance(value, list):
        items = schema.get("items")
        return [_coerce(v, items, root) for v in value] if items else value
    if isinstance(value, str) and "null" in _types(schema) and value in ("null", "~"):
        return None
    if isinstance(value, str) and _types(schema) and "string" not in _types(schema):
        for kind, cast in (("integer", int), ("number", float)):
            if kind in _types(schema):
                try:
                    return cast(value)
                except ValueError:
                    pass
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return value if isinstance(parsed, str) else _coerce(parsed, schema, root)
    return value


def _key_name(path):
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _describe(error):
    key = _key_name(error.absolute_path)
    where = f"config key '{key}'" if key else "config"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        names = ", ".join(f"'{_key_name([*error.absolute_path, u])}'" for u in unknown)
        return f"unknown config key {names}; allowed here: {', '.join(allowed)}"
    if error.validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"{where} = {error.instance!r}: expected {wanted}"
    if error.validator == "enum":
        return f"{where} = {error.instance!r}: must be one of {', '.join(map(str, error.validator_value))}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[error.validator]
        return f"{where} = {error.instance!r}: must be {op} {error.validator_value}"
    return f"{where}: {error.message}"


def validate_config(cfg, schema_path, label="workflow/schemas/config.schema.yaml"):
    """Coerce command-line strings (by hand), then `snakemake.utils.validate`: it checks `cfg` against the schema,
    fills in the defaults and honours a module's `skip_validation`. A failure names every bad key."""
    with open(schema_path) as handle:
        # the enums of methods, datasets and networks, learning rates and resource defaults from the registries
        schema = fill_dataset_schema(fill_network_schema(fill_schema(yaml.safe_load(handle))))
    cfg.update(_coerce(dict(cfg), schema, schema))
    with tempfile.TemporaryDirectory() as folder:  # validate() reads a schema file: the registry-filled one
        filled = os.path.join(folder, os.path.basename(schema_path))
        with open(filled, "w") as handle:
            yaml.safe_dump(schema, handle, sort_keys=False)
        try:
            validate(cfg, filled, set_default=True)
        except WorkflowError:
            validator = jsonschema.Draft202012Validator(schema)
            errors = sorted(validator.iter_errors(cfg), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
            if not errors:  # not a validation error (e.g. an unreadable schema): Snakemake's own message
                raise
            lines = "\n".join(f"  - {_describe(e)}" for e in errors)
            raise WorkflowError(f"Invalid configuration (see {label}):\n{lines}") from None


validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))


COMMAND_ENV = "BMRSPARSE_SNAKEMAKE_COMMAND"  # bmrsparse.io reads it


def _record_command():
    """Put this run's command line into the environment of its jobs: the message of a damaged file
    (bmrsparse.io.DamagedFileError) quotes it as the command that remakes the file. Only the main process records
    it (a cluster job's own Snakemake call runs with --target-jobs)."""
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if "--target-jobs" in sys.argv or program not in ("snakemake", "__main__.py"):
        return
    # set here for the jobs, not read from the user's environment (hence no envvars directive)
    os.environ[COMMAND_ENV] = shlex.join(["snakemake", *sys.argv[1:]])


_record_command()


def _library_digest():
    """Digest of the library source (= bmrsparse.provenance.library_digest): a param of every rule whose output
    depends on library code, so a library change reruns them and misses the between-workflow cache.

    The workflow's own src/bmrsparse (what `pip install -e .` and the conda env's post-deploy script install),
    beside the main Snakefile or one folder up (`snakemake -s workflow/Snakefile`), else the importable bmrsparse
    (a copy of the workflow without src/, e.g. one deployed as a module with snakedeploy).
    """
    import hashlib
    import pathlib

    base = pathlib.Path(workflow.basedir)
    found = [p for p in (base / "src" / "bmrsparse", base.parent / "src" / "bmrsparse") if p.is_dir()]
    if found:
        root = found[0]
    else:
        import bmrsparse

        root = pathlib.Path(bmrsparse.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


LIBRARY_DIGEST = _library_digest()
TRAIN_ENV = GPU_ENV if config["resources"]["gpu"] >= 1 else ENV

DATASETS = config["datasets"]
ARCHS = config["archs"]
METHODS = config["methods"]
# WARMUP_METHOD (bmrsparse.methods): the method whose run is the warm-up (epoch 0 of every method that declares
# start="warmup"); WARMUPS below names the warm-ups the grid needs.


def _with_references(names):
    """`names` and, recursively, the methods whose states they read (trained, though not reported, if not listed)."""
    out = list(names)
    for name in out:
        reference = METHOD_INFO[name].reference
        if reference is not None and reference not in out:
            out.append(reference)
    return out


#: Every method the grid trains.
RUN_METHODS = _with_references(METHODS)


def methods_regex(**declared):
    """Wildcard constraint: the trained methods whose declaration has these values (e.g. per_epoch=True)."""
    names = [m for m in RUN_METHODS if all(getattr(METHOD_INFO[m], k) == v for k, v in declared.items())]
    return "|".join(names) if names else "(?!)"  # (?!) matches nothing


SEEDS = config["seeds"]
VMAP_SEEDS = bool(config.get("vmap_seeds", False))
WARMUP_STEPS = config["schedule"]["warmup_steps"]
EPOCH_STEPS = config["schedule"]["epoch_steps"]
NUM_EPOCHS = config["schedule"]["num_epochs"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    arch="|".join(ARCHS),
    method="|".join(RUN_METHODS),
    seed="|".join(str(s) for s in SEEDS),
    epoch=r"\d+",


# ----------------------------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------------------------


def data_path(dataset):
    return f"results/data/{dataset}.npz"


def warmup_dir(dataset, arch, seed, warmup):
    """Folder of a warm-up; `warmup` is its tag (WARMUP_OF[method]), which names its settings."""
    return f"results/warmup/{dataset}/{arch}/{warmup}/seed{seed}"


def train_dir(dataset, arch, method, seed):
    return f"results/train/{dataset}/{arch}/{method}/seed{seed}"


def epoch_dir(dataset, arch, method, seed, epoch):
    """Folder of epoch `epoch` of a method that runs one job per epoch."""
    return f"{train_dir(dataset, arch, method, seed)}/epoch{epoch}"


def bmr_dir(dataset, arch, seed, epoch):
    return epoch_dir(dataset, arch, "bmr_ss", seed, epoch)


def final_posterior(dataset, arch, method, seed):
    """The posterior a method ends with (a per-epoch method: the one of its last epoch)."""
    if METHOD_INFO[method].per_epoch:
        return f"{epoch_dir(dataset, arch, method, seed, NUM_EPOCHS)}/posterior.npz"
    return f"{train_dir(dataset, arch, method, seed)}/posterior.npz"


# ----------------------------------------------------------------------------------------------------------------
# Input functions
# ----------------------------------------------------------------------------------------------------------------


def per_seed(template):
    """Output paths of a training job: its own seed's, or every seed's when the seeds train together (vmap_seeds)."""
    return expand(template, seed=SEEDS, allow_missing=True) if VMAP_SEEDS else template


def seed_tag(template):
    """Log/benchmark path of a training job: ``seed{seed}`` becomes ``seeds0-1-2`` when the seeds train together."""
    return template.replace("seed{seed}", "seeds" + "-".join(map(str, SEEDS))) if VMAP_SEEDS else template


def job_seeds(wildcards):
    """The seed of the job, or the list of all seeds when they train together."""
    return list(SEEDS) if VMAP_SEEDS else int(wildcards.seed)


def _seeds_of(wildcards):
    return SEEDS if VMAP_SEEDS else [wildcards.seed]


def get_data(wildcards):
    return data_path(wildcards.dataset)


def get_warmup_posterior(wildcards):
    """The warm-up the job's method starts from (its own when its warm-up settings differ from Flat-FF's)."""
    warmup = WARMUP_OF[wildcards.method]
    paths = [f"{warmup_dir(wildcards.dataset, wildcards.arch, s, warmup)}/posterior.npz" for s in _seeds_of(wildcards)]
    return paths if VMAP_SEEDS else paths[0]


def _epoch_of(wildcards):
    epoch = int(wildcards.epoch)
    if not 1 <= epoch <= NUM_EPOCHS:
        label = METHOD_INFO[wildcards.method].label
        raise WorkflowError(f"{label} epoch {epoch} is outside 1..schedule.num_epochs ({NUM_EPOCHS})")
    return epoch


def _per_seed_paths(wildcards, path_of_seed):
    paths = [path_of_seed(s) for s in _seeds_of(wildcards)]
    return paths if VMAP_SEEDS else paths[0]


def get_epoch_init(wildcards):
    """Epoch k of a per-epoch method starts from its epoch k-1 (epoch 1 from the Flat-FF warm-up)."""
    epoch = _epoch_of(wildcards)
    if epoch == 1:
        return get_warmup_posterior(wildcards)
    d, a, m = wildcards.dataset, wildcards.arch, wildcards.method
    return _per_seed_paths(wildcards, lambda s: f"{epoch_dir(d, a, m, s, epoch - 1)}/posterior.npz")


def get_epoch_reference(wildcards):
    """The declared reference method's state of the same epoch (e.g. BMR-S&S's, for the matched baselines)."""
    reference = METHOD_INFO[wildcards.method].reference
    if reference is None:
        return []
    epoch, d, a = _epoch_of(wildcards), wildcards.dataset, wildcards.arch
    return _per_seed_paths(wildcards, lambda s: f"{epoch_dir(d, a, reference, s, epoch)}/posterior.npz")


def stage_metrics(dataset, arch, method, seed):
    """Metrics CSVs of a method's stages, in epoch order: its warm-up (its epoch 0) for methods that start from
    one, then one CSV per epoch for per-epoch methods or the CSV of its single job."""
    info = METHOD_INFO[method]
    files = [f"{warmup_dir(dataset, arch, seed, WARMUP_OF[method])}/metrics.csv"] if info.start == "warmup" else []
    if info.per_epoch:
        files += [f"{epoch_dir(dataset, arch, method, seed, e)}/metrics.csv" for e in range(1, NUM_EPOCHS + 1)]
    else:
        files.append(f"{train_dir(dataset, arch, method, seed)}/metrics.csv")
    return files


def metrics_parts():
    """[metrics CSV, method] of every stage, in grid order; the warm-up is epoch 0 of every method started from it."""
    return [
        [path, method]
        for dataset, arch, seed in product(DATASETS, ARCHS, SEEDS)
        for method in METHODS
        for path in stage_metrics(dataset, arch, method, seed)
    ]


def metrics_files():
    return list(dict.fromkeys(path for path, _ in metrics_parts()))


def figures():
    """Names of the registered figures (bmrsparse.figures) that apply to the configured grid."""
    return sorted(name for name, info in FIGURE_INFO.items() if info.applies(DATASETS, ARCHS, METHODS))


def figures_of_rule(rule):
    """Wildcard constraint of a figure rule: the planned figures declared to be drawn by `rule`."""
    names = [name for name in figures() if FIGURE_INFO[name].rule == rule]
    return "|".join(re.escape(name) for name in names) or "(?!)"  # (?!) matches nothing


def figure_panels(figure):
    """[arch, method] of every final posterior a "posteriors" figure draws (first seed, its dataset)."""
    return [[arch, method] for arch in FIGURE_INFO[figure].panel_archs(ARCHS) for method in METHODS]


def figure_inputs(wildcards):
    """Input function of the figure rules: what the figure's declaration says it reads."""
    info = FIGURE_INFO[wildcards.figure]
    if info.reads == "metrics":
        return {"metrics": "results/metrics/metrics.csv", **info.extra_inputs_for(config)}
    if info.reads == "posteriors":
        dataset = info.panel_dataset(DATASETS)
        posteriors = [final_posterior(dataset, a, m, SEEDS[0]) for a, m in figure_panels(wildcards.figure)]
        return {"data": data_path(dataset), "posteriors": posteriors}
    raise WorkflowError(f"figure {wildcards.figure!r} reads {info.reads!r}, which rule {info.rule} draws")


#: Beyond the paper (inference.smk): the architectures that have a compact network.
INFERENCE_ARCHS = [arch for arch in ARCHS if arch in COMPACT_ARCHS]


def inference_targets():
    """The measured-inference table and figure, when the grid has Flat-FF, structured BMR and an MLP or LeNet-5."""
    if not ({"flat_ff", "bmr_struct"} <= set(METHODS) and INFERENCE_ARCHS):
        return []
    return ["results/tables/inference.csv", *expand("results/figures/speedup_accuracy.{ext}", ext=["pdf", "png"])]


#: Methods in the inference table: the dense reference first, then the pruning methods of the grid.
INFERENCE_METHODS = ["flat_ff"] + [m for m in METHODS if METHOD_INFO[m].prunes]
#: The method whose compact networks are exported (rule compact_network) and timed from their files.
COMPACT_METHOD = "bmr_struct"


def compact_stem(dataset, arch, method, seed):
    return f"results/compact/{dataset}/{arch}/{method}/seed{seed}"


def inference_grid():
    """[data, {method: final posterior}, {compact method: exported stem}] of every (dataset, arch, seed) timed."""
    return [
        [
            data_path(d),
            {m: final_posterior(d, a, m, s) for m in INFERENCE_METHODS},
            {COMPACT_METHOD: compact_stem(d, a, COMPACT_METHOD, s)},
        ]
        for d, a, s in product(DATASETS, INFERENCE_ARCHS, SEEDS)
    ]


def final_targets():
    return [
        "results/metrics/metrics.csv",
        *expand("results/tables/{table}.{ext}", table=["final_metrics", "paper_claims"], ext=["csv", "md"]),
        *expand("results/tables/provenance.{ext}", ext=["csv", "md"]),
        *expand("results/figures/{figure}.{ext}", figure=figures(), ext=["pdf", "png"]),
        *inference_targets(),
    ]


# ----------------------------------------------------------------------------------------------------------------
# Training settings and resources
# ----------------------------------------------------------------------------------------------------------------

#: Settings that only some methods read (their declared `settings`); a job receives only those of its own method.
_METHOD_ONLY = {
    key: {m.name for m in METHOD_INFO.values() if key in m.settings} for m in METHOD_INFO.values() for key in m.settings
}


def job_settings(method, arch):
    """The `settings` of bmrsparse.experiment.run_stage for one training job.

    Only what can change this job's result is included, so the job reruns (and the between-workflow cache
    misses) exactly when one of them changes. Null entries keep the library's defaults.
    """
    training = config["training"]
    evaluation = config["evaluation"]
    settings = {
        "learning_rate": {method: method_learning_rate(training, method)},
        "batch_size": training["batch_size"],
        "chunk_size": training["chunk_size"],
        "checkpoint_every": training["checkpoint_every"],
        "num_eval_samples": evaluation["num_samples"],
        "eval_batch_size": evaluation["eval_batch_size"],
        "test_subset": evaluation["test_subset"],
    }
    for key in (
        "gamma0",
        "tau0",
        "alpha0",
        "beta0",
        "bmr_iters",
        "bmr_keep",
        "elbo",
        "init_radius",
        "init_scale",
        "dropout",
    ):
        value = training[key]
        if isinstance(value, dict):  # per method (init_radius)
            value = value.get(method)
        if value is not None and method in _METHOD_ONLY.get(key, {method}):
            settings[key] = value
    overrides = training["net"].get(arch)
    if overrides:
        settings["net"] = {arch: overrides}
    return settings


def settings_of(method=None):
    """Params function: the settings of a job whose method is `method` (or the {method} wildcard)."""
    return lambda wildcards: job_settings(method or wildcards.method, wildcards.arch)


def method_warmup_settings(method, arch):
    """The settings of the warm-up `method` starts from (bmrsparse.methods.warmup_settings: Flat-FF's, with the
    method's own learning rate and, where set per method, guide initialisation)."""
    return warmup_settings(method, job_settings(method, arch), job_settings(WARMUP_METHOD, arch))


def _warmup_tags():
    """{method: warm-up tag} for every trained method that starts from a warm-up. The tag names the inherited
    settings, which are the same for every architecture (they are per method), so it is taken from the first."""
    return {m: warmup_tag(method_warmup_settings(m, ARCHS[0])) for m in RUN_METHODS if METHOD_INFO[m].start == "warmup"}


#: Warm-up tag of each method that starts from one; methods with equal warm-up settings share the tag and the job.
WARMUP_OF = _warmup_tags()
#: {tag: the first method (in grid order) that starts from it}; one train_warmup job per tag, dataset, arch, seed.
WARMUPS = {}
for _method, _tag in WARMUP_OF.items():
    WARMUPS.setdefault(_tag, _method)


wildcard_constraints:
    warmup="|".join(re.escape(tag) for tag in WARMUPS) or "(?!)",


def warmup_settings_of(wildcards):
    """Params function of train_warmup: the settings of the warm-up named by the {warmup} wildcard."""
    return method_warmup_settings(WARMUPS[wildcards.warmup], wildcards.arch)


def runtime_minutes(arch, steps):
    res = config["resources"]
    device = "gpu" if res["gpu"] >= 1 else "cpu"
    train_minutes = steps * res["ms_per_step"][device][arch] / 60000.0
    return int(math.ceil(res["overhead_minutes"] + res["safety_factor"] * train_minutes))


def train_runtime(steps):
    """Resource function: runtime in minutes of a training job of `steps` SVI steps.

    Attempt k (Snakemake's `retries`) asks for k times the estimate: a job killed at its time limit resumes from
    its checkpoint with a longer limit.
    """
    return lambda wildcards, attempt: runtime_minutes(wildcards.arch, steps) * attempt


def train_mem_mb(wildcards):
    return config["resources"]["mem_mb"][wildcards.arch]


#: The timing of claim 4 (time_steps): the methods it times, the SVI steps of each timed run, the runs of each
#: method per (dataset, arch).
SPEED_METHODS = ("tiered_ff", "bmr_ss")
TIMING_STEPS = max(10, min(200, EPOCH_STEPS))
TIMING_REPEATS = 2


def timing_runtime(wildcards, attempt):
    """Resource function of time_steps, in minutes: each timed run estimated as a training job of TIMING_STEPS
    steps (start-up and compilation included); attempt k asks for k times as much."""
    runs = len(DATASETS) * len(SPEED_METHODS) * TIMING_REPEATS  # per architecture
    return runs * sum(runtime_minutes(arch, TIMING_STEPS) for arch in ARCHS) * attempt
