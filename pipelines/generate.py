"""``usdposer generate``: a video of a rigged character from a video model (ViPS's data step,
``usdposer.models.video_gen``): the character's first frame rendered by usdposer (textured mesh, known camera, plain
or checkerboard ground), then image-to-video with a motion prompt, or pose-guided synthesis from a clip's
mesh + skeleton proxies (``--guide``). Writes the video, the first frame, the cameras and a JSON record."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from usdposer.pipelines._base import Progress, Result, preflight

RECORD_FORMAT = "usdposer-video/1"


@dataclass
class GenerateReport(Result):
    """What ``usdposer generate`` did (its ``--json`` result; the same facts are in the ``record`` file)."""

    output: str
    first_frame: str
    cameras: str
    record: str
    task: str
    model: str
    prompt: str
    subject: str
    seed: int
    steps: int
    guidance: float
    frames: int
    size: tuple[int, int]
    fps: float
    ground: str
    guide: str | None = None
    guide_video: str | None = None
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GenerateOptions:
    """``prompt``: the motion ("running", or a full prompt with ``{subject}``); ``model``: a diffusers pipeline
    folder, a cached hub id, or ``tiny-<task>``; ``guide``: a USD asset whose clip (``guide_anim``) drives
    pose-guided synthesis (``wan-vace``); ``anim``: the asset's clip whose first frame starts the video (default: the
    rest pose); ``frames`` / ``size`` / ``steps`` / ``guidance``: None takes the model's preset."""

    prompt: str = "walking"
    subject: str | None = None
    negative: str = ""
    model: str = "tiny-wan-i2v"
    task: str | None = None
    guide: str | None = None
    guide_anim: str | None = None
    anim: str | None = None
    skeleton: str | None = None
    frames: int | None = None
    size: tuple[int, int] | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int = 0
    ground: str = "checker"
    yaw: float = 90.0
    pitch: float = 10.0
    device: str = "cpu"
    dtype: str = "float32"
    arguments: tuple[str, ...] = ()


def sidecars(out) -> dict:
    """The files written beside a generated video ``out`` (``fit --video`` finds the cameras and the record there):
    ``walk.v2.mp4`` -> ``walk.v2.first.png``, ``walk.v2.cameras.json``, ``walk.v2.json``, ``walk.v2.guide.mp4``."""
    from pathlib import Path

    out = Path(out)
    stem = out.with_suffix("")

    def beside(suffix: str) -> Path:
        return stem.with_name(stem.name + suffix)

    return {"first_frame": beside(".first.png"), "cameras": beside(".cameras.json"), "record": beside(".json"),
            "guide_video": beside(".guide" + out.suffix)}


def ground_style(ground: str):
    """The renderer's style for ``--ground checker`` (the board distillation sees) or ``plain`` (one colour)."""
    from usdposer.errors import InputError
    from usdposer.render.raster import Style

    if ground == "checker":
        return Style(skeleton=False)
    if ground == "plain":
        base = Style()
        return Style(skeleton=False, checker=(base.checker[0], base.checker[0]), grid=base.checker[0])
    raise InputError(f"--ground {ground!r}: choose checker or plain")


def generate(asset: str | os.PathLike, out: str | os.PathLike, options: GenerateOptions = GenerateOptions(),
             progress: Progress | None = None) -> GenerateReport:
    """Render ``asset``'s first frame, run the video model, write ``out`` (MP4 or GIF) and its sidecars."""
    from pathlib import Path

    o = options
    side = sidecars(out)
    preflight([asset, o.guide], None, [out, side["first_frame"], side["cameras"], side["record"],
                                       side["guide_video"] if o.guide else None])
    if Path(out).suffix.lower() not in (".mp4", ".gif", ".mov"):
        from usdposer.errors import InputError

        raise InputError(f"{out}: the video must be .mp4 or .gif")
    import json

    import numpy as np
    import torch
    from PIL import Image
    from usdposer.models.video_gen import (
        PRESETS,
        check_frames,
        generate_video,
        load_generator,
        make_prompt,
        subject_of,
        task_of,
    )
    from usdposer.pipelines._base import no_progress

    from usdposer.core.posing import character_height
    from usdposer.errors import InputError
    from usdposer.io.read_skel import read_asset
    from usdposer.outputs import atomic_file
    from usdposer.render.cameras import cameras_record, framing_points
    from usdposer.render.encode import write_video
    from usdposer.render.raster import frame_camera, render_pose
    from usdposer.render.splat import board_size
    from usdposer.types import Pose

    tick = time.perf_counter()
    progress = progress or no_progress
    task = task_of(o.model, o.task)
    if o.guide and task != "wan-vace":
        raise InputError(f"--guide needs a pose-guided model (wan-vace); --model {o.model} is {task}")
    if task == "wan-vace" and not o.guide:
        raise InputError(f"--model {o.model} is pose-guided (wan-vace): pass --guide CLIP (an animated USD asset)")
    preset = PRESETS["tiny" if o.model.startswith("tiny-") else task]
    frames = o.frames or preset.frames
    check_frames(task, frames)
    width, height = o.size or preset.size
    if width < 16 or height < 16 or width % 16 or height % 16:
        raise InputError(f"--size {width}x{height}: width and height must be positive multiples of 16")
    steps, guidance = o.steps or preset.steps, preset.guidance if o.guidance is None else o.guidance
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if o.dtype not in dtypes:
        raise InputError(f"--dtype {o.dtype!r}: choose one of {', '.join(dtypes)}")
    style = ground_style(o.ground)

    pipe, task = load_generator(o.model, task, device=o.device, dtype=dtypes[o.dtype])  # a bad model fails first
    src = read_asset(asset)
    rig = src.rig(o.skeleton).to(torch.float64)
    if not rig.meshes:
        raise InputError(f"{asset}: the rig has no skinned mesh to show a video model; skin it first (`usdposer skin`)")
    if o.anim:
        c = src.clip(rig, o.anim)
        pose0 = Pose(c.rotations[:1].double(), c.translations[:1].double(), c.scales[:1].double())
    else:
        pose0 = Pose.rest(rig)
    framing = torch.cat(framing_points(rig, pose0))
    guide_pose = guide_rig = None
    if o.guide:
        g_asset = read_asset(o.guide)
        guide_rig = g_asset.rig(o.skeleton).to(torch.float64)
        gc = g_asset.clip(guide_rig, o.guide_anim)
        if gc is None or len(gc) < 1:
            raise InputError(f"{o.guide}: no animation to guide with; pass an animated asset or --guide-anim NAME")
        pick = torch.linspace(0, len(gc) - 1, frames).round().long()
        guide_pose = Pose(gc.rotations[pick].double(), gc.translations[pick].double(), gc.scales[pick].double())
        framing = torch.cat([framing, *framing_points(guide_rig, guide_pose)])
    # a still camera with room for the motion: the first pose framed loosely (twice its extent), from the side
    lo, hi = framing.amin(0), framing.amax(0)
    pad = (hi - lo) * 0.5
    box = torch.stack([lo - pad * torch.tensor([1.0, 0.0, 1.0], dtype=lo.dtype), hi + pad])
    cam = frame_camera(box, width, height, yaw_deg=o.yaw, pitch_deg=o.pitch)
    first = render_pose(rig, pose0, [cam], style=style)[0]
    control = None
    if guide_pose is not None:
        from usdposer.render.raster import Style

        proxy_style = Style(skeleton=True, ground=style.ground, checker=style.checker, grid=style.grid)
        control = np.stack(render_pose(guide_rig, guide_pose, [cam] * frames, style=proxy_style))

    subject = o.subject or subject_of(rig.name if rig.name not in ("", "Skeleton", "Skel") else Path(asset).stem)
    ground_word = "checkerboard" if o.ground == "checker" else "plain"
    prompt = make_prompt(o.prompt, subject, ground_word)
    bar = progress(total=steps, desc="generating", unit="step")
    try:
        video = generate_video(pipe, task, prompt=prompt, image=first, frames=frames, width=width, height=height,
                               steps=steps, guidance=guidance, seed=o.seed, negative=o.negative, control=control,
                               on_step=lambda i: bar.update(1))
    finally:
        bar.close()
    fps = preset.fps
    outputs = [str(write_video(list(video), out, fps))]
    with atomic_file(side["first_frame"]) as tmp:
        Image.fromarray(first).save(tmp, format="PNG")
    outputs.append(str(side["first_frame"]))
    height_m = character_height(rig) or 1.0
    ground = {"kind": o.ground, "board": board_size(height_m), "y": 0.0,
              "style": {"background": list(style.background), "checker": [list(c) for c in style.checker],
                        "grid": list(style.grid)}}
    cams = cameras_record([cam] * len(video), fps=fps, ground=ground, asset=str(asset), skeleton=rig.skeleton_path,
                          first_pose="rest" if not o.anim else o.anim)
    with atomic_file(side["cameras"]) as tmp:
        tmp.write_text(json.dumps(cams, indent=1))
    outputs.append(str(side["cameras"]))
    guide_video = None
    if control is not None:
        guide_video = str(write_video(list(control), side["guide_video"], fps))
        outputs.append(guide_video)
    from usdposer._version import __version__

    record = {"format": RECORD_FORMAT, "version": __version__, "verb": "generate", "asset": str(asset),
              "skeleton": rig.skeleton_path, "task": task, "model": o.model, "prompt": prompt, "motion": o.prompt,
              "negative_prompt": o.negative, "subject": subject, "seed": o.seed, "steps": steps, "guidance": guidance,
              "frames": int(len(video)), "size": [width, height], "fps": fps, "ground": o.ground,
              "guide": o.guide, "guide_anim": o.guide_anim, "first_pose": "rest" if not o.anim else o.anim,
              "video": Path(out).name, "first_frame": side["first_frame"].name, "cameras": side["cameras"].name,
              "arguments": list(o.arguments)}
    with atomic_file(side["record"]) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    outputs.append(str(side["record"]))
    return GenerateReport(str(out), str(side["first_frame"]), str(side["cameras"]), str(side["record"]), task,
                          o.model, prompt, subject, o.seed, steps, guidance, int(len(video)), (width, height), fps,
                          o.ground, o.guide, guide_video, time.perf_counter() - tick, outputs)
