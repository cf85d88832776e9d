"""usdposer's codeless USD schema plugin (data only). ``PLUGIN_DIR`` is what ``PXR_PLUGINPATH_NAME`` or
``Plug.Registry().RegisterPlugins`` takes; ``usdposer.io`` registers it before it opens any stage."""

from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
SCHEMA_NAMES = ("PoseSpaceAPI", "PoseSampleLibrary", "IKHandleAPI", "JointLimitsAPI")
