r"""Mean-field guides: fully factorised Normal / LogNormal posteriors (eqs. 16, 18) and point estimates (MAP).

Every latent site gets a location ``<site>.loc`` and, for distributional guides, a scale ``<site>.scale``
(softplus-positive). Real sites: :math:`q = \mathcal{N}(\mu, \sigma^2)`; positive sites:
:math:`q = \mathcal{LN}(\mu, \sigma^2)`. Locations start uniform in :math:`[-2, 2]` (in units of the prior scale
for :math:`\hat w`, in log space for positive sites), scales at 0.1 -- the authors' initialisation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

INIT_RADIUS = 2.0
INIT_SCALE = 0.1


class Site(NamedTuple):
    """A latent variable of the model: name, shape, and whether it is positive (LogNormal posterior)."""

    name: str
    shape: tuple
    positive: bool = False


def _init_loc(shape, radius=INIT_RADIUS):
    return lambda key: jax.random.uniform(key, shape, minval=-radius, maxval=radius)


class _Normal(dist.Normal):
    """``Normal`` whose standard draws are computed once per step.

    The same draws as ``dist.Normal`` (same key, same ``jax.random.normal``), but kept as one array
    (``optimization_barrier``): otherwise XLA fuses the inverse-error-function transform of the uniform bits into
    every consumer of the sample (the weights, the gradients of location and scale), and the MLP's Flat-FF step
    evaluated it about eight times over all ~10^6 weights.
    """

    def sample(self, key, sample_shape=()):
        eps = jax.random.normal(key, shape=sample_shape + self.batch_shape + self.event_shape)
        return self.loc + jax.lax.optimization_barrier(eps) * self.scale


def mean_field(sites: list[Site], *, init_radius: float = INIT_RADIUS, init_scale: float = INIT_SCALE):
    """The fully factorised guide of eqs. (16) and (18) over ``sites``."""

    def guide(*args, **kwargs):
        for s in sites:
            loc = numpyro.param(f"{s.name}.loc", _init_loc(s.shape, init_radius))
            scale = numpyro.param(
                f"{s.name}.scale", jnp.full(s.shape, init_scale), constraint=constraints.softplus_positive
            )
            base = dist.LogNormal(loc, scale) if s.positive else _Normal(loc, scale)
            numpyro.sample(s.name, base.to_event(len(s.shape)))

    return guide


def point(sites: list[Site], *, init_radius: float = INIT_RADIUS):
    """A point-mass guide (MAP): ``Delta`` at ``loc`` (``exp(loc)`` for positive sites)."""

    def guide(*args, **kwargs):
        for s in sites:
            loc = numpyro.param(f"{s.name}.loc", _init_loc(s.shape, init_radius))
            value = jnp.exp(loc) if s.positive else loc
            numpyro.sample(s.name, dist.Delta(value, event_dim=len(s.shape)))

    return guide


def sample_latents(sites: list[Site], params: dict, key, *, point_estimate: bool):
    """One posterior draw of every latent site, from (constrained) guide ``params``."""
    out = {}
    keys = jax.random.split(key, len(sites))
    for s, k in zip(sites, keys):
        loc = params[f"{s.name}.loc"]
        if point_estimate:
            z = loc
        else:
            z = loc + params[f"{s.name}.scale"] * jax.random.normal(k, loc.shape, loc.dtype)
        out[s.name] = jnp.exp(z) if s.positive else z
    return out


def posterior_mean_latents(sites: list[Site], params: dict, *, point_estimate: bool):
    """Posterior means of every latent site (LogNormal mean :math:`e^{\\mu + \\sigma^2/2}` for positive sites)."""
    out = {}
    for s in sites:
        loc = params[f"{s.name}.loc"]
        if s.positive:
            out[s.name] = jnp.exp(loc if point_estimate else loc + 0.5 * params[f"{s.name}.scale"] ** 2)
        else:
            out[s.name] = loc
    return out
