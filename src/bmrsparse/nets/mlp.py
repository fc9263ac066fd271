"""Multi-layer perceptron of the paper (Appendix A): five hidden layers of 400 swish units."""

import flax.linen as nn
import jax

from bmrsparse.nets._common import Dropout, indexed_names
from bmrsparse.nets._registry import Network


class MLP(nn.Module):
    """Flatten, ``depth`` hidden Dense layers of ``width`` swish units, Dense ``head``.

    Parameter names: ``dense_0`` .. ``dense_{depth-1}``, ``head`` (sorted order is forward order).
    Dropout (rate ``dropout_rate``, rng stream ``'dropout'``) follows every hidden activation,
    i.e. it acts on the input of every Dense layer after the first, when ``train=True``.
    """

    num_classes: int = 10
    width: int = 400
    depth: int = 5
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if x.ndim < 2:
            raise ValueError(f"MLP expects a batch [B, ...], got an array of shape {x.shape}")
        x = x.reshape((x.shape[0], -1))
        for name in indexed_names("dense", self.depth):
            x = nn.Dense(self.width, name=name)(x)
            x = nn.swish(x)
            x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="head")(x)


NETWORK = Network(
    name="mlp",
    label="MLP",
    module=MLP,
    input_size=None,  # flattens whatever it gets: FashionMNIST stays 28x28
    tiny={"width": 32, "depth": 2},
    mem_mb=4000,
    ms_per_step={"gpu": 3, "cpu": 15},
    order=0,
    description="5x400 Swish MLP",
    compact_activation="swish",
)
