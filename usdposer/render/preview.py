"""Previews for every verb that writes poses: contact sheets drawn by ``usdposer.render`` (the CPU z-buffer
rasteriser: textured skinned meshes, skeleton overlay, ground grid) and small loss-curve plots (Pillow).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from usdposer.types import Pose, Rig


def contact_sheet(rig: Rig, pose: Pose, out: str | os.PathLike, *, tile: int = 192, columns: int | None = None,
                  labels: list[str] | None = None, bad_joints: list[set[int]] | None = None,
                  camera: str = "fixed") -> Path:
    """Write a PNG grid of every pose (temporary file, then moved into place), one camera framing them all
    (``camera="follow"`` frames each); ``bad_joints[i]`` are drawn red. Returns the path."""
    from usdposer.render.cameras import cameras
    from usdposer.render.encode import write_sheet
    from usdposer.render.raster import render_pose
    from usdposer.types import Pose as P

    rig = rig.to(torch.float64)
    pose = P(pose.rotations.double(), pose.translations.double(), pose.scales.double())
    images = render_pose(rig, pose, cameras(rig, pose, tile, tile, camera), bad_joints=bad_joints)
    return write_sheet(images, out, labels or [str(i) for i in range(len(images))], columns)


def loss_plot(losses: list[dict], out, keys: tuple[str, ...], size=(480, 240)) -> None:
    """A small PNG of the loss curves ``keys`` of ``losses`` (one dict per iteration; log scale), drawn with PIL."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    palette = [(200, 60, 40), (40, 120, 200), (60, 160, 60), (150, 80, 170), (120, 120, 120)]
    colors = {k: palette[i % len(palette)] for i, k in enumerate(keys)}
    W, H = size
    for i, k in enumerate(keys):
        ys = [max(float(r[k]), 1e-12) for r in losses]
        if not ys or max(ys) <= 1e-12:
            continue
        lo, hi = math.log10(min(ys)), math.log10(max(ys))
        pts = [(10 + (W - 20) * j / max(1, len(ys) - 1),
                H - 20 - (H - 40) * ((math.log10(y) - lo) / (hi - lo) if hi > lo else 0.5)) for j, y in enumerate(ys)]
        d.line(pts, fill=colors.get(k, (0, 0, 0)), width=2)
        d.text((10 + 90 * i, 4), f"{k} {ys[-1]:.3g}", fill=colors.get(k, (0, 0, 0)))
    from usdposer.outputs import atomic_file

    with atomic_file(out) as tmp:
        img.save(tmp, format="PNG")


def three_views(rig: Rig, out: str | os.PathLike, *, tile: int = 320, labels: tuple[str, ...] = ("front", "side", "top"),
                bad_joints: set[int] | None = None) -> Path:
    """Write a PNG of ``rig`` at rest from the front (+Z), the side (+X) and above, the skeleton drawn over the
    mesh (temporary file, then moved into place). Returns the path."""
    from usdposer.core.posing import joint_transforms, skin
    from usdposer.render.encode import write_sheet
    from usdposer.render.raster import Style, frame_camera, render_pose
    from usdposer.types import Pose as P

    rig = rig.to(torch.float64)
    pose = P.rest(rig, 3)
    S = rig.skel_to_world
    with torch.no_grad():
        pts = [p[0] for p in skin(rig, P.rest(rig), backend="torch")] or [joint_transforms(rig, P.rest(rig))[0, :, :3, 3]]
    world = torch.cat(pts) @ S[:3, :3].T + S[:3, 3]
    cams = [frame_camera(world, tile, tile, yaw_deg=y, pitch_deg=p, margin=1.05) for y, p in ((0, 0), (90, 0), (0, 89))]
    images = render_pose(rig, pose, cams, style=Style(ground=False), bad_joints=[bad_joints or set()] * 3)
    return write_sheet(images, out, list(labels), columns=3)
