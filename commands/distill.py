"""usdposer distill"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import count, device_option, json_option, number, seed_option, verbosity_option
from usdposer.commands._output import emit, progress

EPILOG = """\b
Examples:
  usdposer distill fox.usdc --prompt "a fox running" --model tiny-wan --iterations 20 --state runs/fox
  usdposer distill fox.usdc --prompt "a fox running" --model tiny-wan --iterations 30 --resume runs/fox -o fox.more.usdc
  usdposer distill fox.usdc --prompt "a fox jumping" --model /models/Wan2.1-T2V-1.3B-Diffusers \\
      --device cuda --frames 49 --size 480x320 --state runs/fox-wan --preview fox.gif

\b
AKD: the rig becomes skinned 3D Gaussians, rendered over a checkerboard
ground fixed in the world (squares a quarter of the rest height) with the
heuristic shadow, by a differentiable splatting renderer (gsplat on CUDA,
PyTorch elsewhere), from a camera that follows the character smoothly at a
distance fixed by the rest pose; per-frame joint angles and the root are
optimised by Score Distillation Sampling through a video diffusion model,
with smoothness and ground terms. Defaults are the paper's: 10,000
iterations, t ~ U[0.02, t_end] with t_end 0.98 -> 0.5 over the first half,
CFG 100, smoothness 2e5, ground 1e7. A default run with
Wan2.1-T2V-1.3B-Diffusers (49 frames, 832x480, --vae-grad subset) takes
about 1.7 s per iteration on one H200, so about 5 hours for 10,000
iterations (bench/results/distill_h200.json); --preset quick runs 1,000.
--model takes a local diffusers folder or a hub id you already have
(Wan2.1-T2V-1.3B-Diffusers by default on GPU; CogVideoX folders are
recognised by name), or tiny-wan / tiny-cogvideox: random-weight models
for trying the pipeline on CPU. Real models need `transformers` for their
text encoder. Memory: the VAE encoder's backward is the wall; it runs
checkpointed, and --vae-grad subset backpropagates through a random run of
2 latent frames only (about 9 pixel frames of activations instead of F). Writes SkelAnimation <Skeleton>/usdposerDistill (bound) over
ASSET (default ASSET_STEM.distill.usdc) with a JSON + PNG loss report.
"""


@click.command("distill", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("--prompt", required=True, help="What the character does.")
@click.option("--model", default="tiny-wan", show_default=True, help="Video prior: folder, hub id, tiny-wan, tiny-cogvideox.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output layer (.usdc/.usda).")
@click.option("--preset", type=click.Choice(["paper", "quick"]), default="paper", show_default=True,
              help="paper: 10,000 iterations (the paper's); quick: 1,000, for previews.")
@click.option("--iterations", type=count(1, 100_000), default=None, help="Override the preset's iterations.")
@click.option("--frames", type=count(1, 1_000), default=9, show_default=True, help="Frames (4k+1 for video VAEs).")
@click.option("--size", default="64x64", show_default=True, help="Render size WxH (multiples of 16).")
@click.option("--gaussians", type=count(1, 10_000_000), default=5000, show_default=True)
@click.option("--guidance", type=number(0, 1e4), default=100.0, show_default=True, help="Classifier-free guidance scale.")
@click.option("--lr", type=number(0, 10, lo_open=True), default=0.01, show_default=True, help="Adam step for joint angles (radians).")
@click.option("--vae-grad", type=click.Choice(["full", "subset"]), default="full", show_default=True,
              help="Encoder backward: full (checkpointed) or a random run of latent frames (less memory).")
@click.option("--no-ground-render", is_flag=True, help="Ablation: render without the ground.")
@click.option("--no-smooth", is_flag=True, help="Ablation: no smoothness term.")
@click.option("--no-ground-loss", is_flag=True, help="Ablation: no ground-penetration term.")
@click.option("--no-shadow", is_flag=True, help="Ablation: no shadow under the character.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False), default=None, help="Save the optimisation state here.")
@click.option("--resume", type=click.Path(file_okay=False), default=None, help="Resume from a saved --state folder.")
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, help="Write the rendered motion as a GIF.")
@seed_option
@device_option
@json_option
@verbosity_option
def cli(asset, prompt, model, out, preset, iterations, frames, size, gaussians, guidance, lr, vae_grad, no_ground_render,
        no_smooth, no_ground_loss, no_shadow, state_dir, resume, skeleton, preview, seed, device, as_json) -> None:
    """Distill an animation of ASSET's rig from a video diffusion model (AKD)."""
    from usdposer.models.distill import DistillConfig
    from usdposer.pipelines.distill import DistillOptions, distill

    from usdposer.core.selection import default_output, parse_size

    w, h = parse_size(size)
    iterations = iterations or {"paper": 10_000, "quick": 1_000}[preset]
    cfg = DistillConfig(iterations=iterations, frames=frames, width=w, height=h, gaussians=gaussians, guidance=guidance,
                        lr=lr, render_ground=not no_ground_render, smooth_weight=0.0 if no_smooth else 2e5,
                        ground_weight=0.0 if no_ground_loss else 1e7, shadow=not no_shadow, vae_grad=vae_grad,
                        seed=seed)
    options = DistillOptions(prompt=prompt, model=model, cfg=cfg, skeleton=skeleton, device=device,
                             state_dir=state_dir, resume=resume, preview=preview, arguments=tuple(sys.argv[1:]))
    rep = distill(asset, out or default_output(asset, "distill"), options, progress=progress("distilling", quiet=as_json))
    emit(rep, as_json, _human)


def _human(r) -> str:
    split = ", ".join(f"{k} {v:.3f}" for k, v in r.seconds_per_iteration.items())
    return (f"wrote {r.output}: {r.frames} frames distilled into {r.animation} in {r.iterations} iterations "
            f"({r.seconds:.1f} s; per iteration: {split}); losses in {r.report} and {r.loss_png}"
            + (f"; preview {r.preview}" if r.preview else ""))
