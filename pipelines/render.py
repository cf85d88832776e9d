"""``usdposer render``: pictures of an asset's animation or samples (``usdposer.render.media``), with the joints that
``usdposer check`` flags drawn in red; and ``check --preview``'s sheets of the flagged frames."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from usdposer.pipelines._base import Progress


def check_flags(path, clip, rig) -> list[set[int]]:
    """Per frame of ``clip``, the joints that ``usdposer check``'s rules name in their findings on this animation of
    the file at ``path`` (every frame of each finding's run), plus joints outside the rig's own limits."""
    from usdposer.validate import check_paths

    report = check_paths([str(path)])
    names = {j: i for i, j in enumerate(rig.joints)}
    tc = [float(t) for t in clip.time_codes]
    flags = [set() for _ in tc]
    for res in report.files:
        for f in res.findings:
            if f.waived or f.prim != clip.path or f.joint not in names:
                continue
            lo, hi = f.frames if f.frames else ((f.frame, f.frame) if f.frame is not None else (-math.inf, math.inf))
            for i, t in enumerate(tc):
                if lo - 1e-6 <= t <= hi + 1e-6:
                    flags[i].add(names[f.joint])
    return flags


@dataclass(frozen=True)
class RenderOptions:
    """``mode``: sheet, turntable, video or keyframes; ``anim``: the SkelAnimation (default: the bound one, or a
    samples layer's); ``samples``: a ``usdposer sample`` layer to draw instead; ``frames``: a selection; ``size``:
    WxH; ``camera``: fixed, follow or orbit; ``check``: joints outside the limits and joints ``usdposer check``
    flags drawn in red; ``preset``: a video model's size and frame rate (``wan2.1``, ``cogvideox``...)."""

    mode: str = "video"
    anim: str | None = None
    samples: str | None = None
    frames: str | None = None
    size: str | None = None
    fps: float | None = None
    camera: str | None = None
    yaw: float = 30.0
    pitch: float = 15.0
    check: bool = False
    skeleton: bool = True
    skeleton_path: str | None = None
    preset: str | None = None
    device: str | None = None


def render(asset: str | os.PathLike, out: str | os.PathLike, options: RenderOptions = RenderOptions(),
           progress: Progress | None = None):
    """``usdposer render``: read ``asset`` (and a samples layer), pick the frames, render; returns the
    ``usdposer.render.media.RenderReport``."""
    o = options
    return _render(asset, out, mode=o.mode, anim=o.anim, samples=o.samples, frames=o.frames, size=o.size, fps=o.fps,
                   camera=o.camera, yaw=o.yaw, pitch=o.pitch, check=o.check, skeleton=o.skeleton,
                   skeleton_path=o.skeleton_path, preset=o.preset, device=o.device)


def _render(asset, out, *, mode: str = "video", anim: str | None = None, samples=None, frames: str | None = None,
            size: str | None = None, fps: float | None = None, camera: str | None = None, yaw: float = 30.0,
            pitch: float = 15.0, check: bool = False, skeleton: bool = True,
            skeleton_path: str | None = None, preset: str | None = None, device: str | None = None):

    from usdposer.core.selection import parse_frames, parse_size
    from usdposer.errors import InputError
    from usdposer.io.edits import read_keyframes
    from usdposer.io.read_skel import read_asset
    from usdposer.render.media import PRESETS, render_clip

    if preset:
        if preset not in PRESETS:
            raise InputError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
        pw, ph, pfps = PRESETS[preset]
        size = size or f"{pw}x{ph}"
        fps = fps or pfps
    w, h = parse_size(size or "512x512")
    for given in (asset, samples):
        if given is not None and Path(out).resolve() == Path(given).resolve():
            raise InputError(f"{out}: refusing to overwrite the input; choose another output path")
    if mode == "sheet" and Path(out).suffix.lower() != ".png":
        raise InputError(f"{out}: a contact sheet is written as .png; choose an output ending in .png")
    src = read_asset(samples or asset)
    rig = src.rig(skeleton_path)
    clip = src.clip(rig, anim or ("usdposerSamples" if samples else None))
    if mode == "keyframes" and frames is None and clip.path:
        keys = read_keyframes(samples or asset, clip.path)
        if keys:
            frames = ",".join(f"{k:g}" for k in keys)
    if frames is not None or mode == "turntable":
        idx = parse_frames(frames, clip.time_codes) if frames is not None else [0]
        if not idx:
            raise InputError(f"--frames {frames}: selects no frame of {clip.path or clip.name}")
        clip = clip.frames(idx)
    if mode == "sheet" and len(clip) > 64 and frames is None:
        step = math.ceil(len(clip) / 64)
        idx = list(range(0, len(clip), step))
        clip = clip.frames(idx)
    if mode == "sheet" and size is None:
        w = h = 192  # sheet tiles
    flags = check_flags(samples or asset, clip, rig) if check and clip.path else None
    return render_clip(rig, clip, out, mode=mode, width=w, height=h, camera=camera, fps=fps, check=check,
                       skeleton=skeleton, yaw=yaw, pitch=pitch, device=device, flags=flags)


def findings_sheets(report, out_dir, *, tile: int = 192, max_frames: int = 16) -> list[str]:
    """``usdposer check --preview DIR``: per checked file and animation with clip findings, a contact sheet of the
    frames the findings point at (the worst frame of each run, at most ``max_frames``), the joints they name in red,
    each tile labelled with its time code and rules. Returns the written paths."""
    from collections import defaultdict

    import torch

    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.encode import write_sheet
    from usdposer.render.raster import render_pose
    from usdposer.types import Pose

    out_dir = Path(out_dir)
    written = []
    for res in report.files:
        by_clip: dict[str, dict[float, list]] = defaultdict(lambda: defaultdict(list))
        for f in res.findings:
            if f.frame is not None and not f.waived:
                by_clip[f.prim][float(f.frame)].append(f)
        if not by_clip:
            continue
        try:
            asset = read_asset(res.path)
        except Exception:  # noqa: BLE001 - an unreadable file has its own finding; no picture
            continue
        for prim, frames in by_clip.items():
            rig = next((r for r in asset.rigs if any(c.path == prim for c in asset.clips.get(r.skeleton_path, []))),
                       None)
            if rig is None:  # a finding on a skeleton rather than an animation
                continue
            clip = asset.clip(rig, prim)
            tc = clip.time_codes.tolist()
            chosen = sorted(frames)[:max_frames]
            idx = [min(range(len(tc)), key=lambda i: abs(tc[i] - t)) for t in chosen]
            names = {j: i for i, j in enumerate(rig.joints)}
            bad = [{names[f.joint] for f in frames[t] if f.joint in names} for t in chosen]
            labels = [f"{t:g}: " + ",".join(sorted({f.rule for f in frames[t]})) for t in chosen]
            picked = clip.frames(idx)  # with their blend-shape weights: the faces, as `render` draws them
            pose = Pose(picked.rotations.double(), picked.translations.double(), picked.scales.double())
            rig = rig.to(torch.float64)
            images = render_pose(rig, pose, cameras(rig, pose, tile, tile, "follow"), bad_joints=bad,
                                 shapes=picked.shapes())
            name = f"{Path(res.path).stem}.{prim.strip('/').replace('/', '_')}.png"
            written.append(str(write_sheet(images, out_dir / name, labels)))
    return written
