"""usdposer fit"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import count, frames_spec, json_option, number, seed_option, verbosity_option
from usdposer.commands._output import emit, progress

EPILOG = """\b
Examples:
  usdposer fit capture.usdc --rig fox.usdc -o fox.fit.usdc
  usdposer fit scans/ --rig fox.usdc --frames 0:40 --iterations 80 --json
  usdposer fit points.npy --rig fox.usdc --preview fit.png

\b
MESHSEQ is a USD file whose Mesh/Points prim has time-sampled points (any
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
"""


@click.command("fit", epilog=EPILOG)
@click.argument("meshseq", type=click.Path())
@click.option("--rig", "rig_asset", type=click.Path(dir_okay=False), required=True, help="The rigged USD asset to fit.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output layer (.usdc/.usda).")
@click.option("--frames", callback=frames_spec, default=None, help="Frames to fit: A:B, A:B:STEP or T1,T2 (default: all).")
@click.option("--iterations", type=count(1, 100_000), default=60, show_default=True, help="Optimiser iterations per frame.")
@click.option("--first-iterations", type=count(1, 100_000), default=300, show_default=True, help="Iterations for the first frame.")
@click.option("--samples", type=count(1, 10_000_000), default=8000, show_default=True, help="Rig surface samples in the Chamfer term.")
@click.option("--edge-weight", type=number(0, 1e6), default=1e-3, show_default=True, help="Weight of the edge-length term.")
@click.option("--smooth-weight", type=number(0, 1e6), default=1e-5, show_default=True, help="Weight of temporal smoothness.")
@click.option("--prim", default=None, help="Mesh/Points prim of MESHSEQ (default: the first time-sampled one).")
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, help="Write a PNG of fitted frames here.")
@seed_option
@json_option
@verbosity_option
def cli(meshseq, rig_asset, out, frames, iterations, first_iterations, samples, edge_weight, smooth_weight, prim,
        skeleton, preview, seed, as_json) -> None:
    """Fit the rig of --rig to every frame of MESHSEQ; write the SkelAnimation as a layer over the rig."""
    from usdposer.pipelines.fit import FitOptions, fit

    from usdposer.core.fitting import FitConfig
    from usdposer.core.selection import default_output

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
