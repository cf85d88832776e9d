"""DDIM inversion round trip (the Step 3 goal): mean joint position error after invert-then-decode, in % of the
character's height, for the training characters and the held-out ones of the default model's dataset, with and
without the fixed-point refinement (``--refine``), and the time per pose.

    python bench/inversion.py [--dataset data/default] [--poses 32] [--steps 50] [--refine 3]

The dataset is built by ``make default-model`` (from ../shared/data); without it this says so and stops.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(ROOT / "data" / "default"))
    ap.add_argument("--poses", type=int, default=32)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--refine", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (Path(args.dataset) / "manifest.json").exists():
        print(f"no dataset at {args.dataset}: run `make default-model` (needs ../shared/data) or pass --dataset")
        sys.exit(1)
    import torch
    from usdposer.models.pose_prior import PosePrior, RigCondition

    from usdposer.io.dataset import load_dataset

    prior = PosePrior.load(None)
    print(f"default checkpoint, {args.steps} DDIM steps, up to {args.poses} poses per character; error = mean joint "
          f"distance after invert-then-decode, % of height")
    hdr = f"{'character':<34}{'split':<9}{'poses':>6}{'refine 0':>10}{f'refine {args.refine}':>10}{'max':>8}{'ms/pose':>9}"
    print("\n" + hdr + "\n" + "-" * len(hdr))
    agg: dict[str, list[float]] = {}
    for ch in load_dataset(args.dataset, ["train", "val", "heldout"]):
        if not len(ch.poses):
            continue
        g = torch.Generator().manual_seed(args.seed)
        six = ch.poses[torch.randperm(len(ch.poses), generator=g)[:args.poses]].float()
        cond = RigCondition(ch.features, ch.tree, ch.mask)
        row = []
        for refine in (0, args.refine):
            t0 = time.time()
            z = prior.invert(cond, six, steps=args.steps, refine=refine)
            sec = (time.time() - t0) / len(six)
            rec, _ = prior.sample(cond, len(z), steps=args.steps, latents=z)
            # mean joint distance over the model joints, in the character's canonical frame
            d = (ch.positions(six) - ch.positions(rec))[:, ch.mask].norm(dim=-1).mean(-1)
            row.append(d / ch.height * 100)
        split = "heldout" if ch.split == "heldout" else "train"
        agg.setdefault(split, []).extend(row[1].tolist())
        print(f"{ch.id:<34}{split:<9}{len(six):>6}{float(row[0].mean()):>10.3f}{float(row[1].mean()):>10.3f}"
              f"{float(row[1].max()):>8.3f}{1000 * sec:>9.1f}")
    print("-" * len(hdr))
    for split, v in agg.items():
        t = torch.tensor(v)
        print(f"{'all ' + split:<34}{'':<9}{len(v):>6}{'':>10}{float(t.mean()):>10.3f}{float(t.max()):>8.3f}")


if __name__ == "__main__":
    main()
