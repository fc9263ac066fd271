"""Tests of bmrsparse.bmr: ΔF of eq. (19), the Beta-Bernoulli fixed point of eq. (22), the pruning rule of eq. (23).

Every reference here is computed independently of the library: ΔF by adaptive quadrature of its definition
ln E_q[N(ŵ; 0, θ²) / N(ŵ; 0, 1)], the fixed point by a direct numpy + scipy transcription of eq. (22).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.special import digamma

from bmrsparse.bmr import delta_f, delta_f_zero, spike_and_slab, spike_and_slab_layers

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


# ---------------------------------------------------------------------------------------------------------------------
# ΔF (eq. 19) against numerical integration of its definition
# ---------------------------------------------------------------------------------------------------------------------


def _normal_logpdf(w, mean, std):
    return -0.5 * ((w - mean) / std) ** 2 - np.log(std) - _LOG_SQRT_2PI


def _log_expectation_quad(mu, sigma, theta):
    r"""ln E_q[N(ŵ; 0, θ²) / N(ŵ; 0, 1)] with q = N(μ, σ²), by adaptive quadrature (no use of eq. 19).

    The integrand q(ŵ) N(ŵ; 0, θ²) / N(ŵ; 0, 1) is, for small θ, a peak of width ≲ θ whose height can under- or
    overflow (e.g. exp(-μ²/2σ²) = exp(-1800) for μ = 3, σ = 0.05). So we work with its log g(ŵ): locate the maximum
    ŵ* numerically (Brent), measure the peak's width s from the curvature of g by central differences, and integrate
    exp(g - g(ŵ*)) over ŵ* ± 40 s with ŵ* as a break point; ln E = g(ŵ*) + ln ∫ exp(g - g(ŵ*)).
    """

    def g(w):
        return _normal_logpdf(w, mu, sigma) + _normal_logpdf(w, 0.0, theta) - _normal_logpdf(w, 0.0, 1.0)

    scale = min(sigma, theta)
    w_star = optimize.minimize_scalar(lambda w: -g(w), bracket=(-scale, scale)).x
    h = 0.1 * scale
    curvature = -(g(w_star + h) - 2.0 * g(w_star) + g(w_star - h)) / h**2
    assert curvature > 0, "integrand is not a peak: ρ² <= 0 for this (σ, θ)"
    s = 1.0 / np.sqrt(curvature)
    g_star = g(w_star)
    value, abserr = integrate.quad(
        lambda w: np.exp(g(w) - g_star),
        w_star - 40.0 * s,
        w_star + 40.0 * s,
        points=[w_star],
        epsabs=0.0,
        epsrel=1e-12,
        limit=200,
    )
    assert abserr < 1e-9 * value
    return g_star + np.log(value)


MUS = (0.0, 0.3, -1.5, 3.0)
SIGMAS = (0.05, 0.3, 0.9)
THETAS = (1e-3, 1e-2, 0.1, 0.5, 1.0, 1.5)


@pytest.mark.parametrize("theta", THETAS)
def test_delta_f_matches_quadrature_in_float64(theta):
    grid = [(mu, sigma) for mu in MUS for sigma in SIGMAS]
    expected = np.array([_log_expectation_quad(mu, sigma, theta) for mu, sigma in grid])
    mu, sigma = np.array(grid).T
    with jax.enable_x64(True):
        got = np.asarray(delta_f(mu, sigma, theta))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("theta", THETAS)
def test_delta_f_matches_quadrature_in_default_float32(theta):
    # the library runs in JAX's default float32; ΔF reaches |ΔF| ~ 1.8e3 here (μ = 3, σ = 0.05), and for θ > 1 the
    # factor (1 - θ²/ρ²) is a small difference, so allow float32 round-off (~1e-7 relative on each term)
    grid = [(mu, sigma) for mu in MUS for sigma in SIGMAS]
    expected = np.array([_log_expectation_quad(mu, sigma, theta) for mu, sigma in grid])
    mu, sigma = np.array(grid, np.float32).T
    got = np.asarray(delta_f(mu, sigma, np.float32(theta)))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-4)


def test_delta_f_at_theta_zero_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu = rng.normal(0.0, 2.0, size=12)
    sigma = np.exp(rng.uniform(np.log(1e-3), np.log(2.0), size=12))  # σ > 1 is fine at θ = 0 (ρ² = σ²)
    closed_form = -0.5 * (np.log(sigma**2) + mu**2 / sigma**2)  # text under eq. (22)
    with jax.enable_x64(True):
        at_zero = np.asarray(delta_f(mu, sigma, 0.0))
        zero = np.asarray(delta_f_zero(mu, sigma))
    np.testing.assert_allclose(at_zero, closed_form, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(zero, closed_form, rtol=1e-12, atol=1e-12)
    # and in float32, the library's default
    np.testing.assert_allclose(np.asarray(delta_f_zero(mu, sigma)), closed_form, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(delta_f(mu, sigma, 0.0)), closed_form, rtol=1e-5, atol=1e-5)


def test_delta_f_is_continuous_as_theta_goes_to_zero():
    mu = np.repeat([0.0, 0.2, -1.0, 3.0], 3)
    sigma = np.tile([0.05, 0.5, 0.9], 4)
    with jax.enable_x64(True):
        limit = np.asarray(delta_f_zero(mu, sigma))
        gaps = [np.max(np.abs(np.asarray(delta_f(mu, sigma, t)) - limit)) for t in (1e-2, 1e-4, 1e-6)]
    # ΔF(θ) - ΔF(0) = O(θ²): each 100-fold step in θ shrinks the gap ~1e4-fold
    assert gaps[2] < 1e-6
    assert gaps[1] < 1e-3 * gaps[0] and gaps[2] < 1e-3 * gaps[1]


def test_sign_convention():
    rng = np.random.default_rng(1)
    mu = rng.normal(0.0, 2.0, size=12)
    sigma = rng.uniform(0.01, 0.99, size=12)
    # θ = 1 is the full model's own prior: no change in evidence
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(delta_f(mu, sigma, 1.0)), 0.0, atol=1e-12)
    # in float32, ρ² = 1 + σ² - σ² carries round-off that the factor μ²/σ² amplifies: allow ~1e-6 relative to it
    at_one = np.asarray(delta_f(mu.astype(np.float32), sigma.astype(np.float32), np.float32(1.0)))
    assert np.all(np.abs(at_one) <= 1e-6 * (1.0 + mu**2 / sigma**2)), at_one
    # a posterior equal to the prior carries no evidence either way
    assert float(delta_f(0.0, 1.0, 0.0)) == pytest.approx(0.0, abs=1e-7)
    # posterior shrunk to zero: removing the weight (θ = 0) is better, ΔF(0) = -ln 0.1 = +2.303
    assert float(delta_f(0.0, 0.1, 0.0)) == pytest.approx(np.log(10.0), rel=1e-6)
    assert float(delta_f(0.0, 0.1, 0.0)) > 0
    # posterior far from zero: removing it is much worse, ΔF(0) = ln 10 - 450
    assert float(delta_f(3.0, 0.1, 0.0)) == pytest.approx(np.log(10.0) - 450.0, rel=1e-6)
    assert float(delta_f(3.0, 0.1, 0.0)) < -400


def test_delta_f_broadcasts_and_accepts_numpy_and_jax():
    mu = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    sigma = np.float64(0.2)
    theta = np.array([0.0, 0.1, 0.5])
    from_numpy = np.asarray(delta_f(mu, sigma, theta))
    from_jax = np.asarray(delta_f(jnp.asarray(mu), jnp.asarray(sigma), jnp.asarray(theta)))
    assert from_numpy.shape == (2, 3)
    np.testing.assert_array_equal(from_numpy, from_jax)
    np.testing.assert_allclose(from_numpy[:, 0], np.asarray(delta_f_zero(mu[:, 0], sigma)), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# The fixed point (eq. 22) and the pruning rule (eq. 23)
# ---------------------------------------------------------------------------------------------------------------------


def _reference_fixed_point(mu, sigma, alpha0=1.0, beta0=1.0, iters=4):
    """eq. (22) written out with numpy: returns q^{k_max} for one layer (all of ``mu`` is the layer)."""
    mu, sigma = np.asarray(mu, np.float64).ravel(), np.asarray(sigma, np.float64).ravel()
    delta_f0 = -0.5 * (np.log(sigma**2) + mu**2 / sigma**2)  # ΔF(λ = 0), text under eq. (22)
    alpha, beta = alpha0, beta0  # α^0 = α_0, β^0 = β_0
    for _ in range(iters):
        zeta = digamma(alpha) - digamma(beta)
        with np.errstate(over="ignore"):  # exp(+large) -> inf -> q = 0 is the right limit
            q = 1.0 / (1.0 + np.exp(-(zeta - delta_f0)))
        alpha = np.sum(q) + alpha0
        beta = np.sum(1.0 - q) + beta0
    return q


def _random_layer(rng, shape):
    """A layer mixing prunable weights (μ ≈ 0, small σ) with informative ones, so q is not all saturated."""
    informative = rng.uniform(size=shape) < 0.4
    mu = np.where(informative, rng.normal(0.0, 1.0, size=shape), rng.normal(0.0, 0.05, size=shape))
    sigma = np.exp(rng.uniform(np.log(0.05), np.log(0.8), size=shape))
    return mu, sigma


# the same number of weights in every shape: fewer distinct shapes for JAX's op-by-op compilation keeps this fast
LAYER_SHAPES = [(60,), (6, 10), (3, 4, 5)]


@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_fixed_point_matches_eq22(shape):
    rng = np.random.default_rng(len(shape))
    mu, sigma = _random_layer(rng, shape)
    q_ref = _reference_fixed_point(mu, sigma).reshape(shape)
    keep_ref = q_ref >= 0.5
    assert keep_ref.any() and not keep_ref.all()  # the layer really is mixed

    if len(shape) == 1:  # in float64 the agreement is to round-off
        with jax.enable_x64(True):
            q64, keep64 = spike_and_slab(mu, sigma, keep="q")
        np.testing.assert_allclose(np.asarray(q64), q_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(np.asarray(keep64), keep_ref)

    q, keep = spike_and_slab(mu, sigma, keep="q")  # default float32
    assert q.shape == shape and keep.shape == shape and keep.dtype == bool
    np.testing.assert_allclose(np.asarray(q), q_ref, atol=1e-5)
    decided = np.abs(q_ref - 0.5) > 1e-4  # away from the threshold float32 cannot flip a decision
    np.testing.assert_array_equal(np.asarray(keep)[decided], keep_ref[decided])
    # eq. (23): kept exactly when q >= 1/2
    np.testing.assert_array_equal(np.asarray(keep), np.asarray(q) >= 0.5)


def test_fixed_point_accepts_numpy_and_jax_inputs():
    rng = np.random.default_rng(3)
    mu, sigma = _random_layer(rng, (60,))
    q_np, keep_np = spike_and_slab(mu.astype(np.float32), sigma.astype(np.float32), keep="q")
    q_jax, keep_jax = spike_and_slab(jnp.asarray(mu, jnp.float32), jnp.asarray(sigma, jnp.float32), keep="q")
    np.testing.assert_array_equal(np.asarray(q_np), np.asarray(q_jax))
    np.testing.assert_array_equal(np.asarray(keep_np), np.asarray(keep_jax))
    # float64 numpy input (downcast by JAX in its default mode) agrees with the float64 reference
    q64in, _ = spike_and_slab(mu, sigma, keep="q")
    np.testing.assert_allclose(np.asarray(q64in), _reference_fixed_point(mu, sigma), atol=1e-5)


@pytest.mark.parametrize(
    "alpha0, beta0, iters", [(1.0, 1.0, 1), (1.0, 1.0, 2), (1.0, 1.0, 10), (5.0, 0.5, 4), (0.5, 20.0, 3)]
)
def test_fixed_point_respects_alpha0_beta0_iters(alpha0, beta0, iters):
    rng = np.random.default_rng(4)
    mu, sigma = _random_layer(rng, (60,))
    q_ref = _reference_fixed_point(mu, sigma, alpha0, beta0, iters)
    q_default = _reference_fixed_point(mu, sigma)
    # the setting matters for this layer, so a library that ignored it would fail below
    assert np.max(np.abs(q_ref - q_default)) > 1e-3
    with jax.enable_x64(True):
        q, keep = spike_and_slab(mu, sigma, alpha0=alpha0, beta0=beta0, iters=iters, keep="q")
    np.testing.assert_allclose(np.asarray(q), q_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(keep), q_ref >= 0.5)


def test_uninformative_weight_is_pruned_informative_kept_in_a_mostly_prunable_layer():
    # ΔF(λ=0) = -½(ln σ² + μ²/σ²): N(0, 0.1²) -> +2.30 (prune), N(0, 1) -> 0 (no evidence), N(3, 0.1²) -> -447.7.
    # A weight is kept iff ΔF(λ=0) <= ζ (eq. 23), with ζ = ψ(α) - ψ(β) shared by the layer. So the fate of the N(0, 1)
    # weight (ΔF = 0) depends on its layer: here 58 prunable weights drive ζ below 0 (ζ¹ = ψ(7.77) - ψ(54.2) ≈ -2.0
    # after one iteration, lower after more) and it is pruned, while the N(3, 0.1²) weight is kept whatever ζ is.
    mu = np.concatenate([np.zeros(58), [0.0, 3.0]])
    sigma = np.concatenate([np.full(58, 0.1), [1.0, 0.1]])
    q, keep = spike_and_slab(mu, sigma, keep="q")
    keep = np.asarray(keep)
    assert not keep[:58].any()
    assert not keep[58], "posterior N(0, 1) should be pruned in a layer where most weights are prunable (ζ < 0)"
    assert keep[59], "posterior N(3, 0.1²) should be kept"
    assert float(q[58]) < 0.2 and float(q[59]) > 0.999
    np.testing.assert_allclose(np.asarray(q), _reference_fixed_point(mu, sigma), atol=1e-5)


def test_uninformative_weight_is_kept_in_a_layer_of_informative_weights():
    # the counterpart: with 59 informative weights ζ > 0 (ζ¹ = ψ(60.5) - ψ(1.5) ≈ 4.1), so ΔF(λ=0) = 0 <= ζ
    # keeps N(0, 1)
    rng = np.random.default_rng(5)
    mu = np.concatenate([rng.choice([-3.0, 3.0], size=59), [0.0]])
    sigma = np.concatenate([np.full(59, 0.1), [1.0]])
    q, keep = spike_and_slab(mu, sigma, keep="q")
    assert np.asarray(keep).all()
    assert float(q[-1]) > 0.9
    np.testing.assert_allclose(np.asarray(q), _reference_fixed_point(mu, sigma), atol=1e-5)


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
