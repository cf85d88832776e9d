"""`usdposer fit --video` on known answers: videos of real clips of characters the default pose space never saw (the
shared Quaternius Wolf and Knight), drawn by the *mesh* rasteriser (``usdposer.render.raster``, not the splatting
renderer that fits), with what a video model adds (a colour shift, blur, noise, a few pixels of camera shake), seen
from one still camera from the side. The fit starts from the clip's first pose (what `usdposer generate` knows: it
rendered the first frame) and tracks the rest. Reported: the mean error of the skin-weighted joints in % of height,
with and without the pose prior, against the clip's poses, and the same for "no fit" (every frame left at the first
pose) as the baseline.

    python bench/fit_video.py [--frames 8] [--step 2] [--size 192x128] [--out bench/results/fit_video.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))
CASES = {"Wolf": ("quaternius/animals/Wolf.glb", "Walk"), "Knight": ("quaternius/humanoids/Knight.glb", "Walking")}
PERTURB = {"color_shift": 0.04, "blur": 0.6, "noise": 0.02, "shake": 2}


def known_video(rig, clip, frames: int, step: int, size: tuple[int, int], seed: int = 0):
    """(truth pose, perturbed frames uint8, camera, plate uint8) of ``frames`` frames of ``clip``, every ``step``."""
    import numpy as np
    import torch
    from usdposer.models.video_fit import perturb

    from usdposer.core.posing import character_height
    from usdposer.render.cameras import _world_points
    from usdposer.render.raster import Style, frame_camera, plate, render_pose
    from usdposer.render.splat import board_size
    from usdposer.types import Pose

    pick = torch.arange(0, len(clip), step)[:frames]
    truth = Pose(clip.rotations[pick].double(), clip.translations[pick].double(), clip.scales[pick].double())
    cam = frame_camera(_world_points(rig, truth).reshape(-1, 3), size[0], size[1], yaw_deg=90, pitch_deg=10)
    style = Style(skeleton=False)
    clean = np.stack(render_pose(rig, truth, [cam] * len(pick), style=style))
    video = perturb(clean, seed=seed, **PERTURB)
    return truth, video, cam, plate(cam, board_size(character_height(rig)), style)


def run(name: str, frames: int, step: int, size, prior) -> dict:
    import torch
    from usdposer.models.video_fit import VideoFitConfig, fit_video, joint_error

    from usdposer.io.dataset import read_any
    from usdposer.types import Pose

    rel, anim = CASES[name]
    asset = read_any(SHARED / rel, Path(tempfile.mkdtemp()), strict=False)
    rig = asset.rig().to(torch.float64)
    clip = asset.clip(rig, anim)
    truth, video, cam, pl = known_video(rig, clip, frames, step, size)
    start = Pose(truth.rotations[:1], truth.translations[:1], truth.scales[:1])
    V = torch.as_tensor(video).double() / 255
    P = torch.as_tensor(pl.copy()).double() / 255
    n = len(V)
    still = Pose(start.rotations.expand(n, -1, -1), start.translations.expand(n, -1, -1), start.scales.expand(n, -1, -1))
    row = {"character": name, "clip": anim, "frames": n, "step": step, "size": list(size), "joints": rig.num_joints,
           "no_fit_error": round(float(joint_error(rig, truth, still)[1:].mean()), 3)}
    for label, weight in (("prior", VideoFitConfig.prior_weight), ("no_prior", 0.0)):
        tick = time.perf_counter()
        res = fit_video(rig, V, [cam] * n, P, VideoFitConfig(prior_weight=weight), prior=prior if weight else None,
                        start=start)
        fitted = Pose(res.rotations, res.translations, start.scales.expand(n, -1, -1))
        err = joint_error(rig, truth, fitted)
        row[label] = {"joint_error": round(float(err[1:].mean()), 3), "per_frame": [round(float(e), 2) for e in err],
                      "mask_iou": round(sum(res.mask_iou) / n, 3), "seconds_per_frame": round((time.perf_counter() - tick) / n, 2)}
        print(f"{name:7s} {label:8s} joint error {row[label]['joint_error']:6.2f}% of height (no fit "
              f"{row['no_fit_error']:.2f}%), IoU {row[label]['mask_iou']:.2f}, {row[label]['seconds_per_frame']:.1f} s/frame",
              flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--step", type=int, default=2)
    ap.add_argument("--size", default="192x128")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"bench/fit_video.py needs the shared assets at {SHARED}: not found")
    from usdposer.models.pose_prior import PosePrior

    size = tuple(int(v) for v in args.size.split("x"))
    prior = PosePrior.load(None)
    rows = [run(name, args.frames, args.step, size, prior) for name in CASES]
    result = {"bench": "fit_video", "perturbation": PERTURB, "camera": "still, side (yaw 90, pitch 10)",
              "start": "the clip's first pose (known, as for a generated video)", "metric":
              "mean distance of the skin-weighted joints to the clip's, % of height, frames after the first",
              "goal": "under 5 % of height, and the prior helping", "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
