"""usdposer generate"""

from __future__ import annotations

import sys

import click
from usdposer.commands._options import count, device_option, json_option, number, seed_option, verbosity_option
from usdposer.commands._output import emit, progress

EPILOG = """\b
Examples:
  usdposer generate fox.usdc --prompt running --model tiny-wan-i2v -o fox_run.mp4
  usdposer generate fox.usdc --prompt "sitting down" --model /models/Wan2.1-I2V-14B-480P-Diffusers \\
      --device cuda --dtype bfloat16 -o fox_sit.mp4
  usdposer generate fox.usdc --prompt "a {subject} trotting on grass" --model /models/CogVideoX-5b-I2V
  usdposer generate fox.usdc --guide fox.usdc --guide-anim Walk --model /models/Wan2.1-VACE-1.3B-diffusers \\
      --prompt walking -o fox_walk.mp4

\b
ViPS's video data: usdposer renders the character's first frame (textured
mesh, rest pose or --anim's first frame, a still camera from the side with
room for the motion, a checkerboard or plain ground) and an image-to-video
model animates it from the prompt: Wan2.1-I2V (WanImageToVideoPipeline) or
CogVideoX-I2V (CogVideoXImageToVideoPipeline). --guide renders a clip's mesh
+ skeleton proxies from the same camera as a control video for Wan2.1-VACE
(WanVACEPipeline) with the first frame as the reference image (pose-guided
synthesis). The prompt names the character's kind (from its name, or
--subject): "running" becomes "a fox running, full body in view, ...".
Writes OUT (MP4/GIF), OUT_STEM.first.png, OUT_STEM.cameras.json (the
camera and ground, what `usdposer fit --video` needs) and OUT_STEM.json
(model, prompt, seed, steps, guidance). --model takes a local diffusers
pipeline folder or a hub id already in the local cache (nothing is
downloaded), or tiny-wan-i2v / tiny-cogvideox-i2v / tiny-wan-vace:
random-weight pipelines to try the verb on CPU (their videos are noise).
Presets (frames, size, fps, steps, guidance): Wan I2V / VACE 81, 832x480,
16 fps, 40 / 30 steps, 5.0; CogVideoX-I2V 49, 720x480, 8 fps, 50, 6.0;
tiny 9, 32x32, 8 fps, 2, 3.0.
"""


@click.command("generate", epilog=EPILOG)
@click.argument("asset", type=click.Path(dir_okay=False))
@click.option("--prompt", default="walking", show_default=True, help="The motion, or a full prompt with {subject}.")
@click.option("--subject", default=None, help="What the character is (default: from its name).")
@click.option("--negative", default="", help="Negative prompt.")
@click.option("--model", default="tiny-wan-i2v", show_default=True,
              help="Pipeline folder, cached hub id, or tiny-wan-i2v / tiny-cogvideox-i2v / tiny-wan-vace.")
@click.option("--task", type=click.Choice(["wan-i2v", "cogvideox-i2v", "wan-vace"]), default=None,
              help="The pipeline kind (default: from the folder's model_index.json or the name).")
@click.option("--guide", type=click.Path(dir_okay=False), default=None, help="Animated USD asset whose clip guides the video (wan-vace).")
@click.option("--guide-anim", default=None, help="The guide's SkelAnimation (default: its bound one).")
@click.option("--anim", default=None, help="Start from this clip's first frame (default: the rest pose).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Output video (.mp4/.gif).")
@click.option("--frames", type=count(1, 1_000), default=None, help="Frames (Wan 4k+1, CogVideoX 8k+1; default: the preset's).")
@click.option("--size", default=None, help="WxH, multiples of 16 (default: the preset's).")
@click.option("--steps", type=count(1, 1_000), default=None, help="Sampling steps (default: the preset's).")
@click.option("--guidance", type=number(0, 100), default=None, help="Classifier-free guidance (default: the preset's).")
@click.option("--ground", type=click.Choice(["checker", "plain"]), default="checker", show_default=True)
@click.option("--yaw", type=number(-360, 360), default=90.0, show_default=True, help="Camera yaw in degrees (90: from +X, the side).")
@click.option("--pitch", type=number(-89, 89), default=10.0, show_default=True, help="Camera pitch in degrees.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True)
@click.option("--skeleton", default=None, help="Skeleton prim path or name (default: the first).")
@seed_option
@device_option
@json_option
@verbosity_option
def cli(asset, prompt, subject, negative, model, task, guide, guide_anim, anim, out, frames, size, steps, guidance,
        ground, yaw, pitch, dtype, skeleton, seed, device, as_json) -> None:
    """Generate a video of ASSET's character from a video model (image-to-video, or pose-guided with --guide)."""
    from pathlib import Path

    from usdposer.pipelines.generate import GenerateOptions, generate

    from usdposer.core.selection import parse_size

    options = GenerateOptions(prompt=prompt, subject=subject, negative=negative, model=model, task=task, guide=guide,
                              guide_anim=guide_anim, anim=anim, skeleton=skeleton, frames=frames,
                              size=parse_size(size) if size else None, steps=steps, guidance=guidance, seed=seed,
                              ground=ground, yaw=yaw, pitch=pitch, device=device, dtype=dtype,
                              arguments=tuple(sys.argv[1:]))
    out = out or str(Path(asset).with_name(f"{Path(asset).stem}.generate.mp4"))
    rep = generate(asset, out, options, progress=progress("generating", "step", quiet=as_json))
    emit(rep, as_json, _human)


def _human(r) -> str:
    guide = f", guided by {r.guide}" if r.guide else ""
    return (f"wrote {r.output}: {r.frames} frames {r.size[0]}x{r.size[1]} at {r.fps:g} fps from {r.model} ({r.task}"
            f"{guide}), prompt {r.prompt!r}, seed {r.seed}; first frame {r.first_frame}, cameras {r.cameras}, "
            f"record {r.record} ({r.seconds:.1f} s)")
