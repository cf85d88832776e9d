"""usdposer: pose spaces, IK, validation and motion distillation for rigged UsdSkel characters.

This module stays light on purpose: ``usdposer --help`` must not import torch, warp, newton, diffusers or pxr.
Import the heavy parts from their subpackages (``usdposer.core``, ``usdposer.io``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]


def _as_usd_plugin() -> None:
    """USD imports this package as the ``usdposer`` validator plugin (``schemas/usdPoserValidators``); then, and
    only then (pxr already loaded), register the ``usdposer:<Rule>`` validators."""
    import sys

    if "pxr.UsdValidation" in sys.modules:
        from usdposer.io.usd_validation import register_validators

        register_validators()


_as_usd_plugin()
