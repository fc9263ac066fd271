"""The method registry: declarations, their checks, and what the library and the workflow read from it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from bmrsparse import methods, plots
from bmrsparse.methods import METHODS, Method, get_method, register, unregister
from bmrsparse.settings import TrainingSettings
from bmrsparse.workflow.schema import fill_schema

ROOT = Path(__file__).resolve().parents[2]
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
    (dict(start="warmup", prior="tiered", warmup_method="flat_map"), "warmup_method must be"),
    (dict(warmup_method="toy"), "warmup_method needs start='warmup'"),
    (dict(start="warmup", per_epoch=True, reference="bmr_ss"), "needs prune="),
    (dict(learning_rate=0), "learning_rate must be a positive number"),
])
def test_inconsistent_declarations_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        Method(**{"name": "toy", "label": "Toy", "color": "k", **change})


def test_a_method_may_warm_up_its_own_model():
    """start="warmup" with warmup_method=<its own name>: any prior and guide (its warm-up trains its own model)."""
    own = Method("toy", "Toy", "k", prior="tiered", start="warmup", warmup_method="toy")
    assert own.warmup_model == "toy"
    assert Method("toy", "Toy", "k", start="warmup").warmup_model == methods.WARMUP_METHOD
    assert Method("toy", "Toy", "k", start="warmup", warmup_method=methods.WARMUP_METHOD).warmup_model == "flat_ff"
    assert Method("toy", "Toy", "k").warmup_model is None


def test_a_registered_method_reaches_labels_colours_settings_and_schema():
    toy = Method("toy_reg", "Toy", "#123456", learning_rate=3e-3, order=99)
    assert "toy_reg" not in plots.METHOD_LABELS
    register(toy)
    try:
        assert plots.METHOD_LABELS["toy_reg"] == "Toy" and plots.METHOD_COLORS["toy_reg"] == "#123456"
        assert list(plots.METHOD_LABELS)[-1] == "toy_reg"  # order 99: after the built-in methods
        assert _trainer_of("toy_reg").learning_rate == 3e-3  # its declared rate, when the settings give none
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
        get_method("toy_reg")
    schema = fill_schema(yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text()))
    assert "toy_reg" not in schema["properties"]["training"]["properties"]["learning_rate"]["properties"]


def _trainer_of(method):
    import numpy as np

    from bmrsparse import data as bdata
    from bmrsparse.train import Trainer

    x = np.zeros((8, 28, 28, 1), np.uint8)
    y = np.arange(8) % 10
    return Trainer(arch="mlp", method=method, dataset=bdata.Dataset("fashion_mnist", x, y, x, y, 10), seeds=[0],
                   settings=TrainingSettings(batch_size=8, net={"mlp": {"width": 4, "depth": 1}}))


def test_prune_needs_the_declared_reference():
    """A method that prunes against another's state refuses to prune without it (Trainer.prune)."""
    from bmrsparse.train import Trainer

    calls = []
    toy = register(Method("toy_ref", "Toy", "k", start="warmup", per_epoch=True, reference="bmr_ss",
                          prune=lambda ctx, p, m, r: calls.append(r) or m))
    try:
        import numpy as np

        from bmrsparse import data as bdata
        from bmrsparse.settings import TrainingSettings

        x = np.zeros((32, 28, 28, 1), np.uint8)
        y = np.arange(32) % 10
        ds = bdata.Dataset("fashion_mnist", x, y, x, y, 10)
        trainer = Trainer(arch="mlp", method=toy.name, dataset=ds, seeds=[0],
                          settings=TrainingSettings.from_mapping({"batch_size": 32, "net": {"mlp": {"width": 4, "depth": 1}}}))
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
    from bmrsparse.settings import TrainingSettings
    from bmrsparse.train import Trainer

    def random_prune(ctx, params, masks, reference):
        first = ctx.built.layers[0].name
        kernel = masks[first]["kernel"] & jax.random.bernoulli(ctx.key, 0.5, masks[first]["kernel"].shape)
        units = jnp.arange(masks[first]["bias"].shape[0])
        bias = masks[first]["bias"] & (units != ctx.seed) & (units != ctx.epoch)
        if ctx.settings.bmr_iters != 3:  # the run's settings reach the prune function
            bias = bias & False
        return {**masks, first: {"kernel": kernel, "bias": bias}}

    toy = register(Method("toy_rand", "Toy", "k", start="warmup", per_epoch=True, prune=random_prune))
    try:
        x = np.zeros((32, 28, 28, 1), np.uint8)
        y = np.arange(32) % 10
        ds = bdata.Dataset("fashion_mnist", x, y, x, y, 10)
        settings = TrainingSettings.from_mapping({"batch_size": 32, "net": {"mlp": {"width": 6, "depth": 1}}, "bmr_iters": 3})

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


def test_a_stage_at_epoch_0_does_not_prune(tmp_path):
    """A pruning method's own warm-up (epoch 0) trains without a prune step; its epoch 1 prunes first."""
    import numpy as np

    from bmrsparse.experiment import run_stage
    from bmrsparse.io import atomic_savez

    calls = []
    toy = register(Method("toy_own", "Toy", "k", start="warmup", warmup_method="toy_own", per_epoch=True,
                          prune=lambda ctx, p, m, r: calls.append(1) or m))
    try:
        x = np.random.default_rng(0).integers(0, 255, (64, 28, 28, 1), dtype=np.uint8)
        y = np.arange(64) % 10
        data = tmp_path / "data.npz"
        atomic_savez(data, x_train=x, y_train=y, x_test=x[:16], y_test=y[:16], name=np.array("fashion_mnist"),
                     num_classes=np.array(10, np.int64))
        settings = {"batch_size": 16, "net": {"mlp": {"width": 4, "depth": 1}}, "num_eval_samples": 2,
                    "chunk_size": 5}
        common = dict(data_path=data, dataset="fashion_mnist", arch="mlp", method=toy.name, seed=0, settings=settings,
                      progress=False)
        warm = run_stage(schedule=[5], first_epoch=0, out_state=tmp_path / "w.npz", out_metrics=tmp_path / "w.csv",
                         **common)
        assert calls == [] and list(warm["epoch"]) == [0]
        run_stage(schedule=[5], first_epoch=1, init_state=tmp_path / "w.npz", out_state=tmp_path / "e.npz",
                  out_metrics=tmp_path / "e.csv", **common)
        assert calls  # traced (and run) before epoch 1
    finally:
        unregister("toy_own")

