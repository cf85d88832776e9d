"""BVH and MJCF importers against outside references.

* BVH: joint world positions computed by OpenUSD (``UsdSkel`` joint world transforms of the imported stage) equal
  an independent FK of the raw channels with scipy's intrinsic Euler rotations.
* MJCF: Newton's own MJCF parser is the reference. Its hinge limits (axis and range) must equal the JointLimitsAPI
  values read back from the stage, its body poses at qpos0 the stage's joint rest world transforms, and LBS with
  Newton's body poses and the skin's bind poses (MuJoCo's skinning rule) OpenUSD's skinned rest points.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ASSETS, SHARED
from pxr import Usd, UsdSkel
from usd_golden import usd_joint_and_points

BVH_FILES = [ASSETS / "cmu" / "cmu_walk.bvh"] + ([SHARED / "bvh" / "cmu_01_01.bvh"] if SHARED.exists() else [])
MJCF_FILES = [ASSETS / "mujoco" / "rodent" / "rodent.xml"] + (
    [SHARED / "mujoco" / "dog" / "dog.xml"] if SHARED.exists() else [])


@pytest.mark.parametrize("path", BVH_FILES, ids=lambda p: p.name)
def test_bvh_matches_independent_fk(path, tmp_path):
    from scipy.spatial.transform import Rotation

    from usdposer.io.bvh import guess_meters_per_unit, parse_bvh
    from usdposer.io.importers import import_any

    out = import_any(path, tmp_path / "m.usdc").output
    bvh = parse_bvh(path)
    mpu = guess_meters_per_unit(bvh)
    stage = Usd.Stage.Open(out)
    assert UsdSkel.Skeleton(stage.GetPrimAtPath(f"/{path.stem}/Skel")).GetJointsAttr().Get() is not None
    T = len(bvh.motion)
    frames = [0, T // 2, T - 1]
    world, _ = usd_joint_and_points(stage, f"/{path.stem}/Skel", frames)  # metres
    for k, f in enumerate(frames):
        # reference: scipy intrinsic Euler in the channel order, translation channels replace OFFSET
        world_ref = []
        col = 0
        for _j, joint in enumerate(bvh.joints):
            rot_axes = "".join(c[0].upper() for c in joint.channels if c.endswith("rotation"))
            rot_vals = [bvh.motion[f, col + i] for i, c in enumerate(joint.channels) if c.endswith("rotation")]
            pos = [bvh.motion[f, col + i] for i, c in enumerate(joint.channels) if c.endswith("position")]
            col += len(joint.channels)
            L = np.eye(4)
            if rot_axes:
                L[:3, :3] = Rotation.from_euler(rot_axes, rot_vals, degrees=True).as_matrix()
            L[:3, 3] = pos if pos else joint.offset
            world_ref.append(L if joint.parent < 0 else world_ref[joint.parent] @ L)
        ref = np.stack(world_ref)[:, :3, 3] * mpu
        ours = world[k, :, :3, 3]
        scale = np.ptp(ref, axis=0).max()
        assert np.abs(ours - ref).max() < 1e-5 * scale, f"frame {f}"
    assert stage.GetMetadata("metersPerUnit") == pytest.approx(mpu)
    assert stage.GetTimeCodesPerSecond() == pytest.approx(120.0)


def _newton_builder(xml_path, tmp_path):
    import newton

    # the shared dog includes ./common/*.xml (skybox, materials) that are not shipped: drop the includes
    text = re.sub(r"<include[^>]*/>", "", xml_path.read_text())
    p = tmp_path / xml_path.name
    p.write_text(text)
    b = newton.ModelBuilder()
    b.add_mjcf(str(p), parse_meshes=False)
    return b


@pytest.mark.parametrize("path", MJCF_FILES, ids=lambda p: p.name)
def test_mjcf_limits_rest_and_skin_match_newton(path, tmp_path):
    import newton

    from usdposer.io.importers import import_any
    from usdposer.io.mjcf import read_skn
    from usdposer.io.read_skel import read_asset

    out = import_any(path, tmp_path / "m.usdc").output
    asset = read_asset(out)
    rig = asset.rig()
    b = _newton_builder(path, tmp_path)
    leaf = {lbl.rsplit("/", 1)[-1]: i for i, lbl in enumerate(b.body_label)}

    # 1. hinge limits: every revolute DOF of Newton's model, by body and axis
    checked = 0
    for j, jtype in enumerate(b.joint_type):
        if jtype not in (newton.JointType.REVOLUTE, newton.JointType.D6):
            continue
        body = b.body_label[b.joint_child[j]].rsplit("/", 1)[-1]
        ours = rig.limits[rig.joint_index(body)].numpy()
        d0 = b.joint_qd_start[j]
        for d in range(d0, d0 + sum(b.joint_dof_dim[j])):
            axis = np.asarray(b.joint_axis[d], np.float64)
            i = int(np.argmax(np.abs(axis)))
            lo, hi = sorted(np.sign(axis[i]) * np.array([b.joint_limit_lower[d], b.joint_limit_upper[d]]))
            assert ours[i, 0] <= lo + 1e-6 and ours[i, 1] >= hi - 1e-6, (body, i, ours[i], (lo, hi))
            checked += 1
    assert checked >= 60

    # 2. rest pose: OpenUSD's joint world transforms at the stage's default time vs Newton's body poses at qpos0
    # OpenUSD's answers in usdposer's frame (metres, +Y up); C takes the MJCF's +Z-up world there
    stage = Usd.Stage.Open(out)
    skel_path = str(stage.GetDefaultPrim().GetPath()) + "/Skel"
    world, points = usd_joint_and_points(stage, skel_path, [Usd.TimeCode.Default()])
    world = world[0]
    C = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # MuJoCo's +Z up -> +Y up, written here
    tokens = [str(t) for t in UsdSkel.Skeleton(stage.GetPrimAtPath(skel_path)).GetJointsAttr().Get()]
    body_q = np.asarray(b.body_q, np.float64)
    for k, tok in enumerate(tokens):
        name = tok.rsplit("/", 1)[-1]
        if name in leaf:
            assert np.allclose(world[k, :3, 3], C @ body_q[leaf[name], :3], atol=1e-5), name

    # 3. skin: MuJoCo's rule v' = sum_b w_b X_b bind_b^-1 v with Newton's body poses, vs OpenUSD's skinned points
    from scipy.spatial.transform import Rotation

    skn = read_skn(next(path.parent.glob("*.skn")))
    X = np.tile(np.eye(4), (len(skn.bone_names), 1, 1))
    for k, n in enumerate(skn.bone_names):
        q = body_q[leaf[n]]
        X[k, :3, :3], X[k, :3, 3] = Rotation.from_quat(q[3:]).as_matrix(), q[:3]
    M = X @ np.linalg.inv(skn.binds)
    ph = np.concatenate([skn.points, np.ones((len(skn.points), 1))], 1)
    ref = np.einsum("vk,vkij,vj->vi", skn.weights, M[skn.indices], ph)[:, :3] @ C.T
    (pts,) = (p[0] for p in points.values())
    diag = np.linalg.norm(np.ptp(ref, axis=0))
    assert np.abs(np.asarray(pts) - ref).max() < 1e-5 * diag


def test_import_cli_bvh_and_bad_mjcf(tmp_path):
    out = tmp_path / "walk.usdc"
    r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "import", str(ASSETS / "cmu" / "cmu_walk.bvh"),
                        "-o", str(out), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.exists() and '"frames": 344' in r.stdout
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody></worldbody></mujoco>")
    r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "import", str(bad), "-o",
                        str(tmp_path / "bad.usdc")], capture_output=True, text=True)
    assert r.returncode == 2 and "no <body>" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.usdc").exists()
    cut = tmp_path / "cut.bvh"
    cut.write_text((ASSETS / "cmu" / "cmu_walk.bvh").read_text()[:20000])
    r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "import", str(cut), "-o",
                        str(tmp_path / "cut.usdc")], capture_output=True, text=True)
    assert r.returncode == 2 and "truncated" in r.stderr
