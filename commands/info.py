"""usdposer info"""

from __future__ import annotations

import click
from usdposer.commands._options import json_option, verbosity_option
from usdposer.commands._output import emit

EPILOG = """\b
Examples:
  usdposer info fox.usdc
  usdposer info fox.usdc --json
  usdposer info fox.usdc --no-tree

Exits 2 (after printing the report) when the asset has errors that make it unusable.
"""


@click.command("info", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("--tree/--no-tree", default=True, help="Print the joint tree.")
@click.option("--skeleton", default=None, help="Only this Skeleton (prim path or name).")
@json_option
@verbosity_option
def cli(asset: str, tree: bool, skeleton: str | None, as_json: bool) -> None:
    """Skeletons, joint count and tree, meshes, influences, clips, units, how the rig was made and problems of a USD
    ASSET."""
    from usdposer.pipelines.info import InfoOptions
    from usdposer.pipelines.info import info as run

    from usdposer.errors import RigError

    info = run(asset, InfoOptions(skeleton=skeleton))
    emit(info, as_json, lambda i: format_info(i, tree))
    if info.errors:
        first = info.errors[0]
        more = f" (+{len(info.errors) - 1} more)" if len(info.errors) > 1 else ""
        raise RigError(f"{asset}: {first['prim']}: {first['message']}{more}")


def format_info(info, tree: bool = True) -> str:
    """Human-readable summary."""
    from usdposer.io.texture import file_name

    lines = [f"{info.path}",
             f"  units: {info.meters_per_unit:g} m/unit, up {info.up_axis}, {info.time_codes_per_second:g} time codes/s, "
             f"range [{info.start_time_code:g}, {info.end_time_code:g}]"]
    if not info.skeletons:
        lines.append("  no usable skeleton")
    for s in info.skeletons:
        lines.append(f"  Skeleton {s.prim}: {s.joints} joints, {len(s.roots)} root(s), height {s.height_m:.3f} m"
                     + (", joint limits" if s.has_limits else ""))
        c = s.conventions
        if c:
            lo, hi = c["joint_frame_scale"]
            scale = f"{lo:g}" if abs(hi - lo) <= 1e-6 * max(abs(hi), 1e-12) else f"{lo:g}..{hi:g}"
            lines.append(f"    made: up from the {c['up']}; facing from {c['facing']}; joint frames scaled {scale}; "
                         f"bindTransforms in {c['bind_space']}; rest pose "
                         + (f"differs from bind (up to {c['rest_vs_bind_max_offset_pct']:g} % of the height)"
                            if c["rest_differs_from_bind"] else "= bind"))
            if c["non_deforming_joints"]:
                lines.append(f"    {c['model_joints']} joints deform or carry deforming joints; the pose space leaves "
                             f"out {len(c['non_deforming_joints'])}: " + ", ".join(c["non_deforming_joints"][:12])
                             + (" ..." if len(c["non_deforming_joints"]) > 12 else ""))
        if tree:
            for tok in s.tree:
                depth = tok.count("/")
                lines.append(f"    {'  ' * depth}{tok.rsplit('/', 1)[-1]}")
        for m in s.meshes:
            tex = f", texture {file_name(m.texture)}" if m.texture else ""
            shapes = (f", {len(m.blend_shapes)} blend shapes ({_few(m.blend_shapes)}; drawn where a clip weights them, "
                      "checks use the base shape)") if m.blend_shapes else ""
            lines.append(f"    mesh {m.prim}: {m.points} points, {m.triangles} triangles, {m.influences} influences/point"
                         f"{'' if m.skinning_method == 'classicLinear' else ', ' + m.skinning_method}{tex}{shapes}")
        for c in s.clips:
            shapes = f", weights {len(c.blend_shapes)} blend shapes" if c.blend_shapes else ""
            lines.append(f"    clip {c.prim}: {c.frames} frames, {c.fps:g} fps, {c.seconds:g} s"
                         f"{' (bound)' if c.bound else ''}{shapes}")
    if info.problems:
        lines.append(f"  problems ({len(info.problems)}):")
        lines += [f"    {p['severity']}: {p['prim']}: {p['message']}" for p in info.problems]
    return "\n".join(lines)


def _few(names: list[str], k: int = 4) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")
