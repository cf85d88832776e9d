"""The codeless schema plugin: every schema applies in-process and through PXR_PLUGINPATH_NAME."""

from __future__ import annotations

import os
import subprocess
import sys

from pxr import Usd
from usdposer.schemas import PLUGIN_DIR, SCHEMA_NAMES

import usdposer.io.stage  # noqa: F401  (registers the plugin)


def test_every_schema_applies():
    stage = Usd.Stage.CreateInMemory()
    skel = stage.DefinePrim("/Char/Skel", "Skeleton")
    xf = stage.DefinePrim("/Char/Handles", "Xform")
    assert skel.ApplyAPI("PoseSpaceAPI") and skel.HasAPI("PoseSpaceAPI")
    assert skel.GetAttribute("usdposer:poseSpace:sampler").Get() == "ddim"
    assert skel.ApplyAPI("JointLimitsAPI") and skel.GetAttribute("usdposer:jointLimits:form").Get() == "eulerXYZ"
    assert not xf.CanApplyAPI("PoseSpaceAPI")  # Skeleton only
    assert xf.ApplyAPI("IKHandleAPI", "leftHand") and xf.HasAPI("IKHandleAPI", "leftHand")
    assert xf.GetAttribute("ikHandle:leftHand:weight").Get() == 1.0
    assert xf.GetAttribute("ikHandle:leftHand:space").Get() == "skeleton"
    lib = stage.DefinePrim("/Char/Lib", "PoseSampleLibrary")
    assert lib.IsA(Usd.Typed) and lib.GetAttribute("numSamples").Get() == 0
    assert set(SCHEMA_NAMES) == {"PoseSpaceAPI", "PoseSampleLibrary", "IKHandleAPI", "JointLimitsAPI"}


def test_loadable_through_pxr_pluginpath_name():
    code = (
        "from pxr import Usd\n"
        "s = Usd.Stage.CreateInMemory(); p = s.DefinePrim('/S', 'Skeleton')\n"
        "assert p.ApplyAPI('PoseSpaceAPI') and p.ApplyAPI('JointLimitsAPI') and p.ApplyAPI('IKHandleAPI', 'h')\n"
        "assert s.DefinePrim('/L', 'PoseSampleLibrary').IsA(Usd.Typed)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PXR_PLUGINPATH_NAME=str(PLUGIN_DIR))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_generated_schema_is_committed_and_current():
    """generatedSchema.usda declares every class of schema.usda (regenerate with `make schemas`)."""
    gen = (PLUGIN_DIR / "usdPoser" / "resources" / "generatedSchema.usda").read_text()
    for name in SCHEMA_NAMES:
        assert f'"{name}"' in gen
