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


class MissingDependencyError(UsdPoserError, ImportError):
    """An optional dependency or device is missing. Exit code 3."""

    exit_code = 3
