"""The config schema (workflow/schemas/config.schema.yaml) and the workflow's validation messages."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from bmrsparse.workflow.schema import fill_schema, type_command_line

ROOT = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
# As the workflow validates: the enums, learning rates and resource defaults filled in from the registries.
SCHEMA = fill_schema(RAW)
PROFILES = ("config", "paper", "test")


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())


def errors(config: dict) -> list[jsonschema.ValidationError]:
    return list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(config))


def resolve(sub: dict) -> dict:
    while "$ref" in sub:
        node = SCHEMA
        for part in sub["$ref"].lstrip("#/").split("/"):
            node = node[part]
        sub = node
    return sub


def walk_properties(schema: dict, path: str = ""):
    for key, sub in schema.get("properties", {}).items():
        sub = resolve(sub)
        yield f"{path}{key}", sub
        yield from walk_properties(sub, f"{path}{key}.")


def test_schema_is_valid_and_documented():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    keys = dict(walk_properties(SCHEMA))
    assert {"datasets", "archs", "methods", "seeds", "data_dir", "download", "schedule.num_epochs",
            "training.learning_rate.bmr_ss", "evaluation.test_subset", "resources.gpu"} <= set(keys)
    for key, sub in keys.items():
        assert sub.get("description"), f"{key} has no description"
        assert "default" in sub, f"{key} has no default"
        if sub.get("type") == "object":
            assert sub.get("additionalProperties") is False or key.startswith("training.net."), key
    assert SCHEMA["additionalProperties"] is False


def test_defaults_are_valid():
    defaults = {key: copy.deepcopy(sub["default"]) for key, sub in SCHEMA["properties"].items()}
    assert errors(defaults) == []


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_are_valid_and_complete(name):
    config = load(name)
    assert errors(config) == []
    # A --configfile is merged over config/config.yaml, so every profile states every top-level key.
    assert set(config) == set(SCHEMA["properties"])


def test_schema_file_matches_the_registries():
    """The schema file spells out the built-in datasets and networks (for readers); the registries fill them in
    before validation, so the file must say what the registries say."""
    assert RAW["$defs"]["dataset"]["enum"] == SCHEMA["$defs"]["dataset"]["enum"]
    assert RAW["$defs"]["arch"]["enum"] == SCHEMA["$defs"]["arch"]["enum"]
    assert set(RAW["properties"]["training"]["properties"]["net"]["properties"]) == set(SCHEMA["$defs"]["arch"]["enum"])
    raw, filled = RAW["properties"]["resources"]["properties"], SCHEMA["properties"]["resources"]["properties"]

    def defaults(node):
        return {k: v["default"] for k, v in node["properties"].items()}

    assert defaults(raw["mem_mb"]) == defaults(filled["mem_mb"])
    for device in ("gpu", "cpu"):
        assert defaults(raw["ms_per_step"]["properties"][device]) == defaults(filled["ms_per_step"]["properties"][device])


def test_enums_match_the_library():
    import dataclasses

    from bmrsparse.data import DATASETS
    from bmrsparse.nets import NETWORKS
    from bmrsparse.settings import TrainingSettings

    defs = SCHEMA["$defs"]
    assert tuple(defs["dataset"]["enum"]) == tuple(DATASETS)
    assert tuple(defs["arch"]["enum"]) == tuple(NETWORKS)
    experiment = pytest.importorskip("bmrsparse.experiment")
    assert set(defs["method"]["enum"]) == set(experiment.METHODS)
    fields = {f.name for f in dataclasses.fields(TrainingSettings)}
    assert set(SCHEMA["properties"]["training"]["properties"]) <= fields


BAD = [
    # (change to config/config.yaml, the key the message must name)
    ({"sedes": [1]}, "sedes"),
    ({"schedule": {"warmup_steps": 0}}, "schedule.warmup_steps"),
    ({"schedule": {"epoch_steps": -5}}, "schedule.epoch_steps"),
    ({"schedule": {"num_epochs": "five"}}, "schedule.num_epochs"),
    ({"methods": ["flat_ff", "bmr"]}, "methods[1]"),
    ({"archs": ["resnet"]}, "archs[0]"),
    ({"datasets": ["mnist"]}, "datasets[0]"),
    ({"datasets": "fashion_mnist"}, "datasets"),
    ({"training": {"lerning_rate": {}}}, "training.lerning_rate"),
    ({"training": {"learning_rate": {"flat_ff": 0}}}, "training.learning_rate.flat_ff"),
    ({"evaluation": {"test_subset": 0}}, "evaluation.test_subset"),
    ({"resources": {"gpu": 1.5}}, "resources.gpu"),
    ({"download": "yes"}, "download"),
    ({"training": {"net": {"mlp": 16}}}, "training.net.mlp"),
    ({"training": {"net": {"resnet": {}}}}, "training.net.resnet"),
]


def merged(change: dict) -> dict:
    config = load("config")
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@pytest.mark.parametrize("change,key", BAD, ids=[k for _, k in BAD])
def test_schema_rejects(change, key):
    found = errors(merged(change))
    assert found, f"{change} was accepted"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the workflow, so dry runs neither see nor touch the project's results."""
    dest = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "Snakefile", dest)
    for folder in ("workflow", "config", "envs"):
        shutil.copytree(ROOT / folder, dest / folder)
    return dest


def dry_run(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--quiet", "rules", *args],
                          cwd=project, capture_output=True, text=True, timeout=300)


# The workflow stops with a message naming the key; one snakemake start per case (about 2 s each).
WORKFLOW_BAD = [BAD[0], BAD[1], BAD[3], BAD[4], BAD[5], BAD[6], BAD[8]]


@pytest.mark.parametrize("change,key", WORKFLOW_BAD, ids=[k for _, k in WORKFLOW_BAD])
def test_workflow_names_the_bad_key(project, tmp_path, change, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(merged(change)))
    result = dry_run(project, "--configfile", str(path))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Invalid configuration" in output
    assert f"'{key}'" in output, output[-2000:]


def test_command_line_values_are_typed(project):
    """`--config` values arrive as strings; numbers and lists of numbers are converted before validation."""
    ok = dry_run(project, "--config", "seeds=[0,1]", "schedule={warmup_steps: 10, epoch_steps: 5}",
                 "data_dir=null")
    assert ok.returncode == 0, ok.stderr[-2000:]
    bad = dry_run(project, "--config", "seeds=[x]")
    assert bad.returncode != 0
    assert "config key 'seeds[0]' = 'x': expected integer" in bad.stdout + bad.stderr


def _typed(config: dict) -> dict:
    config = copy.deepcopy(config)
    type_command_line(config, SCHEMA)
    return config


def test_command_line_strings_become_typed_values():
    """The conversion common.smk applies to `--config` strings (bmrsparse.workflow.schema.type_command_line)."""
    given = {"seeds": ["0", "1"], "data_dir": "null", "download": "false", "datasets": ["cifar10"],
             "schedule": {"warmup_steps": "10"}, "training": {"dropout": "null", "learning_rate": {"bmr_ss": "1e-2"},
                                                              "net": {"mlp": {"width": "8", "features": ["2", "4"]}}}}
    assert _typed(given) == {
        "seeds": [0, 1], "data_dir": None, "download": False, "datasets": ["cifar10"],
        "schedule": {"warmup_steps": 10}, "training": {"dropout": None, "learning_rate": {"bmr_ss": 0.01},
                                                       "net": {"mlp": {"width": 8, "features": [2, 4]}}}}
    # A string where the schema wants a string stays one; unparsable numbers stay strings (and fail validation).
    assert _typed({"data_dir": "/data", "seeds": ["x"]}) == {"data_dir": "/data", "seeds": ["x"]}
