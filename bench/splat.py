"""The two splatting backends on the Fox (20,000 skinned Gaussians, checkerboard ground): forward + backward time per
frame at 256 x 256 and 480 x 832 for the torch rasteriser (CPU, and CUDA when present) and gsplat (CUDA), and, on CUDA,
how far gsplat's image and gradients are from the torch backend's (max |difference|, relative gradient error).

    python bench/splat.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", dest="out")
    ap.add_argument("--gaussians", type=int, default=20_000)
    args = ap.parse_args()
    import torch

    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.render.splat import follow_camera, render
    from usdposer.types import Pose

    work = Path(tempfile.mkdtemp())
    import_any(ROOT / "assets" / "khronos" / "Fox.glb", work / "fox.usdc")
    asset = read_asset(work / "fox.usdc")
    rig = asset.rig().to(torch.float64)
    clip = asset.clip(rig)
    pose = Pose(clip.rotations[30:31].double(), clip.translations[30:31].double(), clip.scales[30:31].double())
    ga = gaussians_from_rig(rig, args.gaussians)
    mu, cov = ga.posed(rig, pose, backend="torch")
    rows = []
    cases = [("torch", "cpu")]
    if torch.cuda.is_available():
        cases += [("torch", "cuda"), ("gsplat", "cuda")]
    for H, W in ((256, 256), (480, 832)):
        cam = follow_camera(mu[0], W, H)
        out = {}
        for backend, dev in cases:
            if backend == "torch" and dev == "cpu" and H > 256:
                continue
            ins = [x.float().to(dev).requires_grad_() for x in (mu[0], cov[0], ga.colors, ga.opacities)]
            times = []
            for _ in range(4):  # the first is a warm-up
                if dev == "cuda":
                    torch.cuda.synchronize()
                tick = time.perf_counter()
                rgb, _ = render(*ins, cam, backend=backend)
                g = torch.autograd.grad((rgb * torch.linspace(0, 1, W, device=dev)[:, None]).sum(), ins)
                if dev == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - tick)
            out[(backend, dev)] = (rgb.detach().cpu(), [x.cpu() for x in g])
            row = {"backend": backend, "device": dev, "size": f"{W}x{H}", "gaussians": args.gaussians,
                   "ms_forward_backward": 1000 * sum(times[1:]) / 3}
            rows.append(row)
            print(row, flush=True)
        if ("gsplat", "cuda") in out:
            (a, ga_), (b, gb) = out[("torch", "cuda")], out[("gsplat", "cuda")]
            sym = lambda g: torch.triu(g + g.transpose(-1, -2)) - torch.diag_embed(torch.diagonal(g, dim1=-2, dim2=-1))  # noqa: E731
            ga_, gb = [*ga_[:1], sym(ga_[1]), *ga_[2:]], [*gb[:1], sym(gb[1]), *gb[2:]]  # covariances: 6 unique entries
            d = (a - b).abs()
            row = {"parity": f"{W}x{H}", "max_abs_rgb": float(d.max()), "pixels_over_1e-3": float((d.amax(-1) > 1e-3).float().mean()),
                   **{f"grad_rel_{k}": float((x - y).norm() / x.norm().clamp(min=1e-12))
                      for k, x, y in zip(("means", "covs", "colors", "opacities"), ga_, gb)}}
            rows.append(row)
            print(row, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
