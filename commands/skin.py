"""usdposer skin"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import count, json_option, verbosity_option
from usdposer.commands._output import emit, warn

EPILOG = """\b
Examples:
  usdposer skin scan.usdc -o scan.skin.usdc
  usdposer skin scan.usdc --influences 8 --exclude 'PoleTarget*' --exclude Body
  usdposer skin fox.usdc --replace --json      # recompute, compare with the old weights

\b
Bone-heat weights (Pinocchio): heat diffuses over the surface from each
vertex's nearest bone that it can see from inside the mesh; one sparse
factorisation solves every bone. Meshes of the Skeleton's SkelRoot that
have no jointIndices/jointWeights are skinned (all of them with --replace)
and written as SkelBindingAPI overs in a layer over ASSET (default
ASSET_STEM.skin.usdc). Leaf joints floating outside the mesh (IK pole
targets) are controls and get no weight; --exclude leaves out more.
With --replace the report compares the new weights with the old ones:
mean per-vertex L1 distance and skinned-vertex RMSE over the asset's
animations in % of height.
"""


@click.command("skin", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output layer (.usdc/.usda).")
@click.option("-k", "--influences", type=count(1, 64), default=4, show_default=True, help="Weights kept per vertex.")
@click.option("--exclude", multiple=True, help="Joints (name or glob) that must not deform the mesh (repeatable).")
@click.option("--mesh", "meshes", multiple=True, help="Only these Mesh prims (path or name; repeatable).")
@click.option("--replace", is_flag=True, help="Recompute weights of meshes that already have them.")
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@json_option
@verbosity_option
def cli(asset, out, influences, exclude, meshes, replace, skeleton, as_json) -> None:
    """Compute bone-heat skinning weights for ASSET's meshes, written as a layer over it."""
    from usdposer.pipelines.skin import SkinOptions, skin

    from usdposer.core.selection import default_output

    rep = skin(asset, out or default_output(asset, "skin"),
               SkinOptions(influences=influences, exclude=tuple(exclude), replace_weights=replace, meshes=tuple(meshes),
                           skeleton=skeleton, arguments=tuple(sys.argv[1:])))
    if rep.unweighted_joints:
        warn(f"{len(rep.unweighted_joints)} deforming joints received no weight: {', '.join(rep.unweighted_joints)}")
    emit(rep, as_json, _human)


def _human(r) -> str:
    lines = [f"wrote {r.output}: bone-heat weights for {len(r.meshes)} meshes ({r.vertices} vertices), "
             f"{r.weighted_joints} of {r.joints} joints weighted, {r.influences} influences ({r.seconds:.2f} s)"]
    if r.control_joints:
        lines.append(f"  controls left without weight: {', '.join(r.control_joints)}")
    if r.forced_components:
        lines.append(f"  {r.forced_components} of {r.components} mesh parts saw no bone and follow their nearest one")
    if r.comparison:
        c = r.comparison
        rmse = f"; skinned RMSE {c['rmse_pct']:.2f}% of height over {c['frames']} frames" if c["rmse_pct"] is not None else ""
        lines.append(f"  vs the previous weights: L1 {c['l1']:.3f}{rmse}")
    return "\n".join(lines)
