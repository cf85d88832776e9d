"""Contact sheets of posed characters on the CPU: a small painter's-algorithm rasteriser with Lambert shading
(Pillow), one tile per pose, a three-quarter front view, the ground as a line. Rigs without meshes draw their
bones. Step 8's renderer replaces this for production previews; this one only needs numpy and Pillow.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from usdposer.types import Pose, Rig


def _view(yaw_deg: float = 30.0, pitch_deg: float = 15.0) -> np.ndarray:
    """(3, 3) world -> camera (x right, y up, z towards the viewer)."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    Ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return Rx @ Ry


def render_poses(rig: Rig, pose: Pose, tile: int = 192, yaw: float = 30.0) -> list:
    """One PIL image per pose (RGB, ``tile`` x ``tile``), all at the same scale."""
    from PIL import Image, ImageDraw

    from usdposer.posing import joint_transforms, skin

    with torch.no_grad():
        S = rig.skel_to_world.double().numpy()
        meshes = [p.double().numpy() for p in skin(rig, pose, backend="torch")] if rig.meshes else []
        joints = joint_transforms(rig, pose)[:, :, :3, 3].double().numpy()
    V = _view(yaw)
    to_cam = lambda P: (P @ S[:3, :3].T + S[:3, 3]) @ V.T
    cams_all = [to_cam(m) for m in meshes] or [to_cam(joints)]
    allpts = np.concatenate([c.reshape(-1, 3) for c in cams_all])
    lo, hi = allpts.min(0), allpts.max(0)
    scale = 0.85 * tile / max(hi[0] - lo[0], hi[1] - lo[1], 1e-6)
    centre = (lo + hi) / 2
    px = lambda c: np.stack([(c[..., 0] - centre[0]) * scale + tile / 2, tile / 2 - (c[..., 1] - centre[1]) * scale], -1)
    light = np.array([0.4, 0.7, 0.6]) / np.linalg.norm([0.4, 0.7, 0.6])
    images = []
    for b in range(len(pose)):
        img = Image.new("RGB", (tile, tile), (236, 236, 232))
        draw = ImageDraw.Draw(img)
        gy = tile / 2 + centre[1] * scale  # the ground through the world origin is at camera y = 0
        draw.line([(0, gy), (tile, gy)], fill=(170, 170, 165), width=1)
        if meshes:
            tris, shades, depth = [], [], []
            for m, cam in zip(rig.meshes, cams_all):
                f = m.faces.numpy()
                P = cam[b][f]  # (F, 3, 3)
                n = np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0])
                n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
                base = np.array(m.color if m.color is not None else (0.72, 0.62, 0.5))[:3]
                lam = 0.3 + 0.7 * np.abs(n @ light)
                tris.append(px(P))
                shades.append(np.clip(lam[:, None] * base[None] * 255, 0, 255).astype(np.uint8))
                depth.append(P[:, :, 2].mean(1))
            tris, shades, depth = np.concatenate(tris), np.concatenate(shades), np.concatenate(depth)
            for i in np.argsort(depth):  # far (small z) first
                draw.polygon([tuple(v) for v in tris[i]], fill=tuple(int(c) for c in shades[i]))
        else:
            J = px(cams_all[0][b])
            for j, p in enumerate(rig.parents.tolist()):
                if p >= 0:
                    draw.line([tuple(J[p]), tuple(J[j])], fill=(60, 70, 90), width=max(1, tile // 96))
            for x, y in J:
                draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(200, 80, 60))
        images.append(img)
    return images


def contact_sheet(rig: Rig, pose: Pose, out: str | os.PathLike, *, tile: int = 192, columns: int | None = None,
                  labels: list[str] | None = None) -> Path:
    """Write a PNG grid of every pose (temporary file, then moved into place). Returns the path."""
    from PIL import Image, ImageDraw

    out = Path(out)
    images = render_poses(rig, pose, tile)
    n = len(images)
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    sheet = Image.new("RGB", (cols * tile, rows * tile), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, im in enumerate(images):
        x, y = (i % cols) * tile, (i // cols) * tile
        sheet.paste(im, (x, y))
        draw.text((x + 4, y + 2), labels[i] if labels else str(i), fill=(40, 40, 40))
    tmp = out.with_name(f".{out.name}.tmp")
    sheet.save(tmp, format="PNG")
    os.replace(tmp, out)
    return out


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
    img.save(out)
