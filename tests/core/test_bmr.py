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

from bmr_reference import random_layer as _random_layer, reference_fixed_point as _reference_fixed_point

from bmrsparse.bmr import delta_f, delta_f_zero, spike_and_slab

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
