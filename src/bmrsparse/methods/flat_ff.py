"""Flat-FF: fully factorised posterior (eq. 16) of the flat model (eq. 15), continued from the shared warm-up.

The shared warm-up (epoch 0 of Flat-FF and of every method that starts from it) is a Flat-FF run.
"""

from ._method import Method

METHOD = Method(
    name="flat_ff",
    label="Flat-FF",
    color="#1f77b4",
    prior="flat",
    guide="mean_field",
    learning_rate=5e-3,  # the authors' code's default; also its warm-up's
    start="warmup",
    order=20,
    description="fully factorised posterior of the flat model",
)
