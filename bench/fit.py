"""`usdposer fit` speed and accuracy: frames per second of fitting (defaults: L-BFGS, 60 iterations per frame, 300 for
the first, 8000 surface samples) on the Fox (1.7k vertices, 24 joints) and the Quaternius Horse (4.4k vertices, 50
joints), each fitted to 4000-point clouds resampled from its own first animation (0.2 % of height noise), with the
mean error of the skin-weighted joints' positions in % of height.

    python bench/fit.py [FRAMES]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))


def bench(path: Path, frames: int) -> str:
    import numpy as np
    import torch
    import trimesh

    from usdposer.core.fitting import as_pose, fit_frames
    from usdposer.core.kinematics import joint_positions
    from usdposer.core.posing import character_height, joint_transforms, skin
    from usdposer.io.dataset import read_any
    from usdposer.types import Pose

    asset = read_any(path, Path(tempfile.mkdtemp()), strict=False)
    rig = asset.rig().to(torch.float64)
    clip = asset.clip(rig)
    sel = torch.arange(min(frames, len(clip)))
    pose = Pose(clip.rotations[sel].double(), clip.translations[sel].double(), clip.scales[sel].double())
    h = character_height(rig)
    offs = np.cumsum([0] + [m.num_points for m in rig.meshes])
    F = np.concatenate([m.faces.numpy() + o for m, o in zip(rig.meshes, offs)])
    pts = skin(rig, pose, backend="torch")
    rng = np.random.default_rng(0)
    clouds = []
    for t in range(len(sel)):
        V = torch.cat([p[t] for p in pts]).numpy()
        s, _ = trimesh.sample.sample_surface(trimesh.Trimesh(V, F, process=False), 4000, seed=t)
        clouds.append(s + rng.normal(0, 0.002 * h, s.shape))
    tick = time.perf_counter()
    q, r, res = fit_frames(rig, clouds)
    secs = time.perf_counter() - tick
    W = torch.zeros(rig.num_joints, dtype=torch.float64)
    for m in rig.meshes:
        W.index_add_(0, m.joint_indices.flatten(), m.joint_weights.double().flatten())
    gt = joint_positions(joint_transforms(rig, pose))
    fit = joint_positions(joint_transforms(rig, as_pose(rig, q, r)))
    err = (gt - fit).norm(dim=-1)[:, W > 0].mean() / h
    return (f"{path.stem:8s} {sum(m.num_points for m in rig.meshes):6d} vertices {rig.num_joints:3d} joints, {len(sel)} "
            f"frames of {clip.name}: {len(sel) / secs:5.2f} frames/s overall, joint error {100 * float(err):.2f}% of "
            f"height, Chamfer residual {res.mean():.2f}%")


def main() -> None:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(bench(ROOT / "assets" / "khronos" / "Fox.glb", frames))
    horse = SHARED / "quaternius" / "animals" / "Horse.glb"
    print(bench(horse, frames) if horse.exists() else f"Horse skipped: {horse} not found (shared data set missing)")


if __name__ == "__main__":
    main()
