"""Optional dependencies, imported on demand with an error that names the pip extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from usdposer.errors import MissingDependencyError


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip install usdposer[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        hint = f"pip install 'usdposer[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(f"{module} is required for this feature but cannot be imported ({exc}); run: {hint}") from exc
