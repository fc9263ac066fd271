"""A network bound to a method and a data set's shapes: the built NumPyro model and guide, the layers, the output
layer and the input preprocessing. Evaluation (:mod:`bmrsparse.metrics`), training (:mod:`bmrsparse.train`) and
state files (:mod:`bmrsparse.state`) are functions over it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import data as bdata, methods, nets
from .settings import TrainingSettings

__all__ = ["Model", "FORMAT_VERSION", "uses_primitive"]

#: Version of the state files' header (:meth:`Model.header`).
FORMAT_VERSION = 1


def uses_primitive(fun, args, name: str) -> bool:
    """Whether the program of ``fun(args)`` (traced, not run) holds the primitive ``name``, in any sub-program."""

    def walk(jaxpr) -> bool:
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == name:
                return True
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns") and walk(inner):
                        return True
        return False

    return walk(jax.make_jaxpr(fun)(args).jaxpr)


class Model:
    """A network bound to a method and a data set's shapes: what evaluation, pruning and state files need.

    Args:
      arch: architecture name (see :data:`bmrsparse.nets.NETWORKS`).
      method: method name (see :data:`bmrsparse.methods.METHODS`).
      dataset: a :class:`bmrsparse.data.Dataset`; its training images give the preprocessing's per-channel
        statistics and the data size :math:`N` that scales the evidence bound.
      settings: the stage's :class:`~bmrsparse.settings.TrainingSettings`.

    Attributes: ``arch``, ``method`` (the :class:`~bmrsparse.methods.Method`), ``dataset_name``, ``net`` (Flax),
    ``layers`` (:func:`~bmrsparse.methods.find_layers`), ``head`` (the output layer's name), ``built``
    (:class:`~bmrsparse.methods.Built`: NumPyro model, guide and sites), ``preprocess`` (uint8 images to the
    network's input), ``input_shape``, ``image_shape``, ``num_classes``, ``n_data``, ``settings``.
    """

    def __init__(self, *, arch: str, method: str, dataset, settings: TrainingSettings = TrainingSettings()):
        self.arch = arch
        self.method = methods.get_method(method)
        self.dataset_name = dataset.name
        self.settings = settings = TrainingSettings.from_mapping(settings)
        overrides = settings.net_overrides(arch)
        rate = float(settings.dropout) if self.method.dropout else 0.0
        self.net = nets.make_net(arch, dataset.name, dropout_rate=rate, **overrides)
        h, w, c = nets.input_shape(arch, dataset.name)
        self.input_shape = (h, w, c)
        self.image_shape = tuple(int(d) for d in dataset.x_train.shape[1:])
        self.num_classes = int(nets.NUM_CLASSES[dataset.name])

        mean, std = bdata.channel_stats(dataset.x_train)
        mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
        raw_h = dataset.x_train.shape[1]
        pad = (h - raw_h) // 2
        if pad < 0 or h - raw_h - 2 * pad != 0:
            raise ValueError(f"cannot fit {dataset.x_train.shape[1:]} images to the network's input {(h, w, c)}")

        def preprocess(x):
            x = (x.astype(jnp.float32) - mean) / std
            if pad:
                x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
            return x

        self.preprocess = preprocess
        abstract = jax.eval_shape(
            lambda: self.net.init(jax.random.PRNGKey(0), jnp.zeros((1, h, w, c), jnp.float32))
        )
        self.layers = methods.find_layers(abstract["params"])
        self.head = next(l.name for l in self.layers if l.is_head)
        self.n_data = int(dataset.x_train.shape[0])
        self.built = methods.build(
            self.method,
            self.net,
            self.layers,
            n_data=self.n_data,
            preprocess=preprocess,
            gamma0=float(settings.gamma0),
            tau0=float(settings.tau0),
            init_radius=float(settings.init_radius),
            init_scale=float(settings.init_scale),
        )
        self.compiled: dict = {}  # programs compiled for this model (evaluation), by name

    @functools.cached_property
    def xla_convolutions(self) -> bool:
        """Whether the network's program on this backend holds XLA convolutions (LeNet-5 on CPU does not: its
        convolutions are matrix products there, :func:`bmrsparse.nets._common.conv_valid`). Only the training step
        loop asks, so it is traced on first use, not for every model built for evaluation or state files."""
        x = jnp.zeros((1, *self.input_shape), jnp.float32)
        params = jax.eval_shape(lambda: self.net.init(jax.random.PRNGKey(0), x))
        return uses_primitive(lambda p: self.net.apply(p, x), params, "conv_general_dilated")

    def header(self, seeds) -> dict:
        """What a state file records to refuse being read into another model (:func:`bmrsparse.state.read_state`)."""
        return {
            "format": FORMAT_VERSION,
            "dataset": self.dataset_name,
            "arch": self.arch,
            "prior": self.method.prior,
            "point_estimate": self.method.point_estimate,
            "layers": [[l.name, [list(s) for _, s in l.shapes]] for l in self.layers],
            "image_shape": list(self.image_shape),
            "seeds": [int(s) for s in seeds],
        }
