"""Physics tracking (AKD section 4.5): the Fox as a Newton articulation, the Warp ground contact against its torch twin,
the chunked autograd gradient against finite differences, a tracking run that lowers its loss, tracking a real walk
shifted into the ground with jitter (penetration and skating cut, tracking error under 3 % of height), the UsdPhysics
layer through USD's own validators, Newton's add_usd and usdposer's limit reader, and `usdposer track`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

CLI = [sys.executable, "-m", "usdposer.commands._entry"]


@pytest.fixture(scope="module")
def fox(fox_usdc):
    from usdposer.io.read_skel import read_asset
    from usdposer.physics.articulation import build_articulation

    asset = read_asset(fox_usdc)
    rig = asset.rig().to(torch.float64)
    return fox_usdc.parent, asset, rig, build_articulation(rig)


def test_fox_articulation_bodies_joints_and_gains(fox):
    """Bodies for the joints that move vertices (and those between them), the massless scene root and end sites
    welded; one free root, D6 joints elsewhere with positive gains; simulated 1 m tall (the Fox is 79 m)."""
    import newton

    _, _, rig, art = fox
    m = art.model
    names = [rig.joints[j].rsplit("/", 1)[-1] for j in art.joints]
    assert "_rootJoint" not in names and "b_Hip_01" in names and "b_Tail02_013" in names  # massless but mid-tail
    assert art.num_bodies == m.body_count < rig.num_joints
    types = m.joint_type.numpy()
    assert (types == int(newton.JointType.FREE)).sum() == 1 and (types == int(newton.JointType.D6)).sum() == art.num_bodies - 1
    assert abs(art.height - 1.0) < 1e-6 and art.scale < 0.02
    d6 = art.parent_body >= 0
    assert (art.ke[d6] > 0).all() and (art.kd[d6] > 0).all()
    # the boxes hold the vertices they move: every bind-pose vertex lies in (or on) its dominant joint's box
    from usdposer.physics.articulation import body_boxes

    _, halves, moves = body_boxes(art.rig, 0.0, 0.0)
    assert moves[art.joints].sum() >= art.num_bodies - 2


def test_ground_contact_kernel_matches_torch(fox):
    """The Warp contact kernel and its torch twin agree on wrenches of bodies pushed into the ground and moving."""
    from usdposer.core._warp import get_warp
    from usdposer.physics._warp_contact import ground_contact_kernel
    from usdposer.physics.contact import ground_wrench_ref

    wp = get_warp()
    _, _, _, art = fox
    B = art.num_bodies
    g = torch.Generator().manual_seed(0)
    q = torch.cat([torch.randn(B, 3, generator=g) * 0.2, torch.nn.functional.normalize(torch.randn(B, 4, generator=g), dim=1)], 1)
    qd = torch.randn(B, 6, generator=g)
    com = torch.from_numpy(art.model.body_com.numpy()).double()
    gains = [torch.from_numpy(np.asarray(art.contact[k], dtype=np.float64)) for k in ("ke", "kd", "kf", "mu")]
    margin = float(art.contact["margin"])
    want = ground_wrench_ref(q.double(), qd.double(), com, torch.from_numpy(art.centers), torch.from_numpy(art.halves),
                             *gains, margin=margin)
    f = wp.zeros(B, dtype=wp.spatial_vector)
    wp.launch(ground_contact_kernel, dim=B * 8,
              inputs=[wp.array(q.numpy(), dtype=wp.transform), wp.array(qd.numpy(), dtype=wp.spatial_vector),
                      art.model.body_com, wp.array(art.centers.astype(np.float32), dtype=wp.vec3),
                      wp.array(art.halves.astype(np.float32), dtype=wp.vec3),
                      *[wp.array(x.float().numpy(), dtype=float) for x in gains], margin], outputs=[f])
    got = torch.from_numpy(f.numpy()).double()
    assert (want.abs().sum(1) > 0).sum() >= B // 4  # some bodies are in contact
    assert torch.allclose(got, want, rtol=2e-3, atol=1e-3 * float(want.abs().max()))
    # the virtual uprightness torque on the root, too
    from usdposer.physics._warp_contact import upright_kernel
    from usdposer.physics.contact import upright_torque_ref

    up_local = torch.nn.functional.normalize(torch.tensor([0.2, 1.0, -0.1], dtype=torch.float64), dim=0)
    up_a, up_b = torch.tensor([0.1, 1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.2], dtype=torch.float64)
    want = upright_torque_ref(q.double(), qd.double(), 2, up_local, up_a, up_b, 0.3, 50.0, 2.0)
    f = wp.zeros(B, dtype=wp.spatial_vector)
    wp.launch(upright_kernel, dim=1, inputs=[wp.array(q.numpy(), dtype=wp.transform),
                                             wp.array(qd.numpy(), dtype=wp.spatial_vector), 2,
                                             wp.vec3(*up_local.tolist()), wp.vec3(*up_a.tolist()), wp.vec3(*up_b.tolist()),
                                             0.3, 50.0, 2.0], outputs=[f])
    got = torch.from_numpy(f.numpy()).double()
    assert torch.allclose(got[2, 3:], want, atol=1e-4 * float(want.abs().max())) and got[2, :3].abs().max() == 0
    assert got[[0, 1]].abs().max() == 0


def _tangent(q_grad: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """A transform gradient with its quaternion part projected onto the unit sphere's tangent: off the sphere the
    kernel's and the twin's rotation formulas differ, on it they are one function."""
    out = q_grad.clone()
    rot, quat = out[:, 3:], q[:, 3:]
    out[:, 3:] = rot - (rot * quat).sum(1, keepdim=True) * quat
    return out


def _contact_state(art, seed: int):
    g = torch.Generator().manual_seed(seed)
    B = art.num_bodies
    q = torch.cat([torch.randn(B, 3, generator=g) * 0.2,
                   torch.nn.functional.normalize(torch.randn(B, 4, generator=g), dim=1)], 1)
    return q, torch.randn(B, 6, generator=g), torch.randn(B, 6, generator=g)


def test_ground_contact_kernel_vjp_matches_torch_autograd(fox):
    """Warp's adjoint of the contact kernel (what the tracking tape uses) against autograd through the torch twin:
    the vector-Jacobian products w.r.t. body poses and twists agree for a random cotangent."""
    from usdposer.core._warp import get_warp
    from usdposer.physics._warp_contact import ground_contact_kernel
    from usdposer.physics.contact import ground_wrench_ref

    wp = get_warp()
    _, _, _, art = fox
    B = art.num_bodies
    q, qd, cot = _contact_state(art, 3)
    com = torch.from_numpy(art.model.body_com.numpy()).double()
    gains = [torch.from_numpy(np.asarray(art.contact[k], dtype=np.float64)) for k in ("ke", "kd", "kf", "mu")]
    margin = float(art.contact["margin"])
    tq, tqd = q.double().requires_grad_(True), qd.double().requires_grad_(True)
    want = ground_wrench_ref(tq, tqd, com, torch.from_numpy(art.centers), torch.from_numpy(art.halves), *gains,
                             margin=margin)
    assert (want.abs().sum(1) > 0).sum() >= B // 4  # some bodies are in contact
    (want * cot.double()).sum().backward()
    wq = wp.array(q.numpy(), dtype=wp.transform, requires_grad=True)
    wqd = wp.array(qd.numpy(), dtype=wp.spatial_vector, requires_grad=True)
    f = wp.zeros(B, dtype=wp.spatial_vector, requires_grad=True)
    tape = wp.Tape()
    with tape:
        wp.launch(ground_contact_kernel, dim=B * 8,
                  inputs=[wq, wqd, art.model.body_com, wp.array(art.centers.astype(np.float32), dtype=wp.vec3),
                          wp.array(art.halves.astype(np.float32), dtype=wp.vec3),
                          *[wp.array(x.float().numpy(), dtype=float) for x in gains], margin], outputs=[f])
    tape.backward(grads={f: wp.array(cot.numpy(), dtype=wp.spatial_vector)})
    got_q = _tangent(torch.from_numpy(wq.grad.numpy()).double(), q.double())
    got_qd = torch.from_numpy(wqd.grad.numpy()).double()
    want_q, want_qd = _tangent(tq.grad, q.double()), tqd.grad
    assert want_q.abs().max() > 0 and want_qd.abs().max() > 0
    assert torch.allclose(got_q, want_q, rtol=1e-3, atol=2e-3 * float(want_q.abs().max())), \
        float((got_q - want_q).abs().max() / want_q.abs().max())
    assert torch.allclose(got_qd, want_qd, rtol=1e-3, atol=2e-3 * float(want_qd.abs().max()))
    # bodies clear of the ground get no gradient
    free = want.abs().sum(1) == 0
    assert got_q[free].abs().max() == 0 and got_qd[free].abs().max() == 0


def test_upright_kernel_vjp_matches_torch_autograd(fox):
    """The same for the virtual uprightness torque: the root pose's and twist's gradients, and nothing elsewhere."""
    from usdposer.core._warp import get_warp
    from usdposer.physics._warp_contact import upright_kernel
    from usdposer.physics.contact import upright_torque_ref

    wp = get_warp()
    _, _, _, art = fox
    B, root = art.num_bodies, 2
    q, qd, cot = _contact_state(art, 4)
    up_local = torch.nn.functional.normalize(torch.tensor([0.2, 1.0, -0.1], dtype=torch.float64), dim=0)
    up_a, up_b = torch.tensor([0.1, 1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.2], dtype=torch.float64)
    tq, tqd = q.double().requires_grad_(True), qd.double().requires_grad_(True)
    tau = upright_torque_ref(tq, tqd, root, up_local, up_a, up_b, 0.3, 50.0, 2.0)
    (tau * cot[root, 3:].double()).sum().backward()
    wq = wp.array(q.numpy(), dtype=wp.transform, requires_grad=True)
    wqd = wp.array(qd.numpy(), dtype=wp.spatial_vector, requires_grad=True)
    f = wp.zeros(B, dtype=wp.spatial_vector, requires_grad=True)
    tape = wp.Tape()
    with tape:
        wp.launch(upright_kernel, dim=1, inputs=[wq, wqd, root, wp.vec3(*up_local.tolist()), wp.vec3(*up_a.tolist()),
                                                 wp.vec3(*up_b.tolist()), 0.3, 50.0, 2.0], outputs=[f])
    tape.backward(grads={f: wp.array(cot.numpy(), dtype=wp.spatial_vector)})
    got_q = _tangent(torch.from_numpy(wq.grad.numpy()).double(), q.double())
    got_qd = torch.from_numpy(wqd.grad.numpy()).double()
    want_q, want_qd = _tangent(tq.grad, q.double()), tqd.grad
    assert want_q[root].abs().max() > 0 and want_qd[root].abs().max() > 0
    assert torch.allclose(got_q, want_q, atol=1e-4 * float(want_q.abs().max()))
    assert torch.allclose(got_qd, want_qd, atol=1e-4 * float(want_qd.abs().max()))
    others = [b for b in range(B) if b != root]
    assert got_q[others].abs().max() == 0 and got_qd[others].abs().max() == 0


def _small_tree(contact: bool):
    """Three boxes in a chain (free root, two D6 joints) built from a tiny Rig; Coulomb friction only with contact."""
    from usdposer.physics.articulation import ArticulationConfig, build_articulation
    from usdposer.types import Rig

    rest = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    rest[1, :3, 3] = torch.tensor([0.3, 0.0, 0.0])
    rest[2, :3, 3] = torch.tensor([0.3, 0.0, 0.0])
    bind = rest.clone()
    bind[1] = rest[0] @ rest[1]
    bind[2] = bind[1] @ rest[2]
    rig = Rig(name="tree", skeleton_path="/T/Skel", joints=("a", "a/b", "a/b/c"), parents=torch.tensor([-1, 0, 1]),
              rest_local=rest, bind_world=bind, meshes=())
    cfg = ArticulationConfig(min_half=0.1) if contact else \
        ArticulationConfig(friction=0.0, friction_stiffness=0.0, min_half=0.1)
    return build_articulation(rig, cfg)


@pytest.mark.parametrize("contact", [False, True], ids=["free", "contact"])
def test_chunked_gradient_matches_finite_differences(contact):
    """d loss / d (PD targets, initial twist) through two SimChunks (a tape replayed in backward) against central
    differences of the same simulation (float32 Warp, so a few percent). With contact on, the chain starts with its
    boxes' lower faces inside the contact band and moving, so every substep carries normal and friction forces
    (the gradient trap: the contact forces' adjoint must reach the targets and the initial twist)."""
    from usdposer.physics.simulation import ChunkSimulator, simulate

    art = _small_tree(contact)
    sim = ChunkSimulator(art, 12, contact=contact)
    C = art.model.joint_coord_count
    y = 1.0
    if contact:  # lowest box corner half-way into the contact band
        y = float(np.max(art.halves[:, 1] - art.centers[:, 1])) + 0.5 * float(art.contact["margin"])
    q0 = torch.tensor([[0.0, y, 0.0, 0, 0, 0, 1], [0.3, y, 0.0, 0, 0, 0, 1], [0.6, y, 0.0, 0, 0, 0, 1]])
    qd0 = torch.zeros(3, 6)
    if contact:
        qd0[:, 0] = 0.3  # sliding along +X: friction acts
    targets = torch.zeros(3, C)
    d6 = torch.from_numpy(art.d6_coords)
    targets[:, d6] = torch.tensor([[0.0] * 6, [0.2, -0.1, 0.3, 0.1, 0.2, -0.2], [0.3, 0.0, 0.4, 0.2, 0.1, -0.3]])
    w = torch.randn(2, C, generator=torch.Generator().manual_seed(1))

    def loss(t, v):
        return (simulate(sim, q0, v, t)[2] * w).sum()

    if contact:  # the contact really acts: the simulation differs from one without it
        free = ChunkSimulator(art, 12, contact=False)
        assert (simulate(sim, q0, qd0, targets)[2] - simulate(free, q0, qd0, targets)[2]).abs().max() > 1e-3
    t = targets.clone().requires_grad_(True)
    v = qd0.clone().requires_grad_(True)
    loss(t, v).backward()
    eps = 2e-3
    for idx in [(1, int(d6[0])), (2, int(d6[2])), (1, int(d6[4]))]:
        tp, tm = targets.clone(), targets.clone()
        tp[idx] += eps
        tm[idx] -= eps
        fd = (float(loss(tp, qd0)) - float(loss(tm, qd0))) / (2 * eps)
        assert abs(float(t.grad[idx]) - fd) <= 0.05 * abs(fd) + 1e-3, (idx, float(t.grad[idx]), fd)
    for idx in [(0, 1), (2, 5)] + ([(0, 0)] if contact else []):
        vp, vm = qd0.clone(), qd0.clone()
        vp[idx] += eps
        vm[idx] -= eps
        fd = (float(loss(targets, vp)) - float(loss(targets, vm))) / (2 * eps)
        assert abs(float(v.grad[idx]) - fd) <= 0.05 * abs(fd) + 1e-3, (idx, float(v.grad[idx]), fd)


def test_tiny_tracking_run_lowers_its_loss(fox):
    from usdposer.physics.tracking import TrackConfig, track_clip

    _, asset, rig, art = fox
    clip = asset.clip(rig, "Walk")
    short = replace(clip, rotations=clip.rotations[:6], translations=clip.translations[:6], scales=clip.scales[:6],
                    time_codes=clip.time_codes[:6])
    res = track_clip(art, short, TrackConfig(iterations=16))
    losses = [r["loss"] for r in res.losses]
    assert all(np.isfinite(losses)) and min(losses[-4:]) < 0.7 * losses[0], losses
    assert res.clip.rotations.shape == short.rotations.shape and torch.isfinite(res.clip.rotations).all()


def test_tracking_grounds_a_real_walk_shifted_into_the_ground_with_jitter(fox):
    """The Fox's walk (its first 12 frames, 0.5 s), sunk 5 % of its height into the ground and with 1 degree of
    per-frame noise on every non-root joint: tracking cuts the ground penetration and the foot skating, and the tracking
    error (root-aligned joint distance to the clip it was given) stays under 3 % of the height; against the clean walk
    it is about 3 % too (the noise alone: 1.8 %)."""
    from usdposer.core.motion import motion_metrics
    from usdposer.core.rotations import axis_angle_to_quat, quat_multiply
    from usdposer.physics.tracking import TrackConfig, track_clip

    _, asset, rig, art = fox
    walk = asset.clip(rig, "Walk")
    clean = replace(walk, rotations=walk.rotations[:12].double(), translations=walk.translations[:12].double(),
                    scales=walk.scales[:12].double(), time_codes=walk.time_codes[:12])
    h = art.height / art.scale  # the Fox's own height
    t = clean.translations.clone()
    t[:, list(rig.roots), 1] -= 0.05 * h
    noise = torch.randn(clean.rotations.shape[:-1] + (3,), generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64) * 0.0175
    noise[:, list(rig.roots)] = 0
    noisy = replace(clean, translations=t, rotations=quat_multiply(clean.rotations, axis_angle_to_quat(noise)))
    before = motion_metrics(rig, noisy, clean)
    res = track_clip(art, noisy, TrackConfig(iterations=100))
    after = motion_metrics(rig, res.clip, noisy)
    assert before.penetration_mean > 5.0 and after.penetration_mean < 0.3 * before.penetration_mean
    assert after.skating < 0.8 * before.skating
    assert after.tracking_error < 3.0, after
    assert motion_metrics(rig, res.clip, clean).tracking_error < 3.5
    assert after.upright_mean < before.upright_mean + 2.0


def test_physics_layer_passes_usd_validators_and_loads_in_newton(fox, tmp_path):
    """The articulation as UsdPhysics over the asset: USD's own physics validators find nothing; Newton's add_usd
    builds the same bodies, D6 joints, masses and drive gains (per degree in USD) as the model built directly at
    the asset's scale; usdposer's limit reader finds every joint through customData."""
    import newton
    from pxr import Usd, UsdPhysics, UsdValidation

    from usdposer.io.physics_layer import write_physics_layer
    from usdposer.io.physics_limits import physics_joint_limits
    from usdposer.io.write_skel import provenance
    from usdposer.physics.articulation import ArticulationConfig, build_articulation

    d, _, rig, art = fox
    out = write_physics_layer(d / "fox.usdc", tmp_path / "fox.physics.usda", art, prov=provenance("track", []))
    stage = Usd.Stage.Open(str(out))
    reg = UsdValidation.ValidationRegistry()
    names = ["usdPhysicsValidators:ArticulationChecker", "usdPhysicsValidators:RigidBodyChecker",
             "usdPhysicsValidators:PhysicsJointChecker", "usdPhysicsValidators:ColliderChecker"]
    validators = reg.GetOrLoadValidatorsByName(names)
    assert len(validators) == 4
    errors = UsdValidation.ValidationContext(validators).Validate(stage)
    assert not errors, [e.GetMessage() for e in errors]
    bodies = [p for p in stage.Traverse() if p.HasAPI(UsdPhysics.RigidBodyAPI)]
    assert len(bodies) == art.num_bodies
    assert sum(p.HasAPI(UsdPhysics.ArticulationRootAPI) for p in bodies) == 1
    assert stage.GetRootLayer().customLayerData["usdposer"]["simulationScale"] == pytest.approx(art.scale)
    # usdposer's own limit reader: the Fox has no limits, and the free axes (+-180 for Newton) read as none
    assert physics_joint_limits(stage, list(rig.joints)) is None
    tokens = {p.GetCustomData().get("usdposer:skelJoint") for p in stage.Traverse() if p.IsA(UsdPhysics.Joint)}
    assert tokens == {rig.joints[j] for j, pb in zip(art.joints, art.parent_body) if pb >= 0}
    # Newton reads it back
    builder = newton.ModelBuilder(up_axis=newton.Axis.Y)
    builder.add_usd(stage)
    model = builder.finalize()
    direct = build_articulation(rig, ArticulationConfig(scale=1.0)).model
    assert model.body_count == direct.body_count
    t = model.joint_type.numpy()
    assert (t == int(newton.JointType.D6)).sum() == art.num_bodies - 1
    assert np.allclose(np.sort(model.body_mass.numpy()), np.sort(direct.body_mass.numpy()), rtol=1e-3)
    ke_usd = np.sort(model.joint_target_ke.numpy()[model.joint_target_ke.numpy() > 0])
    ke_direct = np.sort(direct.joint_target_ke.numpy()[direct.joint_target_ke.numpy() > 0])
    assert np.allclose(ke_usd, ke_direct, rtol=1e-3)


def test_physics_layer_limits_round_trip(tmp_path):
    """A rig with joint limits: the D6 LimitAPI values written for Newton are read back by usdposer as the rig's
    limits, and Newton's add_usd takes the same limits."""
    import math

    import newton
    from pxr import Usd

    from usdposer.io.physics_layer import author_articulation
    from usdposer.io.physics_limits import physics_joint_limits

    art = _small_tree(contact=False)
    lim = torch.full((3, 3, 2), math.nan, dtype=torch.float64)
    lim[1] = torch.tensor([[-0.5, 0.5], [-0.2, 0.3], [-1.0, 0.1]])
    art.rig = replace(art.rig, limits=lim)
    stage = Usd.Stage.CreateInMemory()
    author_articulation(stage, art)
    got = physics_joint_limits(stage, list(art.rig.joints))
    assert np.allclose(got[1], lim[1].numpy()) and np.isnan(got[2]).all()
    builder = newton.ModelBuilder(up_axis=newton.Axis.Y)
    builder.add_usd(stage)
    m = builder.finalize()
    lo, hi = m.joint_limit_lower.numpy(), m.joint_limit_upper.numpy()
    assert np.allclose(sorted(lo[lo > -3.0]), sorted([-0.5, -0.2, -1.0]), atol=1e-4)  # the rest: free (+-pi)
    assert np.allclose(sorted(hi[hi < 3.0]), sorted([0.5, 0.3, 0.1]), atol=1e-4)


def test_track_cli_writes_animation_physics_and_report(fox, tmp_path):
    d, _, _, _ = fox
    out = tmp_path / "fox.track.usdc"
    proc = subprocess.run(CLI + ["track", str(d / "fox.usdc"), "--anim", "Walk", "--frames", "0:6",
                                 "--iterations", "3", "-o", str(out), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(proc.stdout)
    assert rep["frames"] == 7 and rep["substeps_per_frame"] == 50
    from pxr import Usd, UsdSkel

    stage = Usd.Stage.Open(str(out))
    anim = UsdSkel.Animation(stage.GetPrimAtPath(rep["animation"]))
    assert anim and len(anim.GetRotationsAttr().GetTimeSamples()) == 7
    assert Usd.Stage.Open(rep["physics"]).GetPrimAtPath("/Physics")
    report = json.loads(open(rep["report"]).read())
    assert {"before", "after", "losses"} <= set(report) and len(report["losses"]) == 3
    for key in ("penetration_mean", "skating", "upright_mean"):
        assert key in rep["before"] and key in rep["after"]
    # bad input: an unknown animation is a one-line error with exit 2
    bad = subprocess.run(CLI + ["track", str(d / "fox.usdc"), "--anim", "Dance", "-o", str(tmp_path / "x.usdc")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Dance" in bad.stderr and not (tmp_path / "x.usdc").exists()


def test_ik_target_roots_hang_from_the_nearest_limb(tmp_path):
    """The Quaternius Horse skins its hooves to IK-target joints that are roots of their own: one articulation still,
    each IK root hanging from its own lower leg (the nearest main-tree box), and tracking writes them back. The
    Horse is bundled (assets/quaternius), so this runs on a clean clone."""
    from conftest import ASSETS

    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.physics.articulation import build_articulation

    import_any(ASSETS / "quaternius" / "Horse.glb", tmp_path / "horse.usdc")
    rig = read_asset(tmp_path / "horse.usdc").rig()
    assert len(rig.roots) == 5
    art = build_articulation(rig)
    assert len(art.root_bodies) == 1
    name = lambda b: rig.joints[art.joints[b]].rsplit("/", 1)[-1]  # noqa: E731
    hung = {name(b): name(art.parent_body[b]) for b in range(art.num_bodies)
            if rig.parents[art.joints[b]] < 0 and art.parent_body[b] >= 0}
    assert hung == {"IKBackLeg_L": "BackLowerLeg_L", "IKBackLeg_R": "BackLowerLeg_R",
                    "IKFrontLeg_L": "FrontLowerLeg_L", "IKFrontLeg_R": "FrontLowerLeg_R"}
