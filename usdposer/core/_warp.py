"""Warp, initialised once and quietly (Warp's banner would otherwise land on stdout and break ``--json``).

The kernel cache is Warp's own (``WARP_CACHE_PATH``, default ``~/.cache/warp``); the Makefile points it at
``.cache/warp`` inside the checkout so that compiled kernels are reused between runs and in CI.
"""

from __future__ import annotations

import contextlib
import io
from types import ModuleType

from usdposer._deps import require

_WP: ModuleType | None = None


def get_warp() -> ModuleType:
    """The initialised ``warp`` module."""
    global _WP
    if _WP is None:
        wp = require("warp", extra=None)
        wp.config.quiet = True  # Warp < 1.19
        if hasattr(wp, "LOG_WARNING"):  # Warp >= 1.19 prints module loads at LOG_INFO
            wp.config.log_level = wp.LOG_WARNING
        with contextlib.redirect_stdout(io.StringIO()), _native_stderr_filtered("Could not find or load the NVIDIA CUDA"):
            wp.init()
        _WP = wp
    return _WP


@contextlib.contextmanager
def _native_stderr_filtered(drop: str):
    """Capture what native code writes to file descriptor 2 and re-emit every line that does not contain ``drop``
    (Warp's native library warns about a missing CUDA driver on every CPU-only run)."""
    import os
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if drop not in line:
                    print(line, file=sys.stderr)


def warp_device(tensor) -> str:
    """The Warp device name of a torch tensor's device (``"cpu"`` or ``"cuda:N"``)."""
    if tensor.device.type == "cuda":
        return f"cuda:{tensor.device.index or 0}"
    return "cpu"
