"""Pictures of rigs, poses and animations (``usdposer render``, in ``usdposer.pipelines.render``, and every verb's
``--preview``), drawn by ``usdposer.render.raster``:

    sheet       a contact sheet (PNG) of poses: an animation's frames or a samples layer's poses, with joints
                outside the rig's limits (``check``) and joints given as ``flags`` in red
    turntable   one pose seen from all around (GIF, or MP4 when imageio-ffmpeg is installed)
    video       an animation (GIF / MP4) with a fixed or following camera
    keyframes   mesh + skeleton proxy frames for video models: a PNG sequence and a video at the model's resolution
                and frame rate, and a JSON sidecar with the cameras (view and intrinsic matrices) and time codes

Every file is written to a temporary name and moved into place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from usdposer.render.cameras import cameras
from usdposer.render.encode import _atomic_save, write_sheet, write_video
from usdposer.results import Result

if TYPE_CHECKING:
    from usdposer.types import Clip, Pose, Rig

MODES = ("sheet", "turntable", "video", "keyframes")
# resolution (W, H) and frame rate of the video models' outputs, for keyframe proxies
PRESETS = {"wan2.1": (832, 480, 16.0), "cogvideox": (720, 480, 8.0), "cogvideox1.5": (1360, 768, 16.0)}


@dataclass
class RenderReport(Result):
    """What ``usdposer render`` wrote (its ``--json`` result)."""

    mode: str
    outputs: list[str]
    frames: int
    size: tuple[int, int]
    seconds: float
    camera: str
    sidecar: str | None = None
    flagged_joints: dict = field(default_factory=dict)


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


def render_clip(rig: Rig, clip: Clip, out, *, mode: str = "video", width: int = 512, height: int = 512,
                camera: str | None = None, fps: float | None = None, check: bool = False, skeleton: bool = True,
                yaw: float = 30.0, pitch: float = 15.0, labels: list[str] | None = None,
                device: str | None = None, flags: list[set[int]] | None = None) -> RenderReport:
    """Render ``clip`` (an animation, or a set of poses for ``sheet``) of ``rig`` in ``mode`` (module docstring).
    ``check`` draws joints outside the rig's limits in red, and ``flags`` (per frame, joint indices) as well."""
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
        shapes = clip.shapes()
        shapes = None if shapes is None else (shapes[0], shapes[1][:1].expand(n, -1))
        images = render_pose(rig, one, cams, style=style, device=device, shapes=shapes)
        path = write_video(images, out, fps)
        return RenderReport(mode, [str(path)], n, (width, height), time.perf_counter() - tick, camera)
    camera = camera or ("fixed" if mode in ("sheet", "keyframes") else "follow")
    cams = cameras(rig, pose, width, height, camera, yaw=yaw, pitch=pitch)
    if check:
        limits = limit_flags(rig, pose)
        flags = limits if flags is None else [a | b for a, b in zip(limits, flags)]
    images = render_pose(rig, pose, cams, style=style, bad_joints=flags, device=device, shapes=clip.shapes())
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
