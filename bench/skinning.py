"""Skinning benchmark: usdposer's Warp kernel (CPU, all frames in one launch), its torch path, plain numpy, and
OpenUSD's own C++ skinning (``UsdSkel.SkinningQuery.ComputeSkinnedPoints``, one call per frame), on the same mesh,
transforms and frames. Printed as ratios against OpenUSD from one run.

Meshes: the dm_control dog skin (24,065 vertices, 57 bones, read from ../shared/data/mujoco/dog/dog_skin.skn when
present) and a 100k-vertex mesh with 4 influences; 100 frames each.

    python bench/skinning.py [--frames 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("WARP_CACHE_PATH", str(Path(__file__).resolve().parents[1] / ".cache" / "warp"))

DOG_SKN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mujoco" / "dog" / "dog_skin.skn"


def read_skn(path: Path):
    """The dog skin as (points, faces, indices, weights, bind), read by usdposer's MJCF importer."""
    from usdposer.io.mjcf import read_skn as read

    skin = read(path)
    return skin.points, skin.faces, skin.indices, skin.weights, skin.binds


def synthetic(V: int, J: int, K: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(V, 3))
    idx = rng.integers(0, J, size=(V, K))
    w = rng.random((V, K))
    bind = np.repeat(np.eye(4)[None], J, 0)
    bind[:, :3, 3] = rng.normal(size=(J, 3))
    return pts, None, idx, w / w.sum(1, keepdims=True), bind


def random_skin_transforms(J: int, T: int, seed: int = 1) -> np.ndarray:
    """(T, J, 4, 4) rigid transforms (small random rotations and offsets)."""
    import torch

    from usdposer.core.kinematics import compose_trs
    from usdposer.core.rotations import axis_angle_to_quat

    g = torch.Generator().manual_seed(seed)
    q = axis_angle_to_quat(0.3 * torch.randn(T, J, 3, generator=g, dtype=torch.float64))
    t = 0.05 * torch.randn(T, J, 3, generator=g, dtype=torch.float64)
    return compose_trs(t, q).numpy()


def usd_stage(pts, idx, w, bind, mats):
    """An in-memory UsdSkel stage whose skinning transforms at frame f are ``mats[f]`` (flat skeleton)."""
    from pxr import Sdf, Usd, UsdGeom, UsdSkel, Vt

    from usdposer.io.stage import np_to_gf_array

    J = len(bind)
    stage = Usd.Stage.CreateInMemory()
    UsdSkel.Root.Define(stage, "/R")
    skel = UsdSkel.Skeleton.Define(stage, "/R/Skel")
    skel.CreateJointsAttr(Vt.TokenArray([f"j{i}" for i in range(J)]))
    skel.CreateBindTransformsAttr(np_to_gf_array(bind))
    skel.CreateRestTransformsAttr(np_to_gf_array(bind))
    anim = UsdSkel.Animation.Define(stage, "/R/Skel/Anim")
    anim.CreateJointsAttr(Vt.TokenArray([f"j{i}" for i in range(J)]))
    world = mats @ bind  # skinning = world @ inv(bind)
    for f in range(len(mats)):
        anim.SetTransforms(np_to_gf_array(world[f]), Usd.TimeCode(f))
    UsdSkel.BindingAPI.Apply(skel.GetPrim()).CreateAnimationSourceRel().SetTargets([anim.GetPath()])
    UsdGeom.Scope.Define(stage, "/R/Geo")
    mesh = UsdGeom.Mesh.Define(stage, "/R/Geo/M")
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(pts.astype(np.float32)))
    b = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
    b.CreateSkeletonRel().SetTargets([Sdf.Path("/R/Skel")])
    K = idx.shape[1]
    b.CreateJointIndicesPrimvar(False, K).Set(Vt.IntArray.FromNumpy(idx.reshape(-1).astype(np.int32)))
    b.CreateJointWeightsPrimvar(False, K).Set(Vt.FloatArray.FromNumpy(w.reshape(-1).astype(np.float32)))
    cache = UsdSkel.Cache()
    root = UsdSkel.Root(stage.GetPrimAtPath("/R"))
    cache.Populate(root, Usd.PrimDefaultPredicate)
    sq = cache.GetSkelQuery(skel)
    skq = cache.ComputeSkelBindings(root, Usd.PrimDefaultPredicate)[0].GetSkinningTargets()[0]
    return stage, sq, skq, mesh


def best(fn, repeats: int) -> float:
    fn()  # warm-up (Warp kernel load, allocator)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run_case(name, pts, idx, w, bind, frames: int, repeats: int) -> dict:
    import torch
    from pxr import Usd, Vt

    from usdposer.core.skinning import _skin_points_ref, linear_blend_skinning

    J = len(bind)
    mats = random_skin_transforms(J, frames)
    stage, sq, skq, mesh = usd_stage(pts, idx, w, bind, mats)
    rest = mesh.GetPointsAttr().Get()
    xforms = [sq.ComputeSkinningTransforms(Usd.TimeCode(f)) for f in range(frames)]

    def usd():
        out = []
        for f in range(frames):
            p = Vt.Vec3fArray(rest)
            skq.ComputeSkinnedPoints(xforms[f], p, Usd.TimeCode(f))
            out.append(p)
        return out

    P, I, W, M = (torch.from_numpy(pts).float(), torch.from_numpy(idx), torch.from_numpy(w).float(),
                  torch.from_numpy(mats).float())
    results = {
        "openusd": best(usd, repeats),
        "warp": best(lambda: linear_blend_skinning(P, I, W, M, backend="warp"), repeats),
        "torch": best(lambda: _skin_points_ref(P, I, W, M), repeats),
        "numpy": best(lambda: numpy_lbs(pts.astype(np.float32), idx, w.astype(np.float32), mats.astype(np.float32)), repeats),
    }
    # same answer from all of them
    ours = linear_blend_skinning(P, I, W, M, backend="warp").numpy()
    ref = np.stack([np.asarray(p) for p in usd()])
    err = float(np.abs(ours - ref).max() / np.linalg.norm(np.ptp(ref.reshape(-1, 3), axis=0)))
    V, K = idx.shape
    print(f"\n{name}: {V} vertices, {J} joints, {K} influences, {frames} frames (max rel. diff Warp vs OpenUSD {err:.1e})")
    print(f"  {'path':<10}{'seconds':>10}{'frames/s':>12}{'vs OpenUSD':>12}")
    for k, v in results.items():
        print(f"  {k:<10}{v:>10.4f}{frames / v:>12.1f}{results['openusd'] / v:>11.2f}x")
    return results


def numpy_lbs(pts, idx, w, mats):
    ph = np.concatenate([pts, np.ones((len(pts), 1), np.float32)], 1)
    out = np.zeros((len(mats), len(pts), 3), np.float32)
    for k in range(idx.shape[1]):
        Mk = mats[:, idx[:, k], :3, :]  # (T, V, 3, 4)
        out += w[None, :, k, None] * np.einsum("tvij,vj->tvi", Mk, ph)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    print(f"torch threads: {torch.get_num_threads()}")
    if DOG_SKN.exists():
        pts, _, idx, w, bind = read_skn(DOG_SKN)
        run_case("dm_control dog skin", pts, idx, w, bind, args.frames, args.repeats)
    else:
        print(f"\n{DOG_SKN} not found: the dog case did NOT run (it needs the shared data set)")
    pts, _, idx, w, bind = synthetic(100_000, 64, 4)
    run_case("synthetic 100k-vertex mesh", pts, idx, w, bind, args.frames, args.repeats)


if __name__ == "__main__":
    main()
