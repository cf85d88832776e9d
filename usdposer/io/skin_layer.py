"""USD side of ``usdposer skin``: find the meshes of a Skeleton that have no skin weights, and write computed weights
as a layer over the asset (``SkelBindingAPI`` over each mesh: jointIndices / jointWeights with ``vertex``
interpolation, ``geomBindTransform``, ``skel:skeleton``). No algorithms here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdSkel, Vt

from usdposer.errors import InputError
from usdposer.io.read_mesh import triangulate
from usdposer.io.stage import StageUnits, gf_to_np, layer_over, make_editable, nearest_of_type, stage_units


@dataclass
class BareMesh:
    """A mesh to skin: ``points`` (V, 3) in usdposer skeleton space (metres, +Y up) at bind time, ``faces`` (F, 3),
    ``geom_bind`` the row-vector ``Gf.Matrix4d`` taking its local points into skeleton space (stage units), and
    whether it already had weights."""

    path: str
    points: np.ndarray
    faces: np.ndarray
    geom_bind: Gf.Matrix4d
    had_weights: bool


def skel_root_of(prim: Usd.Prim) -> Usd.Prim | None:
    """The nearest SkelRoot at or above ``prim``."""
    return nearest_of_type(prim, UsdSkel.Root)


def meshes_to_skin(stage: Usd.Stage, skeleton_path: str, *, replace: bool = False,
                   only: list[str] | None = None) -> list[BareMesh]:
    """The Mesh prims a Skeleton should drive: those under its SkelRoot (or, without one, under the Skeleton's
    parent) with no jointIndices/jointWeights, or every one with ``replace``; ``only`` picks prims by path or name."""
    skel = stage.GetPrimAtPath(skeleton_path)
    scope = skel_root_of(skel) or skel.GetParent()
    mpu, up = stage_units(stage)
    conv = StageUnits(mpu, up)
    xfc = UsdGeom.XformCache(Usd.TimeCode.Default())
    skel_world_inv = xfc.GetLocalToWorldTransform(skel).GetInverse()
    out = []
    for prim in Usd.PrimRange(scope, Usd.TraverseInstanceProxies()):
        if not prim.IsA(UsdGeom.Mesh):
            continue
        if only and not ({str(prim.GetPath()), prim.GetName()} & set(only)):
            continue
        binding = UsdSkel.BindingAPI(prim)
        ip, wp_ = binding.GetJointIndicesPrimvar(), binding.GetJointWeightsPrimvar()
        had = bool(ip and ip.HasAuthoredValue() and wp_ and wp_.HasAuthoredValue())
        if had and not replace:
            continue
        mesh = UsdGeom.Mesh(prim)
        pts = mesh.GetPointsAttr().Get()
        if pts is None or len(pts) == 0:
            continue
        P = np.asarray(pts, dtype=np.float64)
        if not np.isfinite(P).all():
            raise InputError(f"{prim.GetPath()}: points contain NaN or infinite values; fix the mesh before skinning")
        faces = triangulate(np.asarray(mesh.GetFaceVertexCountsAttr().Get() or [], np.int64),
                             np.asarray(mesh.GetFaceVertexIndicesAttr().Get() or [], np.int64))
        if not len(faces):
            continue
        if faces.max() >= len(P) or faces.min() < 0:
            raise InputError(f"{prim.GetPath()}: faceVertexIndices refer to points that do not exist; fix the topology")
        gb = binding.GetGeomBindTransformAttr()
        G = gb.Get() if had and gb and gb.HasAuthoredValue() else xfc.GetLocalToWorldTransform(prim) * skel_world_inv
        Gc = gf_to_np(G)  # column-vector convention
        P_skel = P @ Gc[:3, :3].T + Gc[:3, 3]
        out.append(BareMesh(str(prim.GetPath()), conv.points(P_skel), faces, Gf.Matrix4d(G), had))
    return out


def write_skin_layer(source: str | os.PathLike, out: str | os.PathLike, skeleton_path: str, joints: list[str],
                     meshes: list[BareMesh], indices: list[np.ndarray], weights: list[np.ndarray], *, prov: dict) -> Path:
    """Write the weights ((V, K) joint indices into the Skeleton's joints, (V, K) weights) of ``meshes`` as a new
    layer over ``source`` at ``out`` (temporary file, then moved). A mesh outside every SkelRoot is placed under one
    by typing the nearest common ancestor of mesh and Skeleton as a SkelRoot in the new layer."""
    with layer_over(source, out) as (stage, layer, out):
        uninstanced = [p for mesh in meshes for p in make_editable(stage, mesh.path)]
        for mesh, idx, w in zip(meshes, indices, weights):
            prim = stage.OverridePrim(mesh.path)
            if skel_root_of(prim) is None:
                common = Sdf.Path(mesh.path).GetCommonPrefix(Sdf.Path(skeleton_path))
                if common == Sdf.Path.absoluteRootPath:
                    raise InputError(f"{mesh.path} and {skeleton_path} share no parent prim to make a SkelRoot; "
                                     "group them under one prim")
                stage.OverridePrim(common).SetTypeName("SkelRoot")
            binding = UsdSkel.BindingAPI.Apply(prim)
            K = int(idx.shape[1])
            binding.CreateJointIndicesPrimvar(False, K).Set(Vt.IntArray.FromNumpy(np.ascontiguousarray(idx, np.int32).ravel()))
            binding.CreateJointWeightsPrimvar(False, K).Set(Vt.FloatArray.FromNumpy(np.ascontiguousarray(w, np.float32).ravel()))
            binding.CreateGeomBindTransformAttr().Set(mesh.geom_bind)
            binding.CreateSkeletonRel().SetTargets([Sdf.Path(skeleton_path)])
            binding.CreateJointsAttr().Set(Vt.TokenArray(list(joints)))  # indices are in the Skeleton's order
        prov = dict(prov, sourceSkeleton=skeleton_path, meshes=Vt.StringArray([m.path for m in meshes]))
        if uninstanced:
            prov["uninstanced"] = Vt.StringArray(uninstanced)
        layer.customLayerData = {"usdposer": prov}
    return out
