r"""BMR-RHS (the authors' hierarchical BMR): reduce the flat posterior to the regularised horseshoe, prune units.

The authors' code (bmr4pml, ``BMRRegression`` with ``pruning="regularised-horseshoe"`` and ``reduced=True``: its
``rh_model`` and ``prune_regularised_horseshoe``) has a second kind of BMR besides the spike-and-slab of the paper.
It keeps the flat model's fully factorised posterior :math:`q(\hat w_{ijl}) = \mathcal{N}(\mu, \sigma^2)` (fitted
under the prior :math:`\mathcal{N}(0, 1)`) and asks which prior scales :math:`\gamma_{il}` of the regularised
horseshoe (eq. 17, one local scale per output unit :math:`i`) explain it best, with Bayesian model reduction as the
likelihood: the evidence of the reduced prior :math:`\hat w_{ijl} \sim \mathcal{N}(0, \gamma_{il}^2)` relative to the
flat one is eq. (19) summed over the unit's weights,

.. math::
    \ln p(\mathcal{D} \mid \gamma_{\cdot l}) - \ln p(\mathcal{D} \mid \text{flat}) \approx
    \sum_i G_{il}(\gamma_{il}^2), \qquad
    G_{il}(\gamma^2) = \sum_{j} \Delta F(\mu_{ijl}, \sigma_{ijl}; \theta = \gamma) ,

and the hyperprior of eq. (17) in the authors' non-centred form (``SVIRegression.hyperprior``):
:math:`c_l^{-2} \sim \Gamma(2, 6)`, a global scale :math:`\tau_0^2 z_0 / z_1` with :math:`z_0, z_1 \sim
\Gamma(\tfrac12, 1)`, a local scale :math:`v_{il} / u_{il}` with :math:`u_{il}, v_{il} \sim \Gamma(\tfrac12, 1)`, and
:math:`\gamma_{il}^{-2} = u_{il} z_1 / (\tau_0^2 z_0 v_{il}) + c_l^{-2}`. These scale variables get a mean-field
LogNormal posterior fitted by SVI (NumPyro's ``AutoNormal``: locations uniform in [-2, 2] in log space, scales 0.1),
:data:`FIT_STEPS` steps of AdaBelief at the method's learning rate with :data:`PARTICLES` draws per step, steps with
a non-finite loss skipped (the authors' ``stable_update``); the fit starts afresh at every prune. A unit is pinned
when its effective scale :math:`(E_q[\gamma_{il}^{-2}])^{-1/2}` falls below :data:`THRESHOLD` (1e-6): its kernel
column and bias get the keep-mask 0, as BMR-S&S pins weights (:math:`\lambda = 10^{-12}`); masks accumulate; then
it trains on as BMR-S&S does (the flat model, five epochs of (prune, train) after the shared warm-up).

Where this follows the authors' code: the hyperpriors, ``tau0`` (the setting, 1e-2), one local scale per unit
(``reduced=True``, the authors' BMR-RHS configuration), 5000 fit steps of 16 particles at the BMR learning rate,
the threshold 1e-6 on :math:`(E[\gamma^{-2}])^{-1/2}`, a fresh fit at each prune, units of the output layer never
pruned. Where not, and why:

- The authors replace every kept weight's prior scale by its fitted :math:`\gamma` and train on under that prior
  (``self.gamma[name] = gamma``). In their non-centred model (:math:`w = c\,\gamma\,\hat w`) that rescales the kept
  weights of the network without moving :math:`q(\hat w)`, i.e. it changes the network's function at every prune.
  Here kept weights keep the flat prior, as in BMR-S&S; only what falls below the threshold is pinned.
- :math:`E[\gamma^{-2}]` is computed exactly from the LogNormal moments (the authors average 1000 draws).
- :math:`G_{il}` is a function of one number per unit; it is tabulated once per prune on a grid of
  :math:`\ln\gamma^2` (:data:`GRID`) with its derivative and read by cubic Hermite interpolation, so a fit step costs
  a few operations per unit instead of a pass over every weight per particle (the authors evaluate the sum directly).
  Outside the grid :math:`\ln \gamma^2` is clamped: below it :math:`G` is flat to within :math:`e^{-40}`.
- A weight whose posterior is not narrower than its prior (:math:`\sigma \ge 1`) contributes 0 (a flat
  likelihood). Read as a likelihood, :math:`q/p` of such a weight has a precision :math:`\sigma^{-2} - 1 \le 0`:
  eq. (19) is undefined for :math:`\gamma^2 \ge \sigma^2/(\sigma^2 - 1)` and tends to :math:`+\infty` below that
  bound (the authors' fit returns NaN there and skips the step), and at :math:`\sigma = 1` it grows as
  :math:`\tfrac12\mu^2\gamma^2` without bound; a few such weights in a unit would drive its scale to the top of
  the grid.
- The output layer's scale is not fitted: its factor of the joint is independent of the other layers' and it is
  never pruned.
"""

from __future__ import annotations

import math

from ._registry import Method

__all__ = ["METHOD", "FIT_STEPS", "PARTICLES", "THRESHOLD", "GRID", "row_delta_f", "row_tables", "interpolate",
           "fit_scales", "rhs_prune"]

#: SVI steps of each fit (the authors' ``num_iters`` default).
FIT_STEPS = 5000
#: Monte-Carlo draws per fit step (the authors' ``num_particles``).
PARTICLES = 16
#: A unit is pinned when :math:`(E[\gamma^{-2}])^{-1/2}` is below this (the authors' ``delta``).
THRESHOLD = 1e-6
#: The tabulation grid of :math:`s = \ln \gamma^2`: first point, last point, spacing.
GRID = (-40.0, 12.0, 0.25)


def row_delta_f(leaves, log_gamma2):
    r""":math:`G_i(\gamma_i^2)` of every output unit of one dense/conv layer: eq. (19) summed over the unit's weights
    (kernel column and bias) for the reduced prior :math:`\mathcal{N}(0, \gamma_i^2)`; weights with
    :math:`\sigma \ge 1` contribute 0 (see the module docstring).

    Args:
      leaves: ``{"kernel": (mu, sigma), "bias": (mu, sigma)}``; the kernel's last axis and the bias index the units.
      log_gamma2: :math:`\ln \gamma^2`, a scalar or one value per unit.
    """
    import jax.numpy as jnp

    from .. import bmr

    theta = jnp.exp(0.5 * jnp.asarray(log_gamma2))
    (mu_k, sigma_k), (mu_b, sigma_b) = leaves["kernel"], leaves["bias"]
    units = jnp.shape(mu_b)[-1]

    def df(mu, sigma):  # a weight whose q is not narrower than its prior carries no information: 0
        informative = sigma < 1.0
        return jnp.where(informative, bmr.delta_f(mu, jnp.where(informative, sigma, 0.5), theta), 0.0)

    df_k, df_b = df(mu_k, sigma_k), df(mu_b, sigma_b)
    return jnp.reshape(df_k, (-1, units)).sum(axis=0) + jnp.reshape(df_b, (units,))


def row_tables(leaves, grid=GRID):
    """``(values, slopes)``, each ``[K, units]``: :func:`row_delta_f` and its derivative in :math:`\\ln\\gamma^2` at
    the ``K`` points of ``grid``."""
    import jax
    import jax.numpy as jnp

    start, stop, step = grid
    points = jnp.arange(int(round((stop - start) / step)) + 1, dtype=jnp.float32) * step + start

    def at(s):
        return jax.jvp(lambda t: row_delta_f(leaves, t), (s,), (jnp.ones_like(s),))

    return jax.lax.map(at, points)


def interpolate(tables, s, grid=GRID):
    """Cubic Hermite interpolation of ``tables`` (:func:`row_tables`) at ``s`` (one :math:`\\ln\\gamma^2` per unit,
    any leading axes), clamped to the grid."""
    import jax.numpy as jnp

    values, slopes = tables
    start, stop, step = grid
    k_max = values.shape[0] - 2
    x = (jnp.clip(s, start, stop) - start) / step
    k = jnp.clip(jnp.floor(x), 0, k_max).astype(jnp.int32)
    u = x - k
    cols = jnp.arange(values.shape[1])
    g0, g1 = values[k, cols], values[k + 1, cols]
    d0, d1 = slopes[k, cols] * step, slopes[k + 1, cols] * step
    u2, u3 = u * u, u * u * u
    return (2 * u3 - 3 * u2 + 1) * g0 + (u3 - 2 * u2 + u) * d0 + (3 * u2 - 2 * u3) * g1 + (u3 - u2) * d1


def _gamma_log_density(y, a, b):
    """Log density of :math:`\\ln x` for :math:`x \\sim \\Gamma(a, b)` (rate ``b``), at ``y = ln x``."""
    import jax.numpy as jnp

    return a * y - b * jnp.exp(y) + a * math.log(b) - math.lgamma(a)


def fit_scales(tables: dict, key, *, tau0=1e-2, learning_rate=1e-2, steps=FIT_STEPS, particles=PARTICLES,
               grid=GRID):
    """Fit the regularised horseshoe's scales to tabulated unit likelihoods by SVI (see the module docstring).

    Args:
      tables: ``{layer: (values, slopes)}`` from :func:`row_tables` on ``grid``.
      key: PRNG key (initial locations and the Monte-Carlo draws).
      tau0, learning_rate, steps, particles: :math:`\tau_0`, AdaBelief's step size, fit steps, draws per step.

    Returns:
      ``(inv_gamma2, losses)``: ``{layer: E_q[gamma^-2] per unit}`` and the negative ELBO of every step.

    The layers are independent factors of the joint; they are fitted as one vector of units (``u``, ``v``) and one
    of layers (``c``, ``z0``, ``z1``), each unit reading its layer's entries.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    names = list(tables)
    counts = [int(tables[n][0].shape[1]) for n in names]
    layer_of = jnp.asarray(np.repeat(np.arange(len(names)), counts))
    values = jnp.concatenate([tables[n][0] for n in names], axis=1)
    slopes = jnp.concatenate([tables[n][1] for n in names], axis=1)
    sizes = {"c": len(names), "z0": len(names), "z1": len(names), "u": sum(counts), "v": sum(counts)}
    priors = {"c": (2.0, 6.0), "z0": (0.5, 1.0), "z1": (0.5, 1.0), "u": (0.5, 1.0), "v": (0.5, 1.0)}
    init_keys = dict(zip(sizes, jax.random.split(jax.random.fold_in(key, 0), len(sizes))))
    raw_scale = math.log(math.expm1(0.1))  # softplus^-1(0.1): scales start at 0.1, as NumPyro's AutoNormal
    params = {"loc": {v: jax.random.uniform(init_keys[v], (n,), minval=-2.0, maxval=2.0) for v, n in sizes.items()},
              "scale": {v: jnp.full((n,), raw_scale) for v, n in sizes.items()}}
    log_tau0_2 = 2.0 * math.log(tau0)

    def loss(params, key):
        keys = dict(zip(sizes, jax.random.split(key, len(sizes))))
        y, elbo = {}, 0.0
        for var, (a, b) in priors.items():
            m, scale = params["loc"][var], jax.nn.softplus(params["scale"][var])
            eps = jax.random.normal(keys[var], (particles,) + m.shape)
            y[var] = m + scale * eps
            log_q = -0.5 * eps**2 - jnp.log(scale) - 0.5 * math.log(2 * math.pi)
            elbo = elbo + jnp.mean(jnp.sum(_gamma_log_density(y[var], a, b) - log_q, axis=-1))
        # gamma^-2 = u z1 / (tau0^2 z0 v) + c^-2, per unit, with its layer's c, z0, z1
        a = y["u"] - y["v"] + (y["z1"] - y["z0"])[:, layer_of] - log_tau0_2
        s = -jnp.logaddexp(a, y["c"][:, layer_of])
        return -(elbo + jnp.mean(jnp.sum(interpolate((values, slopes), s, grid), axis=-1)))

    opt = optax.adabelief(learning_rate)

    def step(carry, key):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params, key)
        updates, new_state = opt.update(grads, state, params)
        finite = [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]
        ok = jnp.isfinite(value) & jnp.all(jnp.stack(finite))  # the authors' stable_update: skip such a step
        keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        return (jax.tree.map(keep, optax.apply_updates(params, updates), params),
                jax.tree.map(keep, new_state, state)), value

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)),
                                       jax.random.split(jax.random.fold_in(key, 1), int(steps)))
    m = params["loc"]
    s2 = {v: jax.nn.softplus(params["scale"][v]) ** 2 for v in sizes}

    def moment(var, k):  # E[x^k] of x ~ LogNormal(m, s2)
        return jnp.exp(k * m[var] + 0.5 * k * k * s2[var])

    per_layer = moment("z1", 1) * moment("z0", -1) / tau0**2
    inv = moment("u", 1) * moment("v", -1) * per_layer[layer_of] + moment("c", 1)[layer_of]
    bounds = np.cumsum([0] + counts)
    return {n: inv[bounds[i]:bounds[i + 1]] for i, n in enumerate(names)}, losses


def rhs_prune(posterior, masks, layers, head, key, *, tau0=1e-2, learning_rate=1e-2, steps=FIT_STEPS,
              particles=PARTICLES, threshold=THRESHOLD, grid=GRID):
    """One BMR-RHS prune step: fit the scales to ``posterior`` and pin the units whose effective scale
    :math:`(E[\\gamma^{-2}])^{-1/2}` is below ``threshold``. Returns the new keep-masks (accumulating).

    Args:
      posterior: ``{layer: {leaf: (mu, sigma)}}`` (:func:`bmrsparse.methods.layer_posteriors`).
      masks: current keep-masks, same structure.
      layers: the network's :class:`~bmrsparse.methods.Layer` list; dense/conv layers other than ``head`` are fitted
        and pruned by units, the rest kept as they are.
      head: the output layer's name.
      key: PRNG key of the fit.
    """
    import jax.numpy as jnp

    pruned = [l.name for l in layers if l.kind in ("dense", "conv") and l.name != head]
    tables = {name: row_tables(posterior[name], grid) for name in pruned}
    inv_gamma2, _ = fit_scales(tables, key, tau0=tau0, learning_rate=learning_rate, steps=steps,
                               particles=particles, grid=grid)
    new = {name: dict(leaves) for name, leaves in masks.items()}
    for name in pruned:
        kept = inv_gamma2[name] <= 1.0 / threshold**2  # (E[gamma^-2])^-1/2 >= threshold
        new[name] = {"kernel": jnp.logical_and(jnp.asarray(masks[name]["kernel"]), kept),
                     "bias": jnp.logical_and(jnp.asarray(masks[name]["bias"]), kept)}
    return new


def prune(ctx, params, masks, reference):
    """One BMR-RHS step with the run's ``tau0`` and the method's learning rate, keyed by the prune key."""
    from ..settings import learning_rate
    from ._model import layer_posteriors

    s = ctx.settings
    return rhs_prune(layer_posteriors(ctx.built, params), masks, ctx.built.layers, ctx.head, ctx.key,
                     tau0=float(s["tau0"]), learning_rate=learning_rate(s, "bmr_rhs"))


METHOD = Method(
    name="bmr_rhs",
    label="BMR-RHS",
    color="#8c564b",
    prior="flat",
    guide="mean_field",
    learning_rate=1e-2,  # BMR-S&S's, as the authors' code (its horseshoe fit uses the same optimiser)
    start="warmup",
    per_epoch=True,
    prune=prune,
    structured=True,
    settings=("tau0",),
    order=44,
    description="the authors' hierarchical BMR: regularised-horseshoe unit scales fitted to the flat posterior, "
                "units pinned below 1e-6",
)
