"""usdposer fit"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import (
    count,
    device_option,
    frames_spec,
    json_option,
    number,
    seed_option,
    verbosity_option,
)
from usdposer.commands._output import emit, progress

EPILOG = """\b
Examples:
  usdposer fit capture.usdc --rig fox.usdc -o fox.fit.usdc
  usdposer fit fox.usdc --video fox_run.mp4 --preview fox_run.fit.png
  usdposer fit fox.usdc --video fox_run.mp4 --cameras fox_run.cameras.json --no-prior --frames 0:4 --json
  usdposer fit scans/ --rig fox.usdc --frames 0:40 --iterations 80 --json
  usdposer fit points.npy --rig fox.usdc --preview fit.png

\b
MESHSEQ (with --rig) is a USD file whose Mesh/Points prim has time-sampled points (any
topology, no correspondence to the rig; --prim picks one), a folder of
OBJ/PLY/STL/OFF frames, or a .npy array (T, P, 3). Folder and .npy points
are in the rig's units and up axis. Every frame is fitted in order, from
the previous frame's pose: joint rotations and the root translation
minimise the symmetric Chamfer distance between the skinned rig surface
and the frame, plus mesh edge-length and temporal-smoothness terms.
The layer over the rig asset (default RIG_STEM.fit.usdc) binds the fitted
SkelAnimation <Skeleton>/usdposerFit; its usdposer:fitResiduals holds each
frame's Chamfer RMS distance in % of height. Feed it to `usdposer dataset
build`.

\b
--video VIDEO (the positional argument is then the rigged asset): the rig
as skinned Gaussians rendered with the video's cameras (VIDEO_STEM
.cameras.json, as `usdposer generate` writes it) over the empty scene
(drawn from its ground record, or --plate IMAGE); per-frame joint
rotations and every root's translation fitted to the frames (photometric
+ silhouette + smoothness + the pose prior's denoising score; a secondary
root such as an IK foot target held near the limb it sits on), coarse to
fine, each frame from the previous one carried on by its motion; the first
from the pose the video starts at (the cameras.json's first_pose: generate
renders it). Writes
<Skeleton>/usdposerFitVideo with usdposer:fitImageLoss and
usdposer:fitMaskIoU per frame and the generating run's model, prompt and
seed in the layer's provenance.
"""


@click.command("fit", epilog=EPILOG)
@click.argument("meshseq", metavar="MESHSEQ|ASSET", type=click.Path())
@click.option("--rig", "rig_asset", type=click.Path(dir_okay=False), default=None, help="The rigged USD asset to fit.")
@click.option("--video", type=click.Path(), default=None, help="Fit ASSET (the argument) to this video (MP4/GIF/PNG folder).")
@click.option("--cameras", type=click.Path(dir_okay=False), default=None, help="The video's cameras.json (default: beside it).")
@click.option("--plate", type=click.Path(dir_okay=False), default=None, help="Image of the empty scene (default: drawn from the cameras.json).")
@click.option("--prior", "prior_ckpt", type=click.Path(), default=None, help="Pose-space checkpoint for --video (default: the bundled one).")
@click.option("--no-prior", is_flag=True, help="--video without the pose prior (the ablation).")
@click.option("--start", default="auto", show_default=True, help="--video: the first frame's pose: auto, rest or a SkelAnimation name.")
@click.option("--max-size", type=count(16, 4096), default=192, show_default=True, help="--video: fit at most this many pixels wide.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output layer (.usdc/.usda).")
@click.option("--frames", callback=frames_spec, default=None, help="Frames to fit: A:B, A:B:STEP or T1,T2 (default: all).")
@click.option("--iterations", type=count(1, 100_000), default=None, help="Optimiser iterations per frame [60; --video 40].")
@click.option("--first-iterations", type=count(1, 100_000), default=None, help="Iterations for the first frame [300; --video 150].")
@click.option("--samples", type=count(1, 10_000_000), default=8000, show_default=True, help="Rig surface samples in the Chamfer term.")
@click.option("--edge-weight", type=number(0, 1e6), default=1e-3, show_default=True, help="Weight of the edge-length term.")
@click.option("--smooth-weight", type=number(0, 1e6), default=1e-5, show_default=True, help="Weight of temporal smoothness.")
@click.option("--prim", default=None, help="Mesh/Points prim of MESHSEQ (default: the first time-sampled one).")
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, help="Write a PNG of fitted frames here.")
@seed_option
@device_option
@json_option
@verbosity_option
def cli(meshseq, rig_asset, video, cameras, plate, prior_ckpt, no_prior, start, max_size, out, frames, iterations,
        first_iterations, samples, edge_weight, smooth_weight, prim, skeleton, preview, seed, device, as_json) -> None:
    """Fit the rig of --rig to every frame of MESHSEQ (or the rig of ASSET to a --video); write the SkelAnimation as a
    layer over the rig."""
    from usdposer.core.selection import default_output
    from usdposer.errors import InputError

    if video:
        if rig_asset:
            raise InputError("--video fits the asset given as the argument: `usdposer fit ASSET --video VIDEO` (drop --rig)")
        from usdposer.models.video_fit import VideoFitConfig
        from usdposer.pipelines.fit import VideoFitOptions, fit_video_asset

        vc = VideoFitConfig(iterations=iterations or 40, first_iterations=first_iterations or 150, max_size=max_size,
                            prior_weight=0.0 if no_prior else VideoFitConfig.prior_weight, seed=seed)
        vopts = VideoFitOptions(cfg=vc, cameras=cameras, plate=plate, prior=prior_ckpt, start=start,
                                skeleton=skeleton, frames=frames, preview=preview, device=device,
                                arguments=tuple(sys.argv[1:]))
        rep = fit_video_asset(meshseq, video, out or default_output(meshseq, "fitvideo"), vopts,
                              progress=progress("fitting", "frame", quiet=as_json))
        emit(rep, as_json, _human_video)
        return
    if not rig_asset:
        raise InputError("missing --rig: `usdposer fit MESHSEQ --rig ASSET` (or `usdposer fit ASSET --video VIDEO`)")
    from usdposer.pipelines.fit import FitOptions, fit

    from usdposer.core.fitting import FitConfig

    iterations, first_iterations = iterations or 60, first_iterations or 300
    cfg = FitConfig(iterations=iterations, first_iterations=first_iterations, samples=samples,
                    edge_weight=edge_weight, smooth_weight=smooth_weight, seed=seed)
    options = FitOptions(cfg=cfg, skeleton=skeleton, prim=prim, frames=frames, preview=preview,
                         arguments=tuple(sys.argv[1:]))
    rep = fit(meshseq, rig_asset, out or default_output(rig_asset, "fit"), options,
              progress=progress("fitting", "frame", quiet=as_json))
    emit(rep, as_json, _human)


def _human(r) -> str:
    return (f"wrote {r.output}: {r.frames} frames of {r.sequence} fitted into {r.animation}; Chamfer residual mean "
            f"{r.mean_residual:.2f}% / max {r.max_residual:.2f}% of height ({r.seconds:.1f} s, {r.frames_per_second:.2f} frames/s)")


def _human_video(r) -> str:
    return (f"wrote {r.output}: {r.frames} frames of {r.video} fitted into {r.animation} (start {r.start}, prior "
            f"{r.prior or 'off'}); silhouette IoU mean {r.mean_mask_iou:.2f}, image loss {r.mean_image_loss:.3f} "
            f"({r.seconds:.1f} s, {r.frames_per_second:.2f} frames/s)")
