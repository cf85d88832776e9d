"""`usdposer distill` cost per iteration, split into skinning, rendering, VAE encode, prior forward and backward:
on CPU with the tiny random-weight Wan and CogVideoX priors (9 frames, 64 x 64, 5,000 Gaussians, the Fox), and on a
CUDA GPU when present with the full-size Wan2.1-1.3B and CogVideoX-5B architectures at random weights (the compute of
the real weights, bf16) at 49 frames and the models' own resolutions, with peak memory:

    prior    the prior alone on a random clip: VAE encode with gradient, guided transformer pass (CFG batch of 2),
             backward through the encoder; "subset" and "full" (diffusers' gradient checkpointing) VAE gradients
    distill  the whole `distill_motion` iteration on the Fox (20,000 Gaussians, gsplat rendering)

Anchor: the AKD paper's ~25 h for 10,000 iterations on an A100 (about 9 s per iteration); goal: under 2 s per
iteration on an H100-class GPU.

    python bench/distill.py [--iterations N] [--gpu-only] [--json PATH] [--deadline SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))
PAPER_S_PER_IT = 25 * 3600 / 10_000
RESULTS: list[dict] = []


def fox_rig():
    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset

    work = Path(tempfile.mkdtemp())
    import_any(ROOT / "assets" / "khronos" / "Fox.glb", work / "fox.usdc")
    return read_asset(work / "fox.usdc").rig()


def record(row: dict, out: str | None) -> None:
    RESULTS.append(row)
    print("  " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    if out:
        Path(out).write_text(json.dumps(RESULTS, indent=1))


def cpu_tiny(iterations: int, out: str | None) -> None:
    import torch
    from usdposer.models.distill import DistillConfig, distill_motion
    from usdposer.models.video_prior import tiny_prior, tiny_text

    rig = fox_rig()
    print(f"CPU, {torch.get_num_threads()} threads, Fox, 9 frames at 64 x 64, 5000 Gaussians, {iterations} iterations")
    for kind in ("wan", "cogvideox"):
        cfg = DistillConfig(iterations=iterations, frames=9, width=64, height=64, gaussians=5000)
        tick = time.perf_counter()
        res = distill_motion(rig, tiny_prior(kind), tiny_text(), cfg)
        total = (time.perf_counter() - tick) / iterations
        record({"device": "cpu", "model": f"tiny-{kind}", "what": "distill", "s_per_it": total,
                **{k: round(v, 4) for k, v in res.seconds.items()}}, out)


def start_gsplat_build():
    """gsplat compiles its CUDA extension on first use (minutes): start it in the background."""
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return None
    env = dict(os.environ, FAST_COMPILE=os.environ.get("FAST_COMPILE", "1"))
    return subprocess.Popen([sys.executable, "-c", "from gsplat.cuda._backend import _C; assert _C is not None"],
                            env=env)


def time_prior(prior, text, frames: int, H: int, W: int, mode: str, iterations: int) -> dict:
    """The prior's share of an iteration on a random clip that requires grad (module docstring)."""
    import torch
    from usdposer.models.video_prior import encode_with_grad, sds_loss

    dev = prior.device
    g = torch.Generator().manual_seed(0)
    video = (torch.rand(1, 3, frames, H, W, device=dev) * 2 - 1).requires_grad_(True)
    ckpt = mode == "full" and getattr(prior.vae, "_supports_gradient_checkpointing", False)
    if ckpt:
        prior.vae.enable_gradient_checkpointing()
    cuda = torch.device(dev).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    parts = {"encode": 0.0, "prior": 0.0, "backward": 0.0}

    def clock():
        if cuda:
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    for i in range(iterations + 1):  # the first is a warm-up
        t0 = clock()
        z = encode_with_grad(prior, video, mode, 2, generator=g).float()
        t1 = clock()
        grad = prior.sds_gradient(z, 0.5, text, 100.0, generator=g)
        t2 = clock()
        sds_loss(z, grad).backward()
        t3 = clock()
        if i:
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[k] += v / iterations
    if ckpt:
        prior.vae.disable_gradient_checkpointing()
    return {**{k: round(v, 3) for k, v in parts.items()}, "s_per_it": sum(parts.values()), "vae_checkpointing": ckpt,
            "peak_GiB": torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else 0.0}


def gpu_full(iterations: int, out: str | None, deadline: float, smoke: bool = False) -> None:
    """The GPU rows; ``smoke`` runs the same code on CPU with the tiny priors at 9 frames of 64 x 64 (to check the
    script before spending GPU time)."""
    import torch
    from usdposer.models.distill import DistillConfig, distill_motion
    from usdposer.models.video_prior import FULL_SIZE, full_size_prior, tiny_prior, tiny_text

    build = None if smoke else start_gsplat_build()
    dev = "cpu" if smoke else "cuda"
    name = "cpu (smoke)" if smoke else torch.cuda.get_device_name(0)
    frames = 9 if smoke else 49
    models = {f"tiny-{k}": (k, None, None, None, (64, 64)) for k in ("wan", "cogvideox")} if smoke else FULL_SIZE
    print(f"GPU {name}: full-size architectures at random weights (bf16), 49 frames, {iterations} timed iterations "
          f"after one warm-up; paper anchor {PAPER_S_PER_IT:.1f} s/it on an A100, goal < 2 s/it", flush=True)
    rig = fox_rig()
    gsplat_ok = None
    for model, (kind, _, _, _, (H, W)) in models.items():
        if time.monotonic() > deadline:
            print(f"  deadline reached before {model}", flush=True)
            break
        tick = time.perf_counter()
        prior, text = (tiny_prior(kind), tiny_text()) if smoke else full_size_prior(model, device=dev)
        base = {"device": name, "model": model, "frames": frames, "size": f"{W}x{H}"}
        print(f" {model}: built in {time.perf_counter() - tick:.1f} s", flush=True)
        for mode in ("subset", "full"):
            if time.monotonic() > deadline:
                break
            try:
                record({**base, "what": f"prior, VAE grad {mode}", **time_prior(prior, text, frames, H, W, mode, iterations)}, out)
            except torch.cuda.OutOfMemoryError as exc:
                record({**base, "what": f"prior, VAE grad {mode}", "error": f"out of memory: {str(exc)[:120]}"}, out)
            if not smoke:
                torch.cuda.empty_cache()
        if gsplat_ok is None and not smoke:
            try:
                gsplat_ok = build is not None and build.wait(timeout=max(10.0, deadline - time.monotonic())) == 0
            except subprocess.TimeoutExpired:
                build.kill()
                gsplat_ok = False
            print(f"  gsplat CUDA extension: {'built' if gsplat_ok else 'NOT available'}", flush=True)
        if time.monotonic() > deadline:
            break
        if not smoke and not gsplat_ok:  # the torch rasteriser at 49 frames of 480p would take minutes per iteration
            record({**base, "what": "distill", "error": "skipped: no gsplat CUDA extension"}, out)
            continue
        n = 2000 if smoke else 20_000
        cfg = DistillConfig(iterations=iterations, frames=frames, width=W, height=H, gaussians=n, device=dev,
                            vae_grad="subset", render_backend="gsplat" if gsplat_ok else "torch")
        try:
            distill_motion(rig, prior, text, DistillConfig(**{**cfg.__dict__, "iterations": 1}))  # warm-up
            res = distill_motion(rig, prior, text, cfg)
            row = {**base, "what": "distill, VAE grad subset", "gaussians": n,
                   "s_per_it": sum(res.seconds.values()), **{k: round(v, 3) for k, v in res.seconds.items()},
                   "peak_GiB": (res.peak_memory or 0) / 2**30}
            record(row, out)
        except torch.cuda.OutOfMemoryError as exc:
            record({**base, "what": "distill", "error": f"out of memory: {str(exc)[:120]}"}, out)
        del prior, text
        if not smoke:
            torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--gpu-only", action="store_true")
    ap.add_argument("--json", dest="out")
    ap.add_argument("--deadline", type=float, default=1e9, help="stop starting new rows after this many seconds")
    ap.add_argument("--smoke", action="store_true", help="run the GPU rows' code on CPU with tiny priors")
    args = ap.parse_args()
    deadline = time.monotonic() + args.deadline
    import torch

    if not args.gpu_only:
        cpu_tiny(args.iterations, args.out)
    if args.smoke:
        gpu_full(args.iterations, args.out, deadline, smoke=True)
    elif torch.cuda.is_available():
        gpu_full(args.iterations, args.out, deadline)
    else:
        print("no CUDA device here: the full-size Wan2.1-1.3B / CogVideoX-5B GPU timings were NOT run "
              f"(paper anchor: {PAPER_S_PER_IT:.1f} s/it on an A100; goal < 2 s/it on an H100)")


if __name__ == "__main__":
    main()
