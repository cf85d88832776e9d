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
