"""Public names of a package imported from their modules on first use (PEP 562), so importing the package is cheap."""

from __future__ import annotations

import importlib
import sys


def lazy_names(package: str, modules: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package`` whose public name ``n`` lives in module ``modules[n]``.

    The first access imports the module and keeps the value in the package's namespace. A name
    must not be that of a submodule: importing the submodule would set the attribute first.
    """

    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(modules[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(modules))

    return __getattr__, __dir__
