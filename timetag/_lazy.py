"""Public names of a package resolved on first use (PEP 562), so that importing one light module of it does not
import its heavy siblings.  ``__getattr__, __dir__ = lazy_names(__name__, globals(), {name: submodule})``."""
from __future__ import annotations

import importlib


def lazy_names(package: str, namespace: dict, where: dict[str, str]):
    """Module-level ``__getattr__`` and ``__dir__`` for ``package``: ``name`` comes from ``package.where[name]``
    and is then bound in ``namespace`` (later lookups skip ``__getattr__``)."""

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())) | set(where))

    return __getattr__, __dir__
