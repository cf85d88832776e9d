"""`usdposer render` speed: frames per second at 512 x 512 (textured shaded mesh, skeleton overlay, ground grid) for
the Fox (1.7k vertices) and the dm_control dog (24k vertices) on CPU, over one animation's poses (the dog: poses
sampled around its rest), follow camera.

    python bench/render.py [--frames N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=12)
    args = ap.parse_args()
    import torch

    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import render_pose
    from usdposer.types import Pose

    work = Path(tempfile.mkdtemp())
    print(f"CPU, {torch.get_num_threads()} threads, 512 x 512")
    for name, src in (("Fox", ROOT / "assets" / "khronos" / "Fox.glb"), ("dog", ROOT / "assets" / "mujoco" / "dog" / "dog.xml")):
        import_any(src, work / f"{name}.usdc")
        asset = read_asset(work / f"{name}.usdc")
        rig = asset.rig().to(torch.float64)
        clips = asset.clips.get(rig.skeleton_path, [])
        if clips:
            c = clips[0]
            n = min(args.frames, len(c))
            pose = Pose(c.rotations[:n].double(), c.translations[:n].double(), c.scales[:n].double())
        else:
            g = torch.Generator().manual_seed(0)
            from usdposer.core.rotations import axis_angle_to_quat, quat_multiply

            rest = Pose.rest(rig)
            n = args.frames
            q = quat_multiply(rest.rotations.expand(n, -1, -1),
                              axis_angle_to_quat(torch.randn(n, rig.num_joints, 3, generator=g, dtype=torch.float64) * 0.1))
            pose = Pose(q, rest.translations.expand(n, -1, -1), rest.scales.expand(n, -1, -1))
        cams = cameras(rig, pose, 512, 512, "follow")
        render_pose(rig, Pose(pose.rotations[:1], pose.translations[:1], pose.scales[:1]), cams[:1])  # warm-up
        tick = time.perf_counter()
        render_pose(rig, pose, cams)
        fps = n / (time.perf_counter() - tick)
        verts = sum(m.num_points for m in rig.meshes)
        print(f"  {name:4s} {verts:6d} vertices  {fps:6.1f} frames/s  ({1000 / fps:.0f} ms/frame)", flush=True)


if __name__ == "__main__":
    main()
