"""BMR-S&S: the flat model (eq. 15) with a spike-and-slab prior pruned by Bayesian model reduction (eqs. 19-23).

Starts from the shared Flat-FF warm-up; before each of its epochs one BMR step prunes, in every layer but the
output layer, the weights whose reduced model (prior shrunk to zero) has the larger evidence; masks accumulate.
"""

from ._method import Method


def prune(ctx, params, masks, reference):
    """One BMR-S&S step (eqs. 19-23, :func:`bmrsparse.bmr.spike_and_slab_layers`) over every layer but the output
    layer, with the run's settings (alpha0, beta0, bmr_iters, bmr_keep); ``reference`` is unused."""
    from .. import bmr
    from ._model import layer_posteriors

    s = ctx.settings
    new, _ = bmr.spike_and_slab_layers(
        layer_posteriors(ctx.built, params), masks, alpha0=s.alpha0, beta0=s.beta0, iters=int(s.bmr_iters),
        keep=s.bmr_keep, frozen=(ctx.head,),
    )
    return new


METHOD = Method(
    name="bmr_ss",
    label="BMR-S&S",
    color="#2ca02c",
    prior="flat",
    guide="mean_field",
    learning_rate=1e-2,  # the authors' code's default for this method
    start="warmup",
    per_epoch=True,
    prune=prune,
    settings=("alpha0", "beta0", "bmr_iters", "bmr_keep"),
    order=40,
    description="stochastic BMR with a spike-and-slab prior, pruning before every epoch",
)
