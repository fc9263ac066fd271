"""bmrsparse.settings.TrainingSettings holds every training default in its constructor: the config schema, BMR's
signatures and the trainer agree with it, and a method's learning rate is its declaration's."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from bmrsparse import settings as bs

#: The library's defaults: the fields of TrainingSettings.
DEFAULTS = {f.name: (f.default_factory() if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(bs.TrainingSettings)}

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
TRAINING = SCHEMA["properties"]["training"]["properties"]
EVALUATION = SCHEMA["properties"]["evaluation"]["properties"]
#: the evaluation section's keys under their training-setting names
EVALUATION_KEYS = {"num_samples": "num_eval_samples", "test_subset": "test_subset", "eval_batch_size": "eval_batch_size",
                   "final_num_samples": "final_eval_samples", "final_test_subset": "final_test_subset"}


def _schema_entries():
    for key, entry in TRAINING.items():
        yield f"training.{key}", key, entry
    for key, entry in EVALUATION.items():
        yield f"evaluation.{key}", EVALUATION_KEYS[key], entry


def test_every_schema_setting_is_a_library_setting():
    assert set(EVALUATION) == set(EVALUATION_KEYS)
    assert {key for _, key, _ in _schema_entries()} <= set(DEFAULTS)


@pytest.mark.parametrize("name,key,entry", list(_schema_entries()), ids=[n for n, _, _ in _schema_entries()])
def test_schema_defaults_are_the_library_defaults(name, key, entry):
    default = entry.get("default")
    library = DEFAULTS[key]
    if key in ("learning_rate", "net"):  # filled per method / per architecture; empty means "the declared ones"
        assert default == {} and library in ({}, None)
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
    assert DEFAULTS[key] in allowed


def test_bmr_signatures_hold_the_settings_defaults_and_keep_rules():
    from bmrsparse import bmr

    assert bmr.KEEP_RULES is bs.KEEP_RULES
    for fn in (bmr.spike_and_slab, bmr.spike_and_slab_layers):
        params = inspect.signature(fn).parameters
        assert params["alpha0"].default == DEFAULTS["alpha0"]
        assert params["beta0"].default == DEFAULTS["beta0"]
        assert params["iters"].default == DEFAULTS["bmr_iters"]
        assert params["keep"].default == DEFAULTS["bmr_keep"]


def _trainer(method, settings):
    from bmrsparse import data as bdata
    from bmrsparse.train import Trainer

    x = np.zeros((8, 28, 28, 1), np.uint8)
    y = np.arange(8) % 10
    ds = bdata.Dataset("fashion_mnist", x, y, x, y, 10)
    return Trainer(arch="mlp", method=method, dataset=ds, seeds=[0],
                   settings=settings.replace(batch_size=8, net={"mlp": {"width": 4, "depth": 1}}))


def test_learning_rate_falls_back_to_the_declared_rate():
    from bmrsparse.methods import METHODS
    from bmrsparse.workflow.schema import validated

    assert _trainer("flat_ff", bs.TrainingSettings(learning_rate=0.123)).learning_rate == 0.123
    assert _trainer("flat_ff", bs.TrainingSettings()).learning_rate == METHODS["flat_ff"].learning_rate
    assert _trainer("bmr_ss", bs.TrainingSettings()).learning_rate == METHODS["bmr_ss"].learning_rate
    # the config: every method's rate, its declared one where the config gives none
    config = validated({"training": {"learning_rate": {"flat_ff": 0.123}}})
    assert config["training"]["learning_rate"] == {m: (0.123 if m == "flat_ff" else METHODS[m].learning_rate)
                                                   for m in METHODS}
    assert DEFAULTS["learning_rate"] is None  # the settings' default: the method's declared rate
    with pytest.raises(ValueError, match="'training.learning_rate.sgd'"):  # an unknown method is named
        validated({"training": {"learning_rate": {"sgd": 0.1}}})


@pytest.mark.parametrize("key,value", [("bmr_keep", "last"), ("elbo", "trace"), ("step_loop", "gpu"),
                                       ("bmr_iters", 0), ("test_subset", 0)])
def test_bad_values_are_named(key, value):
    with pytest.raises(ValueError, match=f"training.{key}"):
        bs.TrainingSettings.from_mapping({key: value})


def test_experiment_reexports_the_settings():
    from bmrsparse import experiment

    assert experiment.TrainingSettings is bs.TrainingSettings
