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


def check_device(device: str | None) -> str | None:
    """``device`` if this machine has it. A CUDA device where there is none: MissingDependencyError (exit 3); a
    name torch does not know: InputError (exit 2); both name the fix."""
    if device is None or device == "cpu":
        return device
    import torch

    from usdposer.errors import InputError, MissingDependencyError

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {device}: not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MissingDependencyError(f"--device {device}: this machine has no CUDA device "
                                         "(torch.cuda.is_available() is False); use --device cpu") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                             "use cuda:0 ...") from None
    elif dev.type not in ("cpu", "mps"):
        raise InputError(f"--device {device}: usdposer runs on cpu or cuda") from None
    return device
