"""`usdposer track` cost: simulation substeps per second, forward (no tape) and backward (re-simulation under a
``wp.Tape`` plus its adjoint), for articulations of 20 and 50 bodies, and seconds per optimisation iteration for a
2-second clip (the Fox's walk looped to 48 frames at 24 fps, 50 substeps per frame: 2,400 substeps). CPU always;
CUDA too when Warp sees a GPU.

    python bench/track.py [--json PATH]
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


def tree_rig(n: int):
    """A quadruped-like tree of ``n`` joints: a spine with four legs of three joints and a tail taking the rest, each
    joint moving a small box of vertices (so that every joint gets a body)."""
    import torch

    from usdposer.types import Mesh, Rig

    parents, offsets = [-1], [(0.0, 0.5, 0.0)]
    spine = max(2, (n - 12) // 2)
    for i in range(1, spine):
        parents.append(i - 1)
        offsets.append((0.0, 0.0, 0.12))
    for leg in range(4):
        base = 1 if leg < 2 else spine - 1
        p = base
        for k in range(3):
            parents.append(p)
            offsets.append(((-0.1 if leg % 2 else 0.1) if k == 0 else 0.0, -0.15, 0.0))
            p = len(parents) - 1
    while len(parents) < n:
        parents.append(len(parents) - 1 if len(parents) > spine + 12 else 0)
        offsets.append((0.0, 0.0, -0.1))
    J = len(parents)
    rest = torch.eye(4, dtype=torch.float64).repeat(J, 1, 1)
    rest[:, :3, 3] = torch.tensor(offsets, dtype=torch.float64)
    bind = rest.clone()
    for j in range(1, J):
        bind[j] = bind[parents[j]] @ rest[j]
    corners = torch.tensor([[x, y, z] for x in (-0.03, 0.03) for y in (-0.03, 0.03) for z in (-0.03, 0.03)],
                           dtype=torch.float64)
    pts = (bind[:, None, :3, 3] + corners).reshape(-1, 3)
    idx = torch.arange(J).repeat_interleave(8)[:, None]
    faces = torch.tensor([[i, i + 1, i + 2] for i in range(0, len(pts) - 2, 8)], dtype=torch.long)
    mesh = Mesh(path="/T/mesh", points=pts, faces=faces, joint_indices=idx, joint_weights=torch.ones(len(pts), 1,
                dtype=torch.float64))
    return Rig(name=f"tree{J}", skeleton_path="/T/Skel", joints=tuple(f"j{j}" for j in range(J)),
               parents=torch.tensor(parents), rest_local=rest, bind_world=bind, meshes=(mesh,))


def substeps_per_second(n: int, device: str | None, repeats: int = 3) -> dict:
    import torch

    from usdposer.physics.articulation import build_articulation, rigid_frames, to_newton
    from usdposer.physics.coordinates import reference_coordinates
    from usdposer.physics.simulation import ChunkSimulator
    from usdposer.types import Pose

    rig = tree_rig(n)
    art = build_articulation(rig, device=device)
    K = 100
    sim = ChunkSimulator(art, K)
    q0 = to_newton(rigid_frames(art.rig, Pose.rest(art.rig))[0]).float()
    q0[:, 1] += 0.05
    qd0 = torch.zeros(len(q0), 6)
    t = reference_coordinates(art, q0[None])[0]
    sim.forward(q0, qd0, t, t)  # warm-up (kernel loading)
    tick = time.perf_counter()
    for _ in range(repeats):
        out = sim.forward(q0, qd0, t, t)
    fwd = repeats * K / (time.perf_counter() - tick)
    grads = (torch.ones_like(out[0]), torch.ones_like(out[1]), torch.ones_like(out[2]))
    sim.backward((q0, qd0, t, t), grads)
    tick = time.perf_counter()
    for _ in range(repeats):
        sim.backward((q0, qd0, t, t), grads)
    bwd = repeats * K / (time.perf_counter() - tick)
    return {"bodies": art.num_bodies, "device": str(art.model.device), "substeps_per_s_forward": round(fwd),
            "substeps_per_s_backward": round(bwd)}


def seconds_per_iteration(device: str | None, iterations: int = 3) -> dict:
    from dataclasses import replace

    import torch

    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.physics.articulation import build_articulation
    from usdposer.physics.tracking import TrackConfig, track_clip

    work = Path(tempfile.mkdtemp())
    import_any(ROOT / "assets" / "khronos" / "Fox.glb", work / "fox.usdc")
    asset = read_asset(work / "fox.usdc")
    rig = asset.rig().to(torch.float64)
    walk = asset.clip(rig, "Walk")
    reps = -(-48 // len(walk))
    cat = lambda x: torch.cat([x] * reps)[:48]  # noqa: E731
    clip = replace(walk, rotations=cat(walk.rotations), translations=cat(walk.translations), scales=cat(walk.scales),
                   time_codes=torch.arange(48, dtype=torch.float64) * walk.time_codes_per_second / walk.fps)
    art = build_articulation(rig, device=device)
    res = track_clip(art, clip, TrackConfig(iterations=iterations))
    return {"clip": "Fox walk looped, 48 frames (2 s)", "bodies": art.num_bodies, "device": str(art.model.device),
            "substeps": 47 * 50, "s_per_iteration": round(res.seconds_per_iteration, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", dest="out")
    args = ap.parse_args()
    from usdposer.core._warp import get_warp

    wp = get_warp()
    devices = ["cpu"] + (["cuda:0"] if wp.get_cuda_device_count() else [])
    rows = []
    for dev in devices:
        for n in (20, 50):
            rows.append(substeps_per_second(n, dev))
            print(rows[-1], flush=True)
        rows.append(seconds_per_iteration(dev))
        print(rows[-1], flush=True)
    if len(devices) == 1:
        print("no CUDA device here: the GPU rows were NOT run")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
