r"""Signal-to-noise pruning at BMR-S&S's per-layer sparsity (Graves 2011; Blundell et al. 2015).

As :mod:`~bmrsparse.methods.magnitude_ss` -- from the shared Flat-FF warm-up, before each epoch as many weights
per layer as BMR-S&S has pruned there at the same epoch (read from its state of that epoch), never the output
layer, then an epoch of training as BMR-S&S -- but the weights removed are those with the lowest signal-to-noise
ratio :math:`|\mu| / \sigma` of :math:`q(\hat w) = \mathcal{N}(\mu, \sigma^2)`.
"""

from __future__ import annotations

from ._method import Method
from .magnitude_ss import matched_prune

__all__ = ["METHOD", "snr"]


def snr(mu, sigma):
    """Score of a weight (lower = pruned first): :math:`|\\mu| / \\sigma` of :math:`q(\\hat w)`."""
    import jax.numpy as jnp

    return jnp.abs(mu) / sigma


METHOD = Method(
    name="snr_ss",
    label="SNR (BMR sparsity)",
    color="#8c564b",
    prior="flat",
    guide="mean_field",
    learning_rate=1e-2,  # BMR-S&S's
    start="warmup",
    per_epoch=True,
    prune=matched_prune(snr),
    reference="bmr_ss",
    order=60,
    description="prunes BMR-S&S's per-layer counts by smallest |mu|/sigma of q(w_hat), then trains as BMR-S&S",
)
