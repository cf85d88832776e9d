"""Pictures of rigs, poses and animations (``usdposer render`` and every verb's ``--preview``), drawn by
``usdposer.render.raster``:

    sheet       a contact sheet (PNG) of poses: an animation's frames or a samples layer's poses, with the joints
                that ``usdposer check`` flags (and joints outside the rig's limits) in red (``check``)
    turntable   one pose seen from all around (GIF, or MP4 when imageio-ffmpeg is installed)
    video       an animation (GIF / MP4) with a fixed or following camera
    keyframes   mesh + skeleton proxy frames for video models: a PNG sequence and a video at the model's resolution
                and frame rate, and a JSON sidecar with the cameras (view and intrinsic matrices) and time codes

Every file is written to a temporary name and moved into place.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from usdposer.types import Clip, Pose, Rig

MODES = ("sheet", "turntable", "video", "keyframes")
# resolution (W, H) and frame rate of the video models' outputs, for keyframe proxies
PRESETS = {"wan2.1": (832, 480, 16.0), "cogvideox": (720, 480, 8.0), "cogvideox1.5": (1360, 768, 16.0)}


@dataclass
class RenderReport:
    """What ``usdposer render`` wrote (its ``--json`` result)."""

    mode: str
    outputs: list[str]
    frames: int
    size: tuple[int, int]
    seconds: float
    camera: str
    sidecar: str | None = None
    flagged_joints: dict = field(default_factory=dict)


def _world_points(rig: Rig, pose: Pose) -> torch.Tensor:
    """(B, N, 3) skinned points (or joints) in world, for framing."""
    from usdposer.posing import joint_transforms, skin

    S = rig.skel_to_world.double()
    with torch.no_grad():
        if rig.meshes:
            return torch.cat([p @ S[:3, :3].T + S[:3, 3] for p in skin(rig, pose, backend="torch")], 1)
        return (S @ joint_transforms(rig, pose))[..., :3, 3]


def cameras(rig: Rig, pose: Pose, width: int, height: int, mode: str = "fixed", *, yaw: float = 30.0,
            pitch: float = 15.0, turns: float = 0.0) -> list:
    """One camera per pose: ``fixed`` frames every pose at once, ``follow`` frames each pose, ``orbit`` frames every
    pose and turns ``turns`` times around the vertical over the poses."""
    from usdposer.render.raster import frame_camera

    pts = _world_points(rig, pose)
    B = pts.shape[0]
    if mode == "follow":
        return [frame_camera(pts[i], width, height, yaw_deg=yaw, pitch_deg=pitch) for i in range(B)]
    every = pts.reshape(-1, 3)
    if mode == "orbit":
        return [frame_camera(every, width, height, yaw_deg=yaw + 360.0 * turns * i / max(B, 1), pitch_deg=pitch)
                for i in range(B)]
    cam = frame_camera(every, width, height, yaw_deg=yaw, pitch_deg=pitch)
    return [cam] * B


def limit_flags(rig: Rig, pose: Pose, tolerance_deg: float = 1.0) -> list[set[int]]:
    """Per pose, the joints with an Euler angle outside the rig's limits (empty sets for a rig without limits)."""
    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.limits import limit_violations
    from usdposer.core.rotations import quat_to_matrix

    if rig.limits is None:
        return [set() for _ in range(len(pose))]
    _, q_rest, _ = decompose_trs(rig.rest_local.double())
    R_rel = quat_to_matrix(q_rest).transpose(-1, -2) @ quat_to_matrix(pose.rotations.double())
    bad = limit_violations(R_rel, rig.limits.double(), tolerance_deg)
    return [set(torch.nonzero(b).flatten().tolist()) for b in bad]


def check_flags(path, clip: Clip, rig: Rig) -> list[set[int]]:
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


def _atomic_save(out: Path, save) -> Path:
    """``save(tmp)`` into a temporary file beside ``out`` (its folder created), moved into place when it succeeds
    (``usdposer.io.stage.atomic_path``)."""
    from usdposer.errors import InputError
    from usdposer.io.stage import atomic_path

    out = Path(out)
    if out.suffix.lower() in (".usd", ".usda", ".usdc", ".usdz"):  # previews are pictures: never over an asset
        raise InputError(f"{out}: a picture cannot be written to a USD file name; choose .png, .gif or .mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        save(tmp)
    return out


def write_sheet(images: list[np.ndarray], out, labels: list[str] | None = None, columns: int | None = None) -> Path:
    from PIL import Image, ImageDraw

    h, w = images[0].shape[:2]
    cols = columns or max(1, math.ceil(math.sqrt(len(images))))
    rows = math.ceil(len(images) / cols)
    sheet = Image.new("RGB", (cols * w, rows * h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, im in enumerate(images):
        x, y = (i % cols) * w, (i // cols) * h
        sheet.paste(Image.fromarray(im), (x, y))
        draw.text((x + 4, y + 2), labels[i] if labels else str(i), fill=(30, 30, 30))
    return _atomic_save(Path(out), lambda p: sheet.save(p, format="PNG"))


def write_video(images: list[np.ndarray], out, fps: float) -> Path:
    """GIF (Pillow) or MP4 (imageio-ffmpeg, an optional dependency: a clear error names it when missing)."""
    out = Path(out)
    if out.suffix.lower() == ".gif":
        from PIL import Image

        frames = [Image.fromarray(im) for im in images]
        return _atomic_save(out, lambda p: frames[0].save(p, format="GIF", save_all=True, append_images=frames[1:],
                                                          duration=max(20, round(1000 / fps)), loop=0))
    if out.suffix.lower() in (".mp4", ".mov"):
        try:
            import imageio_ffmpeg
        except ImportError:
            from usdposer.errors import InputError

            raise InputError(f"{out}: MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg); or write a .gif") from None

        def save(p: Path) -> None:
            h, w = images[0].shape[:2]
            writer = imageio_ffmpeg.write_frames(str(p), (w, h), fps=fps, macro_block_size=2, quality=7,
                                                 output_params=["-f", out.suffix.lstrip(".")])
            writer.send(None)
            for im in images:
                writer.send(np.ascontiguousarray(im))
            writer.close()

        return _atomic_save(out, save)
    from usdposer.errors import InputError

    raise InputError(f"{out}: unknown video format {out.suffix!r}; use .gif or .mp4")


def render_clip(rig: Rig, clip: Clip, out, *, mode: str = "video", width: int = 512, height: int = 512,
                camera: str | None = None, fps: float | None = None, check: bool = False, skeleton: bool = True,
                yaw: float = 30.0, pitch: float = 15.0, labels: list[str] | None = None,
                device: str | None = None, check_path=None) -> RenderReport:
    """Render ``clip`` (an animation, or a set of poses for ``sheet``) of ``rig`` in ``mode`` (module docstring)."""
    import time

    from usdposer.errors import InputError
    from usdposer.render.raster import Style, render_pose
    from usdposer.types import Pose

    if mode not in MODES:
        raise InputError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    tick = time.perf_counter()
    rig = rig.to(torch.float64)
    pose = Pose(clip.rotations.double(), clip.translations.double(), clip.scales.double())
    fps = fps or (clip.fps if len(clip) > 1 else 24.0)
    out = Path(out)
    style = Style(skeleton=skeleton)
    if mode == "turntable":
        n = max(2, round(fps * 4))
        one = Pose(pose.rotations[:1].expand(n, -1, -1), pose.translations[:1].expand(n, -1, -1),
                   pose.scales[:1].expand(n, -1, -1))
        camera = camera or "orbit"
        cams = cameras(rig, one, width, height, camera, yaw=yaw, pitch=pitch, turns=1.0)
        images = render_pose(rig, one, cams, style=style, device=device)
        path = write_video(images, out, fps)
        return RenderReport(mode, [str(path)], n, (width, height), time.perf_counter() - tick, camera)
    camera = camera or ("fixed" if mode in ("sheet", "keyframes") else "follow")
    cams = cameras(rig, pose, width, height, camera, yaw=yaw, pitch=pitch)
    flags = None
    if check:
        flags = limit_flags(rig, pose)
        if check_path is not None and clip.path:
            flags = [a | b for a, b in zip(flags, check_flags(check_path, clip, rig))]
    images = render_pose(rig, pose, cams, style=style, bad_joints=flags, device=device)
    flagged = {}
    if flags:
        names = rig.joint_names
        flagged = {f"{float(clip.time_codes[i]):g}": sorted(names[j] for j in f) for i, f in enumerate(flags) if f}
    if mode == "sheet":
        labels = labels or [f"{float(t):g}" for t in clip.time_codes]
        path = write_sheet(images, out, labels)
        return RenderReport(mode, [str(path)], len(images), (width, height), time.perf_counter() - tick, camera,
                            flagged_joints=flagged)
    if mode == "video":
        path = write_video(images, out, fps)
        return RenderReport(mode, [str(path)], len(images), (width, height), time.perf_counter() - tick, camera,
                            flagged_joints=flagged)
    # keyframes: PNG sequence + video + sidecar, in a folder named by ``out`` (its suffix, if any, is the video's)
    from PIL import Image

    folder = out.with_suffix("") if out.suffix else out
    folder.mkdir(parents=True, exist_ok=True)
    outputs = []
    for i, im in enumerate(images):
        outputs.append(str(_atomic_save(folder / f"frame_{i:04d}.png", lambda p, im=im: Image.fromarray(im).save(p, format="PNG"))))
    video = folder / f"proxy{out.suffix if out.suffix in ('.mp4', '.gif') else '.gif'}"
    outputs.append(str(write_video(images, video, fps)))
    sidecar = {"fps": fps, "width": width, "height": height, "camera_mode": camera,
               "convention": "OpenCV camera (x right, y down, z forward); viewmat = world-to-camera, metres, +Y up",
               "frames": [{"index": i, "time_code": float(clip.time_codes[i]), "image": Path(outputs[i]).name,
                           "viewmat": cams[i].viewmat.tolist(), "K": cams[i].K.tolist()} for i in range(len(images))]}
    side = _atomic_save(folder / "cameras.json", lambda p: p.write_text(json.dumps(sidecar, indent=1)))
    return RenderReport(mode, outputs, len(images), (width, height), time.perf_counter() - tick, camera,
                        sidecar=str(side), flagged_joints=flagged)


def render_asset(asset, out, *, mode: str = "video", anim: str | None = None, samples=None, frames: str | None = None,
                 size: str | None = None, fps: float | None = None, camera: str | None = None, yaw: float = 30.0,
                 pitch: float = 15.0, check: bool = False, skeleton: bool = True,
                 skeleton_path: str | None = None, preset: str | None = None, device: str | None = None) -> RenderReport:
    """``usdposer render``: read ``asset`` (and a samples layer), pick the frames, render (module docstring)."""
    from dataclasses import replace

    from pxr import Usd

    from usdposer.errors import InputError
    from usdposer.io.edits import get_keyframes
    from usdposer.io.read_skel import read_asset
    from usdposer.selection import parse_frames, parse_size

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
        keys = get_keyframes(Usd.Stage.Open(str(samples or asset)), clip.path)
        if keys:
            frames = ",".join(f"{k:g}" for k in keys)
    if frames is not None or mode == "turntable":
        idx = parse_frames(frames, clip.time_codes) if frames is not None else [0]
        if not idx:
            raise InputError(f"--frames {frames}: selects no frame of {clip.path or clip.name}")
        clip = replace(clip, rotations=clip.rotations[idx], translations=clip.translations[idx],
                       scales=clip.scales[idx], time_codes=clip.time_codes[idx])
    if mode == "sheet" and len(clip) > 64 and frames is None:
        step = math.ceil(len(clip) / 64)
        idx = list(range(0, len(clip), step))
        clip = replace(clip, rotations=clip.rotations[idx], translations=clip.translations[idx],
                       scales=clip.scales[idx], time_codes=clip.time_codes[idx])
    if mode == "sheet" and size is None:
        w = h = 192  # sheet tiles
    return render_clip(rig, clip, out, mode=mode, width=w, height=h, camera=camera, fps=fps, check=check,
                       skeleton=skeleton, yaw=yaw, pitch=pitch, device=device, check_path=samples or asset)


def findings_sheets(report, out_dir, *, tile: int = 192, max_frames: int = 16) -> list[str]:
    """``usdposer check --preview DIR``: per checked file and animation with clip findings, a contact sheet of the
    frames the findings point at (the worst frame of each run, at most ``max_frames``), the joints they name in red,
    each tile labelled with its time code and rules. Returns the written paths."""
    from collections import defaultdict

    from usdposer.io.read_skel import read_asset
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
            pose = Pose(clip.rotations[idx].double(), clip.translations[idx].double(), clip.scales[idx].double())
            rig = rig.to(torch.float64)
            images = render_pose(rig, pose, cameras(rig, pose, tile, tile, "follow"), bad_joints=bad)
            name = f"{Path(res.path).stem}.{prim.strip('/').replace('/', '_')}.png"
            written.append(str(write_sheet(images, out_dir / name, labels)))
    return written
