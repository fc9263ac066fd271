"""LeNet-5 of the paper (Appendix A): three 5x5 tanh convolutions, 2x2 average pooling, two Dense layers."""

from typing import Sequence

import flax.linen as nn
import jax

from bmrsparse.nets._common import ConvValid, Dropout, indexed_names
from bmrsparse.nets._registry import Network


class LeNet(nn.Module):
    """Conv 5x5 VALID + tanh (``features``), 2x2 average pooling (stride 2) after every conv but the last,
    flatten, Dense ``hidden`` + tanh, Dense ``head``. The convolutions are
    :class:`~bmrsparse.nets._common.ConvValid`: Flax's ``nn.Conv`` parameters, one matrix product on CPU.

    On 32x32 inputs the last convolution leaves a 1x1 map. Parameter names: ``conv_0`` .. ``conv_2``,
    ``dense_0``, ``head``. Dropout (``dropout_rate``, rng ``'dropout'``, only with ``train=True``) acts on
    the input of both Dense layers: after the flatten and after the hidden activation.
    """

    num_classes: int = 10
    features: Sequence[int] = (6, 16, 120)
    hidden: int = 84
    kernel_size: int = 5
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"LeNet expects images [B, H, W, C], got an array of shape {x.shape}")
        names = indexed_names("conv", len(self.features))
        k = (self.kernel_size, self.kernel_size)
        for i, (name, f) in enumerate(zip(names, self.features)):
            if x.shape[1] < k[0] or x.shape[2] < k[1]:
                raise ValueError(
                    f"LeNet: input to {name} has spatial size {x.shape[1:3]}, smaller than the kernel {k}"
                )
            x = nn.tanh(ConvValid(f, k, name=name)(x))
            if i < len(self.features) - 1:
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.tanh(nn.Dense(self.hidden, name="dense_0")(x))
        x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="head")(x)


# Appendix A: the CIFAR variants are widened.
_CIFAR_SIZES = {"features": (18, 48, 360), "hidden": 256}

NETWORK = Network(
    name="lenet",
    label="LeNet-5",
    module=LeNet,
    sizes={"fashion_mnist": {"features": (6, 16, 120), "hidden": 84}, "cifar10": _CIFAR_SIZES,
           "cifar100": _CIFAR_SIZES},
    input_size=32,
    tiny={"features": [4, 8, 16], "hidden": 16},
    mem_mb=4000,
    ms_per_step={"gpu": 4, "cpu": 20},
    order=1,
    description="LeNet-5",
    compact_activation="tanh",
)
