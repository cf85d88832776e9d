"""One entry point for every importer, chosen by file extension."""

from __future__ import annotations

import os
from pathlib import Path

from usdposer.errors import InputError
from usdposer.io.gltf_import import ImportReport

GLTF = (".gltf", ".glb")
BVH = (".bvh",)
MJCF = (".xml", ".mjcf")
IMPORT_EXTENSIONS = GLTF + BVH + MJCF  # what `usdposer import` converts (USD's own: usdposer.io.stage)


def import_any(src: str | os.PathLike, out: str | os.PathLike, *, fps: float | None = None,
               bind_clip: str | None = None, meters_per_unit: float | None = None, skin: str | None = None,
               anim_from: list[str] = (), arguments: list[str] | None = None) -> ImportReport:
    """Import glTF/GLB, BVH or MJCF at ``src`` into a UsdSkel stage at ``out``; ``anim_from``: animation libraries
    (files of any supported format) whose clips are retargeted onto the character by joint name. Raises
    InputError."""
    if anim_from:
        return _with_library(src, out, anim_from, fps=fps, bind_clip=bind_clip, meters_per_unit=meters_per_unit,
                             skin=skin, arguments=arguments)
    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: no such file")
    ext = src.suffix.lower()
    if fps is not None and ext not in GLTF:
        raise InputError("--fps applies to glTF only; BVH clips keep their frame rate and MJCF has no clips")
    if ext in GLTF:
        from usdposer.io.gltf_import import import_gltf

        return import_gltf(src, out, fps=fps, bind_clip=bind_clip, arguments=arguments)
    if ext in BVH:
        from usdposer.io.bvh import bvh_to_rig

        rig = bvh_to_rig(src, meters_per_unit=meters_per_unit)
        extra = {"metersPerUnit": rig.meters_per_unit}
    elif ext in MJCF:
        from usdposer.io.mjcf import mjcf_to_rig

        rig = mjcf_to_rig(src, skin_path=skin)
        extra = {}
    else:
        if ext in (".usd", ".usda", ".usdc", ".usdz"):
            raise InputError(f"{src}: already USD, nothing to import; use it directly (import reads .glb, .gltf, "
                             ".bvh and MuJoCo .xml)")
        raise InputError(f"{src}: unknown format {ext!r}; import reads .glb, .gltf, .bvh and MuJoCo .xml")
    from usdposer.io.rig_stage import write_rig_stage

    written = write_rig_stage(rig, out, sources=[src], arguments=arguments, bind_clip=bind_clip, **extra)
    report = ImportReport(source=str(src), output=str(written.path), time_codes_per_second=rig.time_codes_per_second)
    for sk, prim, clip_paths in zip(rig.skeletons, written.skeletons, written.clips):
        report.skeletons.append({"prim": prim, "joints": len(sk.tokens), "skins": []})
        report.clips.extend({"skeleton": prim, "prim": path, "name": c.name, "frames": len(c.time_codes),
                             "seconds": (len(c.time_codes) - 1) / rig.time_codes_per_second}
                            for c, path in zip(sk.clips, clip_paths))
    report.meshes.extend({"prim": path, "name": m.name, "points": len(m.points), "faces": len(m.faces),
                          "influences": int(m.indices.shape[1])} for m, path in zip(rig.meshes, written.meshes))
    if ext in BVH and meters_per_unit is None:
        report.warnings.append(f"BVH has no units: read at {rig.meters_per_unit:g} m per unit (from the skeleton's "
                               "size); pass --meters-per-unit to override")
    return report


def _with_library(src, out, libraries, *, arguments=None, **kw) -> ImportReport:
    """Import ``src``, then add the libraries' clips (retargeted by joint name) under its Skeleton: written to a
    temporary stage and moved into place, so a bad library leaves nothing behind."""
    import tempfile

    from usdposer.io.stage import atomic_path, check_output_path

    out = check_output_path(out, [src, *libraries])
    with tempfile.TemporaryDirectory(prefix="usdposer-import-") as work, atomic_path(out) as tmp:
        base = Path(work) / f"character{out.suffix}"
        report = import_any(src, base, arguments=arguments, **kw)
        report.output = str(out)
        add_library_clips(base, libraries, Path(work), report)
        base.replace(tmp)
    return report


def add_library_clips(path: Path, libraries: list[str], work: Path, report: ImportReport) -> None:
    """Retarget every clip of every library file onto the (only) Skeleton of the stage at ``path``, in place."""
    from pxr import Sdf, Usd

    from usdposer.core.retarget import retarget_clip
    from usdposer.io.dataset import read_any
    from usdposer.io.read_skel import read_asset
    from usdposer.io.write_skel import CLIP_VARIANT_SET, bind_animations, define_animation, to_stage_units, unique_names

    asset = read_asset(path)
    rig = asset.rig()
    tcps = asset.time_codes_per_second or 24.0
    existing = [c.path for c in asset.clips.get(rig.skeleton_path, [])]
    new = []
    for k, lib in enumerate(libraries):
        lib_asset = read_any(Path(lib), work, verb="import")
        if k == 0 and not existing:  # a character without clips plays at the library's rate
            tcps = lib_asset.time_codes_per_second or tcps
        if not lib_asset.rigs:
            raise InputError(f"{lib}: no skeleton in the animation library")
        src = max(lib_asset.rigs, key=lambda r: len(lib_asset.clips.get(r.skeleton_path, [])))
        clips = lib_asset.clips.get(src.skeleton_path, [])
        if not clips:
            raise InputError(f"{lib}: the animation library has no clips")
        for clip in clips:
            retargeted, rep = retarget_clip(src, clip, rig, tcps)
            new.append(retargeted)
        if rep["matched"] == 0:
            raise InputError(f"{lib}: no joint of the library matches a joint of {rig.skeleton_path} by name; "
                             "rename the joints or retarget in a DCC")
        report.warnings += [f"{lib}: {len(clips)} clips bound by joint name ({rep['matched']} joints matched"
                            + (f"; unmatched: {', '.join(rep['unmatched_character_joints'])}"
                               if rep["unmatched_character_joints"] else "") + ")"]
        report.clips.extend({"name": c.name, "frames": len(c), "seconds": c.duration_seconds, "library": str(lib),
                             "matched_joints": rep["matched"]} for c in clips)
    stage = Usd.Stage.Open(str(path))
    taken = [Sdf.Path(p).name for p in existing]
    names = unique_names(taken + [c.name for c in new])[len(taken):]
    paths = []
    for name, clip in zip(names, new):
        p = f"{rig.skeleton_path}/{name}"
        t, q, sc = to_stage_units(rig, clip)
        define_animation(stage, p, rig.joints, t, q, sc, clip.time_codes.tolist())
        paths.append(p)
    skel = stage.GetPrimAtPath(rig.skeleton_path)
    selected = skel.GetVariantSets().GetVariantSet(CLIP_VARIANT_SET).GetVariantSelection() if existing else ""
    every = existing + paths  # the variant set gains the new clips; the character's own binding stays selected
    names_all = [Sdf.Path(p).name for p in every]
    bind_animations(stage, rig.skeleton_path, every, names_all.index(selected) if selected in names_all else 0,
                    names_all)
    if not existing:
        first = new[0].time_codes
        stage.SetTimeCodesPerSecond(tcps)
        stage.SetFramesPerSecond(tcps)
        stage.SetStartTimeCode(float(first[0]))
        stage.SetEndTimeCode(float(first[-1]))
    report.time_codes_per_second = tcps
    stage.GetRootLayer().Save()
