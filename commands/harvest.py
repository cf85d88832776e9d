"""usdposer harvest"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import (
    count,
    device_option,
    json_option,
    number,
    plausibility_value,
    seed_option,
    verbosity_option,
)
from usdposer.commands._output import emit, progress, warn

EPILOG = """\b
Examples:
  usdposer harvest fox.usdc horse.usdc --prompts motions.txt -o harvest/ --fit-iterations 5 --fit-first-iterations 5
  usdposer harvest fox.usdc --prompts motions.txt --model /models/Wan2.1-I2V-14B-480P-Diffusers \\
      --device cuda -o harvest/ --max-fit-residual 30 --plausibility calibrated --check
  usdposer harvest fox.usdc --prompts motions.txt --via distill --model /models/Wan2.1-T2V-1.3B-Diffusers -o h/

\b
For every ASSET and every prompt of --prompts (a text file, one motion per
line, or a JSON list): `generate` a video of the character and `fit
--video` the rig to it (--via video, the default), or `distill` a motion
and `track` it (--via distill); each item in OUT/items/ASSET/PROMPT/.
Then `dataset build` over every layer made, with the filters, into
OUT/dataset (train a pose space on it with `usdposer train`). Resumable:
a re-run skips items whose done.json matches the asset's bytes, the
prompt and the options; a failing item is recorded (error.txt, and in
OUT/harvest.json) and never stops the others. Exit 0 all made, 1 some
failed, 2 bad arguments. With tiny models (the defaults) the poses mean
nothing: it proves the plumbing; real weights make real data.
"""


@click.command("harvest", epilog=EPILOG)
@click.argument("assets", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--prompts", "prompts_file", required=True, type=click.Path(dir_okay=False), help="Motions, one per line (or a JSON list).")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Harvest folder.")
@click.option("--via", type=click.Choice(["video", "distill"]), default="video", show_default=True)
@click.option("--model", default=None, help="Video model (default: tiny-wan-i2v for video, tiny-wan for distill).")
@click.option("--frames", type=count(1, 1_000), default=None, help="Frames per item (the model's preset by default).")
@click.option("--size", default=None, help="WxH (the model's preset by default).")
@click.option("--steps", type=count(1, 1_000), default=None, help="Video sampling steps.")
@click.option("--fit-iterations", type=count(1, 100_000), default=40, show_default=True)
@click.option("--fit-first-iterations", type=count(1, 100_000), default=150, show_default=True)
@click.option("--fit-max-size", type=count(16, 4096), default=192, show_default=True)
@click.option("--no-prior", is_flag=True, help="Fit without the pose prior.")
@click.option("--distill-iterations", type=count(1, 100_000), default=1000, show_default=True)
@click.option("--track-iterations", type=count(1, 100_000), default=200, show_default=True)
@click.option("--max-fit-residual", type=number(0, 1e6), default=None, help="Dataset filter (see dataset build).")
@click.option("--max-skating", type=number(0, 1e6), default=None, help="Dataset filter (heights/s).")
@click.option("--max-penetration", type=number(0, 1e6), default=None, help="Dataset filter (% of height).")
@click.option("--plausibility", default=None, metavar="SCORE|calibrated", callback=plausibility_value,
              help="Dataset filter: the prior's score.")
@click.option("--check", "run_check", is_flag=True, help="Dataset filter: drop frames with failed check findings.")
@click.option("--no-dataset", is_flag=True, help="Make the items only.")
@seed_option
@device_option
@json_option
@verbosity_option
def cli(assets, prompts_file, out, via, model, frames, size, steps, fit_iterations, fit_first_iterations,
        fit_max_size, no_prior, distill_iterations, track_iterations, max_fit_residual, max_skating, max_penetration,
        plausibility, run_check, no_dataset, seed, device, as_json) -> None:
    """Harvest pose data: videos (or distilled motions) of each ASSET for each prompt, fitted, into a dataset."""
    from usdposer.pipelines.dataset import DatasetFilters
    from usdposer.pipelines.harvest import HarvestOptions, harvest, read_prompts

    from usdposer.core.selection import parse_size

    prompts = read_prompts(prompts_file)
    filters = DatasetFilters(max_fit_residual=max_fit_residual, max_skating=max_skating,
                             max_penetration=max_penetration, plausibility=plausibility, check=run_check)
    options = HarvestOptions(via=via, model=model, frames=frames, size=parse_size(size) if size else None,
                             steps=steps, seed=seed, fit_iterations=fit_iterations,
                             fit_first_iterations=fit_first_iterations, fit_max_size=fit_max_size,
                             prior=not no_prior, distill_iterations=distill_iterations,
                             track_iterations=track_iterations, device=device, filters=filters,
                             build_dataset=not no_dataset)
    rep = harvest(list(assets), prompts, out, options, progress=progress("harvesting", "item", quiet=as_json))
    for it in rep.items:
        if it["status"] == "failed":
            warn(f"failed {it['asset']} / {it['prompt']!r}: {it['error']}")
    emit(rep, as_json, _human)
    if rep.failed:
        sys.exit(1)


def _human(r) -> str:
    lines = [f"harvested into {r.output}: {r.made} made, {r.skipped} skipped (current), {r.failed} failed "
             f"({r.seconds:.1f} s)"]
    for it in r.items:
        extra = f"IoU {it['mask_iou']:.2f}" if "mask_iou" in it else (it.get("error") or "")
        lines.append(f"  {it['status']:<8} {it['asset']} / {it.get('motion', it.get('prompt'))!r} {extra}")
    if r.dataset:
        c = r.dataset_counts or {}
        lines.append(f"  dataset {r.dataset}: {c.get('train', 0)} train poses" +
                     (f"; filters dropped {r.dataset_dropped}" if r.dataset_dropped else ""))
    return "\n".join(lines)
