"""The one registry behind methods, datasets, networks and figures: declarations by name, found in a package and in
entry points.

A kind of thing (a method, a dataset, a network, a figure) is declared once, as an object of its declaration class,
in a module that names it in a module attribute (``METHOD = Method(...)``, ``DATASET = DatasetInfo(...)``; a module
may declare several as a tuple). It is registered

- by being a module of the library's own package (every module whose name does not start with ``_``),
- from another installed package, through an entry point of the kind's group (``bmrsparse.methods``,
  ``bmrsparse.datasets``, ``bmrsparse.nets``, ``bmrsparse.figures``) naming such a module or a declaration, e.g. in
  its ``pyproject.toml``::

      [project.entry-points."bmrsparse.datasets"]
      my_dataset = "my_package.my_dataset"

- or at run time by :meth:`Registry.register` (tests, notebooks; a Snakemake workflow does not see those).

Iteration follows the declarations' ``order`` (then name): tables, legends and figures list them in that order.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Iterator

__all__ = ["Registry", "AttributeView", "NAME", "check_name"]

#: What a registered name must look like (it is a config value, a path part and a wildcard value).
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Registry(Mapping):
    """Name -> declaration, iterated in the order of the declarations' ``order`` (then name).

    Args:
      kind: what is registered, for messages (``"dataset"``).
      cls: the declaration class; anything else is refused.
      attribute: the module attribute holding a module's declaration(s) (``"DATASET"``).
      group: the entry-point group (``"bmrsparse.datasets"``).
      named_entry_points: an entry point must carry the name of the one declaration it loads.
      check: called with the registry after :meth:`discover` (consistency between declarations).
    """

    def __init__(self, kind: str, cls: type, attribute: str, group: str, *, named_entry_points: bool = False,
                 check: Callable[["Registry"], None] | None = None):
        self.kind, self.cls, self.attribute, self.group = kind, cls, attribute, group
        self.named_entry_points, self.check = named_entry_points, check
        self._items: dict[str, Any] = {}

    def __getitem__(self, name: str):
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items, key=lambda n: (self._items[n].order, n)))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{self.attribute}S({', '.join(self)})"

    def register(self, item, *, replace: bool = False, origin: str = ""):
        """Add ``item``; a second declaration of the same name is an error unless ``replace``."""
        if not isinstance(item, self.cls):
            raise TypeError(f"register() wants a {self.cls.__name__}, got {type(item).__name__} {origin}".rstrip())
        old = self._items.get(item.name)
        if old is not None and old is not item and not replace:
            raise ValueError(f"two {self.kind}s are named {item.name!r}{' (' + origin + ')' if origin else ''}")
        self._items[item.name] = item
        return item

    def unregister(self, name: str) -> None:
        """Remove a declaration registered at run time (tests)."""
        self._items.pop(name, None)

    def get_or_fail(self, name: str):
        """The declaration of ``name``; an unknown name raises ValueError listing the registered ones."""
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; registered {self.kind}s: {', '.join(self)}") from None

    def attribute_view(self, attribute: str) -> "AttributeView":
        """A live read-only ``{name: getattr(declaration, attribute)}`` (e.g. labels)."""
        return AttributeView(self, attribute)

    def _declared(self, obj, origin: str) -> list:
        found = getattr(obj, self.attribute, obj)
        items = list(found) if isinstance(found, (list, tuple)) else [found]
        bad = [i for i in items if not isinstance(i, self.cls)]
        if bad or not items:
            raise TypeError(f"{origin} is neither a {self.cls.__name__} nor a module defining "
                            f"{self.attribute} = {self.cls.__name__}(...)")
        return items

    def discover(self, package_path: Iterable[str], package_name: str, skip: Iterable[str] = ()) -> None:
        """Register the declarations of the modules in ``package_path`` (but ``skip``), then those of the
        entry-point group; then run :attr:`check`."""
        skip = set(skip)
        for info in pkgutil.iter_modules(package_path):
            if info.name.startswith("_") or info.name in skip:
                continue
            module = importlib.import_module(f"{package_name}.{info.name}")
            if hasattr(module, self.attribute):
                for item in self._declared(module, module.__name__):
                    self.register(item, origin=module.__name__)
        for ep in importlib.metadata.entry_points(group=self.group):
            origin = f"entry point {ep.name} = {ep.value} of group {self.group}"
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plug-in is named, not silently skipped
                raise ImportError(f"cannot load {origin}: {exc}") from exc
            items = self._declared(obj, origin)
            if self.named_entry_points and [i.name for i in items] != [ep.name]:
                raise ValueError(f"{origin} declares a {self.kind} named {items[0].name!r}; name the entry point "
                                 "after it")
            for item in items:
                self.register(item, origin=origin)
        if self.check is not None:
            self.check(self)


class AttributeView(Mapping):
    """A live read-only view ``{name: getattr(declaration, attribute)}`` of a :class:`Registry`."""

    def __init__(self, registry: Mapping, attribute: str):
        self._registry, self._attribute = registry, attribute

    def __getitem__(self, name: str):
        return getattr(self._registry[name], self._attribute)

    def __iter__(self):
        return iter(self._registry)

    def __len__(self):
        return len(self._registry)


def check_name(kind: str, name: str) -> None:
    """Refuse a name that cannot be a config value, a path part and a wildcard value (:data:`NAME`)."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"{kind} name {name!r} must match {NAME.pattern}")
