"""OpenUSD's own answers (UsdSkel queries) for a stage, converted to usdposer's frame for comparison."""

from __future__ import annotations

import numpy as np
from pxr import Usd, UsdGeom, UsdSkel, Vt

from usdposer.io.read_skel import _Conversion
from usdposer.io.stage import gf_to_np, stage_units


def usd_joint_and_points(stage: Usd.Stage, skel_path: str, times: list[float]):
    """(world (T, J, 4, 4), {mesh path: (T, V, 3)}) computed by UsdSkel, in metres / +Y up."""
    conv = _Conversion(*stage_units(stage))
    cache = UsdSkel.Cache()
    skq_by_path = {}
    for prim in stage.Traverse():
        if prim.IsA(UsdSkel.Root):
            cache.Populate(UsdSkel.Root(prim), Usd.PrimDefaultPredicate)
            for b in cache.ComputeSkelBindings(UsdSkel.Root(prim), Usd.PrimDefaultPredicate):
                if str(b.GetSkeleton().GetPrim().GetPath()) == skel_path:
                    for t in b.GetSkinningTargets():
                        if t.GetPrim().IsA(UsdGeom.Mesh):
                            skq_by_path[str(t.GetPrim().GetPath())] = t
    sq = cache.GetSkelQuery(UsdSkel.Skeleton(stage.GetPrimAtPath(skel_path)))
    worlds, points = [], {p: [] for p in skq_by_path}
    for t in times:
        worlds.append(conv.skel_space(gf_to_np(sq.ComputeJointSkelTransforms(t))))
        skin = sq.ComputeSkinningTransforms(t)
        for path, skq in skq_by_path.items():
            pts = Vt.Vec3fArray(UsdGeom.PointBased(skq.GetPrim()).GetPointsAttr().Get(t))
            assert skq.ComputeSkinnedPoints(skin, pts, t)
            points[path].append(conv.points(np.asarray(pts, dtype=np.float64)))
    return np.stack(worlds), {p: np.stack(v) for p, v in points.items()}
