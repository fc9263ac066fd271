"""Tests of bmrsparse.bmr over a network: the prune step of every layer (eq. 23, masks accumulating), the keep rules
and k_max, and the settings that reach the prune step in training.

Every reference here is computed independently of the library: the fixed point by a direct numpy + scipy
transcription of eq. (22) (bmr_reference.py).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.special import digamma

from bmr_reference import random_layer as _random_layer, reference_fixed_point as _reference_fixed_point

from bmrsparse.bmr import spike_and_slab, spike_and_slab_layers


# ---------------------------------------------------------------------------------------------------------------------
# spike_and_slab_layers: one prune step over a network
# ---------------------------------------------------------------------------------------------------------------------


def _network(rng):
    """Posterior and all-True masks of a 2-layer dense net plus head, in the {layer: {leaf: ...}} layout."""
    shapes = {"dense0": {"kernel": (4, 4), "bias": (4,)}, "dense1": {"kernel": (4, 4), "bias": (4,)},
              "head": {"kernel": (4, 3), "bias": (3,)}}  # fmt: skip
    posterior = {layer: {leaf: _random_layer(rng, s) for leaf, s in leaves.items()} for layer, leaves in shapes.items()}
    masks = {layer: {leaf: np.ones(s, bool) for leaf, s in leaves.items()} for layer, leaves in shapes.items()}
    return posterior, masks


def test_layers_structure_and_each_layer_is_one_group():
    rng = np.random.default_rng(6)
    posterior, masks = _network(rng)
    new_masks, q = spike_and_slab_layers(posterior, masks, frozen=("head",), keep="q")
    assert set(new_masks) == set(posterior) == set(q)
    for layer, leaves in posterior.items():
        assert set(new_masks[layer]) == set(leaves) == set(q[layer])
        for leaf, (mu, _) in leaves.items():
            assert new_masks[layer][leaf].shape == mu.shape and new_masks[layer][leaf].dtype == bool
            assert q[layer][leaf].shape == mu.shape
            assert np.all((np.asarray(q[layer][leaf]) >= 0) & (np.asarray(q[layer][leaf]) <= 1))
    # a layer is [W; b] (eq. 11): kernel and bias share one ζ, i.e. the fixed point runs on their concatenation
    for layer in ("dense0", "dense1"):
        (mu_k, s_k), (mu_b, s_b) = posterior[layer]["kernel"], posterior[layer]["bias"]
        q_ref = _reference_fixed_point(np.concatenate([mu_k.ravel(), mu_b]), np.concatenate([s_k.ravel(), s_b]))
        np.testing.assert_allclose(np.asarray(q[layer]["kernel"]).ravel(), q_ref[: mu_k.size], atol=1e-5)
        np.testing.assert_allclose(np.asarray(q[layer]["bias"]), q_ref[mu_k.size :], atol=1e-5)
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(
                np.asarray(new_masks[layer][leaf]), np.asarray(q[layer][leaf]) >= 0.5
            )


def test_frozen_layer_is_never_pruned():
    rng = np.random.default_rng(7)
    posterior, masks = _network(rng)
    # make the head entirely prunable: N(0, 0.1²) everywhere
    posterior["head"] = {leaf: (np.zeros_like(mu), np.full_like(s, 0.1)) for leaf, (mu, s) in posterior["head"].items()}
    unfrozen, _ = spike_and_slab_layers(posterior, masks, keep="q")
    assert not any(np.asarray(m).all() for m in unfrozen["head"].values())  # it would be pruned if not frozen
    frozen, q = spike_and_slab_layers(posterior, masks, frozen=("head",), keep="q")
    for leaf in ("kernel", "bias"):
        assert np.asarray(frozen["head"][leaf]).all()
        assert np.asarray(q["head"][leaf]).shape == posterior["head"][leaf][0].shape
    # freezing the head does not change the other layers
    for layer in ("dense0", "dense1"):
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(np.asarray(frozen[layer][leaf]), np.asarray(unfrozen[layer][leaf]))


def test_masks_accumulate_and_pruned_weights_count_as_pruned():
    rng = np.random.default_rng(8)
    posterior, masks = _network(rng)
    # dense0: all weights now informative, N(±3, 0.1²), but 5 kernel entries and one bias were pruned before
    mu_k = rng.choice([-3.0, 3.0], size=(4, 4))
    mu_b = rng.choice([-3.0, 3.0], size=(4,))
    posterior["dense0"] = {"kernel": (mu_k, np.full((4, 4), 0.1)), "bias": (mu_b, np.full(4, 0.1))}
    old_kernel = np.ones((4, 4), bool)
    old_kernel.flat[[0, 3, 7, 11, 12]] = False
    old_bias = np.array([True, True, False, True])
    masks["dense0"] = {"kernel": old_kernel, "bias": old_bias}

    new_masks, q = spike_and_slab_layers(posterior, masks, frozen=("head",), keep="q")
    # the posterior alone would keep every weight of dense0 (q >= 1/2) ...
    assert np.all(np.asarray(q["dense0"]["kernel"]) >= 0.5) and np.all(np.asarray(q["dense0"]["bias"]) >= 0.5)
    # ... but a weight pruned before stays pruned, however informative its posterior now is; the rest are kept
    np.testing.assert_array_equal(np.asarray(new_masks["dense0"]["kernel"]), old_kernel)
    np.testing.assert_array_equal(np.asarray(new_masks["dense0"]["bias"]), old_bias)

    # a second prune step never revives a weight: new masks are a subset of the old ones in every layer
    again, _ = spike_and_slab_layers(posterior, new_masks, frozen=("head",), keep="q")
    for layer in posterior:
        for leaf in posterior[layer]:
            old, new = np.asarray(new_masks[layer][leaf]), np.asarray(again[layer][leaf])
            assert not np.any(new & ~old)


def test_pruned_weights_enter_zeta_with_their_posterior():
    # documented rule (as in the authors' code): already-pruned weights take part in ζ with their current posterior,
    # i.e. q is eq. (22) on the whole layer whatever the mask, and the new mask is old mask & (q >= 1/2)
    rng = np.random.default_rng(9)
    mu, sigma = _random_layer(rng, (20,))
    # some pruned weights have relaxed back to the prior N(0, 1) (ΔF(λ=0) = 0), as a pinned weight's posterior does
    prior_mask = rng.uniform(size=20) < 0.7
    mu = np.where(prior_mask, mu, np.where(np.arange(20) % 2 == 0, 0.0, mu))
    sigma = np.where(prior_mask, sigma, np.where(np.arange(20) % 2 == 0, 1.0, sigma))
    new_masks, q = spike_and_slab_layers({"l": {"kernel": (mu, sigma)}}, {"l": {"kernel": prior_mask}}, keep="q")
    q_ref = _reference_fixed_point(mu, sigma)
    np.testing.assert_allclose(np.asarray(q["l"]["kernel"]), q_ref, atol=1e-5)
    decided = np.abs(q_ref - 0.5) > 1e-4
    np.testing.assert_array_equal(np.asarray(new_masks["l"]["kernel"])[decided], (prior_mask & (q_ref >= 0.5))[decided])


# ---------------------------------------------------------------------------------------------------------------------
# Keep rules: the authors' code tests ΔF(λ=0) <= ζ after its k_max-th update of (α, β), i.e. q^{k_max+1} >= 1/2
# ---------------------------------------------------------------------------------------------------------------------


def _authors_keep(mu, sigma, alpha0=1.0, beta0=1.0, iters=4):
    """The authors' loop written out: ζ⁰ from (α₀, β₀); k_max times q = σ(ζ - ΔF), update α, β, ζ; keep ΔF <= ζ."""
    mu, sigma = np.asarray(mu, np.float64).ravel(), np.asarray(sigma, np.float64).ravel()
    df0 = -0.5 * (np.log(sigma**2) + mu**2 / sigma**2)
    zeta = digamma(alpha0) - digamma(beta0)
    for _ in range(iters):
        with np.errstate(over="ignore"):
            q = 1.0 / (1.0 + np.exp(-(zeta - df0)))
        zeta = digamma(np.sum(q) + alpha0) - digamma(np.sum(1.0 - q) + beta0)
    return df0 <= zeta


def _slow_layer(rng, n=200):
    """A layer whose ΔF(λ=0) straddle 0 (μ = 0, σ from e^-1.5 to e^1.5): ζ moves for many iterations."""
    return np.zeros(n), np.exp(rng.uniform(-1.5, 1.5, size=n))


@pytest.mark.parametrize("iters", [1, 4, 5])
def test_zeta_rule_is_the_authors_and_one_iteration_past_q(iters):
    mu, sigma = _slow_layer(np.random.default_rng(10))
    with jax.enable_x64(True):
        q_zeta, keep_zeta = spike_and_slab(mu, sigma, iters=iters, keep="zeta")
        _, keep_default = spike_and_slab(mu, sigma, iters=iters)
        _, keep_q = spike_and_slab(mu, sigma, iters=iters, keep="q")
    np.testing.assert_array_equal(np.asarray(keep_zeta), _authors_keep(mu, sigma, iters=iters))
    np.testing.assert_array_equal(np.asarray(keep_default), np.asarray(keep_zeta))  # the default is the authors'
    # the returned q is q^{k_max+1} of eq. (22) ...
    np.testing.assert_allclose(np.asarray(q_zeta), _reference_fixed_point(mu, sigma, iters=iters + 1), rtol=1e-10)
    # ... and the two rules really differ on this layer: "q" tests one iteration earlier
    np.testing.assert_array_equal(np.asarray(keep_q), _reference_fixed_point(mu, sigma, iters=iters) >= 0.5)
    assert np.asarray(keep_q).sum() != np.asarray(keep_zeta).sum()


def test_keep_rule_reaches_spike_and_slab_layers_and_bad_rule_raises():
    mu, sigma = _slow_layer(np.random.default_rng(10))
    post = {"a": {"kernel": (mu[:190].reshape(19, 10), sigma[:190].reshape(19, 10)), "bias": (mu[190:], sigma[190:])}}
    masks = {"a": {"kernel": np.ones((19, 10), bool), "bias": np.ones(10, bool)}}
    ref = {"zeta": _authors_keep(mu, sigma), "q": _reference_fixed_point(mu, sigma) >= 0.5}
    assert (ref["zeta"] != ref["q"]).any()
    for rule in ("zeta", "q"):
        new, _ = spike_and_slab_layers(post, masks, keep=rule)
        got = np.concatenate([np.asarray(new["a"]["kernel"]).ravel(), np.asarray(new["a"]["bias"])])
        np.testing.assert_array_equal(got, ref[rule])
    with pytest.raises(ValueError, match="keep rule"):
        spike_and_slab(mu, sigma, keep="paper")
    with pytest.raises(ValueError, match="keep rule"):
        spike_and_slab_layers(post, masks, keep="")


def test_first_prune_fraction_against_k_max():
    from bmrsparse.bmr import first_prune_fraction

    rng = np.random.default_rng(12)
    layers = {name: _slow_layer(rng, n=80) for name in ("a", "b")}
    post = {name: {"kernel": ml} for name, ml in layers.items()}
    post["head"] = {"kernel": (np.zeros(8), np.full(8, 0.01))}  # all prunable, but frozen
    got = first_prune_fraction(post, frozen=("head",), iters=(1, 4, 5, None))
    for k in (1, 4, 5):
        pruned = sum(int((_reference_fixed_point(*layers[n], iters=k) < 0.5).sum()) for n in layers)
        assert got[k] == pytest.approx(pruned / 160)
    # converged: one more iteration changes nothing
    conv = sum(int((_reference_fixed_point(*layers[n], iters=400) < 0.5).sum()) for n in layers)
    assert got["converged"] == pytest.approx(conv / 160)
    assert got[1] != got[5]  # the fraction depends on k_max on this posterior
    # "zeta" at k_max is "q" at k_max + 1
    assert first_prune_fraction(post, frozen=("head",), iters=(4,), keep="zeta")[4] == pytest.approx(got[5])


# ---------------------------------------------------------------------------------------------------------------------
# The training settings bmr_keep and elbo reach the trainer (tiny network, a few steps)
# ---------------------------------------------------------------------------------------------------------------------


def test_keep_setting_reaches_the_prune_step_and_elbo_setting_the_svi(fmnist_small, tmp_path, monkeypatch):
    from numpyro.infer import TraceGraph_ELBO, TraceMeanField_ELBO

    from bmrsparse import bmr as bmr_module
    from bmrsparse.data import load_prepared
    from bmrsparse.settings import TrainingSettings
    from bmrsparse.train import Trainer

    from conftest import TINY_NETS

    ds = load_prepared(fmnist_small)
    base = {"net": TINY_NETS, "chunk_size": 10, "init_radius": 0.5}
    seen = []
    real = bmr_module.spike_and_slab_layers

    def spy(*args, **kwargs):
        seen.append(kwargs.get("keep"))
        return real(*args, **kwargs)

    monkeypatch.setattr(bmr_module, "spike_and_slab_layers", spy)
    for rule, elbo, loss_type in (("zeta", "trace_graph", TraceGraph_ELBO), ("q", "mean_field", TraceMeanField_ELBO)):
        tr = Trainer(arch="mlp", method="bmr_ss", dataset=ds, seeds=[0, 1],
                     settings=TrainingSettings.from_mapping({**base, "bmr_keep": rule, "elbo": elbo}))
        assert type(tr.svi.loss) is loss_type
        state, _ = tr.train(tr.init(), 20, chunk_size=10, progress=False)  # the vmapped two-seed path
        assert np.isfinite(np.asarray(tr.params(state)["w_hat.loc"])).all()
        assert len(tr.pruned_fraction(tr.prune(state))) == 2
    assert seen == ["zeta", "q"]
    # MAP keeps TraceMeanField_ELBO whatever the setting (as the authors' code)
    tr = Trainer(arch="mlp", method="flat_map", dataset=ds, seeds=[0],
                 settings=TrainingSettings.from_mapping({**base, "elbo": "trace_graph"}))
    assert type(tr.svi.loss) is TraceMeanField_ELBO
    with pytest.raises(ValueError, match="bmr_keep"):
        TrainingSettings.from_mapping({"bmr_keep": "last"})
    with pytest.raises(ValueError, match="elbo"):
        TrainingSettings.from_mapping({"elbo": "trace"})
