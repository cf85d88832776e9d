"""usdposer invert"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import (
    checkpoint_option,
    count,
    ddim_steps,
    device_option,
    frames_spec,
    json_option,
    verbosity_option,
)
from usdposer.commands._output import emit, progress

EPILOG = """\b
Examples:
  usdposer invert fox.usdc -o fox.latents.usdc
  usdposer invert fox.usdc --anim Run --frames 0:20 --json
  usdposer invert walk.usdc --frames 0:100:10 --checkpoint runs/prior --steps 25 --refine 5

\b
Writes a layer over ASSET (default ASSET_STEM.latents.usdc) with
  - PoseSampleLibrary <Skeleton>/PoseLatents: the poses, their DDIM latent codes (eta = 0)
    and each pose's reconstruction error (invert, then decode) as its score;
  - SkelAnimation <Skeleton>/usdposerReconstruction: the decoded poses (not bound; compare in a DCC).
Errors are mean joint distances as a fraction of the character's height.
"""


@click.command("invert", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output layer (.usdc/.usda).")
@click.option("--anim", default=None, help="SkelAnimation prim path or name (default: the bound one).")
@click.option("--frames", callback=frames_spec, default=None, help="Time codes to invert: A:B, A:B:STEP or T1,T2 (default: all).")
@checkpoint_option
@ddim_steps(50)
@click.option("--refine", type=count(0, 100), default=3, show_default=True, help="Fixed-point iterations per inversion step.")
@click.option("--preview", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG contact sheet: source poses over their decoded reconstructions.")
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@device_option
@json_option
@verbosity_option
def cli(asset, out, anim, frames, checkpoint, steps, refine, preview, skeleton, device, as_json) -> None:
    """Invert ASSET's poses into the pose space's latent codes, stored in a USD layer over it."""
    from usdposer.pipelines.invert import InvertOptions, invert

    from usdposer.core.selection import default_output

    options = InvertOptions(anim=anim, frames=frames, checkpoint=checkpoint, steps=steps, refine=refine,
                            skeleton=skeleton, device=device, preview=preview, arguments=tuple(sys.argv[1:]))
    report = invert(asset, out or default_output(asset, "latents"), options,
                    progress=progress("inverting", quiet=as_json))
    emit(report, as_json, _human)


def _human(r) -> str:
    return (f"wrote {r.output}: {r.frames} poses of {r.animation} inverted into {r.library}; reconstruction error "
            f"mean {r.mean_error:.3%} / max {r.max_error:.3%} of the height ({r.height_m:.3f} m) ({r.seconds:.1f} s)"
            + (f"; preview {r.preview}" if r.preview else ""))
