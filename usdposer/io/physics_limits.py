"""Joint limits from UsdPhysics joints, a second limit source for a Skeleton besides ``JointLimitsAPI``.

A physics joint drives a skeleton joint when its ``customData["usdposer:skelJoint"]`` names the joint's token (the
convention ``usdposer track`` writes: ``customData["usdposer:skelJoint"]`` on each physics joint), or else when its ``body1`` prim is named
like the joint's leaf. Its frame is the child joint's bind frame, so the joint's local axes are the limit axes:

    RevoluteJoint  axis A, lower/upper       -> A in [lower, upper]; the two other axes locked at 0
    SphericalJoint axis A, coneAngle0/1      -> A free (twist); the other two axes (in X, Y, Z order after A) within
                                                 +-coneAngle0 and +-coneAngle1 (the cone as a box, an outer bound)
    Joint (D6)     LimitAPI rotX / rotY / rotZ -> that axis in [low, high]; low > high locks it at 0; no LimitAPI
                                                 on an axis, or [-180, 180], leaves it free
    FixedJoint                                -> all three locked at 0

Angles are degrees in USD and radians in the result (NaN = unlimited), as ``Rig.limits``.
"""

from __future__ import annotations

import numpy as np
import torch
from pxr import Usd, UsdPhysics

AXES = "XYZ"


def _axis(token) -> int:
    """Index of a UsdPhysics axis token ("X", "Y", "Z"); X when unset."""
    letter = str(token or "X").upper()[:1]
    return AXES.index(letter) if letter in AXES else 0


def physics_joint_limits(stage: Usd.Stage, joints: list[str]) -> np.ndarray | None:
    """(J, 3, 2) radians from the stage's UsdPhysics joints that drive ``joints``, or None when none does."""
    index = {j: i for i, j in enumerate(joints)}
    leaves: dict[str, list[int]] = {}
    for i, j in enumerate(joints):
        leaves.setdefault(j.rsplit("/", 1)[-1], []).append(i)
    out = np.full((len(joints), 3, 2), np.nan)
    found = False
    for prim in stage.Traverse(Usd.TraverseInstanceProxies()):
        if not prim.IsA(UsdPhysics.Joint):
            continue
        token = prim.GetCustomData().get("usdposer:skelJoint")  # a flat key: ByKey would split it at the colon
        j = index.get(str(token)) if token else None
        if j is None:
            targets = UsdPhysics.Joint(prim).GetBody1Rel().GetTargets()
            named = leaves.get(targets[0].name, []) if targets else []
            j = named[0] if len(named) == 1 else None
        if j is None:
            continue
        lim = _limits_of(prim)
        if lim is None:
            continue
        out[j] = np.radians(lim)
        found = True
    return out if found else None


def _limits_of(prim: Usd.Prim) -> np.ndarray | None:
    """(3, 2) degrees for one physics joint (module docstring), or None when it limits nothing."""
    lim = np.full((3, 2), np.nan)
    if prim.IsA(UsdPhysics.FixedJoint):
        return np.zeros((3, 2))
    if prim.IsA(UsdPhysics.RevoluteJoint):
        j = UsdPhysics.RevoluteJoint(prim)
        a = _axis(j.GetAxisAttr().Get())
        lim[:] = 0.0
        lo, hi = j.GetLowerLimitAttr().Get(), j.GetUpperLimitAttr().Get()
        lim[a] = (lo if lo is not None and np.isfinite(lo) else np.nan, hi if hi is not None and np.isfinite(hi) else np.nan)
        return lim
    if prim.IsA(UsdPhysics.SphericalJoint):
        j = UsdPhysics.SphericalJoint(prim)
        a = _axis(j.GetAxisAttr().Get())
        others = [k for k in range(3) if k != a]
        for k, cone in zip(others, (j.GetConeAngle0LimitAttr().Get(), j.GetConeAngle1LimitAttr().Get())):
            if cone is not None and np.isfinite(cone) and cone >= 0:
                lim[k] = (-cone, cone)
        return lim if np.isfinite(lim).any() else None
    if prim.GetTypeName() in ("PhysicsJoint", ""):  # the generic (D6) joint
        for k, axis in enumerate(("rotX", "rotY", "rotZ")):
            api = UsdPhysics.LimitAPI.Get(prim, axis)
            if not api or not prim.HasAPI(UsdPhysics.LimitAPI, axis):
                continue
            lo, hi = api.GetLowAttr().Get(), api.GetHighAttr().Get()
            if lo is None or hi is None:
                continue
            if lo <= -180.0 and hi >= 180.0:
                continue  # a full turn each way limits nothing (how usdposer writes a free axis for Newton)
            lim[k] = (0.0, 0.0) if lo > hi else (lo, hi)
        return lim if np.isfinite(lim).any() else None
    return None


def read_limits(prim: Usd.Prim, joints: list[str]) -> torch.Tensor | None:
    """(J, 3, 2) radians (NaN = unlimited) from the Skeleton's JointLimitsAPI values, completed by the stage's
    UsdPhysics joints that drive its joints (``usdposer.io.physics_limits``) where the former say nothing; or None."""
    from usdposer.io.physics_limits import physics_joint_limits

    own = _read_limit_api(prim, joints)
    phys = physics_joint_limits(prim.GetStage(), joints)
    if phys is None:
        return own
    phys = torch.from_numpy(phys)
    return phys if own is None else torch.where(torch.isnan(own), phys, own)


def _read_limit_api(prim: Usd.Prim, joints: list[str]) -> torch.Tensor | None:
    """JointLimitsAPI values -> (J, 3, 2) radians (NaN = unlimited), or None."""
    attr = prim.GetAttribute("usdposer:jointLimits:joints")
    if not attr or not attr.HasAuthoredValue():
        return None
    names = [str(j) for j in attr.Get()]
    lo = np.asarray(prim.GetAttribute("usdposer:jointLimits:lower").Get() or [], dtype=np.float64).reshape(-1, 3)
    hi = np.asarray(prim.GetAttribute("usdposer:jointLimits:upper").Get() or [], dtype=np.float64).reshape(-1, 3)
    out = np.full((len(joints), 3, 2), np.nan)
    index = {j: i for i, j in enumerate(joints)}
    for k, n in enumerate(names[: min(len(lo), len(hi))]):
        if n in index:
            out[index[n], :, 0], out[index[n], :, 1] = np.radians(lo[k]), np.radians(hi[k])
    return torch.from_numpy(out)
