"""usdposer interpolate"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import (
    checkpoint_option,
    count,
    ddim_steps,
    device_option,
    json_option,
    verbosity_option,
)
from usdposer.commands._output import emit

EPILOG = """\b
Examples:
  usdposer interpolate fox.usdc --from 0 --to 40 --frames 24 --keyframes 4
  usdposer interpolate fox.samples.usdc --from sample:0 --to sample:5 --report
  usdposer interpolate fox.usdc --from rest --to 30 --space joint --preview path.png --json

\b
A pose is a time code of the bound (or --anim) animation, sample:I (the sample
library of a `usdposer sample` layer) or rest. The manifold path inverts both
poses, slerps their latent codes (variance preserving) and decodes each frame;
--space joint slerps each joint instead. --report prints both side by side:
prior score (lower is more plausible), joints outside their limits and the
skinned mesh's crossing part pairs (the SelfIntersection check).
Writes SkelAnimation <Skeleton>/usdposerInterpolation (bound, frame i at time
code i); --keyframes K lists K evenly spaced time codes in usdposer:keyframes.
"""


@click.command("interpolate", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("--from", "pose_from", required=True, help="Start pose: TIME, sample:I or rest.")
@click.option("--to", "pose_to", required=True, help="End pose: TIME, sample:I or rest.")
@click.option("--frames", type=count(2, 100_000), default=24, show_default=True, help="Frames of the path, ends included.")
@click.option("--space", type=click.Choice(["latent", "joint"]), default="latent", show_default=True,
              help="Interpolate latent codes (the manifold) or joint rotations.")
@click.option("--keyframes", type=count(0, 100_000), default=0, show_default=True, help="Mark K evenly spaced keyframes.")
@click.option("--report", is_flag=True, help="Per-frame plausibility of the latent and the joint path.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output layer (.usdc/.usda).")
@click.option("--anim", default=None, help="SkelAnimation the time codes refer to (default: the bound one).")
@checkpoint_option
@ddim_steps(50)
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, help="Write a PNG contact sheet here.")
@device_option
@json_option
@verbosity_option
def cli(asset, pose_from, pose_to, frames, space, keyframes, report, out, anim, checkpoint, steps, skeleton, preview,
        device, as_json) -> None:
    """Interpolate between two poses of ASSET along the pose manifold, written as a SkelAnimation layer."""
    from usdposer.pipelines.interpolate import InterpolateOptions, interpolate

    from usdposer.core.selection import default_output

    options = InterpolateOptions(pose_from=pose_from, pose_to=pose_to, frames=frames, space=space,
                                 keyframes=keyframes, report=report, anim=anim, checkpoint=checkpoint, steps=steps,
                                 skeleton=skeleton, device=device, preview=preview, arguments=tuple(sys.argv[1:]))
    rep = interpolate(asset, out or default_output(asset, "interp"), options)
    emit(rep, as_json, _human)


def _human(r) -> str:
    lines = [f"wrote {r.output}: {r.frames} frames {r.pose_from} -> {r.pose_to} ({r.space} space) in {r.animation}"
             + (f"; keyframes at {', '.join(f'{k:g}' for k in r.keyframes)}" if r.keyframes else "")
             + (f"; preview {r.preview}" if r.preview else "") + f" ({r.seconds:.1f} s)"]
    if r.paths:
        lat, jnt = r.paths
        lines.append("frame  score(latent)  score(joint)  limits(latent)  limits(joint)  crossings(latent)  crossings(joint)")
        cell = lambda v, i: "-" if v is None else v[i]  # noqa: E731
        total = lambda v: "-" if v is None else sum(v)  # noqa: E731
        for i in range(r.frames):
            lines.append(f"{i:5d}  {lat.score[i]:13.3f}  {jnt.score[i]:12.3f}  {cell(lat.limit_violations, i)!s:>14}  "
                         f"{cell(jnt.limit_violations, i)!s:>13}  {cell(lat.self_intersections, i)!s:>17}  "
                         f"{cell(jnt.self_intersections, i)!s:>15}")
        lines.append(f" mean  {lat.mean_score:13.3f}  {jnt.mean_score:12.3f}  {total(lat.limit_violations)!s:>14}  "
                     f"{total(jnt.limit_violations)!s:>13}  {total(lat.self_intersections)!s:>17}  "
                     f"{total(jnt.self_intersections)!s:>15}   (totals for the last four)")
        lines.append("(score: the prior's denoising error, lower is more plausible; limits: joints outside their limits; "
                     "crossings: pairs of skeleton parts whose skinned triangles intersect, as `usdposer check` reports)")
    return "\n".join(lines)
