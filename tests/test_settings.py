"""bmrsparse.settings owns every training default: the config schema, BMR and the trainer agree with it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml

from bmrsparse import settings as bs

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
TRAINING = SCHEMA["properties"]["training"]["properties"]
EVALUATION = SCHEMA["properties"]["evaluation"]["properties"]
#: the evaluation section's keys under their training-setting names
EVALUATION_KEYS = {"num_samples": "num_eval_samples", "test_subset": "test_subset", "eval_batch_size": "eval_batch_size"}


def _schema_entries():
    for key, entry in TRAINING.items():
        yield f"training.{key}", key, entry
    for key, entry in EVALUATION.items():
        yield f"evaluation.{key}", EVALUATION_KEYS[key], entry


def test_every_schema_setting_is_a_library_setting():
    assert set(EVALUATION) == set(EVALUATION_KEYS)
    assert {key for _, key, _ in _schema_entries()} <= set(bs.DEFAULT_SETTINGS)


@pytest.mark.parametrize("name,key,entry", list(_schema_entries()), ids=[n for n, _, _ in _schema_entries()])
def test_schema_defaults_are_the_library_defaults(name, key, entry):
    default = entry.get("default")
    library = bs.DEFAULT_SETTINGS[key]
    if key in ("learning_rate", "net"):  # filled per method / per architecture; empty means "the declared ones"
        assert default == {} and library == {}
        return
    if default is not None or library is None:
        assert default == library, f"{name}: the schema says {default!r}, bmrsparse.settings {library!r}"
        return
    # null stands for the library's default; where the description names that default, it must be this one
    text = " ".join(entry.get("description", "").split())
    m = re.search(r"null = library default([^)]*)\)", text)
    assert m, f"{name}: a null default must say 'null = library default' in its description"
    named = m.group(1)
    quoted = re.findall(r'"([^"]+)"', named)
    numbers = re.findall(r"(?<![\w.])(\d+(?:\.\d+)?(?:e-?\d+)?)", named)
    if quoted:
        assert quoted == [library], f"{name}: the description names {quoted}, bmrsparse.settings {library!r}"
    elif numbers:
        assert float(numbers[-1]) == float(library), f"{name}: the description names {numbers[-1]}, not {library}"


@pytest.mark.parametrize("key,allowed", [("bmr_keep", bs.KEEP_RULES), ("elbo", bs.ELBOS)])
def test_schema_choices_are_the_library_choices(key, allowed):
    assert [v for v in TRAINING[key]["enum"] if v is not None] == list(allowed)
    assert bs.DEFAULT_SETTINGS[key] in allowed


def test_bmr_reads_its_defaults_and_keep_rules_from_settings():
    from bmrsparse import bmr

    assert bmr.KEEP_RULES is bs.KEEP_RULES
    for fn in (bmr.spike_and_slab, bmr.spike_and_slab_layers):
        params = inspect.signature(fn).parameters
        assert params["alpha0"].default == bs.DEFAULT_SETTINGS["alpha0"]
        assert params["beta0"].default == bs.DEFAULT_SETTINGS["beta0"]
        assert params["iters"].default == bs.DEFAULT_SETTINGS["bmr_iters"]
        assert params["keep"].default == bs.DEFAULT_SETTINGS["bmr_keep"]


def test_learning_rate_falls_back_to_the_declared_rate():
    from bmrsparse.methods import METHODS

    resolved = bs.resolve_settings({"learning_rate": {"flat_ff": 0.123}})
    assert bs.learning_rate(resolved, "flat_ff") == 0.123
    assert bs.learning_rate({}, "flat_ff") == METHODS["flat_ff"].learning_rate
    assert bs.learning_rate({"learning_rate": {"flat_ff": 0.5}}, "bmr_ss") == METHODS["bmr_ss"].learning_rate
    assert resolved["learning_rate"] == {m: (0.123 if m == "flat_ff" else METHODS[m].learning_rate) for m in METHODS}
    assert bs.DEFAULT_SETTINGS["learning_rate"] == {}  # resolving does not change the defaults
    with pytest.raises(ValueError, match="unknown method"):
        bs.resolve_settings({"learning_rate": {"sgd": 0.1}})


@pytest.mark.parametrize("key,value", [("bmr_keep", "last"), ("elbo", "trace"), ("step_loop", "gpu"),
                                       ("bmr_iters", 0), ("test_subset", 0)])
def test_bad_values_are_named(key, value):
    with pytest.raises(ValueError, match=f"training.{key}"):
        bs.resolve_settings({key: value})


def test_experiment_reexports_the_settings():
    from bmrsparse import experiment

    assert experiment.DEFAULT_SETTINGS is bs.DEFAULT_SETTINGS
    assert experiment.resolve_settings is bs.resolve_settings
