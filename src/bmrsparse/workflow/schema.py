"""The config schema as the workflow validates against it: the file, the registries' names and defaults filled in,
command-line strings typed, and errors that name the bad key.

``workflow/rules/common.smk`` validates with Snakemake's own ``validate(config, schema=...)`` (which fills in the
schema's defaults and honours a module's ``skip_validation``) against :func:`registry_schema`'s file, after
:func:`type_command_line` has typed the strings of ``--config``; a failure is re-raised by :func:`config_error`
with one line per bad key. :func:`validated` does the same outside a Snakefile (tools, tests).
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import jsonschema
import yaml

from ..data import DATASETS
from ..methods import METHODS
from ..nets import NETWORKS

__all__ = ["SCHEMA_PATH", "fill_schema", "load_schema", "registry_schema", "type_command_line", "describe",
           "config_error", "validated"]

#: The schema file of the workflow (in a checkout; a deployed workflow passes its own path).
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


def fill_schema(schema: dict) -> dict:
    """The schema with the registries filled in: the ``method``, ``dataset`` and ``arch`` enums, every method's
    learning rate (default: its declared rate), ``training.net.<network>`` and the networks' resource defaults."""
    schema = copy.deepcopy(schema)
    defs, props = schema["$defs"], schema["properties"]
    defs["method"]["enum"], defs["dataset"]["enum"], defs["arch"]["enum"] = list(METHODS), list(DATASETS), \
        list(NETWORKS)
    training = props["training"]["properties"]
    training["learning_rate"]["properties"] = {
        m.name: {"type": "number", "exclusiveMinimum": 0, "default": m.learning_rate,
                 "description": f"learning rate of {m.label}"} for m in METHODS.values()}
    training["learning_rate"]["additionalProperties"] = False
    training["net"]["properties"] = {n: {"$ref": "#/$defs/net_overrides"} for n in NETWORKS}
    resources = props["resources"]["properties"]
    resources["mem_mb"]["properties"] = {
        n.name: {"type": "integer", "minimum": 1, "default": n.mem_mb, "description": f"MB for {n.label}"}
        for n in NETWORKS.values()}
    for device in ("gpu", "cpu"):
        resources["ms_per_step"]["properties"][device]["properties"] = {
            n.name: {"type": "number", "exclusiveMinimum": 0, "default": n.ms_per_step[device],
                     "description": f"ms per step of {n.label}"} for n in NETWORKS.values()}
    return schema


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """The schema file at ``path``, filled in from the registries (:func:`fill_schema`)."""
    return fill_schema(yaml.safe_load(Path(path).read_text()))


class FilledSchema(NamedTuple):
    """The registry-filled schema: its content and a file holding it (what Snakemake's ``validate`` reads)."""

    content: dict
    path: str


@contextlib.contextmanager
def registry_schema(path: str | os.PathLike) -> Iterator[FilledSchema]:
    """The schema file at ``path`` filled in from the registries, written to a temporary file for the duration."""
    schema = load_schema(path)
    with tempfile.TemporaryDirectory() as folder:
        filled = os.path.join(folder, os.path.basename(str(path)))
        with open(filled, "w") as handle:
            yaml.safe_dump(schema, handle, sort_keys=False)
        yield FilledSchema(schema, filled)


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node:
        target = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _types(node: dict) -> set:
    types = node.get("type", [])
    return {types} if isinstance(types, str) else set(types)


def _parse(value: str):
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _free(value):
    """Every string leaf of a free-form value (``training.net.<arch>``) read as YAML."""
    if isinstance(value, dict):
        return {k: _free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_free(v) for v in value]
    return _parse(value) if isinstance(value, str) else value


def _scalar(value: str, types: set):
    """A command-line string as the scalar type the schema wants (it stays a string where that fails)."""
    for kind, cast in (("integer", int), ("number", float)):
        if kind in types:
            try:
                return cast(value)
            except ValueError:
                pass
    return _parse(value)


def _typed(value, node: dict, root: dict):
    """``value`` with every string the schema does not want as a string read as that type (``"8"`` -> 8)."""
    node = _resolve(node, root)
    if isinstance(value, dict):
        props = node.get("properties")
        if props is None:
            return _free(value)
        return {k: _typed(v, props[k], root) if k in props else v for k, v in value.items()}
    if isinstance(value, list):
        items = node.get("items")
        return [_typed(v, items, root) for v in value] if items else value
    types = _types(node)
    if isinstance(value, str) and "null" in types and value in ("null", "~"):
        return None
    if not isinstance(value, str) or not types or "string" in types:
        return value
    parsed = _scalar(value, types)
    return value if isinstance(parsed, str) else _typed(parsed, node, root)


def type_command_line(config: dict, schema: dict) -> None:
    """Type, in place, the strings that ``--config key=value`` leaves (Snakemake keeps them as strings): a string
    where the schema wants no string is read as YAML (``seeds=[0,1]`` -> ``[0, 1]``, ``data_dir=null`` -> None)."""
    config.update(_typed(dict(config), schema, schema))


def _key_name(path) -> str:
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


_COMPARISONS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def describe(error: jsonschema.ValidationError) -> str:
    """One line naming the bad key and what is wrong (``'schedule.warmup_steps' = 0: must be >= 1``)."""
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
    if error.validator in _COMPARISONS:
        return f"{where} = {error.instance!r}: must be {_COMPARISONS[error.validator]} {error.validator_value}"
    return f"{where}: {error.message}"


def config_errors(config: Mapping, schema: dict) -> list[str]:
    """Every schema violation of ``config``, one line each (:func:`describe`), in key order."""
    validator = jsonschema.Draft202012Validator(schema)
    found = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    return [describe(e) for e in found]


def config_error(config: Mapping, schema: dict, error: Exception,
                 label: str = "workflow/schemas/config.schema.yaml") -> Exception:
    """The error to raise when validation failed: every bad key on a line of its own, or ``error`` itself when
    it is not a schema violation (e.g. an unreadable schema)."""
    lines = config_errors(config, schema)
    if not lines:
        return error
    from snakemake.exceptions import WorkflowError

    return WorkflowError(f"Invalid configuration (see {label}):\n" + "\n".join(f"  - {line}" for line in lines))


def validated(config: Mapping, path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """``config`` typed, checked and with the schema's defaults, as the workflow validates it (outside a
    Snakefile: tools, tests). Raises ``ValueError`` naming every bad key."""
    from snakemake.utils import validate

    config = copy.deepcopy(dict(config))
    with registry_schema(path) as schema:
        type_command_line(config, schema.content)
        lines = config_errors(config, schema.content)
        if lines:
            raise ValueError("Invalid configuration:\n" + "\n".join(f"  - {line}" for line in lines))
        validate(config, schema.path, set_default=True)
    return config
