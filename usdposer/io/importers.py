"""One entry point for every importer, chosen by file extension."""

from __future__ import annotations

import os
from pathlib import Path

from usdposer.errors import InputError
from usdposer.io.gltf_import import ImportReport

GLTF = (".gltf", ".glb")
BVH = (".bvh",)
MJCF = (".xml", ".mjcf")


def import_any(src: str | os.PathLike, out: str | os.PathLike, *, fps: float | None = None,
               bind_clip: str | None = None, meters_per_unit: float | None = None, skin: str | None = None,
               arguments: list[str] | None = None) -> ImportReport:
    """Import glTF/GLB, BVH or MJCF at ``src`` into a UsdSkel stage at ``out``. Raises InputError."""
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
        raise InputError(f"{src}: unknown format {ext!r}; import reads .glb, .gltf, .bvh and MuJoCo .xml")
    from usdposer.io.rig_stage import write_rig_stage
    from usdposer.io.write_skel import root_prim_name

    out = write_rig_stage(rig, out, sources=[src], arguments=arguments, bind_clip=bind_clip, **extra)
    report = ImportReport(source=str(src), output=str(out), time_codes_per_second=rig.time_codes_per_second)
    report.skeletons.append({"prim": f"/{root_prim_name(rig.name)}/Skel", "joints": len(rig.tokens), "skins": []})
    report.meshes.extend({"name": m.name, "points": len(m.points), "influences": int(m.indices.shape[1])}
                         for m in rig.meshes)
    report.clips.extend({"name": c.name, "frames": len(c.time_codes),
                         "seconds": (len(c.time_codes) - 1) / rig.time_codes_per_second} for c in rig.clips)
    if ext in BVH and meters_per_unit is None:
        report.warnings.append(f"BVH has no units: read at {rig.meters_per_unit:g} m per unit (from the skeleton's "
                               "size); pass --meters-per-unit to override")
    return report
