"""Write a fresh UsdSkel stage from plain arrays: the common back end of the BVH and MJCF importers.

The glTF importer writes its own stage (materials, textures, several skeletons); formats that carry one skeleton,
optional skinned meshes, clips and joint limits go through :func:`write_rig_stage`, so that they share one prim
layout: ``/<Name>`` SkelRoot, ``/<Name>/Skel`` Skeleton with its SkelAnimations and joint limits, ``/<Name>/Geo``
meshes bound to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdSkel, Vt

from usdposer.io.stage import atomic_path, author_stage_metadata, check_output_path, np_to_gf_array
from usdposer.io.write_skel import (
    bind_animations,
    define_animation,
    provenance,
    root_prim_name,
    select_clip,
    unique_names,
)


@dataclass
class MeshData:
    """A skinned triangle mesh in skeleton space (stage units): points (V, 3), faces (F, 3), indices/weights (V, K)."""

    name: str
    points: np.ndarray
    faces: np.ndarray
    indices: np.ndarray
    weights: np.ndarray


@dataclass
class ClipData:
    """Joint-local (T, J, 3) translations, (T, J, 4) (w, x, y, z) rotations, (T, J, 3) scales at ``time_codes``."""

    name: str
    translations: np.ndarray
    rotations: np.ndarray
    scales: np.ndarray
    time_codes: Sequence[float]


@dataclass
class RigData:
    """Everything :func:`write_rig_stage` writes. Transforms are (J, 4, 4) column-vector matrices in stage units;
    ``limits`` are (J, 3, 2) degrees about the joint's local X, Y, Z (NaN = unlimited)."""

    name: str
    tokens: list[str]
    rest_local: np.ndarray
    bind_world: np.ndarray
    meshes: list[MeshData] = field(default_factory=list)
    clips: list[ClipData] = field(default_factory=list)
    limits: np.ndarray | None = None
    limits_source: str = ""
    up_axis: str = "Y"
    meters_per_unit: float = 1.0
    time_codes_per_second: float = 24.0


def write_rig_stage(rig: RigData, out: str | os.PathLike, *, sources: Sequence[str | os.PathLike], verb: str = "import",
                    arguments: list[str] | None = None, bind_clip: str | None = None, **prov) -> Path:
    """Author ``rig`` as a new stage at ``out`` (temporary file, then moved into place). Returns the path."""
    out = check_output_path(out, list(sources))
    root_name = root_prim_name(rig.name)
    skel_path = f"/{root_name}/Skel"
    with atomic_path(out) as tmp:
        stage = Usd.Stage.CreateNew(str(tmp))
        root = UsdSkel.Root.Define(stage, f"/{root_name}")
        stage.SetDefaultPrim(root.GetPrim())
        skel = UsdSkel.Skeleton.Define(stage, skel_path)
        UsdSkel.BindingAPI.Apply(skel.GetPrim())
        skel.CreateJointsAttr(Vt.TokenArray(rig.tokens))
        skel.CreateJointNamesAttr(Vt.TokenArray([t.rsplit("/", 1)[-1] for t in rig.tokens]))
        skel.CreateBindTransformsAttr(np_to_gf_array(rig.bind_world))
        skel.CreateRestTransformsAttr(np_to_gf_array(rig.rest_local))
        if rig.limits is not None:
            _author_limits(skel.GetPrim(), rig.tokens, rig.limits, rig.limits_source)
        start = end = 0.0
        if rig.clips:
            names = unique_names([c.name for c in rig.clips])
            paths = []
            for name, c in zip(names, rig.clips):
                paths.append(f"{skel_path}/{name}")
                define_animation(stage, paths[-1], rig.tokens, c.translations, c.rotations, c.scales, c.time_codes)
            selected = select_clip(bind_clip, [(n, c.name) for n, c in zip(names, rig.clips)])
            bind_animations(stage, skel_path, paths, selected, names)
            start, end = float(rig.clips[selected].time_codes[0]), float(rig.clips[selected].time_codes[-1])
        if rig.meshes:
            UsdGeom.Scope.Define(stage, f"/{root_name}/Geo")
        for name, m in zip(unique_names([m.name for m in rig.meshes]), rig.meshes):
            _define_mesh(stage, f"/{root_name}/Geo/{name}", skel_path, m)
        author_stage_metadata(stage, up_axis=rig.up_axis, meters_per_unit=rig.meters_per_unit,
                              tcps=rig.time_codes_per_second, start=start, end=end, default_prim=root_name)
        stage.GetRootLayer().customLayerData = {
            "usdposer": provenance(verb, arguments, source=", ".join(Path(s).name for s in sources), **prov)}
        stage.GetRootLayer().Save()
    return out


def _define_mesh(stage: Usd.Stage, path: str, skel_path: str, m: MeshData) -> None:
    mesh = UsdGeom.Mesh.Define(stage, path)
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(m.points, dtype=np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray([3] * len(m.faces)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(m.faces.reshape(-1), dtype=np.int32)))
    mesh.CreateSubdivisionSchemeAttr("none")
    lo, hi = m.points.min(0), m.points.max(0)
    mesh.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(np.stack([lo, hi]).astype(np.float32)))
    binding = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
    binding.CreateSkeletonRel().SetTargets([Sdf.Path(skel_path)])
    K = m.indices.shape[1]
    binding.CreateJointIndicesPrimvar(False, K).Set(Vt.IntArray.FromNumpy(m.indices.reshape(-1).astype(np.int32)))
    binding.CreateJointWeightsPrimvar(False, K).Set(Vt.FloatArray.FromNumpy(m.weights.reshape(-1).astype(np.float32)))
    binding.CreateGeomBindTransformAttr().Set(Gf.Matrix4d(1.0))


def _author_limits(prim: Usd.Prim, tokens: list[str], limits: np.ndarray, source: str) -> None:
    """JointLimitsAPI on the Skeleton: only joints with at least one known bound are listed."""
    prim.ApplyAPI("JointLimitsAPI")
    keep = [j for j in range(len(tokens)) if np.isfinite(limits[j]).any()]
    prim.GetAttribute("usdposer:jointLimits:joints").Set(Vt.TokenArray([tokens[j] for j in keep]))
    lo = np.ascontiguousarray(limits[keep, :, 0], dtype=np.float32).reshape(-1, 3)
    hi = np.ascontiguousarray(limits[keep, :, 1], dtype=np.float32).reshape(-1, 3)
    prim.GetAttribute("usdposer:jointLimits:lower").Set(Vt.Vec3fArray.FromNumpy(lo))
    prim.GetAttribute("usdposer:jointLimits:upper").Set(Vt.Vec3fArray.FromNumpy(hi))
    prim.GetAttribute("usdposer:jointLimits:form").Set("eulerXYZ")
    if source:
        prim.GetAttribute("usdposer:jointLimits:source").Set(source)
