"""USD side of the editing verbs: pose libraries to find, IK handle constraint prims (``IKHandleAPI``), keyframe
lists and the pose-space stamp on the Skeleton. Everything here reads or authors prims; no algorithms."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from pxr import Sdf, Usd, Vt

from usdposer.errors import InputError, real
from usdposer.io.stage import SCHEMAS_REGISTERED  # noqa: F401  (the schemas must be known before authoring)

KEYFRAMES_ATTR = "usdposer:keyframes"


def find_pose_library(stage: Usd.Stage, skel_path: str) -> Usd.Prim | None:
    """The Skeleton's sample library: the target of ``usdposer:poseSpace:library`` or the first PoseSampleLibrary
    under the Skeleton."""
    skel = stage.GetPrimAtPath(skel_path)
    if not skel:
        return None
    rel = skel.GetRelationship("usdposer:poseSpace:library")
    if rel:
        for target in rel.GetTargets():
            prim = stage.GetPrimAtPath(target)
            if prim and prim.GetTypeName() == "PoseSampleLibrary":
                return prim
    for prim in Usd.PrimRange(skel, Usd.TraverseInstanceProxies()):
        if prim.GetTypeName() == "PoseSampleLibrary":
            return prim
    return None


def stamp_pose_space(stage: Usd.Stage, skel_path: str, model_id: str, library: str, num_samples: int,
                     sampler: str = "ddim") -> None:
    """Apply ``PoseSpaceAPI`` to the Skeleton: which model made the library, how, and where it is."""
    skel = stage.OverridePrim(skel_path)
    skel.ApplyAPI("PoseSpaceAPI")
    skel.GetAttribute("usdposer:poseSpace:modelId").Set(model_id)
    skel.GetAttribute("usdposer:poseSpace:sampler").Set(sampler)
    skel.GetAttribute("usdposer:poseSpace:numSamples").Set(int(num_samples))
    skel.GetRelationship("usdposer:poseSpace:library").SetTargets([Sdf.Path(library)])


def set_keyframes(stage: Usd.Stage, anim_path: str, time_codes: Sequence[float]) -> None:
    """Mark keyframes on a SkelAnimation: ``double[] usdposer:keyframes`` (time codes), for video conditioning."""
    prim = stage.GetPrimAtPath(anim_path)
    attr = prim.CreateAttribute(KEYFRAMES_ATTR, Sdf.ValueTypeNames.DoubleArray, custom=True)
    attr.Set(Vt.DoubleArray([float(t) for t in time_codes]))


def get_keyframes(stage: Usd.Stage, anim_path: str) -> list[float]:
    attr = stage.GetPrimAtPath(anim_path).GetAttribute(KEYFRAMES_ATTR)
    return [float(t) for t in attr.Get()] if attr and attr.HasAuthoredValue() else []


def read_keyframes(path: str | os.PathLike, anim_path: str) -> list[float]:
    """The ``usdposer:keyframes`` of a SkelAnimation in the file at ``path`` (empty when it has none)."""
    return get_keyframes(Usd.Stage.Open(str(path)), anim_path)


def _instance_name(joint: str, used: set[str]) -> str:
    from usdposer.io.write_skel import identifier

    leaf = joint.rsplit("/", 1)[-1]
    base = identifier(f"j{leaf}" if leaf[:1].isdigit() else leaf) or "handle"  # Unicode kept, as joint names are
    name, k = base, 1
    while name in used:
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


def define_ik_handles(stage: Usd.Stage, path: str, handles: Sequence[dict]) -> Usd.Prim:
    """A Scope at ``path`` with one ``IKHandleAPI`` instance per handle. Each dict has ``joint`` (token),
    ``target`` (stage units, world), ``weight``, ``kind`` ("position" or "pin") and optionally ``root_joint``."""
    prim = stage.DefinePrim(path, "Scope")
    used: set[str] = set()
    order = []
    for h in handles:
        name = _instance_name(h["joint"], used)
        order.append(name)
        prim.ApplyAPI("IKHandleAPI", name)
        ns = f"ikHandle:{name}:"
        prim.GetAttribute(ns + "endJoint").Set(h["joint"])
        prim.GetAttribute(ns + "rootJoint").Set(h.get("root_joint", ""))
        prim.GetAttribute(ns + "target").Set(tuple(float(v) for v in h["target"]))
        prim.GetAttribute(ns + "weight").Set(float(h["weight"]))
        prim.GetAttribute(ns + "space").Set("world")
        prim.GetAttribute(ns + "kind").Set(h["kind"])
    prim.SetCustomDataByKey("usdposer:handleOrder", Vt.StringArray(order))
    return prim


def read_ik_handles(prim: Usd.Prim) -> list[dict]:
    """Inverse of :func:`define_ik_handles` (handles in authoring order)."""
    instances = [s.split(":", 1)[1] for s in prim.GetAppliedSchemas() if s.startswith("IKHandleAPI:")]
    order = list(prim.GetCustomDataByKey("usdposer:handleOrder") or [])
    instances = [i for i in order if i in instances] + [i for i in instances if i not in order]
    out = []
    for name in instances:
        ns = f"ikHandle:{name}:"
        space = prim.GetAttribute(ns + "space").Get()
        if space != "world":
            raise InputError(f"{prim.GetPath()}: handle {name} has space {space!r}; usdposer replays world-space handles")
        where = f"{prim.GetPath()}: handle {name}"
        kind = str(prim.GetAttribute(ns + "kind").Get())
        if kind not in ("position", "pin"):
            raise InputError(f"{where} has kind {kind!r}; usdposer replays 'position' and 'pin' handles")
        attr = prim.GetAttribute(ns + "target")
        if kind == "position" and not attr.HasAuthoredValue():
            raise InputError(f"{where} has no target authored; give it ikHandle:{name}:target or drop the handle")
        target = np.asarray(attr.Get(), dtype=np.float64)
        weight = prim.GetAttribute(ns + "weight").Get()
        if target.shape != (3,) or not np.isfinite(target).all() or weight is None or not math.isfinite(weight) \
                or weight <= 0:
            raise InputError(f"{where}: its target {tuple(target.tolist())} and weight {weight} must be finite, the "
                             "weight positive; fix the layer or run `usdposer ik` again")
        out.append({"joint": str(prim.GetAttribute(ns + "endJoint").Get()),
                    "root_joint": str(prim.GetAttribute(ns + "rootJoint").Get() or ""),
                    "target": tuple(float(v) for v in target), "weight": float(weight), "kind": kind})
    return out


def find_ik_handles(stage: Usd.Stage, skel_path: str) -> Usd.Prim | None:
    """The first prim under the Skeleton with an ``IKHandleAPI`` instance applied."""
    skel = stage.GetPrimAtPath(skel_path)
    for prim in Usd.PrimRange(skel, Usd.TraverseInstanceProxies()) if skel else []:
        if any(s.startswith("IKHandleAPI:") for s in prim.GetAppliedSchemas()):
            return prim
    return None


def set_custom_doubles(stage, prim_path: str, name: str, values) -> None:
    """Author a custom ``double[]`` attribute ``name`` on the prim at ``prim_path`` (per-frame values a verb reports,
    e.g. ``usdposer:fitResiduals``)."""
    from pxr import Sdf, Vt

    attr = stage.GetPrimAtPath(prim_path).CreateAttribute(name, Sdf.ValueTypeNames.DoubleArray, custom=True)
    attr.Set(Vt.DoubleArray([float(x) for x in values]))


def read_ik_layer(layer: str | os.PathLike) -> tuple[dict, str, list[dict]]:
    """(provenance, the source asset it was written over, stored handles) of a layer written by ``usdposer ik``."""
    from pxr import Sdf

    from usdposer.errors import InputError
    from usdposer.io.stage import open_stage

    sdf = Sdf.Layer.FindOrOpen(str(layer))
    if sdf is None:
        raise InputError(f"{layer}: cannot be opened as a USD layer")
    prov = dict(sdf.customLayerData.get("usdposer", {}))
    if prov.get("verb") != "ik" or not sdf.subLayerPaths:
        raise InputError(f"{layer}: not a layer written by `usdposer ik` (no ik provenance); pass the ik output")
    for key in ("skeleton", "sourceSkeleton", "checkpoint", "poseFrom", "animation"):
        v = prov.get(key)
        if real(v) and key == "poseFrom":
            prov[key] = str(v)  # a time code
        elif v is not None and not isinstance(v, str):
            raise InputError(f"{layer}: stored {key} = {v!r} is not text; the layer's provenance was edited or is "
                             "corrupt; run `usdposer ik` again instead of --replay")
    source = Sdf.ComputeAssetPathRelativeToLayer(sdf, sdf.subLayerPaths[0])
    skel = prov.get("skeleton") or prov.get("sourceSkeleton")
    stage = open_stage(layer)  # held while the prims are read: a prim does not keep its stage alive
    prim = find_ik_handles(stage, skel)
    if prim is None:
        raise InputError(f"{layer}: no IKHandleAPI constraint prim under {skel}")
    return prov, source, read_ik_handles(prim)
