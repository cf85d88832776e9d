"""The tracking articulation as a UsdPhysics layer over its asset (no standard maps UsdSkel
to UsdPhysics; this is usdposer's convention, which ``usdposer.io.physics_limits`` reads back).

    /Physics                      Xform holding every body, in the stage's units and up axis, at the rest pose
      Scene                       PhysicsScene: gravity along -up, 9.81 m/s^2 in stage units
      <joint leaf>                Xform with RigidBodyAPI + MassAPI (mass, centre of mass, diagonal inertia); the
                                  root body also has ArticulationRootAPI (a floating base: no joint to the world)
        box                       Cube (size 2, scaled to the half-extents) with CollisionAPI
      joints/<joint leaf>         PhysicsJoint (D6) body0 = parent body, body1 = body, localPos0/localRot0 = the
                                  child's rest frame in the parent body; transX/Y/Z locked (LimitAPI low > high);
                                  rotX/Y/Z limited (degrees) where the rig has limits, else +-180 (Newton's
                                  importer locks a D6 axis that has no LimitAPI); DriveAPI
                                  rotX/Y/Z (force drives, stiffness and damping per degree); customData
                                  ``usdposer:skelJoint`` = the Skeleton joint token

The layer is written at the asset's own scale: the simulation may run the character at another size
(``Articulation.scale``, recorded as ``customLayerData.usdposer.simulationScale``); lengths are divided by that
scale, masses by its cube and inertias, stiffnesses and dampings by its fifth power, which is exactly the
articulation built at scale 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

from usdposer.io.stage import StageUnits, layer_over

if TYPE_CHECKING:
    from usdposer.physics.articulation import Articulation

AXES = ("X", "Y", "Z")


def _names(art: Articulation) -> list[str]:
    from usdposer.io.write_skel import unique_names

    return unique_names([art.rig.joints[j].rsplit("/", 1)[-1] for j in art.joints])


def _quat(R: np.ndarray) -> Gf.Quatf:
    import torch

    from usdposer.core.rotations import matrix_to_quat

    q = matrix_to_quat(torch.from_numpy(np.ascontiguousarray(R, dtype=np.float64))).numpy()  # (w, x, y, z)
    return Gf.Quatf(float(q[0]), Gf.Vec3f(*[float(x) for x in q[1:]]))


def author_articulation(stage: Usd.Stage, art: Articulation, *, root: str = "/Physics") -> dict[str, str]:
    """Define the articulation's prims on ``stage`` (module docstring); returns {joint token: body prim path}."""
    rig = art.rig
    s = float(art.scale)
    mpu = float(rig.meters_per_unit) or 1.0
    C = StageUnits(mpu, rig.up_axis).R  # stage axes -> +Y up
    L = 1.0 / (s * mpu)  # simulation metres -> stage units
    rest = art.rest  # (B, 4, 4), simulation world
    names = _names(art)
    UsdGeom.Xform.Define(stage, root)
    scene = UsdPhysics.Scene.Define(stage, f"{root}/Scene")
    up = C.T @ np.array([0.0, 1.0, 0.0])
    scene.CreateGravityDirectionAttr(Gf.Vec3f(*(-up).tolist()))
    scene.CreateGravityMagnitudeAttr(float(abs(art.cfg.gravity) / mpu))
    inertia = art.model.body_inertia.numpy().astype(np.float64)
    paths = {}
    for b, name in enumerate(names):
        path = f"{root}/{name}"
        xf = UsdGeom.Xform.Define(stage, path)
        R, p = C.T @ rest[b, :3, :3], C.T @ rest[b, :3, 3] * L
        xf.AddTranslateOp().Set(Gf.Vec3d(*p.tolist()))
        xf.AddOrientOp().Set(_quat(R))
        prim = xf.GetPrim()
        UsdPhysics.RigidBodyAPI.Apply(prim)
        mass = UsdPhysics.MassAPI.Apply(prim)
        mass.CreateMassAttr(float(art.mass[b] / s**3))
        mass.CreateCenterOfMassAttr(Gf.Vec3f(*(art.centers[b] * L).tolist()))
        mass.CreateDiagonalInertiaAttr(Gf.Vec3f(*(np.diag(inertia[b]) / s**5 / mpu**2).tolist()))
        mass.CreatePrincipalAxesAttr(Gf.Quatf(1.0))
        if art.parent_body[b] < 0:
            UsdPhysics.ArticulationRootAPI.Apply(prim)
        box = UsdGeom.Cube.Define(stage, f"{path}/box")
        box.CreateSizeAttr(2.0)
        box.AddTranslateOp().Set(Gf.Vec3d(*(art.centers[b] * L).tolist()))
        box.AddScaleOp().Set(Gf.Vec3f(*(art.halves[b] * L).tolist()))
        UsdPhysics.CollisionAPI.Apply(box.GetPrim())
        paths[rig.joints[art.joints[b]]] = path
    UsdGeom.Scope.Define(stage, f"{root}/joints")
    limits = rig.limits.double().numpy() if (art.cfg.use_limits and rig.limits is not None) else None
    per_degree = math.pi / 180
    for b, name in enumerate(names):
        p = int(art.parent_body[b])
        if p < 0:
            continue
        j = int(art.joints[b])
        joint = UsdPhysics.Joint.Define(stage, f"{root}/joints/{name}")
        joint.CreateBody0Rel().SetTargets([Sdf.Path(f"{root}/{names[p]}")])
        joint.CreateBody1Rel().SetTargets([Sdf.Path(f"{root}/{name}")])
        rel = np.linalg.inv(rest[p]) @ rest[b]  # in the parent body's frame: no axis change, only units
        joint.CreateLocalPos0Attr(Gf.Vec3f(*(rel[:3, 3] * L).tolist()))
        joint.CreateLocalRot0Attr(_quat(rel[:3, :3]))
        joint.CreateLocalPos1Attr(Gf.Vec3f(0, 0, 0))
        joint.CreateLocalRot1Attr(Gf.Quatf(1.0))
        prim = joint.GetPrim()
        for a in AXES:
            lim = UsdPhysics.LimitAPI.Apply(prim, f"trans{a}")
            lim.CreateLowAttr(1.0)
            lim.CreateHighAttr(-1.0)  # low > high: locked
        for k, a in enumerate(AXES):
            lo, hi = -180.0, 180.0  # unlimited: Newton's importer locks a D6 axis without a LimitAPI
            if limits is not None and np.isfinite(limits[j, k]).all():
                lo, hi = (float(x) for x in np.degrees(limits[j, k]))
            lim = UsdPhysics.LimitAPI.Apply(prim, f"rot{a}")
            lim.CreateLowAttr(lo)
            lim.CreateHighAttr(hi)
            drive = UsdPhysics.DriveAPI.Apply(prim, f"rot{a}")
            drive.CreateTypeAttr("force")
            drive.CreateStiffnessAttr(float(art.ke[b] / s**5 / mpu**2 * per_degree))
            drive.CreateDampingAttr(float(art.kd[b] / s**5 / mpu**2 * per_degree))
            drive.CreateTargetPositionAttr(0.0)
        prim.SetCustomData({"usdposer:skelJoint": rig.joints[j]})  # a flat key: ...ByKey would nest it at the colon
    return paths


def write_physics_layer(source: str | os.PathLike, out: str | os.PathLike, art: Articulation, *, prov: dict,
                        root: str = "/Physics") -> Path:
    """Write the articulation as a UsdPhysics layer that sublayers ``source`` (temporary file, then moved)."""
    with layer_over(source, out, up_axis=art.rig.up_axis, meters_per_unit=art.rig.meters_per_unit,
                    time_range=None) as (stage, layer, out):
        UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
        author_articulation(stage, art, root=root)
        layer.customLayerData = {"usdposer": dict(prov, simulationScale=float(art.scale),
                                                  sourceSkeleton=art.rig.skeleton_path)}
    return out
