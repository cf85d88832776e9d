"""OpenUSD's own answers (UsdSkel queries) for a stage, and a unit/axis conversion written here, apart from usdposer's
(``usdposer.io.stage.StageUnits``), so that a unit or axis bug in the project cannot cancel out of a comparison.

Comparisons of usdposer against OpenUSD keep OpenUSD's answer as it is (``raw=True``: the stage's units and axes) and
convert usdposer's answer with :func:`to_stage_points` / :func:`to_stage_transforms`.
"""

from __future__ import annotations

import numpy as np
from pxr import Usd, UsdGeom, UsdSkel, Vt


def stage_frame(stage: Usd.Stage) -> tuple[float, np.ndarray]:
    """(metres per unit, R (3, 3)) with ``p_metres_yup = R (mpu p_stage)``: Z-up stages have their +Z turned to +Y
    ((x, y, z) -> (x, z, -y)), read through OpenUSD's own UsdGeom calls."""
    mpu = float(UsdGeom.GetStageMetersPerUnit(stage))
    zup = UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    R = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]) if zup else np.eye(3)
    return mpu, R


def to_stage_points(stage: Usd.Stage, P) -> np.ndarray:
    """usdposer's points ``(..., 3)`` (metres, +Y up) in the stage's units and axes."""
    mpu, R = stage_frame(stage)
    return (np.asarray(P, dtype=np.float64) @ R) / mpu


def _frames(stage: Usd.Stage) -> tuple[np.ndarray, np.ndarray]:
    """(A, D): A maps stage points to usdposer's (rotate to +Y up, scale to metres), D scales lengths only."""
    mpu, R = stage_frame(stage)
    A, D = np.eye(4), np.diag([mpu, mpu, mpu, 1.0])
    A[:3, :3] = R * mpu
    return A, D


def to_stage_transforms(stage: Usd.Stage, M) -> np.ndarray:
    """usdposer's column-vector skeleton-space transforms ``(..., 4, 4)`` in the stage's units and axes.

    usdposer's convention: a skeleton-space joint transform maps joint-local coordinates (lengths in metres) to
    skeleton space (metres, +Y up), ``M_u = A M_s D^-1``: the joint's axes turn with the skeleton (a Z-up joint's
    rotation gains the root's turn), its local lengths are rescaled. Skinning transforms ``M B^-1`` are then plain
    conjugations by A."""
    A, D = _frames(stage)
    return np.linalg.inv(A) @ np.asarray(M, dtype=np.float64) @ D


def from_stage_points(stage: Usd.Stage, P) -> np.ndarray:
    """The stage's points ``(..., 3)`` in metres, +Y up (for comparisons with outside references in metres)."""
    mpu, R = stage_frame(stage)
    return (np.asarray(P, dtype=np.float64) * mpu) @ R.T


def from_stage_transforms(stage: Usd.Stage, M) -> np.ndarray:
    """Inverse of :func:`to_stage_transforms`."""
    A, D = _frames(stage)
    return A @ np.asarray(M, dtype=np.float64) @ np.linalg.inv(D)


def _blend(skq, aq, t, pts) -> None:
    """Apply a mesh's blend shapes to ``pts`` in place at time ``t``, before skinning, as UsdSkel's own baking does:
    the animation's weights remapped to the mesh's ``skel:blendShapes`` order, then BlendShapeQuery (inbetweens,
    pointIndices)."""
    if not skq.HasBlendShapes() or not aq:
        return
    weights = aq.ComputeBlendShapeWeights(t)
    mapper = skq.GetBlendShapeMapper()
    if mapper and not mapper.IsNull():
        weights = mapper.Remap(weights)
    query = UsdSkel.BlendShapeQuery(UsdSkel.BindingAPI(skq.GetPrim()))
    sub, shapes, subs = query.ComputeSubShapeWeights(weights)
    assert query.ComputeDeformedPoints(sub, shapes, subs, query.ComputeBlendShapePointIndices(),
                                       query.ComputeSubShapePointOffsets(), pts)


def usd_joint_and_points(stage: Usd.Stage, skel_path: str, times: list[float], raw: bool = False):
    """(skeleton-space joint transforms (T, J, 4, 4) as column-vector matrices, {mesh path: skinned points (T, V, 3)})
    computed by UsdSkel; in the stage's own units and axes with ``raw``, else in metres / +Y up (converted above)."""
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
        W = np.swapaxes(np.asarray(sq.ComputeJointSkelTransforms(t), dtype=np.float64), -1, -2)  # Gf rows -> columns
        worlds.append(W if raw else from_stage_transforms(stage, W))
        skin = sq.ComputeSkinningTransforms(t)
        for path, skq in skq_by_path.items():
            pts = Vt.Vec3fArray(UsdGeom.PointBased(skq.GetPrim()).GetPointsAttr().Get(t))
            _blend(skq, sq.GetAnimQuery(), t, pts)
            assert skq.ComputeSkinnedPoints(skin, pts, t)
            P = np.asarray(pts, dtype=np.float64)
            points[path].append(P if raw else from_stage_points(stage, P))
    return np.stack(worlds), {p: np.stack(v) for p, v in points.items()}
