"""Modules imported on first use (no Django).

Heavy libraries (geopandas, pandas, openpyxl …) cost 0.2–0.6 s each to import; importing
them with the URLconf made every worker's first request slow and the process bigger, though
only imports, exports and reports use them. ``gpd = lazy("geopandas")`` gives a stand-in
whose first attribute access imports the module (then every access is a dict look-up).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


class LazyModule:
    """Stand-in for a module, imported on the first attribute access."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def _module(self) -> ModuleType:
        mod = sys.modules.get(self._name)
        return mod if mod is not None else importlib.import_module(self._name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._module(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> Any:
    """``name`` (a dotted module path) imported when first used."""
    return LazyModule(name)
