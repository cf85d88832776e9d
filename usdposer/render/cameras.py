"""Cameras that frame a rig's poses: fixed, following the character, or orbiting it (OpenCV convention, as the splat
renderer and the rasteriser use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from usdposer.types import Pose, Rig


def _world_points(rig: Rig, pose: Pose) -> torch.Tensor:
    """(B, N, 3) skinned points (or joints) in world, for framing."""
    from usdposer.core.posing import joint_transforms, skin

    S = rig.skel_to_world.double()
    with torch.no_grad():
        if rig.meshes:
            return torch.cat([p @ S[:3, :3].T + S[:3, 3] for p in skin(rig, pose, backend="torch")], 1)
        return (S @ joint_transforms(rig, pose))[..., :3, 3]


HULL_FROM = 20_000  # points per pose from which framing keeps only the convex hull's vertices


def framing_points(rig: Rig, pose: Pose) -> list[torch.Tensor]:
    """Per pose, (N, 3) world points that frame it as all its skinned points (or joints) do: for a heavy mesh only
    the vertices of their convex hull (a perspective view's extremes lie on them). A pose equal to the one before (a
    turntable's) is not skinned again; the others are skinned a few at a time (:func:`world_meshes`)."""
    from usdposer.core.posing import joint_transforms
    from usdposer.render.raster import world_meshes

    if not rig.meshes:
        with torch.no_grad():
            return list((rig.skel_to_world.double() @ joint_transforms(rig, pose))[..., :3, 3])
    same = [k > 0 and all(torch.equal(a[k], a[k - 1]) for a in (pose.rotations, pose.translations, pose.scales))
            for k in range(len(pose))]
    distinct = world_meshes(rig, pose[torch.tensor([k for k, s in enumerate(same) if not s], dtype=torch.long)])
    out: list[torch.Tensor] = []
    for s in same:
        if s:
            out.append(out[-1])
        else:
            pts = torch.cat(next(distinct))
            out.append(pts if rig.num_points < HULL_FROM else _hull(pts))
    return out


def _hull(points: torch.Tensor) -> torch.Tensor:
    """The vertices of the convex hull of (N, 3) points (all of them for a flat or degenerate set)."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        return points[torch.from_numpy(ConvexHull(points.numpy()).vertices)]
    except (QhullError, ValueError):
        return points


def cameras(rig: Rig, pose: Pose, width: int, height: int, mode: str = "fixed", *, yaw: float = 30.0,
            pitch: float = 15.0, turns: float = 0.0) -> list:
    """One camera per pose: ``fixed`` frames every pose at once, ``follow`` frames each pose, ``orbit`` frames every
    pose and turns ``turns`` times around the vertical over the poses."""
    from usdposer.render.raster import frame_camera

    pts = framing_points(rig, pose)
    B = len(pts)
    if mode == "follow":
        return [frame_camera(pts[i], width, height, yaw_deg=yaw, pitch_deg=pitch) for i in range(B)]
    every = torch.cat(list({id(p): p for p in pts}.values()))  # each distinct pose's points once
    if mode == "orbit":
        return [frame_camera(every, width, height, yaw_deg=yaw + 360.0 * turns * i / max(B, 1), pitch_deg=pitch)
                for i in range(B)]
    cam = frame_camera(every, width, height, yaw_deg=yaw, pitch_deg=pitch)
    return [cam] * B


CAMERAS_FORMAT = "usdposer-cameras/1"
CONVENTION = "OpenCV camera (x right, y down, z forward); viewmat = world-to-camera, metres, +Y up"


def cameras_record(cams: list, *, fps: float, time_codes=None, images: list[str] | None = None, **extra) -> dict:
    """The ``cameras.json`` sidecar of a rendered or generated video: one view and intrinsic matrix per frame (the
    format ``render --mode keyframes`` writes and ``fit --video`` reads); ``extra`` keys (the ground, the asset) are
    kept beside."""
    frames = []
    for i, cam in enumerate(cams):
        row = {"index": i, "viewmat": cam.viewmat.tolist(), "K": cam.K.tolist()}
        if time_codes is not None:
            row["time_code"] = float(time_codes[i])
        if images:
            row["image"] = images[i]
        frames.append(row)
    w, h = (cams[0].width, cams[0].height) if cams else (0, 0)
    return {"format": CAMERAS_FORMAT, "fps": fps, "width": w, "height": h, "convention": CONVENTION, **extra,
            "frames": frames}


MAX_SIDE = 16384  # pixels: a sidecar asking for more is corrupt, not a video


def read_cameras(path) -> tuple[list, dict]:
    """(cameras, the whole record) from a ``cameras.json`` sidecar; a clear error names what is wrong."""
    import json
    import math
    from pathlib import Path

    from usdposer.errors import InputError, real, whole
    from usdposer.render.splat import Camera

    path = Path(path)
    try:
        rec = json.loads(path.read_text())
        w, h, fps = rec["width"], rec["height"], rec.get("fps", 24.0)
        if not (whole(w, 1, MAX_SIDE) and whole(h, 1, MAX_SIDE)):
            raise ValueError(f"width and height must be whole numbers of pixels from 1 to {MAX_SIDE}")
        if not real(fps) or not 0 < fps < math.inf:
            raise ValueError("fps must be a positive number")
        cams = []
        for row in rec["frames"]:
            V = torch.tensor(row["viewmat"], dtype=torch.float64)
            K = torch.tensor(row["K"], dtype=torch.float64)
            if V.shape != (4, 4) or K.shape != (3, 3) or not (V.isfinite().all() and K.isfinite().all()):
                raise ValueError("a viewmat that is not a finite 4x4 or a K that is not a finite 3x3")
            cams.append(Camera(V, K, w, h))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a cameras.json sidecar ({str(exc)[:120] or type(exc).__name__}); pass the "
                         "cameras.json written by `usdposer generate` or `usdposer render --mode keyframes`") from exc
    if not cams:
        raise InputError(f"{path}: the cameras.json has no frames or no image size; pass the sidecar written with the "
                         "video")
    return cams, rec


def scaled(cam, factor: float):
    """The camera at ``factor`` times the resolution (coarse-to-fine fitting): K scaled about the pixel corner."""
    from usdposer.render.splat import Camera

    K = cam.K.clone()
    K[:2] *= factor
    return Camera(cam.viewmat, K, max(1, round(cam.width * factor)), max(1, round(cam.height * factor)))
