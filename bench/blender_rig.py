"""Does Blender play what `usdposer rig` writes as OpenUSD skins it? A bare mesh (CesiumMan's, in its bind pose,
skeleton dropped) is rigged with the biped template, 8 poses are sampled onto it as a layer, and Blender 5 (bpy)
imports the layer (Skeleton as an armature, the bound SkelAnimation as its action); its evaluated mesh at every frame
is compared with OpenUSD's own skinning (UsdSkel queries) of the same stage: max vertex distance in % of the
bounding-box diagonal, per frame.

    python bench/blender_rig.py --bpy /path/to/bpy-venv/bin/python [--json bench/results/blender_rig.json]
    python bench/blender_rig.py --bpy /path/to/bpy-venv/bin/python --layer horse.distill.usdc --frames 5

The bpy venv: `python3.11 -m venv V && V/bin/pip install bpy==5.0.1` (DESIGN.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))

BLENDER = r'''
import sys, json, numpy as np, bpy
layer, out, frames = sys.argv[-3], sys.argv[-2], json.loads(sys.argv[-1])
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.wm.usd_import(filepath=layer, import_skeletons=True)
meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
arm = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
res = {"armatures": len(arm), "bones": len(arm[0].data.bones) if arm else 0, "meshes": {},
       "action": bool(arm and arm[0].animation_data and arm[0].animation_data.action),
       "bone_names": [b.name for b in arm[0].data.bones] if arm else [],
       "textures": {m.name: [n.extension, n.image.colorspace_settings.name if n.image else None]
                    for m in bpy.data.materials if m.node_tree for n in m.node_tree.nodes if n.type == "TEX_IMAGE"}}
for f in frames:
    bpy.context.scene.frame_set(int(f))
    dg = bpy.context.evaluated_depsgraph_get()
    for o in meshes:
        e = o.evaluated_get(dg)
        m = e.to_mesh()
        P = np.array([(o.matrix_world @ v.co)[:] for v in m.vertices])
        e.to_mesh_clear()
        res["meshes"].setdefault(o.data.name, []).append(P.tolist())
json.dump(res, open(out, "w"))
'''


def compare(layer: Path, frames: list[int], bpy_python: str, tmp: Path) -> dict:
    """Blender's evaluated meshes of ``layer`` at ``frames`` against OpenUSD's skinning of the same stage: max vertex
    distance per frame in % of the rest bounding-box diagonal."""
    from pxr import Usd, UsdGeom

    sys.path.insert(0, str(ROOT / "tests"))
    from usd_golden import usd_joint_and_points

    stage = Usd.Stage.Open(str(layer))
    skel = next(str(p.GetPath()) for p in stage.Traverse() if p.GetTypeName() == "Skeleton")
    _, usd = usd_joint_and_points(stage, skel, [float(f) for f in frames], raw=True)
    out = tmp / "blender.json"
    proc = subprocess.run([bpy_python, "-c", BLENDER, str(layer), str(out), json.dumps(frames)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"Blender failed: {proc.stderr[-2000:]}")
    got = json.loads(out.read_text())
    rows = []
    for path, pts in usd.items():
        name = path.rsplit("/", 1)[-1]
        key = next((k for k in got["meshes"] if k == name or k.startswith(name)), None)
        if key is None:
            rows.append({"mesh": name, "error": "not in Blender's scene"})
            continue
        B = np.asarray(got["meshes"][key])
        xf = np.asarray(UsdGeom.Xformable(stage.GetPrimAtPath(path)).ComputeLocalToWorldTransform(0)).T
        U = pts @ xf[:3, :3].T + xf[:3, 3]
        if UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y:  # Blender is +Z up: its importer turns +Y to +Z
            U = U @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T
        if B.shape != U.shape:
            rows.append({"mesh": name, "error": f"Blender has {B.shape[1]} vertices, USD {U.shape[1]}"})
            continue
        diag = float(np.linalg.norm(U[0].max(0) - U[0].min(0)))
        err = np.linalg.norm(B - U, axis=-1).max(1) / diag * 100
        rows.append({"mesh": name, "vertices": int(U.shape[1]), "max_pct_per_frame": [round(float(e), 6) for e in err]})
    from pxr import UsdSkel

    leaves = [j.rsplit("/", 1)[-1] for j in UsdSkel.Skeleton(stage.GetPrimAtPath(skel)).GetJointsAttr().Get()]
    return {"layer": layer.name, "armatures": got["armatures"], "bones": got["bones"], "action": got["action"],
            "bone_names_are_joint_names": sorted(got["bone_names"]) == sorted(leaves), "meshes": rows,
            "textures": textures(stage, got["textures"]), "blender": "bpy 5.0.1"}


# UsdUVTexture's wrap modes and source colour spaces as Blender's image node shows them
EXTENSION = {"repeat": "REPEAT", "useMetadata": "REPEAT", "clamp": "EXTEND", "mirror": "MIRROR", "black": "CLIP"}


def textures(stage, blender: dict) -> list[dict]:
    """Per UsdUVTexture of ``stage``: its wrap modes and source colour space, the Blender image node's extension and
    colour space of the material of the same name, and whether they agree (``sRGB``/``auto`` is Blender's sRGB,
    ``raw`` its Non-Color)."""
    from pxr import UsdShade

    rows = []
    for prim in stage.Traverse():
        shader = UsdShade.Shader(prim)
        if not prim.IsA(UsdShade.Shader) or shader.GetIdAttr().Get() != "UsdUVTexture":
            continue
        given = {n: str(shader.GetInput(n).Get()) for n in ("wrapS", "wrapT", "sourceColorSpace") if shader.GetInput(n)}
        row = {"material": prim.GetParent().GetName(), "wrapS": given.get("wrapS", "useMetadata"),
               "wrapT": given.get("wrapT", "useMetadata"), "sourceColorSpace": given.get("sourceColorSpace", "auto")}
        row["blender_extension"], row["blender_colorspace"] = blender.get(row["material"], [None, None])
        row["agree"] = (row["blender_extension"] == EXTENSION.get(row["wrapS"]) and row["blender_colorspace"]
                        == ("Non-Color" if row["sourceColorSpace"] == "raw" else "sRGB"))
        rows.append(row)
    return rows


def main() -> None:
    import trimesh
    from usdposer.pipelines.rig import RigOptions, rig
    from usdposer.pipelines.sample import SampleOptions, sample

    from usdposer.io.bare_mesh import read_bare

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bpy", default=os.environ.get("BPY_PYTHON"), help="python of a venv with bpy 5")
    ap.add_argument("--layer", default=None, help="compare this layer instead (e.g. a distilled Horse), at --frames")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not a.bpy:
        sys.exit("give --bpy PYTHON (a venv with `pip install bpy==5.0.1`); nothing was compared")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.layer:
            result = compare(Path(a.layer).resolve(), list(range(a.frames)), a.bpy, tmp)
        else:
            P, F = read_bare(ROOT / "assets" / "khronos" / "CesiumMan.glb").combined()
            trimesh.Trimesh(P, F, process=False).export(tmp / "man.ply")
            rigged = tmp / "man.rigged.usdc"
            rig(tmp / "man.ply", rigged, RigOptions(template="biped", up="+Y", forward="+X"))
            layer = tmp / "man.samples.usda"
            sample(rigged, layer, SampleOptions(n=8, seed=0))
            result = compare(layer, list(range(8)), a.bpy, tmp)
        print(json.dumps(result, indent=2))
        if a.json:
            Path(a.json).write_text(json.dumps(result, indent=2))

if __name__ == "__main__":
    main()
