"""Typed exceptions. Library code raises these; ``commands/`` maps them to exit codes.

Every message names the problem and, where there is one, the fix, on one line.
"""

from __future__ import annotations


class UsdPoserError(Exception):
    """Base class for every error usdposer raises on purpose."""

    exit_code = 2


class InputError(UsdPoserError, ValueError):
    """Bad or unreadable input (file format, arguments). Exit code 2."""


class RigError(InputError):
    """The asset has no usable skeleton, or its skeleton/skin data is malformed. Exit code 2."""


class Interrupted(UsdPoserError):
    """Ctrl-C during work that keeps what it has done (training's periodic checkpoints): the message says what was
    kept and how to go on. Exit code 130, as for any interruption."""

    exit_code = 130


class MissingDependencyError(UsdPoserError, ImportError):
    """An optional dependency or device is missing. Exit code 3."""

    exit_code = 3


def failure_line(exc: BaseException, plain: type | tuple = UsdPoserError, limit: int = 300) -> str:
    """What a batch-style loop records for one failed item: the error on one line (at most ``limit`` characters); an
    error of the ``plain`` kinds (raised on purpose, its message names the fix) as it is, any other with its type."""
    text = " ".join(str(exc).split())[:limit] or type(exc).__name__
    return text if isinstance(exc, plain) else f"{type(exc).__name__}: {text}"


def whole(v, lo: float | None = None, hi: float | None = None) -> bool:
    """``v`` is a whole number as JSON, TOML or USD give one (an ``int``, and not a ``bool``, which Python counts as
    one), within ``[lo, hi]`` where given: what a file's count, size, index or seed must be before it is used."""
    return isinstance(v, int) and not isinstance(v, bool) and (lo is None or v >= lo) and (hi is None or v <= hi)


def real(v) -> bool:
    """``v`` is a number as JSON, TOML or USD give one (an ``int`` or a ``float``, not a ``bool``); its range is the
    caller's (open or closed)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)
