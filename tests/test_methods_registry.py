"""The method registry: declarations, their checks, and what the library and the workflow read from it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from bmrsparse import methods, plots
from bmrsparse.experiment import resolve_settings
from bmrsparse.methods import METHODS, Method, fill_schema, get_method, register, unregister

ROOT = Path(__file__).resolve().parents[1]
PAPER = ("flat_map", "flat_ff", "tiered_ff", "bmr_ss")


def test_the_papers_methods_are_declared_in_their_modules_in_the_papers_order():
    assert list(METHODS)[:4] == list(PAPER)
    assert [METHODS[m].label for m in PAPER] == ["Flat-MAP", "Flat-FF", "Tiered-FF", "BMR-S&S"]
    for name in PAPER:
        assert sys.modules[f"bmrsparse.methods.{name}"].METHOD is METHODS[name]
    assert METHODS["flat_map"].point_estimate and METHODS["flat_map"].dropout
    assert METHODS["tiered_ff"].prior == "tiered" and METHODS["tiered_ff"].start == "scratch"
    assert METHODS["flat_ff"].start == "warmup" and not METHODS["flat_ff"].per_epoch
    bmr = METHODS["bmr_ss"]
    assert bmr.start == "warmup" and bmr.per_epoch and bmr.prunes and bmr.reference is None
    # the prior and helper modules of the package are not methods
    assert not {"flat", "guides", "tiered"} & set(METHODS)


def test_unknown_method_names_the_registered_ones():
    with pytest.raises(ValueError, match="unknown method 'bmr'; registered methods: flat_map, flat_ff"):
        get_method("bmr")


@pytest.mark.parametrize("change,message", [
    (dict(name="Bad-Name"), "name must match"),
    (dict(prior="gaussian"), "prior must be one of"),
    (dict(start="warmup", prior="tiered"), "needs prior='flat'"),
    (dict(per_epoch=True), "per_epoch=True needs start='warmup'"),
    (dict(start="warmup", prune=lambda *a: a[2]), "needs per_epoch=True"),
    (dict(start="warmup", per_epoch=True, reference="bmr_ss"), "needs prune="),
    (dict(learning_rate=0), "learning_rate must be a positive number"),
])
def test_inconsistent_declarations_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        Method(**{"name": "toy", "label": "Toy", "color": "k", **change})


def test_a_registered_method_reaches_labels_colours_settings_and_schema():
    toy = Method("toy_reg", "Toy", "#123456", learning_rate=3e-3, order=99)
    assert "toy_reg" not in plots.METHOD_LABELS
    register(toy)
    try:
        assert plots.METHOD_LABELS["toy_reg"] == "Toy" and plots.METHOD_COLORS["toy_reg"] == "#123456"
        assert list(plots.METHOD_LABELS)[-1] == "toy_reg"  # order 99: after the built-in methods
        assert resolve_settings(None)["learning_rate"]["toy_reg"] == 3e-3
        schema = fill_schema(yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text()))
        assert "toy_reg" in schema["$defs"]["method"]["enum"]
        assert schema["properties"]["training"]["properties"]["learning_rate"]["properties"]["toy_reg"][
            "default"] == 3e-3
        with pytest.raises(ValueError, match="two methods are named 'toy_reg'"):
            register(replace(toy, label="Other"))
    finally:
        unregister("toy_reg")
    assert "toy_reg" not in plots.METHOD_LABELS
    with pytest.raises(ValueError, match="unknown method"):
        resolve_settings({"learning_rate": {"toy_reg": 1e-3}})


def test_prune_needs_the_declared_reference():
    """A method that prunes against another's state refuses to prune without it (Trainer.prune)."""
    from bmrsparse.train import Trainer

    calls = []
    toy = register(Method("toy_ref", "Toy", "k", start="warmup", per_epoch=True, reference="bmr_ss",
                          prune=lambda ctx, p, m, r: calls.append(r) or m))
    try:
        import numpy as np

        from bmrsparse import data as bdata
        from bmrsparse.experiment import resolve_settings as rs

        x = np.zeros((32, 28, 28, 1), np.uint8)
        y = np.arange(32) % 10
        ds = bdata.Dataset("fashion_mnist", x, y, x, y, 10)
        trainer = Trainer(arch="mlp", method=toy.name, dataset=ds, seeds=[0],
                          settings=rs({"batch_size": 32, "net": {"mlp": {"width": 4, "depth": 1}}}))
        state = trainer.init()
        with pytest.raises(ValueError, match="pass its masks as reference"):
            trainer.prune(state)
        trainer.prune(state, state.masks)
        assert calls and calls[0] is not None
    finally:
        unregister("toy_ref")


def test_prune_context_carries_key_seed_epoch_and_settings():
    """A seeded method draws from ctx.key (one per seed and epoch) and reads ctx.seed, ctx.epoch, ctx.settings."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bmrsparse import data as bdata
    from bmrsparse.settings import resolve_settings as rs
    from bmrsparse.train import Trainer

    def random_prune(ctx, params, masks, reference):
        first = ctx.built.layers[0].name
        kernel = masks[first]["kernel"] & jax.random.bernoulli(ctx.key, 0.5, masks[first]["kernel"].shape)
        units = jnp.arange(masks[first]["bias"].shape[0])
        bias = masks[first]["bias"] & (units != ctx.seed) & (units != ctx.epoch)
        if ctx.settings["bmr_iters"] != 3:  # the run's settings reach the prune function
            bias = bias & False
        return {**masks, first: {"kernel": kernel, "bias": bias}}

    toy = register(Method("toy_rand", "Toy", "k", start="warmup", per_epoch=True, prune=random_prune))
    try:
        x = np.zeros((32, 28, 28, 1), np.uint8)
        y = np.arange(32) % 10
        ds = bdata.Dataset("fashion_mnist", x, y, x, y, 10)
        settings = rs({"batch_size": 32, "net": {"mlp": {"width": 6, "depth": 1}}, "bmr_iters": 3})

        def pruned(seeds, epoch):
            trainer = Trainer(arch="mlp", method=toy.name, dataset=ds, seeds=seeds, settings=settings)
            first = trainer.layers[0].name
            masks = trainer.prune(trainer.init(), epoch=epoch).masks[first]
            return np.asarray(masks["kernel"]), np.asarray(masks["bias"])

        k01, b01 = pruned([0, 1], 2)
        k1, b1 = pruned([1], 2)
        np.testing.assert_array_equal(k01[1:], k1)  # a seed's draw does not depend on the others
        assert not np.array_equal(k01[0], k01[1])  # nor is it theirs
        np.testing.assert_array_equal(pruned([1], 2)[0], k1)  # the same seed and epoch: the same draw
        assert not np.array_equal(pruned([1], 3)[0], k1)  # another epoch: another draw
        assert 0.3 < k1.mean() < 0.7
        assert b01.tolist() == [[False, True, False, True, True, True], [True, False, False, True, True, True]]
    finally:
        unregister("toy_rand")


def test_workflow_lists_the_registered_methods_for_an_unknown_one(tmp_path):
    from conftest import copy_workflow

    project = copy_workflow(tmp_path / "project")
    run = subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--quiet", "rules",
                          "--config", "methods=[flat_ff,bmr]"], cwd=project, capture_output=True, text=True,
                         timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Invalid configuration" in out and "'methods[1]'" in out
    assert "flat_map, flat_ff, tiered_ff, bmr_ss" in out, out[-2000:]


def test_a_warmup_takes_the_learning_rate_of_the_method_that_starts_from_it():
    from bmrsparse.methods import WARMUP_METHOD, warmup_settings, warmup_tag

    flat_ff = {"learning_rate": {WARMUP_METHOD: 5e-3}, "batch_size": 128, "init_radius": 0.5}
    bmr = warmup_settings("bmr_ss", {"learning_rate": {"bmr_ss": 1e-2}, "batch_size": 128, "gamma0": 0.3}, flat_ff)
    # Flat-FF's settings but the inherited ones: the rate, and the initialisation left to the library's default
    assert bmr == {"learning_rate": {WARMUP_METHOD: 1e-2}, "batch_size": 128}
    assert warmup_tag(bmr) == "lr0.01"
    own = warmup_settings(WARMUP_METHOD, flat_ff, flat_ff)
    assert own == flat_ff and warmup_tag(own) == "lr0.005-r0.5"
    same = warmup_settings("snr_ss", {"learning_rate": {"snr_ss": 1e-2}, "batch_size": 128}, flat_ff)
    assert warmup_tag(same) == warmup_tag(bmr)  # equal settings: one warm-up
    tags = {warmup_tag({"learning_rate": {WARMUP_METHOD: lr}, "init_scale": s}) for lr in (1e-3, 1e-2) for s in (0.1, 0.2)}
    assert len(tags) == 4  # different settings never share a folder
    with pytest.raises(ValueError, match="starts from scratch"):
        warmup_settings("flat_map", {"learning_rate": {"flat_map": 1e-3}}, flat_ff)
    with pytest.raises(ValueError, match="lack its learning rate"):
        warmup_settings("bmr_ss", {}, flat_ff)
