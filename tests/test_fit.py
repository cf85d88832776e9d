"""`usdposer fit`: the Fox's own clip skinned by OpenUSD, its surfaces resampled to new noisy point clouds with no
correspondence to the mesh, fitted back; joint positions recovered within 1% of height. Readers for USD, OBJ folders
and .npy; bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ASSETS

CLI = [sys.executable, "-m", "usdposer.commands._entry"]
FRAMES = 8


@pytest.fixture(scope="module")
def fox_sequence(tmp_path_factory):
    """(fox.usdc, seq.usda with a time-sampled Points prim, ground-truth clip frames, height)."""
    import trimesh
    from pxr import Sdf, Usd, UsdGeom, UsdSkel, Vt

    from usdposer.core.posing import character_height
    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.io.stage import stage_units

    d = tmp_path_factory.mktemp("fit")
    import_any(ASSETS / "khronos" / "Fox.glb", d / "fox.usdc")
    asset = read_asset(d / "fox.usdc")
    rig = asset.rig()
    clip = asset.clip(rig, "Walk")
    stage = Usd.Stage.Open(str(d / "fox.usdc"))
    # bind the walk (the asset binds its first clip), then skin with OpenUSD's own query
    skel = stage.GetPrimAtPath(rig.skeleton_path)
    UsdSkel.BindingAPI(skel).GetAnimationSourceRel().SetTargets([Sdf.Path(clip.path)])
    cache = UsdSkel.Cache()
    root = UsdSkel.Root(stage.GetPrimAtPath("/Fox"))
    cache.Populate(root, Usd.PrimDefaultPredicate)
    binding = cache.ComputeSkelBindings(root, Usd.PrimDefaultPredicate)[0]
    sq, skq = cache.GetSkelQuery(binding.GetSkeleton()), binding.GetSkinningTargets()[0]
    faces = rig.meshes[0].faces.numpy()
    mpu, up = stage_units(stage)
    h_units = character_height(rig) / mpu
    seq = Usd.Stage.CreateNew(str(d / "seq.usda"))
    UsdGeom.SetStageUpAxis(seq, up)
    UsdGeom.SetStageMetersPerUnit(seq, mpu)
    cloud = UsdGeom.Points.Define(seq, "/Capture")
    rng = np.random.default_rng(0)
    for i in range(FRAMES):
        t = Usd.TimeCode(float(clip.time_codes[i]))
        pts = Vt.Vec3fArray(UsdGeom.Mesh(skq.GetPrim()).GetPointsAttr().Get(t))
        assert skq.ComputeSkinnedPoints(sq.ComputeSkinningTransforms(t), pts, t)
        V = np.asarray(pts, np.float64)  # skeleton space = world here (identity Skeleton transform)
        s, _ = trimesh.sample.sample_surface(trimesh.Trimesh(V, faces, process=False), 4000, seed=i)
        s = s + rng.normal(0, 0.002 * h_units, s.shape)  # 0.2 % of height noise
        cloud.GetPointsAttr().Set(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(s, np.float32)), t)
    seq.GetRootLayer().Save()
    return d, clip, rig


def _weighted_joint_error(rig, clip, fitted, frames) -> float:
    from usdposer.core.kinematics import joint_positions
    from usdposer.core.posing import character_height, joint_transforms
    from usdposer.types import Pose

    W = torch.zeros(rig.num_joints, dtype=torch.float64)
    for m in rig.meshes:
        W.index_add_(0, m.joint_indices.flatten(), m.joint_weights.double().flatten())
    sel = torch.arange(frames)
    gt = joint_positions(joint_transforms(rig, Pose(clip.rotations[sel], clip.translations[sel], clip.scales[sel])))
    fit = joint_positions(joint_transforms(rig, fitted))
    return float((gt - fit).norm(dim=-1)[:, W > 0].mean() / character_height(rig))


def test_fit_recovers_openusd_skinned_walk_from_noisy_resampled_points(fox_sequence):
    from usdposer.io.read_skel import read_asset

    d, clip, rig = fox_sequence
    out = d / "fox.fit.usdc"
    run = subprocess.run(CLI + ["fit", str(d / "seq.usda"), "--rig", str(d / "fox.usdc"), "-o", str(out),
                                "--preview", str(d / "fit.png"), "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rep = json.loads(run.stdout)
    assert rep["frames"] == FRAMES and len(rep["residuals"]) == FRAMES
    assert rep["mean_residual"] < 3.0  # Chamfer RMS of a 4k-point cloud against the surface: about 1.6 % here
    assert (d / "fit.png").stat().st_size > 1000
    back = read_asset(out)
    fitted = back.clip(back.rig())
    assert fitted.name == "usdposerFit" and len(fitted) == FRAMES
    assert torch.allclose(fitted.time_codes.double(), clip.time_codes[:FRAMES].double())
    err = _weighted_joint_error(rig.to(torch.float64), clip, fitted, FRAMES)
    assert err < 0.01, f"mean joint error {err:.3%} of height"  # measured: 0.87 %
    from pxr import Usd

    stage = Usd.Stage.Open(str(out))
    res = stage.GetPrimAtPath(rep["animation"]).GetAttribute("usdposer:fitResiduals").Get()
    assert len(res) == FRAMES


def test_fit_reads_obj_folders_and_npy_arrays(fox_sequence, tmp_path):
    import trimesh

    from usdposer.io.meshseq import read_mesh_sequence
    from usdposer.io.read_skel import read_asset

    d, clip, rig = fox_sequence
    ref = read_mesh_sequence(d / "seq.usda")
    folder = tmp_path / "frames"
    folder.mkdir()
    raw = read_asset(d / "fox.usdc").rig()
    for i in range(2):
        V = ref.frames[i] / raw.meters_per_unit  # back to the rig's units (Y up here)
        trimesh.PointCloud(V).export(folder / f"f{i:03d}.ply")
    seq = read_mesh_sequence(folder, meters_per_unit=raw.meters_per_unit, up_axis=raw.up_axis)
    assert len(seq.frames) == 2 and np.allclose(seq.frames[1], ref.frames[1], atol=1e-5)
    np.save(tmp_path / "pts.npy", np.stack([f / raw.meters_per_unit for f in ref.frames[:3]]))
    seq = read_mesh_sequence(tmp_path / "pts.npy", meters_per_unit=raw.meters_per_unit, up_axis=raw.up_axis)
    assert len(seq.frames) == 3


def test_fit_bad_input_exits_2(fox_sequence, tmp_path):
    d, _, _ = fox_sequence
    np.save(tmp_path / "nan.npy", np.full((2, 10, 3), np.nan))
    np.save(tmp_path / "flat.npy", np.zeros((10, 3)))
    cases = [([str(tmp_path / "nan.npy")], "NaN"), ([str(tmp_path / "flat.npy")], "(T, P, 3)"),
             ([str(d / "fox.usdc")], "time-sampled points"), ([str(tmp_path / "missing.usda")], "no such file")]
    for args, needle in cases:
        run = subprocess.run(CLI + ["fit", *args, "--rig", str(d / "fox.usdc"), "-o", str(tmp_path / "o.usdc")],
                             capture_output=True, text=True)
        assert run.returncode == 2 and needle in run.stderr, run.stderr
        assert not (tmp_path / "o.usdc").exists()


@pytest.mark.parametrize("name", ["quaternius/animals/Horse.glb", "quaternius/humanoids/Knight.glb"])
def test_fit_recovers_shared_assets_own_clips(name, tmp_path):
    """Shared assets' first clips, resampled to noisy 4000-point clouds: joints recovered within 1 % of height."""
    from conftest import SHARED, require_shared

    require_shared()
    import trimesh

    from usdposer.core.fitting import as_pose, fit_frames
    from usdposer.core.posing import character_height, skin
    from usdposer.io.dataset import read_any
    from usdposer.types import Pose

    asset = read_any(SHARED / name, tmp_path, strict=False)
    rig = asset.rig().to(torch.float64)
    clip = asset.clip(rig)
    n = 4
    pose = Pose(clip.rotations[:n].double(), clip.translations[:n].double(), clip.scales[:n].double())
    h = character_height(rig)
    F = np.concatenate([m.faces.numpy() + o for m, o in zip(rig.meshes, np.cumsum([0] + [m.num_points for m in rig.meshes]))])
    pts = skin(rig, pose, backend="torch")
    rng = np.random.default_rng(1)
    clouds = []
    for t in range(n):
        s, _ = trimesh.sample.sample_surface(trimesh.Trimesh(torch.cat([p[t] for p in pts]).numpy(), F, process=False),
                                             4000, seed=t)
        clouds.append(s + rng.normal(0, 0.002 * h, s.shape))
    q, r, _ = fit_frames(rig, clouds)
    err = _weighted_joint_error(rig, clip, as_pose(rig, q, r), n)
    assert err < 0.01, f"{name}: mean joint error {err:.3%} of height"


def test_fit_carries_a_skeleton_forests_hoof_roots_on_their_legs(tmp_path):
    """The bundled Horse's hooves hang under IK-target roots of their own (a skeleton forest). Its Walk, every third
    frame as noisy 4000-point clouds: the hoof roots ride the legs they sit on (plus a small fitted offset), so the
    joints come back within 1 % of height and the hoof roots within 3 % (measured 0.49 % and 1.3 %; with the hoof
    roots held at rest, 2.9 % and 11.3 %)."""
    import trimesh
    from conftest import ASSETS

    from usdposer.core.fitting import as_pose, fit_frames
    from usdposer.core.kinematics import joint_positions
    from usdposer.core.posing import character_height, joint_transforms, root_attachments, skin
    from usdposer.io.dataset import read_any
    from usdposer.types import Clip, Pose

    asset = read_any(ASSETS / "quaternius" / "Horse.glb", tmp_path, strict=False)
    rig = asset.rig().to(torch.float64)
    walk = asset.clip(rig, "Walk")
    sel = torch.arange(0, 18, 3)
    clip = Clip(walk.rotations[sel].double(), walk.translations[sel].double(), walk.scales[sel].double(),
                time_codes=sel.double(), time_codes_per_second=24.0, name="walk")
    pose = clip.pose()
    h = character_height(rig)
    F = np.concatenate([m.faces.numpy() + o for m, o in zip(rig.meshes, np.cumsum([0] + [m.num_points for m in rig.meshes]))])
    pts = skin(rig, pose, backend="torch")
    rng = np.random.default_rng(1)
    clouds = []
    for t in range(len(sel)):
        s, _ = trimesh.sample.sample_surface(trimesh.Trimesh(torch.cat([p[t] for p in pts]).numpy(), F, process=False),
                                             4000, seed=t)
        clouds.append(s + rng.normal(0, 0.002 * h, s.shape))
    q, tr, _ = fit_frames(rig, clouds)
    fitted = as_pose(rig, q, tr)
    assert _weighted_joint_error(rig, clip, fitted, len(sel)) < 0.01
    hooves = [r for r, _, _ in root_attachments(rig, Pose.rest(rig), 0.5)]
    assert len(hooves) == 4
    gap = (joint_positions(joint_transforms(rig, pose)) - joint_positions(joint_transforms(rig, fitted)))[:, hooves]
    assert float(gap.norm(dim=-1).mean()) < 0.03 * h
