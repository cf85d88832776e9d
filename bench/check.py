"""`usdposer check` speed: frames per second per rule on the dog (24k vertices, a generated 64-frame clip of poses
within its MJCF ranges) and the Fox (its own clips), and the whole rule set over every clip of ../shared/data
(goal: under 15 s on 2 CPU cores; said so when the shared set is missing), and the Fox subdivided to a studio
character's 323k points in its own process (seconds, peak memory). ``--json`` writes the whole-set numbers to
bench/results/check.json.

    python bench/check.py [--json]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))


def dog_clip_layer(work: Path) -> Path:
    import torch
    from scipy.spatial.transform import Rotation

    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.rotations import quat_multiply
    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.io.write_skel import provenance, write_clip_layer
    from usdposer.types import Clip, Pose

    src = work / "dog.usdc"
    import_any(ROOT / "assets" / "mujoco" / "dog" / "dog.xml", src)
    rig = read_asset(src).rigs[0]
    lim = rig.limits.double()
    g = torch.Generator().manual_seed(0)
    T = 64
    u = torch.rand(T, *lim.shape[:2], generator=g, dtype=torch.float64)
    e = torch.nan_to_num(lim[..., 0] + u * (lim[..., 1] - lim[..., 0]), nan=0.0)  # (T, J, 3) within the ranges
    q = torch.from_numpy(Rotation.from_euler("xyz", e.reshape(-1, 3).numpy()).as_quat()[:, [3, 0, 1, 2]]).reshape(T, -1, 4)
    q = quat_multiply(decompose_trs(rig.rest_local)[1].expand(T, -1, -1), q)
    rest = Pose.rest(rig, T)
    clip = Clip(q, rest.translations, rest.scales, name="BenchWithinLimits")
    return write_clip_layer(src, work / "dog_bench.usdc", rig, [clip], prov=provenance("bench"))


def studio_fox(work: Path, times: int = 5) -> Path:
    """The bundled Fox with its mesh subdivided ``times`` times (each triangle into four; 5: 323k points, 590k
    triangles, a studio character's size), every new point skinned like the nearest original one."""
    import numpy as np
    import trimesh
    from pxr import Usd, UsdGeom, UsdSkel, Vt
    from scipy.spatial import cKDTree

    from usdposer.io.importers import import_any

    src = work / "fox.usdc"
    import_any(ROOT / "assets" / "khronos" / "Fox.glb", src)
    layer = Usd.Stage.Open(str(src)).Flatten()
    stage = Usd.Stage.Open(layer)
    mesh = next(UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
    P = np.asarray(mesh.GetPointsAttr().Get(), np.float64)
    F = np.asarray(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)
    binding = UsdSkel.BindingAPI(mesh.GetPrim())
    idx = np.asarray(binding.GetJointIndicesPrimvar().Get()).reshape(len(P), -1)
    w = np.asarray(binding.GetJointWeightsPrimvar().Get()).reshape(len(P), -1)
    P2, F2 = P, F
    for _ in range(times):
        P2, F2 = trimesh.remesh.subdivide(P2, F2)
    near = cKDTree(P).query(P2)[1]
    for name in [a.GetName() for a in mesh.GetPrim().GetAttributes()]:
        if name == "normals" or (name.startswith("primvars:") and "skel" not in name):
            mesh.GetPrim().RemoveProperty(name)  # per-vertex data of the old mesh
    mesh.GetPointsAttr().Set(Vt.Vec3fArray.FromNumpy(P2.astype(np.float32)))
    mesh.GetFaceVertexIndicesAttr().Set(Vt.IntArray.FromNumpy(F2.ravel().astype(np.int32)))
    mesh.GetFaceVertexCountsAttr().Set(Vt.IntArray([3] * len(F2)))
    binding.GetJointIndicesPrimvar().Set(Vt.IntArray.FromNumpy(idx[near].ravel().astype(np.int32)))
    binding.GetJointWeightsPrimvar().Set(Vt.FloatArray.FromNumpy(w[near].ravel().astype(np.float32)))
    out = work / "studio_fox.usdc"
    layer.Export(str(out))
    return out


def heavy(work: Path) -> None:
    """`usdposer check` on a studio-sized mesh, as a user runs it (its own process): seconds and peak memory."""
    import resource
    import subprocess

    path = studio_fox(work)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "check", str(path)], capture_output=True,
                       text=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = next((ln for ln in (r.stdout + r.stderr).splitlines() if " files, " in ln), r.stderr.strip())
    print(f"\nstudio-sized Fox (323k points, 590k triangles, its 126 frames), every rule: {wall:.1f} s, peak "
          f"{peak:.0f} MB, exit {r.returncode}: {summary}")


def per_rule(path: Path, label: str) -> None:
    from usdposer.validate import CheckOptions, check_paths

    report = check_paths([str(path)], options=CheckOptions())
    frames = report.frames
    print(f"\n{label}: {frames} frames, {sum(len(r.findings) for r in report.files)} findings, "
          f"{report.seconds:.2f} s in all ({frames / report.seconds:.0f} frames/s)")
    print(f"| {'rule':18s} | seconds | frames/s |")
    print("|---|---:|---:|")
    for rule, sec in sorted(report.rule_seconds.items(), key=lambda kv: -kv[1]):
        if sec > 1e-3:
            print(f"| {rule:18s} | {sec:7.3f} | {frames / sec:8.0f} |")


def main() -> None:
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as d:
        per_rule(dog_clip_layer(Path(d)), "MuJoCo dog (24k vertices, 64 generated frames within its limits)")
    per_rule(ROOT / "assets" / "khronos" / "Fox.glb", "Khronos Fox (its own clips)")
    with tempfile.TemporaryDirectory() as d:
        heavy(Path(d))
    if not SHARED.exists():
        print(f"\nshared data set not found at {SHARED}: the whole-set timing did NOT run")
        return
    from usdposer.validate import check_paths

    t = time.perf_counter()
    report = check_paths([str(SHARED)])
    wall = time.perf_counter() - t
    print(f"\nall of ../shared/data: {len(report.files)} files, {report.frames} frames, every rule: {wall:.1f} s "
          f"({'under' if wall < 15 else 'OVER'} the 15 s goal), torch threads {torch.get_num_threads()}")
    by = defaultdict(int)
    for f in report.findings:
        by[(f.id, f.severity)] += 1
    for (rid, sev), n in sorted(by.items()):
        print(f"  {n:5d} {sev:8s} {rid}")
    print("| rule | seconds |")
    print("|---|---:|")
    for rule, sec in sorted(report.rule_seconds.items(), key=lambda kv: -kv[1]):
        if sec > 1e-2:
            print(f"| {rule} | {sec:.1f} |")
    if "--json" in sys.argv:
        import json
        import subprocess

        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
        out = ROOT / "bench" / "results" / "check.json"
        out.write_text(json.dumps({
            "commit": rev.strip(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "files": len(report.files), "frames": report.frames, "seconds": round(wall, 2), "goal_seconds": 15,
            "rule_seconds": {k: round(v, 2) for k, v in sorted(report.rule_seconds.items(), key=lambda kv: -kv[1])},
            "findings": {f"{rid} {sev}": n for (rid, sev), n in sorted(by.items())},
        }, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
