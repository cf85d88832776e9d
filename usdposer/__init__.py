"""usdposer: pose spaces, IK, validation and motion distillation for rigged UsdSkel characters.

This module stays light on purpose: ``usdposer --help`` must not import torch, warp, newton, diffusers or pxr.
Import the heavy parts from their subpackages (``usdposer.core``, ``usdposer.io``, ``usdposer.pipelines``).

It is also the python module of the ``usdposer`` UsdValidation plugin (``schemas/usdPoserValidators``, plugin Name
``usdposer``, so validators are named ``usdposer:<Rule>``): USD imports this package to load the plugin, after it has
loaded ``pxr.UsdValidation``, and only then are the validators registered. In any other process nothing happens here;
``usdposer.schemas.validators.register_validators()`` is the explicit call.
"""

from __future__ import annotations

import sys

from usdposer._version import __version__

if "pxr.UsdValidation" in sys.modules:  # USD is loading this package as its validator plugin
    from usdposer.schemas.validators import register_validators

    register_validators()

__all__ = ["__version__"]
