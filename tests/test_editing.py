"""Editing on the manifold (Step 3): energies (float64 gradcheck), joint limits against scipy, latent slerp, DDIM
inversion round trips, guided IK against its goal, IKHandleAPI constraint prims, ``--replay``, and the verbs'
layers and errors on the bundled Fox with a tiny model trained in the session fixture."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ASSETS
from pxr import Gf, Sdf, Usd, UsdGeom, UsdSkel

CLI = [sys.executable, "-m", "usdposer.commands._entry"]


def cli(*args, cwd=None):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def fox_rig(tiny):
    from usdposer.io.read_skel import read_asset

    asset = read_asset(tiny["fox"])
    return asset, asset.rig()


def chain_rig(J: int = 4):
    """A hand-made chain of J joints along +Y (0.3 m bones) with a few points, float64."""
    from usdposer.core.kinematics import forward_kinematics
    from usdposer.types import Mesh, Rig

    local = torch.eye(4, dtype=torch.float64).repeat(J, 1, 1)
    local[1:, 1, 3] = 0.3
    local[0, 1, 3] = 0.5
    parents = torch.tensor([-1] + list(range(J - 1)))
    world = forward_kinematics(local[None], parents)[0]
    pts = torch.tensor([[0.05, 0.5 + 0.3 * k, 0.02] for k in range(J)], dtype=torch.float64)
    mesh = Mesh(path="/C/Geo/m", points=pts, faces=torch.zeros(0, 3, dtype=torch.long),
                joint_indices=torch.arange(J)[:, None], joint_weights=torch.ones(J, 1, dtype=torch.float64))
    limits = torch.full((J, 3, 2), math.nan, dtype=torch.float64)
    limits[1:, 0] = torch.tensor([-0.5, 0.5], dtype=torch.float64)
    return Rig("chain", "/C/Skel", tuple("/".join(f"j{i}" for i in range(k + 1)) for k in range(J)), parents, local,
               world, meshes=(mesh,), limits=limits)


# ------------------------------------------------------------------------------------------------ energies
def test_euler_xyz_matches_scipy():
    from scipy.spatial.transform import Rotation

    from usdposer.core.limits import euler_xyz

    R = Rotation.random(200, random_state=0)
    ours = euler_xyz(torch.from_numpy(R.as_matrix()))
    assert np.allclose(ours.numpy(), R.as_euler("xyz"), atol=1e-9)


def test_energy_terms_gradcheck_float64():
    from usdposer.core.energy import ground_residual, position_residual
    from usdposer.core.limits import limit_residual
    from usdposer.core.rotations import sixd_to_matrix

    g = torch.Generator().manual_seed(0)
    pos = torch.randn(2, 5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    targets = torch.randn(3, 3, dtype=torch.float64, generator=g)
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: position_residual(p, torch.tensor([0, 2, 4]), targets, w, 1.7), (pos,))
    heights = torch.tensor([[0.3, -0.2, -0.05, 0.4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h: ground_residual(h, 2.0), (heights,))
    six = torch.randn(2, 4, 6, dtype=torch.float64, generator=g, requires_grad=True)
    limits = torch.full((4, 3, 2), math.nan, dtype=torch.float64)
    limits[:, :, 0], limits[:, :, 1] = -0.1, 0.1  # every angle of a random rotation is outside: no kink nearby
    limits[2] = math.nan  # an unlimited joint contributes nothing
    r = limit_residual(sixd_to_matrix(six), limits)
    assert (r.reshape(2, 4, 3)[:, 2] == 0).all() and (r.reshape(2, 4, 3)[:, [0, 1, 3]] > 0).any()
    assert torch.autograd.gradcheck(lambda x: limit_residual(sixd_to_matrix(x), limits), (six,))


@pytest.mark.parametrize("placed", [False, True], ids=["grounded", "like-a-frame"])
def test_pose_objective_residuals_gradcheck_float64(placed):
    """The whole IK residual (FK from 6D, grounding or a source placement, handles, limits, ground) in float64."""
    from usdposer.core.ik import PoseObjective
    from usdposer.types import Pose

    rig = chain_rig(4)
    like = None
    if placed:
        like = Pose.rest(rig)
        like.translations[0, 0] = torch.tensor([0.2, 0.4, -0.1], dtype=torch.float64)
    obj = PoseObjective(rig, torch.tensor([3, 2]), torch.tensor([[0.3, 1.0, 0.2], [0.1, 0.9, 0.0]]),
                        torch.tensor([1.0, 0.5]), like=like, limit_weight=0.3)
    assert {t.name for t in obj.terms} == ({"handles", "limits", "ground"} if placed else {"handles", "limits"})
    six = torch.randn(2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(obj.residuals, (six,))
    assert torch.allclose((obj.residuals(six) ** 2).sum(1), obj(six))


def test_learned_limits_and_violations():
    from scipy.spatial.transform import Rotation

    from usdposer.core.limits import learn_limits, limit_violations

    eul = np.zeros((200, 2, 3))
    eul[:, 0, 0] = np.linspace(-0.5, 0.8, 200)  # joint 0 bends about X only
    eul[:, 1] = np.random.default_rng(0).uniform(-0.2, 0.2, (200, 3))
    R = torch.from_numpy(Rotation.from_euler("xyz", eul.reshape(-1, 3)).as_matrix()).reshape(200, 2, 3, 3)
    lim = learn_limits(R, quantile=0.0, pad_deg=2.0)
    assert abs(lim[0, 0, 0] - (-0.5 - math.radians(2))) < 1e-9 and abs(lim[0, 1, 1] - math.radians(2)) < 1e-9
    assert not limit_violations(R, lim).any()
    bad = torch.from_numpy(Rotation.from_euler("xyz", [[0.0, 0.3, 0.0], [0.0, 0.0, 0.0]]).as_matrix())[None]
    assert limit_violations(bad, lim).tolist() == [[True, False]]
    assert torch.isnan(learn_limits(R[:5])).all()  # too few poses: unknown


def test_slerp_is_variance_preserving():
    from usdposer.models.pose_prior import slerp

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(10, 6, generator=g), 1.5 * torch.randn(10, 6, generator=g)
    s = torch.linspace(0, 1, 9)
    path = slerp(a, b, s)  # (9, 10, 6)
    assert path.shape == (9, 10, 6)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    norms = path.flatten(1).norm(dim=1)
    assert torch.allclose(norms, (1 - s) * a.norm() + s * b.norm(), rtol=1e-5)
    mid = slerp(a, b, 0.5)
    lerp = 0.5 * (a + b)
    assert mid.norm() > lerp.norm()  # a straight line shrinks towards the origin; slerp does not


def test_dls_and_gauss_newton_reach_a_handle():
    from usdposer.models.pose_prior import gauss_newton

    from usdposer.core.ik import PoseObjective, dls_ik
    from usdposer.core.posespace import IDENTITY_6D

    rig = chain_rig(4)
    obj = PoseObjective(rig, torch.tensor([3]), torch.tensor([[0.3, 0.7, 0.1]]), torch.ones(1), limit_weight=0.0)
    rest = torch.tensor(IDENTITY_6D, dtype=torch.float64).expand(1, 4, 6).clone()
    assert float(obj.handle_errors(rest)[0, 0]) > 0.3
    assert float(obj.handle_errors(dls_ik(obj, rest))[0, 0]) < 1e-6
    assert float(obj.handle_errors(gauss_newton(obj.residuals, rest, iters=20, damping=1e-4))[0, 0]) < 1e-4


def test_gauss_newton_on_a_batch_is_each_element_on_its_own(tmp_path):
    """The batched Levenberg-Marquardt (one Jacobian for the batch, a damping, acceptance and stop per element)
    gives every element what solving it alone gives, on the Fox with handles, ground and self-intersection terms;
    elements start apart so that they accept and reject steps at different iterations."""
    from conftest import ASSETS
    from usdposer.models.pose_prior import gauss_newton

    from usdposer.core.ik import PoseObjective
    from usdposer.core.posespace import IDENTITY_6D
    from usdposer.io.dataset import read_any

    rig = read_any(ASSETS / "khronos" / "Fox.glb", tmp_path).rig()
    ends = torch.tensor([rig.joint_index(n) for n in ("b_LeftFoot01_017", "b_Head_05", "b_Tail03_014")])
    rest = torch.tensor(IDENTITY_6D, dtype=torch.float64).expand(1, rig.num_joints, 6)
    obj = PoseObjective(rig, ends, torch.zeros(3, 3), torch.ones(3))
    obj.targets = obj.pose(rest).positions[0, ends] + torch.tensor([[0.0, 0.2, 0.1], [0.1, -0.1, 0.0], [0.0, 0.0, -0.2]])
    g = torch.Generator().manual_seed(0)
    x = rest + 0.2 * torch.randn(3, rig.num_joints, 6, generator=g, dtype=torch.float64)
    x[2] = x[1]  # one element twice: same answer
    both = gauss_newton(obj.residuals, x, iters=6, tol=1e-6)
    alone = torch.cat([gauss_newton(obj.residuals, x[b:b + 1], iters=6, tol=1e-6) for b in range(3)])
    assert torch.allclose(both, alone, atol=1e-9)
    assert (obj(both) < obj(x)).all()  # and it does descend


# ------------------------------------------------------------------------------------------------ the prior
def test_inversion_is_deterministic_and_round_trips(tiny, fox_rig):
    """Invert-then-decode stays within the goal (0.5% of height) on a training character's real poses."""
    from usdposer.models.pose_prior import PosePrior, RigCondition
    from usdposer.pipelines._session import joint_error

    from usdposer.core.posespace import pose_to_6d
    from usdposer.core.posing import character_height

    asset, rig = fox_rig
    prior = PosePrior.load(tiny["root"] / "ckpt")
    cond = RigCondition.from_rig(rig)
    six = pose_to_6d(rig, asset.clip(rig).pose())[::8].float()
    z1 = prior.invert(cond, six, steps=20)
    z2 = prior.invert(cond, six, steps=20)
    assert torch.equal(z1, z2)
    rec, _ = prior.sample(cond, len(z1), steps=20, latents=z1)
    err = joint_error(rig, six, rec) / character_height(rig)
    plain, _ = prior.sample(cond, len(z1), steps=20, latents=prior.invert(cond, six, steps=20, refine=0))
    err_plain = joint_error(rig, six, plain) / character_height(rig)
    assert float(err.mean()) < 0.005, float(err.mean())
    assert float(err.mean()) < float(err_plain.mean())  # the fixed-point refinement is what buys the accuracy
    # partial inversion meets partial sampling at the same noise level
    zp = prior.invert(cond, six[:2], steps=20, strength=0.5)
    recp, _ = prior.sample(cond, 2, steps=20, latents=zp, strength=0.5)
    assert float((joint_error(rig, six[:2], recp) / character_height(rig)).max()) < 0.005


def test_score_ranks_real_poses_above_noisy_ones(tiny, fox_rig):
    from usdposer.models.pose_prior import PosePrior, RigCondition

    from usdposer.core.posespace import pose_to_6d

    asset, rig = fox_rig
    prior = PosePrior.load(tiny["root"] / "ckpt")
    cond = RigCondition.from_rig(rig)
    six = pose_to_6d(rig, asset.clip(rig).pose())[::10].float()
    noisy = six + 0.3 * torch.randn(six.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(prior.score(cond, six), prior.score(cond, six))
    assert float(prior.score(cond, six).mean()) < float(prior.score(cond, noisy).mean())


def _fox_head_and_hand(tiny, fox_rig):
    """(rig, the tiny prior, its condition, the Fox's real poses (N, J, 6), an objective whose head and left-hand
    handles sit where they are in real pose 40: reachable by construction)."""
    from usdposer.models.pose_prior import PosePrior, RigCondition

    from usdposer.core.ik import PoseObjective
    from usdposer.core.posespace import pose_to_6d

    asset, rig = fox_rig
    prior = PosePrior.load(tiny["root"] / "ckpt")
    real = pose_to_6d(rig, asset.clip(rig).pose()).float()
    ends = [rig.joint_index(n) for n in ("b_Head_05", "b_LeftHand_011")]
    obj = PoseObjective(rig, torch.tensor(ends), torch.zeros(2, 3), torch.ones(2))
    obj.targets = obj.pose(real[40:41].double()).positions[0, ends]
    return rig, prior, RigCondition.from_rig(rig), real, obj


def test_guided_ik_reaches_targets_from_real_poses(tiny, fox_rig):
    """Handles taken from real poses of the Fox (reachable by construction) are met within the goal by the best of
    four candidates (what ``usdposer ik`` writes), and guidance pulls every candidate towards the targets."""
    rig, prior, cond, _, obj = _fox_head_and_hand(tiny, fox_rig)
    z = torch.randn(4, rig.num_joints, 6, generator=torch.Generator().manual_seed(0))
    six = prior.guided_sample(cond, obj.residuals, z, steps=20)
    err = obj.handle_errors(six).max(1).values / obj.height
    free, _ = prior.sample(cond, 4, steps=20, latents=z)
    err_free = obj.handle_errors(free).max(1).values / obj.height
    assert float(err.min()) < 0.015, err
    assert (err < err_free).all(), (err, err_free)


def test_repeated_solves_invert_their_start_once_and_solve_alike(tiny, fox_rig):
    """A dragged handle re-solves from the same start: the second solve takes the start's DDIM code from memory
    (fewer denoiser calls, counted on the real model by a forward hook) and returns exactly what a first solve
    returns; another start, or another step count, is inverted afresh."""
    from usdposer.models.guided_ik import _STARTS, solve_ik

    from usdposer.core.posespace import IDENTITY_6D

    rig, prior, cond, real, obj = _fox_head_and_hand(tiny, fox_rig)
    rest = torch.tensor(IDENTITY_6D).expand(1, rig.num_joints, 6).clone()
    calls = []
    hook = prior.denoiser.register_forward_hook(lambda *_: calls.append(1))
    try:
        _STARTS.clear()
        counts, sols = [], []
        for start, steps in ((rest, 10), (rest, 10), (real[3:4], 10), (rest, 12)):
            calls.clear()
            sols.append(solve_ik(prior, cond, obj, start, n=2, steps=steps, generator=torch.Generator().manual_seed(1)))
            counts.append(len(calls))
    finally:
        hook.remove()
    assert torch.equal(sols[0].six, sols[1].six) and sols[0].chosen == sols[1].chosen
    assert counts[1] < counts[0] and counts[2] == counts[0] and counts[3] > counts[1], counts
    _STARTS.clear()
    again = solve_ik(prior, cond, obj, real[3:4], n=2, steps=10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.six, sols[2].six)


def test_a_fallback_start_joins_the_choice_only_where_no_candidate_reaches(tiny, fox_rig):
    """``solve_ik(..., fallback=POSE)``: where a candidate reaches every handle, the solution is the one without a
    fallback; where none does (targets moved far out of reach), one more candidate, the fallback pose edited alone,
    joins them (the same pose a one-candidate edit of it gives) and the smallest error is chosen among all."""
    from usdposer.models.guided_ik import solve_ik

    rig, prior, cond, real, obj = _fox_head_and_hand(tiny, fox_rig)
    start, other = real[3:4], real[60:61]

    def solve(o, **kw):
        return solve_ik(prior, cond, o, start, n=3, steps=10, generator=torch.Generator().manual_seed(2), **kw)

    plain, with_fb = solve(obj), solve(obj, fallback=other)
    assert plain.reached.any() and torch.equal(plain.six, with_fb.six) and plain.chosen == with_fb.chosen
    far = copy.copy(obj)
    far.targets = obj.targets + torch.tensor([0.0, 10.0 * obj.height, 0.0], dtype=obj.targets.dtype)
    plain, with_fb = solve(far), solve(far, fallback=other)
    assert not with_fb.reached.any() and len(with_fb.six) == 4 and torch.equal(with_fb.six[:3], plain.six)
    alone = solve_ik(prior, cond, far, other, n=1, steps=10)
    assert torch.allclose(with_fb.six[3], alone.six[0], atol=1e-5)
    assert with_fb.chosen == int(with_fb.errors.max(1).values.argmin())


def test_euler_angles_back_to_matrices_and_clamping_into_limits_match_scipy():
    """``euler_xyz_to_matrix`` is scipy's ``from_euler("xyz")`` and inverts ``euler_xyz``; ``clamp_to_limits`` puts
    each limited angle on its bound (scipy's composition of the clamped angles), leaves joints inside their limits
    exactly as they are and unlimited (NaN) axes alone."""
    from scipy.spatial.transform import Rotation

    from usdposer.core.limits import clamp_to_limits, euler_xyz, euler_xyz_to_matrix

    g = torch.Generator().manual_seed(0)
    span = torch.tensor([2 * math.pi, 0.98 * math.pi, 2 * math.pi], dtype=torch.float64)
    e = torch.rand(500, 3, generator=g, dtype=torch.float64) * span - span / 2
    R = euler_xyz_to_matrix(e)
    assert np.allclose(R.numpy(), Rotation.from_euler("xyz", e.numpy()).as_matrix(), atol=1e-12)
    assert torch.allclose(euler_xyz(R), e, atol=1e-9)
    limits = torch.tensor([[[-0.5, 0.5], [-0.2, 0.3], [math.nan, math.nan]]] * 4, dtype=torch.float64)  # (4, 3, 2)
    e4 = e[:400].reshape(100, 4, 3)
    out = clamp_to_limits(euler_xyz_to_matrix(e4), limits)
    want = e4.clone()
    want[..., 0] = want[..., 0].clamp(-0.5, 0.5)
    want[..., 1] = want[..., 1].clamp(-0.2, 0.3)
    assert np.allclose(out.numpy(), Rotation.from_euler("xyz", want.reshape(-1, 3).numpy()).as_matrix().reshape(
        100, 4, 3, 3), atol=1e-12)
    inside = ((e4[..., 0].abs() <= 0.5) & (e4[..., 1] >= -0.2) & (e4[..., 1] <= 0.3))
    assert inside.any() and torch.equal(out[inside], euler_xyz_to_matrix(e4)[inside])


def test_a_rest_pose_outside_the_rigs_animated_range_is_brought_inside_it():
    """The CMU walk rests in a pose its one clip never takes (15 of its 31 joints outside the range learned from it);
    ``within_limits`` brings every joint inside, and leaves real frames' joints that are inside exactly where they
    are (what a fresh ``usdposer ik`` starts from)."""
    from usdposer.core.limits import learn_limits, limit_violations
    from usdposer.core.posespace import IDENTITY_6D, pose_to_6d, relative_rotations, within_limits
    from usdposer.io.dataset import read_any

    with tempfile.TemporaryDirectory() as work:
        asset = read_any(ASSETS / "cmu" / "cmu_walk.bvh", Path(work))
    rig = asset.rig()
    real = torch.cat([pose_to_6d(rig, c.pose()) for c in asset.clips[rig.skeleton_path]]).double()
    lim = learn_limits(relative_rotations(rig, real))
    rest = torch.tensor(IDENTITY_6D, dtype=torch.float64).expand(1, rig.num_joints, 6)
    outside = limit_violations(relative_rotations(rig, rest), lim)
    assert int(outside.sum()) >= 10
    inside_now = within_limits(rig, rest, lim)
    assert not limit_violations(relative_rotations(rig, inside_now), lim).any()
    keep = ~outside[0]
    assert torch.allclose(relative_rotations(rig, inside_now)[0, keep], relative_rotations(rig, rest)[0, keep],
                          atol=1e-9)
    frames = real[::7]
    ok = ~limit_violations(relative_rotations(rig, frames), lim, tolerance_deg=0.0)
    assert torch.allclose(relative_rotations(rig, within_limits(rig, frames, lim))[ok],
                          relative_rotations(rig, frames)[ok], atol=1e-9)


def test_the_chosen_candidate_is_the_most_plausible_up_to_the_scores_noise_then_the_one_inside_the_range():
    """Property over random candidate sets: the chosen candidate reaches every handle when one does; its prior score
    is within ``SCORE_MARGIN`` of the best reaching score; no reaching candidate within that margin has fewer joints
    outside the range; without a range (or with equal counts) it is the lowest score, as before the range existed;
    and when none reaches it is the one with the smallest largest handle error."""
    from usdposer.models.guided_ik import SCORE_MARGIN, choose

    g = torch.Generator().manual_seed(0)
    for _ in range(500):
        n = int(torch.randint(1, 7, (1,), generator=g))
        score = 0.2 + 0.03 * torch.rand(n, generator=g)
        err = 0.03 * torch.rand(n, 3, generator=g)
        ok = err.max(1).values < 0.015
        viol = torch.rand(n, 9, generator=g) < 0.2
        c = choose(score, err, ok, viol)
        if not ok.any():
            assert c == int(err.max(1).values.argmin())
            continue
        best = float(score[ok].min())
        assert ok[c] and float(score[c]) <= best + SCORE_MARGIN
        near = ok & (score <= best + SCORE_MARGIN)
        assert int(viol[c].sum()) == int(viol[near].sum(1).min())
        assert choose(score, err, ok) == choose(score, err, ok, torch.zeros_like(viol)) == int(
            torch.where(ok, score, torch.full_like(score, math.inf)).argmin())
    # a worked case: 0.300 breaks 3 joints, 0.305 none (a tie for the score), 0.500 none (clearly less plausible)
    ok = torch.ones(3, dtype=torch.bool)
    counts = torch.tensor([[True] * 3 + [False] * 6, [False] * 9, [False] * 9])
    assert choose(torch.tensor([0.300, 0.305, 0.500]), torch.zeros(3, 2), ok, counts) == 1
    assert choose(torch.tensor([0.300, 0.400, 0.500]), torch.zeros(3, 2), ok, counts) == 0


def test_the_range_of_motion_comes_from_the_rigs_limits_or_its_own_animation(tiny, tmp_path):
    """IK's range of motion: the MJCF rodent's own limits; for the Fox (no limits in the file) limits learned from its
    animation, which hold its real frames; none for the KayKit mannequin, which has neither."""
    from usdposer.pipelines._session import Session

    from usdposer.core.limits import limit_violations
    from usdposer.core.posespace import pose_to_6d, relative_rotations
    from usdposer.io.importers import import_any

    ck = tiny["root"] / "ckpt"
    for name, src in (("rodent", ASSETS / "mujoco" / "rodent" / "rodent.xml"),
                      ("manny", ASSETS / "kaykit" / "mannequin" / "manny_med_mod.gltf")):
        import_any(src, tmp_path / f"{name}.usdc")
    rodent = Session.open(tmp_path / "rodent.usdc", None, ck, "cpu")
    lim, src = rodent.range_of_motion
    assert src == "rig" and lim is rodent.rig.limits
    fox = Session.open(tiny["fox"], None, ck, "cpu")
    lim, src = fox.range_of_motion
    assert src == "animation" and lim.shape == (fox.rig.num_joints, 3, 2) and torch.isfinite(lim).all()
    assert fox.range_of_motion[0] is lim  # learned once per session
    clips = fox.asset.clips[fox.rig.skeleton_path]
    real = torch.cat([pose_to_6d(fox.rig, c.pose()) for c in clips]).double()
    outside = limit_violations(relative_rotations(fox.rig, real), lim).double()  # (frames, J)
    assert outside.mean() < 0.01 and outside.any(1).double().mean() < 0.05, outside.mean()  # 0.5 / 99.5 % + 5 deg
    manny = Session.open(tmp_path / "manny.usdc", None, ck, "cpu")
    assert manny.range_of_motion == (None, "none")


# ------------------------------------------------------------------------------------------------ USD
def test_ik_handle_prims_round_trip(tmp_path):
    from usdposer.io.edits import define_ik_handles, find_ik_handles, read_ik_handles

    stage = Usd.Stage.CreateNew(str(tmp_path / "h.usda"))
    UsdSkel.Skeleton.Define(stage, "/C/Skel")
    handles = [{"joint": "hips/spine/head", "root_joint": "", "target": (1.0, 2.0, 3.5), "weight": 2.0,
                "kind": "position"},
               {"joint": "hips/l_foot", "root_joint": "hips", "target": (0.0, 0.0, 0.25), "weight": 1.0, "kind": "pin"},
               {"joint": "other/head", "root_joint": "", "target": (4.0, 5.0, 6.0), "weight": 1.0, "kind": "position"},
               {"joint": "hips/頭", "root_joint": "", "target": (0.0, 1.0, 0.0), "weight": 1.0, "kind": "position"},
               {"joint": "hips/9a.b", "root_joint": "", "target": (0.0, 1.0, 0.0), "weight": 1.0, "kind": "pin"}]
    define_ik_handles(stage, "/C/Skel/IKHandles", handles)
    stage.Save()
    again = Usd.Stage.Open(str(tmp_path / "h.usda"))
    prim = find_ik_handles(again, "/C/Skel")
    assert prim.GetPath() == Sdf.Path("/C/Skel/IKHandles")
    assert prim.HasAPI("IKHandleAPI", "head") and prim.HasAPI("IKHandleAPI", "head_2")
    assert prim.HasAPI("IKHandleAPI", "頭") and prim.HasAPI("IKHandleAPI", "j9a_b")  # Unicode kept, as joint names
    assert read_ik_handles(prim) == handles
    assert prim.GetAttribute("ikHandle:l_foot:kind").Get() == "pin"


def test_invert_layer(tiny, tmp_path):
    out = tmp_path / "fox.latents.usdc"
    r = cli("invert", tiny["fox"], "--frames", "0:20:5", "--steps", "20", "--checkpoint", tiny["root"] / "ckpt",
            "-o", out, "--preview", tmp_path / "inv.png", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["frames"] == 5 and rep["mean_error"] < 0.005 and len(rep["errors"]) == 5
    from PIL import Image

    assert Image.open(rep["preview"]).size == (5 * 192, 2 * 192)  # sources over their reconstructions
    stage = Usd.Stage.Open(str(out))
    lib = stage.GetPrimAtPath(rep["library"])
    assert lib.GetTypeName() == "PoseSampleLibrary"
    assert list(lib.GetAttribute("timeCodes").Get()) == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert len(lib.GetAttribute("latents").Get()) == 5 * 24 * 6 == 5 * lib.GetAttribute("latentDim").Get()
    assert np.allclose(lib.GetAttribute("scores").Get(), rep["errors"], atol=1e-6)
    skel = UsdSkel.Skeleton(stage.GetPrimAtPath("/Fox/Skel"))
    src_stage = Usd.Stage.Open(str(tiny["fox"]))
    src = UsdSkel.Skeleton(src_stage.GetPrimAtPath("/Fox/Skel"))
    # the reconstruction is written beside, not bound: the asset still plays its own animation
    assert (UsdSkel.BindingAPI(skel.GetPrim()).GetAnimationSourceRel().GetTargets()
            == UsdSkel.BindingAPI(src.GetPrim()).GetAnimationSourceRel().GetTargets())
    assert stage.GetPrimAtPath(rep["reconstruction"]).IsA(UsdSkel.Animation)
    assert skel.GetPrim().HasAPI("PoseSpaceAPI")


def test_interpolate_layer_report_and_keyframes(tiny, tmp_path):
    from usdposer.io.edits import get_keyframes
    from usdposer.io.read_skel import read_asset

    out = tmp_path / "path.usdc"
    r = cli("interpolate", tiny["fox"], "--from", "0", "--to", "40", "--frames", "9", "--keyframes", "3", "--report",
            "--steps", "20", "--checkpoint", tiny["root"] / "ckpt", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["keyframes"] == [0.0, 4.0, 8.0]
    assert [p["space"] for p in rep["paths"]] == ["latent", "joint"] and all(len(p["score"]) == 9 for p in rep["paths"])
    assert max(rep["endpoint_inversion_error"]) < 0.005
    assert all(len(p["self_intersections"]) == 9 and all(isinstance(n, int) for n in p["self_intersections"])
               for p in rep["paths"])
    stage = Usd.Stage.Open(str(out))
    assert get_keyframes(stage, rep["animation"]) == [0.0, 4.0, 8.0]
    path = read_asset(out)
    rig = path.rig()
    clip = path.clip(rig, "usdposerInterpolation")
    src = read_asset(tiny["fox"])
    orig = src.clip(src.rig())
    assert len(clip) == 9
    from usdposer.core.rotations import quat_angle

    # the ends are the given poses (their animation frames, root included), the middle is new
    for k, t in ((0, 0), (-1, 40)):
        i = int((orig.time_codes == t).nonzero()[0, 0])
        assert float(quat_angle(clip.rotations[k], orig.rotations[i]).max()) < 1e-3
        assert torch.allclose(clip.translations[k, 1], orig.translations[i, 1], atol=1e-3)
    assert float(quat_angle(clip.rotations[4], clip.rotations[0]).max()) > 1e-2
    # the text report shows both paths side by side
    t = cli("interpolate", tiny["fox"], "--from", "rest", "--to", "sample:0", "--frames", "3", "--report",
            "--steps", "10", "--checkpoint", tiny["root"] / "ckpt", "-o", tmp_path / "p2.usdc")
    assert t.returncode == 2 and "run `usdposer sample` first" in t.stderr


def test_ik_cli_replay_and_constraints(tiny, tmp_path):
    from usdposer.io.edits import find_ik_handles, read_ik_handles

    out = tmp_path / "fox.ik.usdc"
    ck = tiny["root"] / "ckpt"
    r = cli("ik", tiny["fox"], "--from", "12", "--handle", "b_Head_05=-10,45,45:2", "--pin", "b_RightFoot02_022",
            "-n", "2", "--steps", "15", "--frames", "5", "--keyframes", "2", "--checkpoint", ck, "-o", out,
            "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert max(rep["handle_errors"]) < 0.015 and rep["frames"] == 5 and rep["keyframes"] == [0.0, 4.0]
    assert rep["limits"] == "animation" and isinstance(rep["limit_violations"], int)  # the Fox's animated range
    stage = Usd.Stage.Open(str(out))
    handles = read_ik_handles(find_ik_handles(stage, "/Fox/Skel"))
    assert [(h["joint"].rsplit("/", 1)[-1], h["kind"], h["weight"]) for h in handles] == [
        ("b_Head_05", "position", 2.0), ("b_RightFoot02_022", "pin", 1.0)]
    assert np.allclose(handles[0]["target"], (-10, 45, 45))
    assert UsdSkel.BindingAPI(stage.GetPrimAtPath("/Fox/Skel")).GetAnimationSourceRel().GetTargets() == [
        Sdf.Path(rep["animation"])]
    rp = cli("ik", "--replay", out, "-o", tmp_path / "again.usdc", "--json")
    assert rp.returncode == 0, rp.stderr
    again = json.loads(rp.stdout)
    assert again["replay_max_angle_deg"] < 1e-3
    assert again["handle_errors"] == pytest.approx(rep["handle_errors"], abs=1e-5)
    # an edited or corrupt provenance: one line naming the stored setting, exit 2, nothing written (text was an
    # internal error, 10^9 candidates an allocation of a terabyte, a negative step count ran)
    for k, (key, value) in enumerate([("candidates", 10 ** 9), ("seed", "x"), ("steps", -3),
                                      ("strength", float("nan")), ("keyframes", 3), ("skeleton", 5),
                                      ("checkpoint", 5)]):
        bad, again = tmp_path / f"bad{k}.usdc", tmp_path / f"again{k}.usdc"
        bad.write_bytes(out.read_bytes())
        layer = Sdf.Layer.FindOrOpen(str(bad))
        data = dict(layer.customLayerData)
        data["usdposer"] = {**dict(data["usdposer"]), key: value}
        layer.customLayerData = data
        layer.Save()
        rp = cli("ik", "--replay", bad, "-o", again)
        lines = rp.stderr.strip().splitlines()
        assert rp.returncode == 2 and len(lines) == 1 and f"stored {key} = " in lines[0], rp.stderr
        assert not again.exists()
    # an edited handle: a NaN target or a negative weight were solved for (a layer full of NaN), an unknown kind was
    # dropped (and the replay then asked for a --handle)
    name = handles[0]["joint"].rsplit("/", 1)[-1]
    for k, (attr, value, words) in enumerate([("target", Gf.Vec3f(float("nan"), 45, 45), "must be finite"),
                                              ("weight", -1.0, "weight -1.0"), ("kind", "banana", "kind 'banana'")]):
        bad, again = tmp_path / f"badh{k}.usdc", tmp_path / f"againh{k}.usdc"
        bad.write_bytes(out.read_bytes())
        st = Usd.Stage.Open(str(bad))
        find_ik_handles(st, "/Fox/Skel").GetAttribute(f"ikHandle:{name}:{attr}").Set(value)
        st.GetRootLayer().Save()
        del st
        rp = cli("ik", "--replay", bad, "-o", again)
        lines = rp.stderr.strip().splitlines()
        assert rp.returncode == 2 and len(lines) == 1 and words in lines[0], rp.stderr
        assert not again.exists()


def test_a_fresh_ik_on_a_rig_resting_outside_its_animations_range_starts_inside_it(tiny, tmp_path):
    """``usdposer ik`` without --from on the CMU walk (a BVH: no limits in the file; its rest pose is outside the one
    clip's range): the report names the range (learned from the animation), how many rest joints were brought inside
    it before the solve, and counts the chosen pose's joints outside it; the handle is reached."""
    from usdposer.io.importers import import_any

    src = tmp_path / "walk.usdc"
    import_any(ASSETS / "cmu" / "cmu_walk.bvh", src)
    stage = Usd.Stage.Open(str(src))
    skel = next(p for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton))
    cache = UsdSkel.Cache()
    cache.Populate(UsdSkel.Root(skel.GetParent()), Usd.PrimDefaultPredicate)
    sq = cache.GetSkelQuery(UsdSkel.Skeleton(skel))
    names = [str(j).rsplit("/", 1)[-1] for j in sq.GetJointOrder()]
    X = np.asarray(sq.ComputeJointWorldTransforms(UsdGeom.XformCache(0.0), atRest=True), dtype=np.float64)
    target = X[names.index("LeftHand"), 3, :3] + np.array([0.0, -2.0, 1.0])  # stage units (0.056 m each)
    args = ["ik", src, "--handle", "LeftHand=" + ",".join(f"{v:.4f}" for v in target), "-n", "2",
            "--checkpoint", tiny["root"] / "ckpt", "-o", tmp_path / "walk.ik.usdc"]
    r = cli(*args, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["limits"] == "animation" and rep["start_joints_moved"] >= 10 and rep["pose_from"] == "rest"
    assert isinstance(rep["limit_violations"], int) and max(rep["handle_errors"]) < 0.015
    human = cli(*args[:-1], tmp_path / "again.usdc")
    assert human.returncode == 0 and f"({rep['start_joints_moved']} joints brought inside the range of its animation)" \
        in human.stdout, human.stdout + human.stderr


def test_ik_serve_answers_each_line_like_a_one_shot_ik_and_refuses_bad_lines_alone(tiny, tmp_path):
    """``ik --serve``: one process, the model loaded once; every answered request writes the same pose as the
    one-shot verb with the same arguments (a fresh solve that reuses the cached inversion, an edit, command-line
    defaults overridden per request); bad lines get one error line each, write nothing, and the next line is
    answered."""
    from usdposer.io.read_skel import read_asset

    ck = tiny["root"] / "ckpt"
    a, b, c = (tmp_path / f"{k}.usdc" for k in "abc")
    requests = [
        {"out": str(a), "handles": ["b_Head_05=0,60,40"]},
        "{not json",
        {"out": str(tmp_path / "x.usdc"), "handles": ["b_Nose=1,2,3"]},
        {"out": str(tmp_path / "y.usdc"), "handles": ["b_Head_05=0,60,40"], "n": 10 ** 9},
        {"out": str(tmp_path / "z.usdc"), "handles": ["b_Head_05=0,60,40"], "colour": "red"},
        {"out": str(tmp_path / "nowhere" / "w.usdc"), "handles": ["b_Head_05=0,60,40"]},
        {"handles": ["b_Head_05=0,60,40"]},
        {"out": str(b), "handles": ["b_Head_05=-10,45,45:2"], "pins": ["b_RightFoot02_022"], "from": "12",
         "seed": 3},
        {"out": str(c)},  # the command line's handle and -n
        "[" * 100_000 + "]" * 100_000,  # nested past Python's recursion limit
    ]
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in requests) + "\n\n"
    r = subprocess.run(CLI + ["ik", str(tiny["fox"]), "--serve", "--checkpoint", str(ck), "-n", "2", "--handle",
                              "b_Head_05=5,55,42"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    answers = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [x["index"] for x in answers] == list(range(10))
    refused = {x["index"]: x["error"] for x in answers if "error" in x}
    assert sorted(refused) == [1, 2, 3, 4, 5, 6, 9] and all(x.get("exit_code", 2) == 2 for x in answers)
    for i, words in {1: "not JSON", 2: "unknown joint 'b_Nose'", 3: '"n" must be a whole number from 1 to 10000', 4: "unknown key(s) colour",
                     5: "does not exist", 6: 'give "out"', 9: "nested too deeply"}.items():
        assert words in refused[i] and "\n" not in refused[i], refused[i]
    assert not any((tmp_path / f"{k}.usdc").exists() for k in "xyzw")
    assert "10 requests" in r.stderr and "3 answered, 7 refused" in r.stderr
    one_shot = [["--handle", "b_Head_05=0,60,40", "-n", "2"],
                ["--handle", "b_Head_05=-10,45,45:2", "--pin", "b_RightFoot02_022", "--from", "12", "--seed", "3",
                 "-n", "2"],
                ["--handle", "b_Head_05=5,55,42", "-n", "2"]]
    for k, (served, args) in enumerate(zip((a, b, c), one_shot)):
        ref = tmp_path / f"ref{k}.usdc"
        q = cli("ik", tiny["fox"], *args, "--checkpoint", ck, "-o", ref, "--json")
        assert q.returncode == 0, q.stderr
        got = [read_asset(p) for p in (served, ref)]
        rigs = [x.rig(None) for x in got]
        qa, qb = (x.clip(rg, "usdposerIK").rotations for x, rg in zip(got, rigs))
        assert torch.allclose(qa, qb, atol=1e-5), (k, (qa - qb).abs().max())
        assert answers[(0, 7, 8)[k]]["handle_errors"] == pytest.approx(json.loads(q.stdout)["handle_errors"],
                                                                       abs=1e-5)


def test_ik_serve_refuses_mistyped_fields_and_outlives_a_bug(tiny, tmp_path, monkeypatch):
    """A request's fields of the wrong JSON type get one error line each (a number for "preview" used to end the
    server with an internal error); a number for "from" is a time code. A bug in one request (injected here: the
    pose placement raising) is that request's internal-error line, exit code 4, nothing written, and the next
    request is still answered."""
    import usdposer.pipelines.ik as ik_pipeline

    from usdposer.core.ik import parse_handle

    good = ["b_Head_05=0,60,40"]
    lines = [json.dumps(r) for r in [
        {"out": str(tmp_path / "p.usdc"), "handles": good, "preview": 5},
        {"out": 5, "handles": good},
        {"out": str(tmp_path / "h.usdc"), "handles": [["b_Head_05", 0, 60, 40]]},
        {"out": str(tmp_path / "q.usdc"), "handles": good, "pins": [None]},
        {"out": str(tmp_path / "a.usdc"), "handles": good, "anim": 5},
        {"out": str(tmp_path / "f.usdc"), "handles": good, "from": True},
        {"out": str(tmp_path / "bug.usdc"), "handles": good},
        {"out": str(tmp_path / "ok.usdc"), "handles": good, "from": 12},
    ]]
    real, calls = ik_pipeline.place, []

    def place_once_broken(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected\nfault")
        return real(*args, **kwargs)

    monkeypatch.setattr(ik_pipeline, "place", place_once_broken)
    answers = []
    rep = ik_pipeline.serve(tiny["fox"], ik_pipeline.IKOptions(handles=(parse_handle(good[0]),), n=1, steps=4,
                                                               checkpoint=str(tiny["root"] / "ckpt")),
                            lines, answers.append)
    assert [a["index"] for a in answers] == list(range(8)) and (rep.answered, rep.refused) == (1, 7)
    words = ['"preview" must be a string', '"out" must be a string', '"handles" and "pins" are lists of strings',
             '"handles" and "pins" are lists of strings', '"anim" must be a string', '"from" must be a string or a time',
             "internal error (RuntimeError: injected fault)"]
    for a, w in zip(answers, words):
        assert w in a["error"] and "\n" not in a["error"], (w, a)
    assert [a["exit_code"] for a in answers[:7]] == [2] * 6 + [4]
    assert answers[7]["output"] == str(tmp_path / "ok.usdc") and answers[7]["pose_from"].endswith("@12")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.usdc"]


@pytest.mark.parametrize("args, message", [
    (["--handle", "b_Nose=1,2,3"], "unknown joint 'b_Nose'"),
    (["--handle", "b_Head_05=nan,2,3"], "finite"),
    (["--handle", "b_Head_05=1,2"], "three coordinates"),
    (["--handle", "b_Head_05=0,500,0"], "reaches only"),
    (["--handle", "b_Head_05=0,60,40", "--pin", "tail"], "unknown joint 'tail'"),
    (["--handle", "b_Head_05=0,60,40", "--from", "sample:1"], "run `usdposer sample` first"),
    (["--handle", "b_Head_05=0,60,40", "--from", "999"], "no frame at time code 999"),
    (["--handle", "b_Head_05=0,60,40", "--checkpoint", "nowhere"], "not a usdposer checkpoint"),
], ids=["unknown-joint", "nan", "two-coords", "unreachable", "unknown-pin", "no-library", "bad-time", "bad-ckpt"])
def test_ik_bad_input_one_line_exit_2(tiny, tmp_path, args, message):
    out = tmp_path / "x.usdc"
    r = cli("ik", tiny["fox"], *args, "-o", out)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not out.exists()


def test_invert_needs_usd_and_animation(tmp_path):
    r = cli("invert", ASSETS / "khronos" / "Fox.glb", "-o", tmp_path / "x.usdc")
    assert r.returncode == 2 and "usdposer import" in r.stderr
    r = cli("invert", tmp_path / "missing.usdc")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_path_report_counts_self_intersections_like_check(tiny):
    """The report's crossings column is the SelfIntersection rule's exact test: the rest pose is clean, a Fox leg
    rotated 110 degrees into the body crosses."""
    from usdposer.pipelines.interpolate import self_intersections

    from usdposer.core.posespace import pose_to_6d
    from usdposer.core.rotations import axis_angle_to_quat, quat_multiply
    from usdposer.io.read_skel import read_asset
    from usdposer.types import Pose

    rig = read_asset(tiny["fox"]).rig().to(torch.float64)
    pose = Pose.rest(rig, 2)  # the rest pose, and the left thigh turned 110 degrees about its own Z axis
    j = rig.joint_index("b_LeftLeg01_015")
    turn = axis_angle_to_quat(torch.tensor([0, 0, math.radians(110)], dtype=torch.float64))
    pose.rotations[1, j] = quat_multiply(pose.rotations[1, j], turn)
    counts = self_intersections(rig, pose_to_6d(rig, pose))
    assert counts[0] == 0 and counts[1] > 0


def test_a_skeleton_forests_hoof_roots_ride_their_legs_in_sampled_and_edited_poses(tmp_path):
    """The bundled Horse's hooves hang under IK-target roots of their own (a skeleton forest). Poses the pose space
    decodes carry each hoof root on the leg joint it sits on: read back through OpenUSD's UsdSkel queries, the hoof
    root's distance from that joint (over the joint's bone length, so units do not matter) stays the rest pose's in
    `sample` and the walk frame's in `ik --from`, to 1e-5. (The roots used to stay at the reference while the legs
    moved, tearing the hooves off: ratios off by 10-100 %.)"""
    from usd_golden import usd_joint_and_points

    from usdposer.core.posing import joint_transforms, root_attachments
    from usdposer.io.read_skel import read_asset
    from usdposer.types import Pose

    horse = tmp_path / "horse.usdc"
    assert cli("import", ASSETS / "quaternius" / "Horse.glb", "-o", horse).returncode == 0
    rig = read_asset(horse).rig().to(torch.float64)
    hooves = [(r, j) for r, j, _ in root_attachments(rig, Pose.rest(rig), 0.5)]
    assert len(hooves) == 4
    par = rig.parents.tolist()

    def ratios(X):  # (T, J, 4, 4) -> (T, 4): hoof root to its joint, over that joint's bone
        P = torch.as_tensor(np.asarray(X))[..., :3, 3]
        return torch.stack([(P[:, r] - P[:, j]).norm(dim=-1) / (P[:, j] - P[:, par[j]]).norm(dim=-1)
                            for r, j in hooves], 1)

    rest = ratios(joint_transforms(rig, Pose.rest(rig)))
    out = tmp_path / "horse.samples.usdc"
    r = cli("sample", horse, "-n", "4", "-o", out)
    assert r.returncode == 0, r.stderr
    X, _ = usd_joint_and_points(Usd.Stage.Open(str(out)), rig.skeleton_path, [0.0, 1.0, 2.0, 3.0], raw=True)
    assert torch.allclose(ratios(X), rest.expand(4, -1), rtol=1e-5)

    walk = Usd.Stage.Open(str(horse))
    X0, _ = usd_joint_and_points(walk, rig.skeleton_path, [0.0], raw=True)
    head = np.asarray(X0)[0, rig.joint_index("Head"), :3, 3]
    xf = np.asarray(UsdGeom.Xformable(walk.GetPrimAtPath(rig.skeleton_path)).ComputeLocalToWorldTransform(0)).T
    target = xf[:3, :3] @ head + xf[:3, 3] + np.array([0.0, 0.3, 0.3])  # the head up and forward (Horse: ~2.5 tall)
    out = tmp_path / "horse.ik.usdc"
    r = cli("ik", horse, "--from", "0", "--handle", "Head=" + ",".join(f"{v:.4f}" for v in target), "-n", "2",
            "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    edited = Usd.Stage.Open(str(out))
    anim = UsdSkel.Animation(edited.GetPrimAtPath(json.loads(r.stdout)["animation"]))
    X, _ = usd_joint_and_points(edited, rig.skeleton_path, anim.GetRotationsAttr().GetTimeSamples(), raw=True)
    assert torch.allclose(ratios(X), ratios(X0), rtol=1e-5)


def test_world_from_6d_is_forward_kinematics_of_local_from_6d_on_a_skeleton_forest(tmp_path):
    """The IK energy's one-pass placement (forward kinematics, then each hoof root's tree shifted onto its leg) equals
    forward kinematics of the locals with the roots moved first, for the reference and for a walk frame as ``like``;
    and ``pose_from_6d`` writes the same joints; ``world_and_relative`` gives the same placement and limit frames."""
    from usdposer.core.kinematics import forward_kinematics
    from usdposer.core.posespace import (
        local_from_6d,
        pose_from_6d,
        pose_to_6d,
        relative_rotations,
        root_heading,
        world_and_relative,
        world_from_6d,
    )
    from usdposer.core.posing import joint_transforms
    from usdposer.io.dataset import read_any

    asset = read_any(ASSETS / "quaternius" / "Horse.glb", tmp_path, strict=False)
    rig = asset.rig().to(torch.float64)
    walk = asset.clip(rig, "Walk").pose()
    six = pose_to_6d(rig, walk)[:5].double()
    six = six + 0.2 * torch.randn(six.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for like in (None, type(walk)(walk.rotations[:1], walk.translations[:1], walk.scales[:1])):
        heading = None if like is None else root_heading(rig, like)  # as pose_from_6d turns the roots
        G = world_from_6d(rig, six, heading, like)
        assert torch.allclose(G, forward_kinematics(local_from_6d(rig, six, heading, like), rig.parents), atol=1e-10)
        assert torch.allclose(G, joint_transforms(rig, pose_from_6d(rig, six, ground=False, like=like)), atol=1e-8)
        G2, rel = world_and_relative(rig, six, heading, like)  # the IK energy's: one decode for both
        assert torch.allclose(G2, G, atol=1e-12) and torch.allclose(rel, relative_rotations(rig, six), atol=1e-12)


def _shot(folder: Path, asset: Path) -> Path:
    """A shot that references ``asset`` twice as instances: /Set/FoxA (moved 100 along X) and /Set/FoxB."""
    shot = folder / "shot.usda"
    ref = f"@{asset}@"
    shot.write_text(f"""#usda 1.0
(
    defaultPrim = "Set"
    upAxis = "Y"
    metersPerUnit = 1
)
def Xform "Set"
{{
    def "FoxA" (instanceable = true
        prepend references = {ref})
    {{
        double3 xformOp:translate = (100, 0, 0)
        uniform token[] xformOpOrder = ["xformOp:translate"]
    }}
    def "FoxB" (instanceable = true
        prepend references = {ref})
    {{
    }}
}}
""")
    return shot


def test_a_character_referenced_as_an_instance_takes_the_layer_and_the_other_instances_stay_shared(fox_usdc, tmp_path):
    """A shot references the Fox twice with ``instanceable = true`` (how set dressing and crowds bring characters in).
    USD refuses opinions under an instance, so `sample` used to stop on an internal error. The layer now uninstances
    only the Fox it poses (``instanceable = false`` in the new layer, recorded in its provenance): read back through
    OpenUSD's UsdSkel queries, that Fox's joints and skinned points are those of sampling the asset itself with the
    same seed, the other Fox is still an instance, and the shot file is untouched."""
    from usd_golden import usd_joint_and_points

    shot = _shot(tmp_path, fox_usdc)
    before = shot.read_bytes()
    direct, posed = tmp_path / "fox.samples.usdc", tmp_path / "shot.samples.usda"
    assert cli("sample", fox_usdc, "-n", "3", "--seed", "5", "-o", direct).returncode == 0
    r = cli("sample", shot, "--skeleton", "/Set/FoxA/Skel", "-n", "3", "--seed", "5", "-o", posed, "--json")
    assert r.returncode == 0, r.stderr
    stage = Usd.Stage.Open(str(posed))
    assert not stage.GetPrimAtPath("/Set/FoxA").IsInstance() and stage.GetPrimAtPath("/Set/FoxB").IsInstance()
    assert list(stage.GetRootLayer().customLayerData["usdposer"]["uninstanced"]) == ["/Set/FoxA"]
    times = [0.0, 1.0, 2.0]
    Xd, Pd = usd_joint_and_points(Usd.Stage.Open(str(direct)), "/Fox/Skel", times, raw=True)
    Xs, Ps = usd_joint_and_points(stage, "/Set/FoxA/Skel", times, raw=True)
    assert len(Pd) == len(Ps) == 1
    np.testing.assert_allclose(Xs, Xd, atol=1e-4)
    np.testing.assert_allclose(next(iter(Ps.values())), next(iter(Pd.values())), atol=1e-3)
    assert np.abs(Xs[1:] - Xs[:1]).max() > 1.0  # the samples do pose it

    # `skin` writes weights onto the other Fox's mesh inside its instance: the weights of skinning the asset itself
    weights = []
    for src, skel, mesh in [(fox_usdc, "/Fox/Skel", "/Fox/Geo/fox"), (shot, "/Set/FoxB/Skel", "/Set/FoxB/Geo/fox")]:
        out = tmp_path / f"skin{len(weights)}.usda"
        r = cli("skin", src, "--skeleton", skel, "--replace", "-o", out)
        assert r.returncode == 0, r.stderr
        skinned = Usd.Stage.Open(str(out))
        weights.append(np.asarray(UsdSkel.BindingAPI(skinned.GetPrimAtPath(mesh)).GetJointWeightsPrimvar().Get()))
    assert skinned.GetPrimAtPath("/Set/FoxA").IsInstance() and not skinned.GetPrimAtPath("/Set/FoxB").IsInstance()
    np.testing.assert_allclose(weights[1], weights[0], atol=1e-6)
    assert shot.read_bytes() == before


def test_a_skeleton_name_two_characters_share_is_refused_with_their_paths(fox_usdc, tmp_path):
    """`--skeleton Skel` on a shot where both Foxes' Skeletons are named Skel used to pose the first one silently."""
    shot = _shot(tmp_path, fox_usdc)
    out = tmp_path / "x.usda"
    r = cli("sample", shot, "--skeleton", "Skel", "-n", "2", "-o", out)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "/Set/FoxA/Skel, /Set/FoxB/Skel" in r.stderr and "give the prim path" in r.stderr
    assert not out.exists()


def test_each_character_of_a_shot_has_its_own_clips(fox_usdc, tmp_path):
    """Two copies of one rig in a shot: each Skeleton reads the three clips under its own SkelRoot, not the other
    copy's as well (an animation whose joints fit was taken by every skeleton, so `check` counted each frame twice)."""
    from usdposer.io.read_skel import read_asset

    asset = read_asset(_shot(tmp_path, fox_usdc))
    assert sorted(asset.clips) == ["/Set/FoxA/Skel", "/Set/FoxB/Skel"]
    for skel, clips in asset.clips.items():
        assert len(clips) == 3 and all(c.path.startswith(skel + "/") for c in clips), [c.path for c in clips]


def test_a_shot_that_retypes_the_characters_skelroot_is_refused_and_each_keeps_its_clips(fox_usdc, tmp_path):
    """A shot that brings characters in with ``def Xform "FoxA" (references = ...)`` (a common set-dressing habit)
    overrides the asset's SkelRoot type: UsdSkel then skins none of the meshes (OpenUSD's own SkelBindingApiValidator
    says the binding is not under a SkelRoot). `check` fails it naming the prim, the layer that retyped it and the fix;
    writing verbs refuse in one line with nothing written; and each Skeleton still reads only its own clips (they had
    become loose, so every copy took every copy's)."""
    from pxr import Usd, UsdValidation

    from usdposer.io.read_skel import read_asset

    shot = _shot(tmp_path, fox_usdc)
    shot.write_text(shot.read_text().replace('def "FoxA"', 'def Xform "FoxA"').replace('def "FoxB"', 'def Xform "FoxB"'))
    before = shot.read_bytes()
    # OpenUSD agrees that the bindings are not under a SkelRoot
    reg = UsdValidation.ValidationRegistry()
    ctx = UsdValidation.ValidationContext([reg.GetOrLoadValidatorByName("usdSkelValidators:SkelBindingApiValidator")])
    assert any("SkelRoot" in e.GetMessage() for e in ctx.Validate(Usd.Stage.Open(str(shot))))
    asset = read_asset(shot, strict=False)
    for skel, clips in asset.clips.items():
        assert len(clips) == 3 and all(c.path.startswith(skel + "/") for c in clips), [c.path for c in clips]
    r = cli("check", shot, "--json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["summary"]["frames"] == 2 * 126
    found = [f for f in report["files"][0]["findings"] if f["code"] == "NoSkelRoot"]
    assert {f["prim"] for f in found} == {"/Set/FoxA/Skel", "/Set/FoxB/Skel"}, report
    assert all("def Xform` in shot.usda" in f["message"] and "fox.usdc" in f["message"] for f in found)
    out = tmp_path / "samples.usda"
    r = cli("sample", shot, "-n", "2", "--skeleton", "/Set/FoxA/Skel", "-o", out)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "outside every SkelRoot" in r.stderr and "make /Set/FoxA a SkelRoot" in r.stderr
    assert not out.exists() and shot.read_bytes() == before
