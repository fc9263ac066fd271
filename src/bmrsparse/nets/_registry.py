"""The network registry: everything the library, the workflow and the bench need to know about a network.

A network is declared once, as ``NETWORK = Network(...)`` in its module of :mod:`bmrsparse.nets`, or in a module
of another package named by an entry point of the group ``bmrsparse.nets``; :func:`register` adds one at run time.
:data:`NETWORKS` maps names to declarations in the order of :attr:`Network.order`. See :mod:`bmrsparse.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry, check_name

__all__ = ["Network", "NETWORKS", "ENTRY_POINT_GROUP", "register", "unregister", "get_network"]

ENTRY_POINT_GROUP = "bmrsparse.nets"


@dataclass(frozen=True)
class Network:
    """Declaration of a network.

    Attributes:
      name: identifier in configs, paths and the ``{arch}`` wildcard (``[a-z][a-z0-9_]*``).
      label: name in figures and tables.
      module: the Flax linen module class; its fields ``num_classes`` (required) and ``dropout_rate`` (if it uses
        dropout) are set by :func:`bmrsparse.nets.make_net`; it follows the conventions of :mod:`bmrsparse.nets`.
      sizes: ``{dataset: {field: value}}``, the paper's sizes where they differ per dataset (Appendix A).
      input_size: side of the square images it is built for: smaller images are zero-padded to it; None takes
        each dataset's images as they are.
      tiny: field values of a tiny version (``python -m bmrsparse.bench --tiny``).
      mem_mb: default memory of one training job in MB (``resources.mem_mb.<name>``).
      ms_per_step: default ``{"gpu": ms, "cpu": ms}`` per SVI step at batch 128 (``resources.ms_per_step``).
      order: position in tables and figures (then by name).
      description: one line for the config schema.
      compact_activation: the hidden layers' activation (``"swish"``, ``"tanh"``, ...) when
        :func:`bmrsparse.compact.compact` can shrink the network (Dense and stride-1 VALID conv layers, each followed
        by the activation and optional average pooling; the output layer without); None: no compact form.
    """

    name: str
    label: str
    module: Any = field(compare=False)
    sizes: dict = field(default_factory=dict, compare=False)
    input_size: int | None = 32
    tiny: dict = field(default_factory=dict, compare=False)
    mem_mb: int = 4000
    ms_per_step: dict = field(default_factory=lambda: {"gpu": 10.0, "cpu": 100.0}, compare=False)
    order: float = 100.0
    description: str = ""
    compact_activation: str | None = None

    def __post_init__(self):
        check_name("network", self.name)
        fields = getattr(self.module, "__dataclass_fields__", {})
        if "num_classes" not in fields:
            raise ValueError(f"network {self.name!r}: module must be a Flax module with a num_classes field")
        if set(self.ms_per_step) != {"gpu", "cpu"} or not all(v > 0 for v in self.ms_per_step.values()):
            raise ValueError(f"network {self.name!r}: ms_per_step must be {{'gpu': ms > 0, 'cpu': ms > 0}}")
        if not (isinstance(self.mem_mb, int) and self.mem_mb >= 1):
            raise ValueError(f"network {self.name!r}: mem_mb must be a positive int")


NETWORKS: Registry = Registry("network", Network, "NETWORK", ENTRY_POINT_GROUP)
register = NETWORKS.register
unregister = NETWORKS.unregister
get_network = NETWORKS.get_or_fail
