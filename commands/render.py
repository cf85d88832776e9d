"""usdposer render"""

from __future__ import annotations

import click
from usdposer.commands._options import device_option, frames_spec, json_option, number, verbosity_option
from usdposer.commands._output import emit

EPILOG = """\b
Examples:
  usdposer render fox.usdc --anim Walk --mode video -o fox_walk.gif
  usdposer render fox.usdc --samples fox.samples.usdc --mode sheet --check -o fox_samples.png
  usdposer render fox.usdc --frames 12 --mode turntable -o fox_turn.mp4
  usdposer render fox.interp.usdc --mode keyframes --preset wan2.1 -o fox_keys.mp4

\b
A CPU z-buffer rasteriser (PyTorch, no display needed): the skinned mesh
shaded with its base-colour texture, the skeleton drawn over it (bones and
joints; --check marks the joints usdposer check flags in red), a
checkerboard ground with grid lines. Modes: sheet (PNG contact sheet of an
animation's frames or of a samples layer's poses), turntable (one pose from
all around), video (an animation; --camera follow|fixed|orbit) and keyframes
(mesh + skeleton proxy frames at a video model's resolution and frame rate:
a PNG sequence, a video and cameras.json with the view and intrinsic matrices
and time codes; when the animation lists usdposer:keyframes, as interpolate
--keyframes and ik --keyframes write, only those frames; --preset sets a
video model's size and frame rate). Videos are .gif or .mp4.
"""


@click.command("render", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("-o", "--out", type=click.Path(), required=True, help="Output: .png (sheet), .gif/.mp4, or a folder (keyframes).")
@click.option("--mode", type=click.Choice(["sheet", "turntable", "video", "keyframes"]), default="video", show_default=True)
@click.option("--anim", default=None, help="SkelAnimation prim path or name (default: the bound one).")
@click.option("--samples", type=click.Path(dir_okay=False), default=None, help="A `usdposer sample` layer: its poses.")
@click.option("--frames", callback=frames_spec, default=None, help="Time codes: A:B, A:B:S or T1,T2,...")
@click.option("--size", default=None, help="Image size WxH (default 512x512; sheet tiles 192x192).")
@click.option("--preset", type=click.Choice(["wan2.1", "cogvideox", "cogvideox1.5"]), default=None,
              help="A video model's resolution and frame rate (keyframe proxies): 832x480@16, 720x480@8, 1360x768@16.")
@click.option("--fps", type=number(0, 240, lo_open=True), default=None, help="Video frame rate (default: the animation's).")
@click.option("--camera", type=click.Choice(["fixed", "follow", "orbit"]), default=None,
              help="Camera (default: follow for video, fixed for sheet/keyframes, orbit for turntable).")
@click.option("--yaw", type=number(-3600, 3600), default=30.0, show_default=True, help="Camera azimuth, degrees (0: from +Z).")
@click.option("--pitch", type=number(-90, 90), default=15.0, show_default=True, help="Camera elevation, degrees.")
@click.option("--check", is_flag=True, help="Mark the joints `usdposer check` flags (and those outside the limits) in red.")
@click.option("--no-skeleton", is_flag=True, help="Do not draw the skeleton over the mesh.")
@click.option("--skeleton", "skeleton_path", default=None, help="Skeleton prim path or name (default: the first).")
@device_option
@json_option
@verbosity_option
def cli(asset, out, mode, anim, samples, frames, size, preset, fps, camera, yaw, pitch, check, no_skeleton,
        skeleton_path, device, as_json) -> None:
    """Pictures of ASSET's poses and animations: contact sheets, turntables, videos, keyframe proxies."""
    from usdposer.pipelines.render import RenderOptions, render

    options = RenderOptions(mode=mode, anim=anim, samples=samples, frames=frames, size=size, fps=fps, camera=camera,
                            yaw=yaw, pitch=pitch, check=check, skeleton=not no_skeleton, skeleton_path=skeleton_path,
                            preset=preset, device=None if device == "cpu" else device)
    rep = render(asset, out, options)
    emit(rep, as_json, _human)


def _human(r) -> str:
    flagged = f"; joints outside their limits at {len(r.flagged_joints)} frame(s)" if r.flagged_joints else ""
    extra = f" and {r.sidecar}" if r.sidecar else ""
    return (f"wrote {', '.join(r.outputs[-2:]) if len(r.outputs) > 2 else ', '.join(r.outputs)}{extra}: {r.frames} "
            f"frame(s) at {r.size[0]}x{r.size[1]}, {r.camera} camera, {r.seconds:.1f} s{flagged}")
