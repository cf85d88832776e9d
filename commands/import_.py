"""usdposer import"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import json_option, number, verbosity_option
from usdposer.commands._output import emit, warn

EPILOG = """\b
Examples:
  usdposer import assets/khronos/Fox.glb -o fox.usdc
  usdposer import character.gltf -o character.usda --fps 30
  usdposer import Horse.glb -o horse.usdc --bind Gallop --json
  usdposer import assets/cmu/cmu_walk.bvh -o walk.usdc
  usdposer import assets/mujoco/rodent/rodent.xml -o rodent.usdc
  usdposer import assets/kaykit/mannequin/manny_med_mod.gltf -o manny.usdc --anim-from assets/kaykit/anim/Med_MovementBasic.glb

\b
Every animation becomes its own SkelAnimation under the Skeleton. One is bound through
skel:animationSource (the first, or --bind NAME); pick another in a DCC with the Skeleton's
"usdposerClip" variant set. Clips are sampled at their keyframes unless --fps is given.
Textures are written beside the output in <name>_textures/.
BVH: skeleton from OFFSETs, one clip; units guessed from the skeleton's size unless
--meters-per-unit is given. MJCF: one joint per body, the .skn skin as a skinned mesh,
hinge ranges stored as joint limits (JointLimitsAPI). --anim-from adds an animation
library's clips (a skeleton-only file made for the same kind of rig), joints matched by
name (Mixamo, Blender and 3ds Max names understood), root motion scaled to the character.
"""


@click.command("import", epilog=EPILOG)
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output .usdc/.usda file.")
@click.option("--fps", type=number(0, 1000, lo_open=True), default=None, help="Resample every clip at this rate instead of at its keyframes.")
@click.option("--bind", "bind_clip", default=None, help="Name of the clip to bind (default: the first).")
@click.option("--meters-per-unit", type=number(0, 1e6, lo_open=True), default=None, help="BVH only: the file's unit in metres.")
@click.option("--skin", type=click.Path(dir_okay=False), default=None, help="MJCF only: the .skn skin to bind.")
@click.option("--anim-from", "anim_from", multiple=True, type=click.Path(dir_okay=False),
              help="An animation library whose clips the character plays (joints matched by name); repeat.")
@json_option
@verbosity_option
def cli(src: str, out: str, fps: float | None, bind_clip: str | None, meters_per_unit: float | None,
        skin: str | None, anim_from: tuple[str, ...], as_json: bool) -> None:
    """Convert glTF 2.0 (.gltf/.glb), BVH (.bvh) or MuJoCo MJCF (.xml) into a UsdSkel stage."""
    from usdposer.pipelines.import_ import ImportOptions, import_

    report = import_(src, out, ImportOptions(fps=fps, bind_clip=bind_clip, meters_per_unit=meters_per_unit, skin=skin,
                                             anim_from=tuple(anim_from), arguments=tuple(sys.argv[1:])))
    for w in report.warnings:
        warn(w)
    emit(report, as_json, _human)


def _human(r) -> str:
    skels = ", ".join(f"{s['prim']} ({s['joints']} joints)" for s in r.skeletons)
    shapes = sum(len(m.get("blend_shapes", ())) for m in r.meshes)
    return (f"wrote {r.output}: {skels}; {len(r.meshes)} meshes" + (f" ({shapes} blend shapes)" if shapes else "")
            + f"; {len(r.clips)} clips at {r.time_codes_per_second:g} time codes/s; {len(r.textures)} textures")
