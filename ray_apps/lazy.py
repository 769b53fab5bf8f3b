"""Package exports imported on first use, so that a process importing one submodule (the module of a Ray actor
or Serve deployment class) does not import its siblings too (torch, transformers, pandas, plotting)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``name`` comes from its submodule ``exports[name]`` when first
    used."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{exports[name]}", package), name)

    return __getattr__
