"""Independent numpy references of BMR for the tests: the fixed point of eq. (22) written out, and random layers
that mix prunable and informative weights."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma


def reference_fixed_point(mu, sigma, alpha0=1.0, beta0=1.0, iters=4):
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


def random_layer(rng, shape):
    """A layer mixing prunable weights (μ ≈ 0, small σ) with informative ones, so q is not all saturated."""
    informative = rng.uniform(size=shape) < 0.4
    mu = np.where(informative, rng.normal(0.0, 1.0, size=shape), rng.normal(0.0, 0.05, size=shape))
    sigma = np.exp(rng.uniform(np.log(0.05), np.log(0.8), size=shape))
    return mu, sigma
