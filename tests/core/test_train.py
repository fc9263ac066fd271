"""Training on real FashionMNIST: every method learns, BMR prunes, states round-trip, errors are clear."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pandas as pd
import pytest

from bmrsparse.experiment import METRIC_COLUMNS, posterior_summary, run_stage
from bmrsparse.settings import TrainingSettings
from bmrsparse.train import NonFiniteLossError, StateMismatchError

from conftest import TINY_MLP_SETTINGS, TINY_NETS, noise_dataset

FAST = {
    "num_eval_samples": 4,
    "test_subset": 1000,
    "eval_batch_size": 500,
    "chunk_size": 100,
    "init_radius": 0.5,  # short runs learn faster started near the prior's centre
    "net": TINY_NETS,
}


def _stage(data, tmp_path, method, schedule, *, arch="mlp", first_epoch=0, init=None, tag=None, **settings):
    tag = tag or f"{arch}_{method}_{first_epoch}"
    return run_stage(
        data_path=data, dataset="fashion_mnist", arch=arch, method=method, seed=0, schedule=schedule,
        first_epoch=first_epoch, init_state=init, out_state=tmp_path / f"{tag}.npz",
        out_metrics=tmp_path / f"{tag}.csv", settings={**FAST, **settings}, progress=False,
    )


@pytest.mark.parametrize("method", ["flat_map", "flat_ff", "tiered_ff"])
def test_method_learns_well_above_chance(fmnist_small, tmp_path, method):
    df = _stage(fmnist_small, tmp_path, method, [300])
    assert list(df.columns) == list(METRIC_COLUMNS)
    row = df.iloc[-1]
    assert row.step == 300
    assert row.acc > 0.6, row  # chance is 0.1
    assert np.isfinite(row.nll) and 0 <= row.ece <= 1 and row.steps_per_s > 0
    assert row.pruned_fraction == 0.0


def test_bmr_starts_from_flat_ff_prunes_and_learns(fmnist_small, tmp_path):
    warm = _stage(fmnist_small, tmp_path, "flat_ff", [600], tag="warm")
    df = _stage(fmnist_small, tmp_path, "bmr_ss", [200, 200], first_epoch=1, init=tmp_path / "warm.npz")
    assert list(df.epoch) == [1, 2]
    assert list(df.step) == [800, 1000]  # continues the warm-up's step counter
    # BMR really prunes: most of the tiny network's weights carry no evidence after a short warm-up, and the
    # pruned network still classifies well above chance (0.1) and relearns after the prune. (Measured with the
    # default keep rule, the authors': 98.6 % pruned, acc 0.25 then 0.41; with eq. 23 read literally, q^4 >= 1/2:
    # 98.4 %, acc 0.45 then 0.51.)
    assert df.pruned_fraction.iloc[0] > 0.5
    assert (df.acc > 0.2).all(), df
    assert df.acc.iloc[-1] > df.acc.iloc[0] + 0.05, df
    # masks accumulate: the pruned fraction never decreases
    assert df.pruned_fraction.is_monotonic_increasing
    assert warm.pruned_fraction.iloc[0] == 0.0
    summary = posterior_summary(tmp_path / "mlp_bmr_ss_1.npz")
    names = [s["name"] for s in summary]
    assert names[-1] == "head" and summary[0]["mean"].shape == (784, 64)
    assert summary[-1]["pruned"].sum() == 0  # the output layer is never pruned
    pruned = np.concatenate([s["pruned"].ravel() for s in summary])
    means = np.concatenate([s["mean"].ravel() for s in summary])
    assert np.all(np.abs(means[pruned]) < 1e-9)  # pruned weights are pinned at zero


@pytest.mark.parametrize("arch", ["lenet", "mixer", "vit"])
def test_other_architectures_train(fmnist_small, tmp_path, arch):
    net = dict(TINY_NETS)
    if arch == "vit":
        # the shrunken ViT with the authors' class token stays at chance for 800 steps (nets/vit.py); with mean
        # pooling it learns in 150: this test is about training, the class-token forward pass is in test_nets
        net["vit"] = {**TINY_NETS["vit"], "pool": "mean"}
    df = _stage(fmnist_small, tmp_path, "flat_ff", [150], arch=arch, net=net)
    assert df.acc.iloc[-1] > 0.3, df  # tiny networks, few steps: clearly above chance (0.1)


def test_same_seed_same_numbers(fmnist_small, tmp_path):
    a = _stage(fmnist_small, tmp_path, "flat_ff", [60, 40], tag="a", chunk_size=100)
    b = _stage(fmnist_small, tmp_path, "flat_ff", [60, 40], tag="b", chunk_size=7)  # other chunking, same numbers
    cols = ["epoch", "step", "acc", "ece", "ece_width15", "nll", "pruned_fraction"]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    za, zb = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    for k in za.files:
        if k not in ("header", "__sha256__"):  # the digest covers the header (timings differ)
            np.testing.assert_array_equal(za[k], zb[k], err_msg=k)


def test_lenet_runs_without_xla_convolutions_on_cpu_and_both_step_loops_agree(fmnist_small, tmp_path):
    """On CPU LeNet-5's convolutions are matrix products, so "auto" runs its chunk as one compiled loop with the
    straight-line Threefry, as for the MLP; the Mixer's patch embedding stays an XLA convolution (host loop). The
    loops give the same numbers."""
    import jax

    from bmrsparse.data import load_prepared
    from bmrsparse.train import Trainer

    data = load_prepared(fmnist_small)
    kinds = {}
    for arch in ("lenet", "mixer"):
        tr = Trainer(arch=arch, method="flat_ff", dataset=data, seeds=[0],
                     settings=TrainingSettings.from_mapping({**FAST, "net": TINY_NETS}))
        tr.train(tr.init(), 1, chunk_size=1, progress=False)
        kinds[arch] = (tr.model.xla_convolutions, tr.step_loop)
    assert kinds == ({"lenet": (False, "device"), "mixer": (True, "host")} if jax.default_backend() == "cpu"
                     else {"lenet": (True, "device"), "mixer": (True, "device")})
    a = _stage(fmnist_small, tmp_path, "flat_map", [40], arch="lenet", tag="dev", step_loop="device")
    b = _stage(fmnist_small, tmp_path, "flat_map", [40], arch="lenet", tag="host", step_loop="host")
    cols = ["epoch", "step", "acc", "ece", "nll"]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)


def test_lenet_evaluation_uses_the_backends_lowering_with_the_same_numbers(fmnist_small):
    """Evaluation convolves with the backend's lowering, as the training step does (on CPU the rows' matrix product,
    faster there than XLA's convolution, forward only too: docs/performance.md), and gives XLA's convolution's
    probabilities to float rounding, for one seed and for seeds vmapped together."""
    import jax
    import jax.numpy as jnp

    from bmrsparse import metrics
    from bmrsparse.data import load_prepared
    from bmrsparse.metrics import eval_keys
    from bmrsparse.nets import _common
    from bmrsparse.train import Trainer

    data = load_prepared(fmnist_small)
    settings = TrainingSettings.from_mapping({**FAST, "net": TINY_NETS, "eval_batch_size": 64})
    tr = Trainer(arch="lenet", method="flat_ff", dataset=data, seeds=[0], settings=settings)
    state = tr.init()
    assert tr.model.xla_convolutions == (jax.default_backend() != "cpu")
    two = lambda tree: jax.tree.map(lambda a: jnp.concatenate([a, a]), tree)  # noqa: E731
    probs = tr.predictive_probs(state, eval_keys([0], 1), 3)
    probs2 = metrics.predictive_probs(tr.model, two(tr.params(state)), two(state.masks), eval_keys([0, 1], 1),
                                      tr.x_test, num_samples=3)
    with _common.conv_lowering("conv"):
        tr.model.compiled.clear()
        probs_conv = tr.predictive_probs(state, eval_keys([0], 1), 3)
        probs2_conv = metrics.predictive_probs(tr.model, two(tr.params(state)), two(state.masks),
                                               eval_keys([0, 1], 1), tr.x_test, num_samples=3)
    tr.model.compiled.clear()
    np.testing.assert_allclose(probs, probs_conv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs2, probs2_conv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs2[0], probs[0], rtol=1e-5, atol=1e-6)  # seed 0 alone or beside seed 1


def test_non_finite_loss_stops_with_step_and_writes_nothing(fmnist_small, tmp_path):
    """A real divergence (absurd step size): the run stops naming the step and the setting to change."""
    with pytest.raises(NonFiniteLossError, match=r"non-finite at step \d+") as err:
        _stage(fmnist_small, tmp_path, "flat_map", [50], tag="run", learning_rate=1e30)
    assert "training.learning_rate.flat_map" in str(err.value)
    assert not (tmp_path / "run.npz").exists() and not (tmp_path / "run.csv").exists()


def test_non_finite_loss_keeps_last_finite_checkpoint(fmnist_small, tmp_path, monkeypatch):
    """The loss turns non-finite in the 4th chunk: the checkpoint of chunk 2 (the last finite one) stays."""
    from bmrsparse import train

    real_compile = train.Trainer._compile

    def compile_with_fault(self, state):
        real_compile(self, state)
        run, calls = self._run, {"n": 0}

        def faulty(*args):
            calls["n"] += 1
            s, dk, total, bad = run(*args)
            return s, dk, total, (bad if calls["n"] < 4 else bad * 0 + 3)  # 4th chunk: loss non-finite at its step 4

        self._run = faulty

    monkeypatch.setattr(train.Trainer, "_compile", compile_with_fault)
    ckpt = tmp_path / "run.ckpt.npz"
    with pytest.raises(NonFiniteLossError, match=r"non-finite at step 34 "):
        run_stage(
            data_path=fmnist_small, dataset="fashion_mnist", arch="mlp", method="flat_ff", seed=0, schedule=[100],
            first_epoch=0, out_state=tmp_path / "run.npz", out_metrics=tmp_path / "run.csv",
            settings={**FAST, "chunk_size": 10, "checkpoint_every": 20}, checkpoint_path=ckpt, progress=False,
        )
    assert not (tmp_path / "run.npz").exists() and not (tmp_path / "run.csv").exists()
    header = json.loads(str(np.load(ckpt)["header"]))
    assert header["step"] == 20  # checkpoints at 20 (and 40, never reached): the last finite one is kept
    z = np.load(ckpt)
    assert all(np.all(np.isfinite(z[k])) for k in z.files if z[k].dtype.kind == "f")


def test_state_of_other_architecture_or_method_is_refused(fmnist_small, tmp_path):
    _stage(fmnist_small, tmp_path, "flat_ff", [20], tag="mlp_ff")
    with pytest.raises(StateMismatchError, match="arch"):
        _stage(fmnist_small, tmp_path, "flat_ff", [20], arch="lenet", init=tmp_path / "mlp_ff.npz", tag="x")
    with pytest.raises(StateMismatchError, match="prior"):
        _stage(fmnist_small, tmp_path, "tiered_ff", [20], init=tmp_path / "mlp_ff.npz", tag="y")
    # a checkpoint left by another method under this stage's checkpoint name
    (tmp_path / "z.npz.ckpt.npz").write_bytes((tmp_path / "mlp_ff.npz").read_bytes())
    with pytest.raises(StateMismatchError, match="method"):
        _stage(fmnist_small, tmp_path, "bmr_ss", [20], tag="z")


def test_settings_are_validated():
    with pytest.raises(ValueError, match="unknown training setting 'batchsize'"):
        TrainingSettings.from_mapping({"batchsize": 3})
    with pytest.raises(ValueError, match="batch_size"):
        TrainingSettings.from_mapping({"batch_size": 0})
    with pytest.raises(ValueError, match="training.learning_rate must be a positive number"):
        TrainingSettings.from_mapping({"learning_rate": -0.1})
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        TrainingSettings.from_mapping({"net": {"resnet": {}}})


def test_several_seeds_train_in_one_program(fmnist_small, tmp_path):
    """seed=[0, 1]: one vmapped program, one state and metrics file per seed, usable by the next stage."""
    kw = dict(data_path=fmnist_small, dataset="fashion_mnist", arch="mlp", settings=FAST, progress=False)
    warm = run_stage(
        method="flat_ff", seed=[0, 1], schedule=[150], first_epoch=0,
        out_state=[tmp_path / "w0.npz", tmp_path / "w1.npz"], out_metrics=[tmp_path / "w0.csv", tmp_path / "w1.csv"],
        **kw,
    )
    assert sorted(warm.seed) == [0, 1] and (warm.acc > 0.6).all()
    assert warm.acc.iloc[0] != warm.acc.iloc[1] or warm.nll.iloc[0] != warm.nll.iloc[1]  # different seeds
    assert list(pd.read_csv(tmp_path / "w1.csv").seed) == [1]
    df = run_stage(
        method="bmr_ss", seed=[0, 1], schedule=[50], first_epoch=1,
        init_state=[tmp_path / "w0.npz", tmp_path / "w1.npz"],
        out_state=[tmp_path / "b0.npz", tmp_path / "b1.npz"], out_metrics=[tmp_path / "b0.csv", tmp_path / "b1.csv"],
        **kw,
    )
    assert sorted(df.seed) == [0, 1] and (df.pruned_fraction > 0).all()
    # a seed's file refuses to stand in for another seed
    with pytest.raises(StateMismatchError, match="seeds"):
        run_stage(method="bmr_ss", seed=1, schedule=[10], first_epoch=1, init_state=tmp_path / "w0.npz",
                  out_state=tmp_path / "x.npz", out_metrics=tmp_path / "x.csv", **kw)


def test_progress_log_writes_at_least_once_per_tenth_of_the_steps():
    from bmrsparse.train import ProgressLog, progress_chunk

    for total, chunk_size in ((20, 10), (10000, 100), (2000, 500), (37, 5), (3, 100)):
        chunk = progress_chunk(chunk_size, total)
        lines = []
        log = ProgressLog(total, max_chunk=chunk, write=lambda text, **_: lines.append(text))
        done = 0
        while done < total:
            n = min(chunk, total - done)
            done += n
            log.chunk(n, 0.01 * n, np.array([2.0, 4.0]))
        steps = [int(line.split()[1].split("/")[0]) for line in lines]
        assert steps[-1] == total and all(line.split()[1].endswith(f"/{total},") for line in lines)
        gaps = np.diff([0, *steps])
        assert gaps.max() <= max(1, 0.1 * total), (total, chunk_size, steps)
        eta = datetime.timedelta(seconds=round((total - steps[0]) / 100))  # 100 steps/s
        assert lines[0] == f"step {steps[0]}/{total}, 100.0 steps/s, ETA {eta}, loss 3 (-ELBO)"


def test_stage_logs_progress_and_the_elbo_of_each_epoch(fmnist_small, tmp_path, capsys):
    df = _stage(fmnist_small, tmp_path, "flat_ff", [30, 20], chunk_size=100)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(lines) >= 10 and lines[-1].startswith("step 50/50, ")  # the stage's 50 steps, cut into chunks of 5
    assert list(pd.read_csv(tmp_path / "mlp_flat_ff_0.csv").columns[: len(METRIC_COLUMNS)]) == list(METRIC_COLUMNS)
    assert df["elbo"].notna().all() and (df["elbo"] < 0).all()  # minus the training loss of the last steps


def test_stage_warns_when_a_seed_predicts_at_chance(fmnist_small, tmp_path, capsys, monkeypatch):
    """A collapsed posterior (Tiered-FF from a seed with small initial global scales) is named in the job's log."""
    from bmrsparse.train import Trainer

    evaluate = Trainer.evaluate

    def reported(acc):
        return lambda self, *args, **kw: [dict(m, acc=acc, nll=2.3026) for m in evaluate(self, *args, **kw)]

    monkeypatch.setattr(Trainer, "evaluate", reported(0.1))
    _stage(fmnist_small, tmp_path, "flat_ff", [5], chunk_size=5)
    out = capsys.readouterr().out
    assert "warning: seed 0 predicts at chance level after epoch 0 (acc 0.1000, nll 2.3026; ln 10 = 2.3026)" in out
    monkeypatch.setattr(Trainer, "evaluate", reported(0.2))  # twice chance: a poor network, not a collapse
    _stage(fmnist_small, tmp_path, "flat_ff", [5], chunk_size=5, tag="healthy")
    assert "predicts at chance" not in capsys.readouterr().out


def test_state_layers_reads_masks_and_posteriors_per_layer(tmp_path):
    """bmrsparse.state.state_layers gives each layer's keep-masks and q(w_hat) of one seed, without the file's layout."""
    import jax

    from bmrsparse import methods
    from bmrsparse.state import save_state, state_layers
    from bmrsparse.train import Trainer

    ds = noise_dataset(64)
    settings = TrainingSettings.from_mapping(TINY_MLP_SETTINGS)
    trainer = Trainer(arch="mlp", method="bmr_ss", dataset=ds, seeds=[3, 4], settings=settings)
    state = trainer.init()
    first = trainer.layers[0].name
    masks = jax.tree.map(np.array, jax.device_get(state.masks))
    masks[first]["kernel"][1, 5, 2] = False  # seed 4 (index 1) has one weight pruned
    state = state._replace(masks=masks)
    path = tmp_path / "state.npz"
    save_state(trainer, state, path, extra={"settings": settings})

    got = state_layers(path, index=1)
    assert list(got) == [layer.name for layer in trainer.layers]
    kept = got[first]["kernel"]["kept"]
    assert kept.shape == (784, 8) and kept.dtype == bool
    assert kept.sum() == kept.size - 1 and not kept[5, 2]
    assert all(v["kept"].all() for layer, leaves in got.items() for leaf, v in leaves.items()
               if (layer, leaf) != (first, "kernel"))
    assert state_layers(path, index=0)[first]["kernel"]["kept"].all()
    params = jax.tree.map(lambda a: np.asarray(a)[1], trainer.params(state))
    posterior = jax.device_get(methods.layer_posteriors(trainer.built, params))
    for layer in trainer.layers:
        for leaf, shape in layer.shapes:
            mu, sigma = posterior[layer.name][leaf]
            np.testing.assert_array_equal(got[layer.name][leaf]["mu"], mu)
            np.testing.assert_array_equal(got[layer.name][leaf]["sigma"], sigma)
            assert got[layer.name][leaf]["mu"].shape == tuple(shape)
    with pytest.raises(IndexError, match="2 seeds"):
        state_layers(path, index=2)
