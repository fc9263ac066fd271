"""Flat-MAP: point estimate (MAP) of the flat model, eq. (15), with dropout 0.2 on dense layers; from scratch."""

from ._method import Method

METHOD = Method(
    name="flat_map",
    label="Flat-MAP",
    color="#7f7f7f",
    prior="flat",
    guide="point",
    learning_rate=1e-3,  # the authors' code's default for this method
    start="scratch",
    dropout=True,
    settings=("dropout",),
    order=10,
    description="MAP of the flat model",
)
