"""usdposer import"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import json_option
from usdposer.commands._output import emit, warn

EPILOG = """\b
Examples:
  usdposer import assets/khronos/Fox.glb -o fox.usdc
  usdposer import character.gltf -o character.usda --fps 30
  usdposer import Horse.glb -o horse.usdc --bind Gallop --json

\b
Every animation becomes its own SkelAnimation under the Skeleton. One is bound through
skel:animationSource (the first, or --bind NAME); pick another in a DCC with the Skeleton's
"usdposerClip" variant set. Clips are sampled at their keyframes unless --fps is given.
Textures are written beside the output in <name>_textures/.
"""


@click.command("import", epilog=EPILOG)
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output .usdc/.usda file.")
@click.option("--fps", type=float, default=None, help="Resample every clip at this rate instead of at its keyframes.")
@click.option("--bind", "bind_clip", default=None, help="Name of the clip to bind (default: the first).")
@json_option
def cli(src: str, out: str, fps: float | None, bind_clip: str | None, as_json: bool) -> None:
    """Convert a glTF 2.0 file (.gltf/.glb) with skins into a UsdSkel stage (metres, +Y up)."""
    from usdposer.io.gltf_import import import_gltf

    report = import_gltf(src, out, fps=fps, bind_clip=bind_clip, arguments=sys.argv[1:])
    for w in report.warnings:
        warn(w)
    emit(report, as_json, _human)


def _human(r) -> str:
    skels = ", ".join(f"{s['prim']} ({s['joints']} joints)" for s in r.skeletons)
    return (f"wrote {r.output}: {skels}; {len(r.meshes)} meshes; {len(r.clips)} clips at "
            f"{r.time_codes_per_second:g} time codes/s; {len(r.textures)} textures")
