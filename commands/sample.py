"""usdposer sample"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import (
    checkpoint_option,
    count,
    ddim_steps,
    device_option,
    eta_option,
    json_option,
    noisy_steps_option,
    seed_option,
    verbosity_option,
)
from usdposer.commands._output import emit, progress, warn

EPILOG = """\b
Examples:
  usdposer sample fox.usdc -n 16 --preview fox_samples.png
  usdposer sample fox.usdc -n 64 --seed 3 -o fox.poses.usdc --json
  usdposer sample rodent.usdc -n 8 --checkpoint runs/prior --steps 25
  usdposer sample fox.usdc -n 16 --eta 0
  usdposer sample fox.usdc -n 32 --steps 50 --noisy-steps 50    # the 50-step ancestral sampler

\b
Writes a layer over ASSET (default ASSET_STEM.samples.usdc beside it) with
  - SkelAnimation <Skeleton>/usdposerSamples: pose i at time code i, bound (scrub it in a DCC);
  - PoseSampleLibrary <Skeleton>/PoseSamples: packed rotations and the DDIM latent codes
    (with --eta > 0 the noisy steps are DDIM-inverted, so the codes still decode to the poses);
  - PoseSpaceAPI on the Skeleton naming the model.
Without --checkpoint the default pose space shipped with usdposer is used.
"""


@click.command("sample", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("-n", "--num", "n", type=count(1, 1_000_000), default=16, show_default=True, help="Number of poses.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output layer (.usdc/.usda).")
@checkpoint_option
@ddim_steps(12)
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, help="Write a PNG contact sheet here.")
@eta_option
@noisy_steps_option
@click.option("--refine", type=count(0, 100), default=2, show_default=True,
              help="Fixed-point iterations per inverted noisy step of the codes (more: codes nearer exact).")
@seed_option
@device_option
@json_option
@verbosity_option
def cli(asset, n, out, checkpoint, steps, skeleton, preview, eta, noisy_steps, refine, seed, device,
        as_json) -> None:
    """Sample plausible poses of ASSET's rig from a pose space, written as a USD layer over it."""
    from usdposer.pipelines.sample import SampleOptions, sample

    from usdposer.core.selection import default_output

    options = SampleOptions(n=n, seed=seed, checkpoint=checkpoint, steps=steps, skeleton=skeleton, preview=preview,
                            device=device, eta=eta, noisy_steps=noisy_steps, refine=refine, arguments=tuple(sys.argv[1:]))
    report = sample(asset, out or default_output(asset, "samples"), options,
                    progress=progress("denoising", quiet=as_json))
    for w in report.warnings:
        warn(w)
    emit(report, as_json, _human)


def _human(r) -> str:
    extra = f"; preview {r.preview}" if r.preview else ""
    return (f"wrote {r.output}: {r.samples} poses of {r.skeleton} ({r.joints} joints) at time codes 0..{r.samples - 1} "
            f"in {r.animation}, latents in {r.library}{extra} ({r.seconds:.1f} s)")
