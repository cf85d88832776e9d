"""FK and LBS against OpenUSD's own UsdSkel queries, and against Pixar's baked LBS baseline.

Relative error = max abs difference / the reference's bounding-box diagonal (joints: / max(1, max |translation|)).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ASSETS, ROOT, SHARED, require_shared, sweep_params
from pxr import Usd, UsdGeom
from usd_golden import to_stage_points, to_stage_transforms, usd_joint_and_points

from usdposer.core.kinematics import skinning_transforms
from usdposer.core.posing import joint_transforms
from usdposer.core.skinning import linear_blend_skinning
from usdposer.io.read_skel import read_asset
from usdposer.io.stage import open_stage
from usdposer.types import Pose

OPENUSD_SCENES = sorted(p.name for p in (ASSETS / "openusd").glob("*.usda"))
REL = 1e-5


def compare_stage(path, backend: str = "torch") -> tuple[float, float, int]:
    """Worst FK and LBS relative errors over every rig, frame and linear-skinned mesh; number of meshes checked."""
    asset = read_asset(path, strict=False)
    stage = open_stage(path)
    fk_err, lbs_err, checked = 0.0, 0.0, 0
    for rig in asset.rigs:
        bound = rig.skeleton_path in asset.bound
        if bound:
            clip = asset.clips[rig.skeleton_path][0]
            pose, times = clip.pose(), clip.time_codes.tolist()
        else:
            pose, times = Pose.rest(rig), [Usd.TimeCode.Default()]
        # OpenUSD's answers as they are (the stage's units and axes); usdposer's converted by the test's own code
        ref_world, ref_points = usd_joint_and_points(stage, rig.skeleton_path, times, raw=True)
        W = joint_transforms(rig, pose)
        scale = max(1.0, float(np.abs(ref_world[..., :3, 3]).max()))
        fk_err = max(fk_err, float(np.abs(to_stage_transforms(stage, W.numpy()) - ref_world).max()) / scale)
        S = skinning_transforms(W, rig.bind_world)
        for mesh in rig.meshes:
            if mesh.skinning_method != "classicLinear":
                continue  # dual-quaternion meshes (dqs.usda) are not linear blend skinning
            ours = linear_blend_skinning(mesh.points, mesh.joint_indices, mesh.joint_weights, S, backend=backend)
            ref = ref_points[mesh.path]
            diag = float(np.linalg.norm(ref.reshape(-1, 3).max(0) - ref.reshape(-1, 3).min(0)))
            lbs_err = max(lbs_err, float(np.abs(to_stage_points(stage, ours.double().numpy()) - ref).max()) / diag)
            checked += 1
    return fk_err, lbs_err, checked


@pytest.mark.parametrize("scene", OPENUSD_SCENES)
def test_openusd_scenes_match_usdskel(scene):
    fk, lbs, _ = compare_stage(ASSETS / "openusd" / scene)
    assert fk < REL and lbs < REL, (fk, lbs)


def test_openusd_scenes_cover_skinned_meshes():
    checked = {s: compare_stage(ASSETS / "openusd" / s)[2] for s in OPENUSD_SCENES}
    # the scenes with linear-skinned meshes really were compared (not skipped)
    for s in ("lbs.usda", "arm.usda", "skinnedArm.usda", "twoBends.usda", "root.usda"):
        assert checked[s] >= 1, checked


def test_tiny_stage_units_axis_and_missing_joint(tiny_usda):
    fk, lbs, checked = compare_stage(tiny_usda)
    assert checked == 1 and fk < REL and lbs < REL, (fk, lbs)
    rig = read_asset(tiny_usda).rigs[0]
    # D/E is absent: UsdSkel's topology parents D/E/F to its nearest listed ancestor, D
    assert rig.roots == [0, 3] and rig.parents.tolist() == [-1, 0, 1, -1, 3]
    assert rig.up_axis == "Z" and rig.meters_per_unit == 0.01
    # cm -> m and Z-up -> Y-up, (x, y, z) -> (x, z, -y): joint A/B, 10 cm up +Z, is 0.1 m up +Y
    assert torch.allclose(rig.bind_world[1, :3, 3], torch.tensor([0.0, 0.1, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("backend", ["torch", "warp"])
def test_lbs_matches_pixar_baked_baseline(backend):
    """lbs.usda skinned by usdposer equals Pixar's baseline_lbs.baked.usda (points baked by UsdSkel.BakeSkinning)."""
    asset = read_asset(ASSETS / "openusd" / "lbs.usda", strict=False)
    baked = Usd.Stage.Open(str(ASSETS / "openusd" / "baseline_lbs.baked.usda"))
    rig = asset.rigs[0]
    clip = asset.clips[rig.skeleton_path][0]
    S = skinning_transforms(joint_transforms(rig, clip.pose()), rig.bind_world)
    xfc = UsdGeom.XformCache()
    worst, n = 0.0, 0
    for mesh in rig.meshes:
        prim = baked.GetPrimAtPath(mesh.path)
        ours = linear_blend_skinning(mesh.points, mesh.joint_indices, mesh.joint_weights, S, backend=backend).double()
        for f, t in enumerate(clip.time_codes.tolist()):
            xfc.SetTime(t)
            # baked points are in the mesh's local space; ours are in skeleton space (the skeleton sits at identity)
            to_world = np.asarray(xfc.GetLocalToWorldTransform(prim)).T
            pts = np.asarray(UsdGeom.Mesh(prim).GetPointsAttr().Get(t), dtype=np.float64)
            world = pts @ to_world[:3, :3].T + to_world[:3, 3]
            world *= asset.meters_per_unit
            diag = np.linalg.norm(world.max(0) - world.min(0))
            worst = max(worst, float(np.abs(ours[f].numpy() - world).max() / diag))
            n += 1
    assert n == 3 * 30
    assert worst < (REL if backend == "torch" else 1e-5), worst


@pytest.mark.parametrize("usdz", sweep_params("usdwg/*.usdz"))
def test_usdwg_assets_match_usdskel(usdz):
    if usdz is None:
        require_shared()
    fk, lbs, checked = compare_stage(usdz)
    assert checked >= 1 and fk < REL and lbs < REL, (fk, lbs)


def test_shared_openusd_equals_bundled():
    require_shared()
    for s in OPENUSD_SCENES:
        assert (SHARED / "openusd" / s).read_bytes() == (ASSETS / "openusd" / s).read_bytes()


def test_blenders_own_usd_export_reads_as_openusd_skins_it(tmp_path):
    """A file a DCC wrote: Blender 5's USD export of the bundled Fox (Z up, face-varying UVs, bindTransforms in the
    mesh's space, its Survey from frame 1; `tests/data/blender`). usdposer's FK and skinning equal OpenUSD's on it,
    the mesh keeps its face-varying UVs and Blender's texture, and the motion is our own import's Survey (Blender
    resamples it: within 2 % of the height, frame 1 against time 0)."""
    from usdposer.io.importers import import_any

    path = ROOT / "tests" / "data" / "blender" / "fox_blender.usdc"
    fk, lbs, checked = compare_stage(path)
    assert checked == 1 and fk < REL and lbs < REL, (fk, lbs)
    blender = read_asset(path)
    rig = blender.rig()
    assert rig.up_axis == "Z" and rig.meshes[0].corner_uvs is not None
    assert rig.meshes[0].texture == str(path.parent / "textures" / "Image_0.png")
    import_any(ASSETS / "khronos" / "Fox.glb", tmp_path / "fox.usdc")
    ours = read_asset(tmp_path / "fox.usdc")
    mine = ours.rig()
    clip, survey = blender.clip(rig), ours.clip(mine, "Survey")
    leaf = [j.rsplit("/", 1)[-1] for j in rig.joints]
    order = [leaf.index(j.rsplit("/", 1)[-1]) for j in mine.joints]
    a = (rig.skel_to_world @ joint_transforms(rig, clip.pose()))[:, order, :3, 3]
    b = (mine.skel_to_world @ joint_transforms(mine, survey.pose()))[..., :3, 3]
    n = min(len(a), len(b))
    height = float(b[0, :, 1].max() - b[0, :, 1].min())
    assert height > 0 and float((a[:n] - b[:n]).norm(dim=-1).max()) < 0.02 * height
