"""Tiered-FF: fully factorised posterior (eq. 18) of the regularised-horseshoe model (eq. 17), from scratch."""

from ._method import Method

METHOD = Method(
    name="tiered_ff",
    label="Tiered-FF",
    color="#ff7f0e",
    prior="tiered",
    guide="mean_field",
    learning_rate=5e-3,  # the authors' code's default for this method
    start="scratch",
    settings=("tau0",),
    order=30,
    description="fully factorised posterior of the regularised-horseshoe model",
)
