r"""Mean-field guides: fully factorised Normal / LogNormal posteriors (eqs. 16, 18) and point estimates (MAP).

Every latent site gets a location ``<site>.loc`` and, for distributional guides, a scale ``<site>.scale``
(softplus-positive). Real sites: :math:`q = \mathcal{N}(\mu, \sigma^2)`; positive sites:
:math:`q = \mathcal{LN}(\mu, \sigma^2)`. Locations start uniform in :math:`[-2, 2]` (in units of the prior scale
for :math:`\hat w`, in log space for positive sites), scales at 0.1 -- the authors' initialisation (NumPyro's
``AutoNormal`` defaults). Point estimates start at the median of 15 prior draws (``AutoDelta``'s ``init_to_median``,
the authors' Flat-MAP).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from .. import _rng

INIT_RADIUS = 2.0
INIT_SCALE = 0.1


class Site(NamedTuple):
    """A latent variable of the model: name, shape, and whether it is positive (LogNormal posterior)."""

    name: str
    shape: tuple
    positive: bool = False


def _init_loc(shape, radius=INIT_RADIUS):
    return lambda key: jax.random.uniform(key, shape, minval=-radius, maxval=radius)


def standard_normal(key, shape):
    """``jax.random.normal(key, shape)``, computed once per step into its own buffer (the same numbers).

    On CPU by :func:`bmrsparse._rng.once`: otherwise XLA evaluates the draw's Threefry hash and inverse error function
    again in each of its consumers over every weight of the network, and the straight-line Threefry
    (:func:`bmrsparse._rng.straight_line_threefry`) would repeat its longer hash per consumer. Elsewhere an
    ``optimization_barrier`` (which GPU compilers keep).
    """
    if jax.default_backend() != "cpu":
        return jax.lax.optimization_barrier(jax.random.normal(key, shape))
    return _rng.once(key, lambda k: jax.random.normal(k, shape))


class _Normal(dist.Normal):
    r"""``Normal`` whose log-density at its own draw is computed from the standard draw :math:`\varepsilon`.

    The same draws as ``dist.Normal`` (same key, same ``jax.random.normal``). At the value
    :math:`\hat w = \mu + \sigma\varepsilon` it has just drawn, :meth:`log_prob` evaluates
    :math:`\log q(\hat w) = -\tfrac12\varepsilon^2 - \log\sigma - \tfrac12\log 2\pi` with :math:`\varepsilon`
    held constant, instead of re-deriving :math:`(\hat w - \mu)/\sigma`. Value and gradient are those of the
    reparameterised estimator, exactly: :math:`\partial_\mu \log q(\mu + \sigma\varepsilon; \mu, \sigma) = 0`
    and :math:`\partial_\sigma = -1/\sigma` (the score and the path terms cancel analytically, where the generic
    formula summed them in floating point; the results differ in the last digits). It spares the ELBO one division
    and two passes over every weight, and leaves the expensive :math:`\varepsilon` (inverse error function of the
    random bits) with two consumers, which XLA on CPU otherwise recomputes in each. Any other value takes the
    generic formula.
    """

    def sample(self, key, sample_shape=()):
        eps = standard_normal(key, sample_shape + self.batch_shape + self.event_shape)
        value = self.loc + eps * self.scale
        self._draw = (value, eps)
        return value

    def log_prob(self, value):
        draw = getattr(self, "_draw", None)
        if draw is None or draw[0] is not value:
            return super().log_prob(value)
        eps = jax.lax.stop_gradient(draw[1])
        return -0.5 * eps**2 - jnp.log(self.scale) - 0.5 * jnp.log(2 * jnp.pi)


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


#: Prior draws whose median starts a point-mass guide (NumPyro's ``init_to_median`` default).
MEDIAN_DRAWS = 15


def _init_median(site: Site, prior, draws: int = MEDIAN_DRAWS):
    """Location of ``site`` at the median of ``draws`` draws from the prior (log of it for positive sites)."""

    def init(key):
        def one(k):
            with numpyro.handlers.block():  # the prior's sites stay out of the guide's trace
                trace = numpyro.handlers.trace(numpyro.handlers.seed(prior, k)).get_trace()
            return trace[site.name]["value"]

        median = jnp.median(jax.vmap(one)(jax.random.split(key, draws)), axis=0)
        return jnp.log(median) if site.positive else median

    return init


def point(sites: list[Site], *, init_radius: float = INIT_RADIUS, prior=None):
    """A point-mass guide (MAP): ``Delta`` at ``loc`` (``exp(loc)`` for positive sites).

    With ``prior`` (a function that samples every site from the prior, e.g. the model's weight sampler), locations
    start at the median of :data:`MEDIAN_DRAWS` prior draws per element: NumPyro's ``AutoDelta`` default
    (``init_to_median``), which the authors' Flat-MAP uses. Without it, uniform in ``[-init_radius, init_radius]``.
    """

    def guide(*args, **kwargs):
        for s in sites:
            init = _init_loc(s.shape, init_radius) if prior is None else _init_median(s, prior)
            loc = numpyro.param(f"{s.name}.loc", init)
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
