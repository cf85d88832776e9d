"""Skeleton templates for ``usdposer rig``: small USD files holding one Skeleton in its bind pose (metres, +Y up,
facing +Z; its rest) with the template's metadata in the Skeleton's ``customData["usdposer:template"]``: kind,
description, source, the bounding box of the mesh it was rigged to and the name maps to other characters' joints.

The shipped templates live in ``usdposer/templates/`` (made from the CC0 shared rigs by
``scripts/make_templates.py``); any rigged USD asset (or glTF) also serves as a template: its skeleton in its bind
pose (the pose its mesh was modelled in; a glTF's rest may be a frame of an animation) is reduced the same way
(:func:`usdposer.core.embed.make_template`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pxr import Gf, Usd, UsdGeom, UsdSkel, Vt

from usdposer.core.embed import Template, make_template
from usdposer.errors import InputError
from usdposer.io.stage import atomic_path, check_output_path, gf_to_np, np_to_gf_array

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
KEY = "usdposer:template"


def shipped_templates() -> dict[str, Path]:
    """{name: path} of the templates that ship with usdposer."""
    return {p.stem: p for p in sorted(TEMPLATE_DIR.glob("*.usda"))}


def write_template(t: Template, out: str | os.PathLike) -> Path:
    """Author ``t`` as a USD file (temporary file, then moved into place)."""
    out = check_output_path(out)
    tokens = t.tokens()
    M = np.tile(np.eye(4), (t.num_joints, 1, 1))
    M[:, :3, :3] = t.frames
    M[:, :3, 3] = t.positions
    local = t.local_transforms(M)
    with atomic_path(out) as tmp:
        stage = Usd.Stage.CreateNew(str(tmp))
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, 1.0)
        root = UsdSkel.Root.Define(stage, "/Template")
        stage.SetDefaultPrim(root.GetPrim())
        skel = UsdSkel.Skeleton.Define(stage, "/Template/Skel")
        skel.CreateJointsAttr(Vt.TokenArray(tokens))
        skel.CreateJointNamesAttr(Vt.TokenArray(list(t.names)))
        skel.CreateBindTransformsAttr(np_to_gf_array(M))
        skel.CreateRestTransformsAttr(np_to_gf_array(local))
        skel.GetPrim().SetCustomDataByKey(KEY, {
            "kind": t.kind, "description": t.description, "source": t.source,
            "bounds": Vt.Vec3dArray.FromNumpy(np.ascontiguousarray(t.bounds, dtype=np.float64)),
            "correspondence": {k: dict(v) for k, v in t.correspondence.items()},
            **({"quantiles": Vt.Vec3dArray.FromNumpy(np.ascontiguousarray(t.quantiles.T, dtype=np.float64))}
               if t.quantiles is not None else {}),
            **({"upKnots": Vt.DoubleArray.FromNumpy(np.ascontiguousarray(t.up_knots, dtype=np.float64)),
                "upright": bool(t.upright)} if t.up_knots is not None else {}),
            **({"toes": Gf.Vec3d(*map(float, t.toes))} if t.toes is not None else {}),
        })
        stage.GetRootLayer().Save()
    return out


def read_template(path: str | os.PathLike, name: str | None = None) -> Template:
    """A template file written by :func:`write_template`."""
    stage = Usd.Stage.Open(str(path))
    skel = next((UsdSkel.Skeleton(p) for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton)), None)
    meta = skel.GetPrim().GetCustomDataByKey(KEY) if skel else None
    if not meta:
        raise InputError(f"{path}: not a usdposer template (no Skeleton with customData {KEY!r})")
    tokens = list(skel.GetJointsAttr().Get())
    index = {tok: i for i, tok in enumerate(tokens)}
    parents = np.array([index.get(tok.rsplit("/", 1)[0], -1) if "/" in tok else -1 for tok in tokens], dtype=np.int64)
    M = gf_to_np(skel.GetBindTransformsAttr().Get())
    return Template(name=name or Path(path).stem, names=tuple(tok.rsplit("/", 1)[-1] for tok in tokens),
                    parents=parents, positions=M[:, :3, 3].copy(), frames=M[:, :3, :3].copy(),
                    bounds=np.asarray(meta["bounds"], dtype=np.float64), kind=str(meta.get("kind", "")),
                    description=str(meta.get("description", "")), source=str(meta.get("source", "")),
                    correspondence={k: dict(v) for k, v in dict(meta.get("correspondence", {})).items()},
                    quantiles=np.asarray(meta["quantiles"], dtype=np.float64).T if "quantiles" in meta else None,
                    up_knots=np.asarray(meta["upKnots"], dtype=np.float64) if "upKnots" in meta else None,
                    upright=bool(meta.get("upright", False)),
                    toes=np.array(meta["toes"], dtype=np.float64) if "toes" in meta else None)


def template_from_asset(path: str | os.PathLike, skeleton: str | None = None, **meta) -> Template:
    """A template from a rigged asset (USD, or anything ``usdposer import`` reads): its first (or ``skeleton``)
    Skeleton in its bind pose with its skinned meshes, in the asset's world (+Y up, metres)."""
    from usdposer.core.geometry import concat_meshes
    from usdposer.core.posespace import reference_world
    from usdposer.io.read_skel import read_asset

    rig = read_asset(path, strict=False).rig(skeleton)
    if not rig.meshes:
        raise InputError(f"{path}: its skeleton has no skinned mesh, so nothing tells which joints sit inside a body; "
                         "give a rigged character with its mesh as --template")
    X, pts = reference_world(rig)  # the bind pose (a glTF's rest may be a frame of an animation)
    points, faces, _ = concat_meshes([p.numpy() for p in pts], [m.faces.numpy() for m in rig.meshes])
    weighted = np.zeros(rig.num_joints, bool)
    for m in rig.meshes:
        weighted[np.unique(m.joint_indices.numpy()[m.joint_weights.numpy() > 0])] = True
    return make_template(meta.pop("name", Path(path).stem), list(rig.joint_names), rig.parents.numpy(), X.numpy(),
                         points, faces, weighted, source=meta.pop("source", Path(path).name), **meta)


def load_template(spec: str) -> Template:
    """A shipped template by name, a template file, or a rigged asset used as one."""
    shipped = shipped_templates()
    if spec in shipped:
        return read_template(shipped[spec], spec)
    p = Path(spec)
    if not p.exists():
        raise InputError(f"unknown template {spec!r}: not a shipped template ({', '.join(shipped)}) nor a file; "
                         "see usdposer rig --list-templates")
    if p.suffix.lower() in (".usd", ".usda", ".usdc", ".usdz"):
        stage = Usd.Stage.Open(str(p))
        if any(p_.IsA(UsdSkel.Skeleton) and p_.GetCustomDataByKey(KEY) for p_ in stage.Traverse()):
            return read_template(p)
        return template_from_asset(p)
    import tempfile

    from usdposer.io.importers import import_any

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{p.stem}.usdc"
        import_any(p, out)
        return template_from_asset(out, name=p.stem, source=p.name)


