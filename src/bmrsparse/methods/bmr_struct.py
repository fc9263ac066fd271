r"""Structured BMR-S&S (beyond the paper): Bayesian model reduction that removes whole units and channels.

BMR-S&S (:mod:`~bmrsparse.methods.bmr_ss`) removes single weights; the zeros then sit in dense matrices and the
network runs exactly as fast as before. This method removes *groups*: the unit of removal is an output unit of a
dense or convolutional layer below the output layer -- an MLP hidden neuron (its column of the kernel and its bias)
or a convolution's output channel (its filter and its bias). A removed group leaves a unit whose pre-activation is
exactly zero, so the unit and the matching inputs of the next layer can be cut out of the network
(:mod:`bmrsparse.compact`). Everything else is BMR-S&S: the same flat model, the same Flat-FF warm-up, five
epochs, one prune step before each, the same keep rule (``training.bmr_keep``) and fixed-point iterations
(``training.bmr_iters``), masks accumulating. The output layer's units are never removed; layers without units
(LayerNorm, position embeddings of the Mixer and ViT) are never pruned.

Derivation
----------
A weight :math:`\hat w_i` has prior :math:`p(\hat w_i) = \mathcal{N}(0, 1)` and, under the fully factorised
posterior (eq. 16), :math:`q(\hat w_i) = \mathcal{N}(\mu_i, \sigma_i^2)`, independent of every other weight.
BMR (eq. 19) gives the change in log evidence when the prior of a set :math:`g` of weights is replaced by the
reduced prior :math:`\tilde p`:

.. math::
    \Delta F_g = \ln E_{q}\Big[\prod_{i \in g} \frac{\tilde p(\hat w_i)}{p(\hat w_i)}\Big]
               = \ln \prod_{i \in g} E_{q(\hat w_i)}\Big[\frac{\tilde p(\hat w_i)}{p(\hat w_i)}\Big]
               = \sum_{i \in g} \Delta F_i ,

because the expectation of a product of functions of independent variables is the product of their
expectations. Removing the group is the reduced prior :math:`\tilde p(\hat w_i) = \delta(\hat w_i)` for every
:math:`i \in g` (eq. 19 at :math:`\theta = 0`), so

.. math::
    \Delta F_g(\lambda_g = 0) = \sum_{i \in g} -\tfrac12\big[\ln \sigma_i^2 + \mu_i^2/\sigma_i^2\big].

The spike-and-slab prior of eq. (13) is put on groups instead of weights: :math:`\lambda_g \sim
\mathrm{Bernoulli}(\pi_l)` shared by all weights of group :math:`g` in layer :math:`l`, :math:`\pi_l \sim
\mathrm{Beta}(\alpha_0, \beta_0)`. The derivation of eqs. (20-22) goes through with the group as the unit (each
group contributes one Bernoulli factor whose log-odds carry :math:`-\Delta F_g(\lambda_g = 0)`), so the fixed
point is eq. (22) over the groups of a layer:

.. math::
    \zeta^k = \psi(\alpha^k) - \psi(\beta^k), \quad
    q_g^{k+1} = \sigma\big(\zeta^k - \Delta F_g(\lambda_g = 0)\big), \quad
    \alpha^{k+1} = \textstyle\sum_g q_g^{k+1} + \alpha_0, \quad
    \beta^{k+1} = \textstyle\sum_g (1 - q_g^{k+1}) + \beta_0 ,

and a group stays when its keep-probability is at least 1/2 (eq. 23, with the keep rule of
:mod:`bmrsparse.bmr`). The layer's :math:`\pi_l` now counts groups, not weights.

Already-removed groups take part in :math:`\zeta` with their current posterior, as in BMR-S&S: a pinned weight's
:math:`q(\hat w)` relaxes back to the prior (:math:`\Delta F \to 0`).

Inputs of removed units (option ``group_inputs``)
-------------------------------------------------
Once a unit of layer :math:`l-1` is removed its output is :math:`f(0) = 0` (swish and tanh; pooling keeps a zero
map zero), so the weights of layer :math:`l` that read it no longer enter the likelihood: their exact posterior is
the prior and their exact :math:`\Delta F_i(\lambda = 0)` is 0. Their *fitted* :math:`q(\hat w_i)` relaxes to
the prior only as fast as the optimiser moves it, and until then it still adds its old :math:`\Delta F_i` to the
sum of the unit that holds it -- negative (keeping a unit for weights that read zeros) or positive.
``group_inputs="all"`` (the default, the method as specified) sums every weight of the group;
``group_inputs="live"`` uses the exact value 0 for the weights that read a removed unit or channel (the group's
other weights are summed as before). The two differ only from the second prune step on, and only for networks
that are a chain of dense/convolutional layers (the MLP and LeNet-5, :func:`bmrsparse.compact.compact_networks`).
"""

from __future__ import annotations

from ._method import Method

__all__ = ["METHOD", "GROUP_INPUTS", "group_delta_f", "group_keep", "live_inputs", "structured_prune"]

#: What a group's ΔF sums (``group_inputs``): every weight of the group, or only those that read a unit or channel
#: of the previous layer that is still in the network (see the module docstring).
GROUP_INPUTS = ("all", "live")


def group_delta_f(leaves, theta=0.0, live=None):
    r""":math:`\Delta F_g(\theta)` of every group (output unit) of one dense/conv layer: the sum over the group's
    weights (its kernel column or filter, and its bias) of eq. (19).

    Args:
      leaves: ``{"kernel": (mu, sigma), "bias": (mu, sigma)}`` of :math:`q(\hat w)`; the kernel's last axis and
        the bias index the output units.
      theta: reduced prior standard deviation; 0 (default) removes the group.
      live: optional bool vector over the kernel's input axis (its second-to-last); the weights of inputs marked
        ``False`` count with :math:`\Delta F_i = 0` (they read a removed unit, so the reduction changes nothing).

    Returns:
      A vector with one :math:`\Delta F_g` per output unit (positive: removing the unit is the better model).
    """
    import jax.numpy as jnp

    from .. import bmr

    if set(leaves) != {"kernel", "bias"}:
        raise ValueError(f"a group is a kernel's output unit and its bias; got leaves {sorted(leaves)}")

    def df(mu, sigma):
        return bmr.delta_f_zero(mu, sigma) if float(theta) == 0.0 else bmr.delta_f(mu, sigma, theta)

    mu_k, sigma_k = leaves["kernel"]
    mu_b, sigma_b = leaves["bias"]
    units = jnp.shape(mu_b)[-1]
    if jnp.shape(mu_k)[-1] != units:
        raise ValueError(f"kernel {jnp.shape(mu_k)} and bias {jnp.shape(mu_b)} disagree on the number of units")
    df_k = df(mu_k, sigma_k)
    if live is not None:
        if jnp.ndim(mu_k) < 2 or jnp.shape(live) != (jnp.shape(mu_k)[-2],):
            raise ValueError(f"live must be a vector over the kernel's inputs {jnp.shape(mu_k)[-2:-1]}, "
                             f"got shape {jnp.shape(live)}")
        df_k = jnp.where(jnp.asarray(live, bool)[:, None], df_k, 0.0)
    kernel = jnp.reshape(df_k, (-1, units)).sum(axis=0)
    return kernel + jnp.reshape(df(mu_b, sigma_b), (units,))


def group_keep(df_groups, *, alpha0=1.0, beta0=1.0, iters=4, keep="zeta"):
    """Keep-probabilities of one layer's groups by the fixed point of eq. (22) over groups, and the mask ``q >= 1/2``
    (keep rule ``keep`` as in :func:`bmrsparse.bmr.spike_and_slab`)."""
    import jax.numpy as jnp

    from .. import bmr

    q = bmr._keep_q(jnp.asarray(df_groups), float(alpha0), float(beta0), int(iters), keep)
    return q, q >= 0.5


def live_inputs(masks, layers):
    """``{layer: bool vector}`` over each dense/conv layer's kernel inputs: ``False`` where the input is a unit or
    channel of the previous layer that is removed (its kernel entries and bias all pruned, so it outputs f(0) = 0).

    Only for a chain of dense/conv layers in forward order (MLP, LeNet-5); a dense layer after a convolution reads
    the flattened ``[H, W, C]`` map, channel fastest. The first layer's inputs (the image) are all live.
    """
    import jax.numpy as jnp

    if any(layer.kind not in ("dense", "conv") for layer in layers):
        raise ValueError("group_inputs='live' needs a network that is a chain of dense/conv layers (MLP, LeNet-5); "
                         f"got layers of kinds {sorted({layer.kind for layer in layers})}")
    out, previous = {}, None
    for layer in layers:
        rows = dict(layer.shapes)["kernel"][-2]
        if previous is None:
            out[layer.name] = jnp.ones((rows,), bool)
        else:
            m = masks[previous]
            kernel = jnp.asarray(m["kernel"])
            alive = jnp.logical_or(jnp.asarray(m["bias"]), kernel.reshape(-1, kernel.shape[-1]).any(axis=0))
            if rows % alive.shape[0]:
                raise ValueError(f"layer {layer.name!r} has {rows} inputs, not a multiple of the {alive.shape[0]} "
                                 f"units of {previous!r}")
            out[layer.name] = jnp.tile(alive, rows // alive.shape[0])  # flattened [H, W, C]: channel fastest
        previous = layer.name
    return out


def structured_prune(posterior, masks, layers, head, *, alpha0=1.0, beta0=1.0, iters=4, keep="zeta",
                     group_inputs="all"):
    """One structured BMR-S&S step over a network: ``{layer: {leaf: bool}}`` new keep-masks (accumulating).

    Args:
      posterior: ``{layer: {leaf: (mu, sigma)}}`` (:func:`bmrsparse.methods.layer_posteriors`).
      masks: current keep-masks, same structure.
      layers: the network's :class:`~bmrsparse.methods.Layer` list; dense/conv layers other than ``head`` are
        pruned by groups, the rest kept as they are.
      head: the output layer's name (never pruned).
      group_inputs: ``"all"`` (default: a group's ΔF sums all its weights) or ``"live"`` (the weights reading a
        removed unit count 0; see the module docstring).
    """
    import jax.numpy as jnp

    from .. import bmr

    bmr.check_keep(keep)
    if group_inputs not in GROUP_INPUTS:
        raise ValueError(f"group_inputs must be one of {GROUP_INPUTS}, got {group_inputs!r}")
    live = live_inputs(masks, layers) if group_inputs == "live" else {}
    kinds = {layer.name: layer.kind for layer in layers}
    new = {}
    for name, leaves in posterior.items():
        if name == head or kinds.get(name) not in ("dense", "conv"):
            new[name] = dict(masks[name])
            continue
        df = group_delta_f(leaves, live=live.get(name))
        _, kept = group_keep(df, alpha0=alpha0, beta0=beta0, iters=iters, keep=keep)
        new[name] = {
            "kernel": jnp.logical_and(jnp.asarray(masks[name]["kernel"]), kept),  # broadcast over the last axis
            "bias": jnp.logical_and(jnp.asarray(masks[name]["bias"]), kept),
        }
    return new


def prune(ctx, params, masks, reference):
    """One structured BMR-S&S step with the run's settings (alpha0, beta0, bmr_iters, bmr_keep, bmr_group_inputs)."""
    from ._model import layer_posteriors

    s = ctx.settings
    return structured_prune(layer_posteriors(ctx.built, params), masks, ctx.built.layers, ctx.head,
                            alpha0=s.alpha0, beta0=s.beta0, iters=int(s.bmr_iters), keep=s.bmr_keep,
                            group_inputs=s.bmr_group_inputs)


METHOD = Method(
    name="bmr_struct",
    label="Structured BMR-S&S",
    color="#17becf",
    prior="flat",
    guide="mean_field",
    learning_rate=1e-2,  # BMR-S&S's
    start="warmup",
    per_epoch=True,
    prune=prune,
    structured=True,
    settings=("alpha0", "beta0", "bmr_iters", "bmr_keep"),
    order=45,
    description="BMR with a spike-and-slab prior over whole units and channels, pruning before every epoch",
)
