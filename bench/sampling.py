"""Pose-space benchmark: poses per second (DDIM, 50 steps, batch 256) for rigs of 24, 50 and 65 joints, and
training steps per second, on CPU (or ``--device cuda``), with the shipped default checkpoint's architecture.

Rigs: the bundled Fox (24 joints), the shared Quaternius Horse (50) and the bundled MuJoCo rodent (65); a rig that
is missing is replaced by a synthetic chain of that size (said so in the output).

    python bench/sampling.py [--batch 256] [--steps 50] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))
RIGS = [(24, ROOT / "assets" / "khronos" / "Fox.glb"),
        (50, ROOT.parent / "shared" / "data" / "quaternius" / "animals" / "Horse.glb"),
        (65, ROOT / "assets" / "mujoco" / "rodent" / "rodent.xml")]


def condition(J: int, path: Path, work: Path):
    import torch
    from usdposer.models.pose_prior import RigCondition

    from usdposer.core.posespace import FEATURE_DIM
    from usdposer.io.dataset import read_any

    if path.exists():
        rig = read_any(path, work).rig()
        assert rig.num_joints == J, (path, rig.num_joints)
        return RigCondition.from_rig(rig), path.name
    idx = torch.arange(J)
    tree = (idx[:, None] - idx[None]).abs()
    return RigCondition(torch.randn(J, FEATURE_DIM), tree), f"synthetic chain (missing {path})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train-steps", type=int, default=10)
    args = ap.parse_args()
    import torch
    from usdposer.models.pose_prior import PosePrior

    prior = PosePrior.load(None, args.device)
    cfg = prior.denoiser.config
    print(f"torch threads: {torch.get_num_threads()}, device {args.device}; model width {cfg.width}, depth {cfg.depth}, "
          f"{sum(p.numel() for p in prior.denoiser.parameters()) / 1e6:.2f} M parameters")
    print(f"\n{'joints':>6}  {'rig':<34}{'seconds':>9}{'poses/s':>10}")
    with tempfile.TemporaryDirectory() as work:
        for J, path in RIGS:
            cond, name = condition(J, path, Path(work))
            g = torch.Generator().manual_seed(0)
            prior.sample(cond, 8, steps=2, generator=g)  # warm-up
            t = time.perf_counter()
            prior.sample(cond, args.batch, steps=args.steps, generator=g, batch_size=args.batch)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t
            print(f"{J:>6}  {name:<34}{dt:>9.2f}{args.batch / dt:>10.1f}")
        # training throughput: batch 128 of the 50-joint rig
        cond, _ = condition(50, RIGS[1][1], Path(work))
        B = 128
        f = cond.features[None].expand(B, -1, -1).to(args.device)
        tr = cond.tree[None].expand(B, -1, -1).to(args.device)
        m = torch.ones(B, 50, dtype=torch.bool, device=args.device)
        x0 = torch.randn(B, 50, 6, device=args.device)
        opt = torch.optim.AdamW(prior.denoiser.parameters(), lr=1e-5)
        prior.denoiser.train()

        def step():
            loss = prior.loss(x0, f, tr, m)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        t = time.perf_counter()
        for _ in range(args.train_steps):
            step()
        dt = (time.perf_counter() - t) / args.train_steps
        print(f"\ntraining: {1 / dt:.2f} steps/s (batch {B}, 50 joints)")


if __name__ == "__main__":
    main()
