"""usdposer: pose spaces, IK, validation and motion distillation for rigged UsdSkel characters.

This module stays light on purpose: ``usdposer --help`` must not import torch, warp, newton, diffusers or pxr.
Import the heavy parts from their subpackages (``usdposer.core``, ``usdposer.io``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
