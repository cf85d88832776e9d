"""Blender's Automatic Weights (bone heat) on glTF files, for `bench/skin.py`'s side-by-side columns.

Runs inside Blender (Debian's `blender` 3.4 with `python3-numpy`), never imported by usdposer:

    blender -b --factory-startup --python bench/blender_skin.py -- OUT_DIR FILE.glb [FILE.glb ...]

For each file: import it, strip every skinned mesh's vertex groups, parent the meshes to their armature with
Automatic Weights (one `parent_set(type="ARMATURE_AUTO")` call per armature, best of 5, each on a fresh import), and write
``OUT_DIR/<stem>.npz`` with, per mesh, the rest vertex positions (converted back to glTF's Y-up) and the
dense weights, plus the bones' names and rest head positions (all in the first mesh's object space, which is glTF's
vertex space) and the operator's time in ms. Files are keyed ``NNN_<stem>`` by their place on the command line. Blender's
warnings (such as "Bone Heat Weighting: failed to find solution for one or more bones") go to its stdout, which the
caller reads.
"""

import sys
import time
from pathlib import Path

import numpy

numpy.bool = bool  # Blender 3.4's glTF importer uses the alias numpy 1.24 removed (DESIGN.md)
import bpy  # noqa: E402

REPEATS = 5  # best of, as bench/skin.py times usdposer
Y_UP = numpy.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)  # Blender Z-up world -> glTF Y-up


def skinned(ob):
    """The armature ``ob`` follows: by an Armature modifier (skinned) or as its child (glTF's rigid, bone-parented
    meshes, which usdposer reads as rigid binds); None for other objects."""
    if ob.type != "MESH":
        return None
    mod = next((m for m in ob.modifiers if m.type == "ARMATURE" and m.object), None)
    if mod is not None:
        return mod.object.name
    return ob.parent.name if ob.parent is not None and ob.parent.type == "ARMATURE" else None


def auto_weights(path: Path):
    """Import ``path``, strip its skins and redo them with Automatic Weights; ``([(armature, meshes)], ms)``."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(path))
    arms = {}
    for ob in bpy.data.objects:
        if skinned(ob):
            arms.setdefault(skinned(ob), []).append(ob)
    ms, rest = 0.0, []
    bpy.context.view_layer.update()
    for arm_name, meshes in sorted(arms.items()):
        arm = bpy.data.objects[arm_name]
        arm.data.pose_position = "REST"
        # the rest state in the first mesh's object space (glTF's vertex positions): parent_set changes the parenting
        to_mesh = meshes[0].matrix_world.inverted()
        rest.append({"heads": numpy.array([to_mesh @ arm.matrix_world @ b.head_local for b in arm.data.bones],
                                          float).reshape(-1, 3),
                     "points": [numpy.array([to_mesh @ ob.matrix_world @ v.co for v in ob.data.vertices],
                                            float).reshape(-1, 3) for ob in meshes]})
        for ob in meshes:
            ob.vertex_groups.clear()
            for m in [m for m in ob.modifiers if m.type == "ARMATURE"]:
                ob.modifiers.remove(m)
        bpy.ops.object.select_all(action="DESELECT")
        for ob in meshes:
            ob.select_set(True)
        arm.select_set(True)
        bpy.context.view_layer.objects.active = arm
        bpy.context.view_layer.update()
        tick = time.perf_counter()
        bpy.ops.object.parent_set(type="ARMATURE_AUTO")
        ms += (time.perf_counter() - tick) * 1000
    return [(bpy.data.objects[a], m, r) for (a, m), r in zip(sorted(arms.items()), rest)], ms


def run(path: Path, out: Path, key: str) -> None:
    times = []
    for r in range(REPEATS):  # a fresh import each time: a second parent_set on the same objects is not the same work
        if r:
            times.append(auto_weights(path)[1])
    groups, ms = auto_weights(path)
    times.append(ms)
    arrays = {"ms": numpy.array(min(times))}
    for a, (arm, meshes, r) in enumerate(groups):
        bones = [b.name for b in arm.data.bones]
        col = {n: i for i, n in enumerate(bones)}
        arrays[f"a{a}_bones"] = numpy.array(bones)
        arrays[f"a{a}_heads"] = r["heads"] @ Y_UP.T
        for k, (ob, pts) in enumerate(zip(meshes, r["points"])):
            w = numpy.zeros((len(pts), len(bones)), numpy.float32)
            names = {g.index: g.name for g in ob.vertex_groups}
            for v in ob.data.vertices:
                for g in v.groups:
                    j = col.get(names[g.group])
                    if j is not None:
                        w[v.index, j] += g.weight
            arrays[f"a{a}_m{k}_points"] = pts @ Y_UP.T
            arrays[f"a{a}_m{k}_weights"] = w
    numpy.savez(out / f"{key}.npz", **arrays)
    print(f"usdposer-bench: end {key} {arrays['ms']:.1f} ms", flush=True)


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1:]
    out = Path(argv[0])
    for i, f in enumerate(argv[1:]):
        key = f"{i:03d}_{Path(f).stem}"
        print(f"usdposer-bench: begin {key}", flush=True)
        run(Path(f), out, key)


main()
