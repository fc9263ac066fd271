r"""Bayesian model reduction (BMR) for Gaussian mean-field posteriors.

Public API (works on numpy or JAX arrays, elementwise):

- :func:`delta_f` -- the change in variational free energy :math:`\Delta F(\theta)` of eq. (19) when a weight's
  prior :math:`\mathcal{N}(0, 1)` is replaced by the reduced prior :math:`\mathcal{N}(0, \theta^2)`.
- :func:`spike_and_slab` -- the Beta-Bernoulli fixed point of eq. (22) and the pruning rule of eq. (23) for one layer.
- :func:`first_prune_fraction` -- the fraction a prune step removes as a function of :math:`k_{max}` (sensitivity).

Keep rules (``keep``): the fixed point is stopped after :math:`k_{max}` iterations, and two readings of the rule differ
by one iteration:

- ``"zeta"`` (the default; the authors' code): a weight stays when :math:`\Delta F(\lambda=0) \le \zeta^{k_{max}}`, with
  :math:`\zeta` computed after the :math:`k_{max}`-th update of :math:`(\alpha, \beta)`; that is
  :math:`q^{k_{max}+1} \ge \tfrac12`.
- ``"q"`` (eq. 23 read literally): a weight stays when :math:`q^{k_{max}} \ge \tfrac12`, i.e.
  :math:`\Delta F(\lambda=0) \le \zeta^{k_{max}-1}`.

The fixed point is far from converged after four iterations, so the two differ a lot (see
:func:`first_prune_fraction`).

Inputs are checked at this front door: NaN or infinite means, standard deviations that are not > 0, shapes that
do not fit and parameters out of range raise a :class:`ValueError` that names the argument (and the layer and leaf)
and the problem, instead of a NaN result or a mask that prunes everything. Inside ``jax.jit``/``jax.vmap`` (the
training's prune step) the arrays are tracers: their shapes are checked, their values are not (the program stays
free of host callbacks).

Sign convention (the paper's): :math:`\Delta F > 0` means the reduced model has the larger evidence, i.e. it is the
better explanation of the data.

References:
  Marković, Friston, Kiebel (2023). Bayesian sparsification for deep neural networks with Bayesian model
  reduction. https://arxiv.org/abs/2309.12095 (eqs. 19-23).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma

from ._checks import as_numbers, check_count, check_finite, check_positive, check_scalar, traced, where
from ._layerwise import join_split

__all__ = ["KEEP_RULES", "check_keep", "delta_f", "delta_f_zero", "spike_and_slab", "spike_and_slab_layers",
           "first_prune_fraction"]

#: Keep rules of a prune step (see the module docstring): ``"zeta"`` keeps a weight when
#: :math:`\Delta F(\lambda=0) \le \zeta` after the :math:`k_{max}`-th update of :math:`(\alpha, \beta)` (the authors'
#: code, :math:`q^{k_{max}+1} \ge 1/2`); ``"q"`` when :math:`q^{k_{max}} \ge 1/2` (eq. 23 read literally).
KEEP_RULES = ("zeta", "q")


def delta_f(mu, sigma, theta):
    r"""Log-evidence gain :math:`\Delta F(\theta)` of shrinking a weight's prior (eq. 19).

    A weight :math:`\hat w` has prior :math:`\mathcal{N}(0, 1)` and (approximate) posterior
    :math:`\mathcal{N}(\mu, \sigma^2)`. Replacing the prior by :math:`\mathcal{N}(0, \theta^2)` changes the log
    evidence by

    .. math::
        \Delta F(\theta) = \ln E_q\!\left[\frac{\mathcal{N}(\hat w; 0, \theta^2)}{\mathcal{N}(\hat w; 0, 1)}\right]
        = -\tfrac12 \ln \rho^2 - \tfrac12 \frac{\mu^2}{\sigma^2}\Big(1 - \frac{\theta^2}{\rho^2}\Big),
        \qquad \rho^2 = \theta^2 + \sigma^2 - \theta^2 \sigma^2 .

    Args:
      mu: posterior mean :math:`\mu` (array).
      sigma: posterior standard deviation :math:`\sigma > 0` (array, broadcastable to ``mu``).
      theta: reduced prior standard deviation :math:`\theta \ge 0`; ``theta = 0`` is the spike (weight removed).

    Returns:
      :math:`\Delta F`, elementwise. Positive: the reduced model (prior :math:`\mathcal{N}(0,\theta^2)`) is better,
      so a weight with ``delta_f(mu, sigma, 0) > 0`` is better pruned. Requires :math:`\rho^2 > 0` (always true for
      :math:`\sigma < 1` or :math:`\theta \le 1`).

    Example:
      >>> float(delta_f(0.0, 1.0, 0.0))   # posterior equals the prior: no evidence either way
      0.0
    """
    ((mu, sigma), (_, s)), t = _posterior(mu, sigma, numbers=True), _theta(theta)
    _check_shapes(("mu", mu), ("sigma", sigma), ("theta", theta))
    if s is not None and t is not None:
        s2, t2 = np.square(s), np.square(t)
        bad = t2 + s2 * (1.0 - t2) <= 0
        if bad.any():
            s_bad, t_bad = np.broadcast_arrays(s, t)
            raise ValueError(
                "sigma and theta give rho^2 = theta^2 + sigma^2 - theta^2 sigma^2 <= 0 "
                f"(e.g. sigma={s_bad[bad].ravel()[0]}, theta={t_bad[bad].ravel()[0]}{where(bad)}): Delta F(theta) is "
                "undefined there; it needs sigma < 1 or theta <= 1 (or theta^2 < sigma^2 / (sigma^2 - 1))")
    return _delta_f(mu, sigma, jnp.asarray(theta))


def _delta_f(mu, sigma, theta):
    """:func:`delta_f` on arrays already checked."""
    s2 = jnp.square(sigma)
    t2 = jnp.square(theta)
    rho2 = t2 + s2 * (1.0 - t2)
    # -1/2 mu^2/s2 (1 - t2/rho2) written without the cancelling difference (exactly 0 at theta = 1 in float32)
    return -0.5 * jnp.log(rho2) - 0.5 * jnp.square(mu) * (1.0 - t2) / rho2


def delta_f_zero(mu, sigma):
    r""":math:`\Delta F(\lambda = 0) = -\tfrac12[\ln \sigma^2 + \mu^2/\sigma^2]`, eq. (19) at :math:`\theta = 0`.

    ``mu`` finite, ``sigma`` finite and > 0, broadcastable to each other (else :class:`ValueError`).
    """
    mu, sigma = _posterior(mu, sigma)
    return _delta_f_zero(mu, sigma)


def _delta_f_zero(mu, sigma):
    return -0.5 * (2.0 * jnp.log(sigma) + jnp.square(mu / sigma))


def _check_shapes(*named, fit=None):
    """The named arrays broadcast together (and, with ``fit``, to the shape of the array named ``fit``)."""
    shapes = {name: jnp.shape(value) for name, value in named}
    try:
        shape = np.broadcast_shapes(*shapes.values())
    except ValueError:
        raise ValueError("shapes that do not broadcast together: "
                         + ", ".join(f"{n} {s}" for n, s in shapes.items())) from None
    if fit is not None and shape != shapes[fit]:
        others = ", ".join(f"{n} {s}" for n, s in shapes.items() if n != fit)
        raise ValueError(f"{others} does not fit {fit} {shapes[fit]} (one value per weight)")
    return shape


def _numbers(name, value):
    """A concrete value as numpy numbers in the dtype the computation uses (JAX's: without x64 a float64 becomes
    float32, where 1e-50 is 0 and 1e300 infinite); None for a tracer. Checked on the host, so that nothing is added
    to a program being traced (inside jit, even a constant's ``jnp.asarray`` is a tracer)."""
    if traced(value):
        return None
    array = as_numbers(name, value)
    return array.astype(jax.dtypes.canonicalize_dtype(array.dtype), copy=False)


def _posterior(mu, sigma, *, prefix="", same_shape=False, numbers=False):
    """``mu``, ``sigma`` as JAX arrays after the front door's checks (values only when concrete); with ``numbers``
    also the checked numpy values (None for a tracer)."""
    names = (f"{prefix}mu", f"{prefix}sigma")
    m, s = _numbers(names[0], mu), _numbers(names[1], sigma)
    if m is not None:
        check_finite(names[0], m)
    if s is not None:
        check_positive(names[1], s)
    _check_shapes((names[0], mu), (names[1], sigma), fit=names[0] if same_shape else None)
    out = (jnp.asarray(mu), jnp.asarray(sigma))
    return (out, (m, s)) if numbers else out


def _theta(theta):
    """The checked numpy value of ``theta`` (None for a tracer)."""
    t = _numbers("theta", theta)
    if t is not None:
        check_positive("theta", t, allow_zero=True, what="the reduced prior's standard deviation; 0 is the spike")
    return t


def _check_fixed_point_args(alpha0, beta0, iters, keep):
    """alpha0, beta0 > 0 (Beta prior), iters a whole number >= 0, a known keep rule; as (float, float, int)."""
    check_keep(keep)
    return check_scalar("alpha0", alpha0), check_scalar("beta0", beta0), check_count("iters", iters)


def _layers(posterior, name="posterior"):
    """``{layer: {leaf: (mu, sigma)}}`` with every pair checked (values only when concrete)."""
    if not isinstance(posterior, Mapping):
        raise ValueError(f"{name} must be a mapping {{layer: {{leaf: (mu, sigma)}}}}, got {type(posterior).__name__}")
    out = {}
    for layer, leaves in posterior.items():
        if not isinstance(leaves, Mapping) or not leaves:
            raise ValueError(f"{name}[{layer!r}] must be a non-empty mapping {{leaf: (mu, sigma)}}, got {leaves!r}")
        out[layer] = {}
        for leaf, pair in leaves.items():
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"{name}[{layer!r}][{leaf!r}] must be a pair (mu, sigma), got {type(pair).__name__}")
            out[layer][leaf] = _posterior(*pair, prefix=f"{name}[{layer!r}][{leaf!r}] ", same_shape=True)
    return out


def _check_frozen(posterior, frozen):
    if isinstance(frozen, str):
        raise ValueError(f"frozen must be a collection of layer names, got the string {frozen!r} (write ({frozen!r},))")
    unknown = [f for f in frozen if f not in posterior]
    if unknown:
        raise ValueError(f"frozen names {unknown} that posterior does not have (its layers: {list(posterior)})")


def _fixed_point(df0, alpha0, beta0, iters):
    """q, alpha, beta of eq. (22) for one layer, given ΔF(λ=0) for each of its weights."""
    alpha = jnp.asarray(alpha0, df0.dtype)
    beta = jnp.asarray(beta0, df0.dtype)
    q = jnp.full_like(df0, 0.5)
    for _ in range(iters):
        zeta = digamma(alpha) - digamma(beta)
        q = jax.nn.sigmoid(zeta - df0)
        alpha = jnp.sum(q) + alpha0
        beta = jnp.sum(1.0 - q) + beta0
    return q, alpha, beta


def check_keep(keep: str) -> None:
    """Refuse a keep rule that is not one of :data:`KEEP_RULES`."""
    if keep not in KEEP_RULES:
        raise ValueError(f"keep rule must be one of {KEEP_RULES}, got {keep!r}")


def _keep_q(df0, alpha0, beta0, iters, keep):
    """Keep-probabilities whose ``>= 1/2`` is the keep rule ``keep`` (``q^{k_max+1}`` for ``"zeta"``)."""
    check_keep(keep)
    q, alpha, beta = _fixed_point(df0, alpha0, beta0, iters)
    if keep == "zeta":
        q = jax.nn.sigmoid(digamma(alpha) - digamma(beta) - df0)
    return q


def spike_and_slab(mu, sigma, alpha0: float = 1.0, beta0: float = 1.0, iters: int = 4, keep: str = "zeta"):
    r"""Posterior keep-probabilities of a spike-and-slab prior over one layer (eqs. 22-23).

    Let :math:`\alpha_0, \beta_0` denote ``alpha0``, ``beta0`` (the Beta prior over the layer's inclusion rate
    :math:`\pi_l`) and :math:`q_{ij}` the posterior probability that weight :math:`ij` stays
    (:math:`\lambda_{ij} = 1`). Starting from :math:`\alpha^0 = \alpha_0, \beta^0 = \beta_0`, for ``iters``
    iterations :math:`k`:

    .. math::
        \zeta^k = \psi(\alpha^k) - \psi(\beta^k), \quad
        q_{ij}^{k+1} = \sigma\!\left(\zeta^k - \Delta F(\lambda_{ij} = 0)\right), \quad
        \alpha^{k+1} = \textstyle\sum_{ij} q_{ij}^{k+1} + \alpha_0, \quad
        \beta^{k+1} = \textstyle\sum_{ij} (1 - q_{ij}^{k+1}) + \beta_0 .

    A weight is kept when :math:`q \ge 1/2` (eq. 23), i.e. when :math:`\Delta F(\lambda=0) \le \zeta`, with
    :math:`\zeta = \zeta^{k_{max}}` (``keep="zeta"``, the authors' code) or :math:`\zeta^{k_{max}-1}` (``keep="q"``). Because
    :math:`\zeta` is shared by the layer, a weight whose posterior equals its prior (:math:`\Delta F = 0`) is pruned
    in a layer where most weights are prunable (:math:`\zeta < 0`) and kept where most are kept.

    Args:
      mu: posterior means :math:`\mu` of the layer's weights (any shape; the layer is all of it).
      sigma: posterior standard deviations :math:`\sigma`, same shape.
      alpha0: :math:`\alpha_0` (default 1, the paper's).
      beta0: :math:`\beta_0` (default 1).
      iters: :math:`k_{max}`, number of fixed-point iterations (default 4, the paper's).
      keep: ``"zeta"`` or ``"q"``, the keep rule (see the module docstring).

    Returns:
      ``(q, keep)``: ``q`` the keep-probabilities (same shape as ``mu``): :math:`q^{k_{max}+1}` for
      ``keep="zeta"``, :math:`q^{k_{max}}` for ``keep="q"``; and the mask ``q >= 1/2`` (bool).
    """
    alpha0, beta0, iters = _check_fixed_point_args(alpha0, beta0, iters, keep)
    mu, sigma = _posterior(mu, sigma, same_shape=True)
    q = _keep_q(_delta_f_zero(mu, sigma), alpha0, beta0, iters, keep)
    return q, q >= 0.5


def spike_and_slab_layers(posterior, masks, *, alpha0: float = 1.0, beta0: float = 1.0, iters: int = 4,
                          keep: str = "zeta", frozen=()):
    r"""One BMR-S&S prune step over a whole network (eqs. 19-23), masks accumulating.

    Args:
      posterior: ``{layer: {leaf: (mu, sigma)}}`` posterior means and standard deviations of :math:`\hat w`.
      masks: ``{layer: {leaf: bool array}}`` current keep-masks (``True`` = still in the model).
      alpha0, beta0, iters, keep: as in :func:`spike_and_slab`.
      frozen: layer names that are never pruned (the output layer).

    Returns:
      ``(new_masks, q)``: ``new_masks = masks & (q >= 1/2)`` per leaf (unchanged for frozen layers) and the
      keep-probabilities ``q`` with the same structure. Already-pruned weights take part in :math:`\zeta` with
      their current posterior, as in the authors' code: once a weight is pinned at zero its :math:`q(\hat w)`
      relaxes back towards the prior :math:`\mathcal{N}(0, 1)` (:math:`\Delta F \to 0`), so it neither pushes
      :math:`\zeta` down (which would prune ever more in a ratchet) nor comes back (masks accumulate).
    """
    alpha0, beta0, iters = _check_fixed_point_args(alpha0, beta0, iters, keep)
    posterior = _layers(posterior)
    _check_frozen(posterior, frozen)
    _check_masks(posterior, masks)
    new_masks, qs = {}, {}
    for layer, leaves in posterior.items():
        if layer in frozen:
            new_masks[layer] = dict(masks[layer])
            qs[layer] = {k: jnp.ones_like(mu) for k, (mu, _) in leaves.items()}
            continue
        # one zeta per layer: its leaves (kernel and bias) are decided as one vector
        df0 = {k: _delta_f_zero(*pair) for k, pair in leaves.items()}
        qs[layer] = join_split(lambda d: _keep_q(d, alpha0, beta0, iters, keep), df0, xp=jnp)
        new_masks[layer] = {k: jnp.logical_and(jnp.asarray(masks[layer][k]), q >= 0.5) for k, q in qs[layer].items()}
    return new_masks, qs


def _check_masks(posterior, masks):
    """``masks`` has the posterior's layers and leaves, each of its leaf's shape."""
    if not isinstance(masks, Mapping):
        raise ValueError(f"masks must be a mapping {{layer: {{leaf: bool array}}}}, got {type(masks).__name__}")
    for layer, leaves in posterior.items():
        if layer not in masks or not isinstance(masks[layer], Mapping):
            raise ValueError(f"masks has no layer {layer!r} (posterior's layers: {list(posterior)}; masks': "
                             f"{list(masks)})")
        if set(masks[layer]) != set(leaves):
            raise ValueError(f"masks[{layer!r}] has leaves {sorted(masks[layer])}, posterior[{layer!r}] has "
                             f"{sorted(leaves)}")
        for leaf, (mu, _) in leaves.items():
            if jnp.shape(masks[layer][leaf]) != jnp.shape(mu):
                raise ValueError(f"masks[{layer!r}][{leaf!r}] has shape {jnp.shape(masks[layer][leaf])}, its posterior "
                                 f"mu {jnp.shape(mu)}")


def first_prune_fraction(posterior, frozen=(), *, iters=(1, 2, 4, 5, 8, 20, None), alpha0: float = 1.0,
                         beta0: float = 1.0, keep: str = "q", tol=1e-6, max_iters=10_000):
    r"""Fraction of weights one prune step removes, as a function of the number of fixed-point iterations.

    Args:
      posterior: ``{layer: {leaf: (mu, sigma)}}`` as for :func:`spike_and_slab_layers`.
      frozen: layer names left out (the output layer).
      iters: the :math:`k_{max}` values; ``None`` means iterate until :math:`\zeta` of every layer moves by less
        than ``tol`` (at most ``max_iters`` iterations).
      keep: keep rule (with ``"q"``, :math:`k_{max}` is the index of the :math:`q` tested; ``"zeta"`` tests one
        iteration further).

    Returns:
      ``{k: fraction}`` over all weights of the non-frozen layers (``"converged"`` for ``None``), each layer with
      its own :math:`\zeta`.
    """
    alpha0, beta0, _ = _check_fixed_point_args(alpha0, beta0, 0, keep)
    if isinstance(iters, (str, bytes)) or not hasattr(iters, "__iter__"):
        raise ValueError(f"iters must be a collection of k_max values (whole numbers >= 0, or None), got {iters!r}")
    iters = [None if k is None else check_count("iters[]", k) for k in iters]
    tol = check_scalar("tol", tol)
    max_iters = check_count("max_iters", max_iters, minimum=1)
    posterior = _layers(posterior)
    _check_frozen(posterior, frozen)
    dfs = []
    for layer, leaves in posterior.items():
        if layer in frozen:
            continue
        dfs.append(jnp.concatenate([jnp.ravel(_delta_f_zero(*leaves[k])) for k in leaves]))
    total = sum(int(d.size) for d in dfs)
    if total == 0:
        raise ValueError(f"posterior has no weights outside frozen {list(frozen)}: no fraction to compute")
    out = {}
    for k in iters:
        pruned = 0
        for df0 in dfs:
            if k is None:
                n = _converged_iters(df0, alpha0, beta0, tol, max_iters)
            else:
                n = k
            q = _keep_q(df0, alpha0, beta0, n, keep)
            pruned += int(jnp.sum(q < 0.5))
        out["converged" if k is None else int(k)] = pruned / total
    return out


def _converged_iters(df0, alpha0, beta0, tol, max_iters):
    """Number of iterations after which ζ moves by less than ``tol``."""
    alpha, beta = alpha0, beta0
    zeta = float(digamma(alpha) - digamma(beta))
    for k in range(1, max_iters + 1):
        q = jax.nn.sigmoid(zeta - df0)
        alpha, beta = float(jnp.sum(q)) + alpha0, float(jnp.sum(1.0 - q)) + beta0
        new = float(digamma(alpha) - digamma(beta))
        if abs(new - zeta) < tol:
            return k
        zeta = new
    raise RuntimeError(f"the spike-and-slab fixed point did not converge in {max_iters} iterations")
