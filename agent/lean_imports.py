"""Modules the agent's libraries import but the agent does not use: kept out of its memory (docs/footprint.md).

- paho imports `urllib.request` (with `http.client` and `email`, ~1.3 MB) only to read proxy settings, and
  reads them only when PySocks is installed: the module is imported on first use instead.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any


class _OnFirstUse(types.ModuleType):
    """Stands in for a module until one of its names is used; then imports it and answers from it."""

    def __getattr__(self, name: str) -> Any:
        real = sys.modules.get(self.__name__)
        if real is None or real is self:
            del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
        return getattr(real, name)


def import_on_first_use(name: str) -> None:
    """Make `import name` cheap: the module is imported when one of its names is first used.

    (importlib's LazyLoader does not serve: in Python 3.11 the import system itself reads the module's
    `__spec__` on every later `import`, which makes it load.)"""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _OnFirstUse(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in
    parent, _, child = name.rpartition(".")
    if parent:  # `import a.b` then reads `a.b`: the import system sets that attribute only when it loads b
        setattr(importlib.import_module(parent), child, stand_in)


def apply() -> None:
    import_on_first_use("urllib.request")
