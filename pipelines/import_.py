"""``usdposer import``: glTF/GLB, BVH and MuJoCo MJCF to UsdSkel (``usdposer.io.importers``), optionally with an
animation library's clips retargeted onto the character."""

from __future__ import annotations

import os
from dataclasses import dataclass

from usdposer.pipelines._base import Progress


@dataclass(frozen=True)
class ImportOptions:
    """``fps``: resample every clip (glTF); ``bind_clip``: the clip to bind; ``meters_per_unit``: a BVH's unit;
    ``skin``: an MJCF's ``.skn``; ``anim_from``: animation libraries whose clips the character plays (joints matched
    by name); ``arguments``: the command line, for provenance."""

    fps: float | None = None
    bind_clip: str | None = None
    meters_per_unit: float | None = None
    skin: str | None = None
    anim_from: tuple[str, ...] = ()
    arguments: tuple[str, ...] = ()


def import_(src: str | os.PathLike, out: str | os.PathLike, options: ImportOptions = ImportOptions(),
            progress: Progress | None = None):
    """Convert ``src`` into a UsdSkel stage at ``out``; returns the ``usdposer.io.gltf_import.ImportReport``."""
    from usdposer.io.importers import import_any

    o = options
    return import_any(src, out, fps=o.fps, bind_clip=o.bind_clip, meters_per_unit=o.meters_per_unit, skin=o.skin,
                      anim_from=list(o.anim_from), arguments=list(o.arguments))
