"""Rotations, TRS (de)composition and forward kinematics against hand-composed values."""

from __future__ import annotations

import math

import pytest
import torch

from usdposer.core import rotations as R
from usdposer.core.kinematics import compose_trs, decompose_trs, forward_kinematics


def random_quats(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return R.quat_normalize(torch.randn(n, 4, generator=g, dtype=torch.float64))


def test_quaternion_is_w_first():
    q = R.axis_angle_to_quat(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    assert torch.allclose(q, torch.tensor([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], dtype=torch.float64))
    # rotating +X by 90 degrees about +Z gives +Y
    v = R.quat_apply(q, torch.tensor([1.0, 0, 0], dtype=torch.float64))
    assert torch.allclose(v, torch.tensor([0.0, 1, 0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(R.quat_to_matrix(q) @ torch.tensor([1.0, 0, 0], dtype=torch.float64), v, atol=1e-12)


def test_round_trips():
    q = random_quats(500)
    m = R.quat_to_matrix(q)
    q2 = R.matrix_to_quat(m)
    assert torch.allclose(R.quat_to_matrix(q2), m, atol=1e-12)
    assert (R.quat_angle(q, q2) < 1e-6).all()
    assert torch.allclose(R.sixd_to_matrix(R.matrix_to_6d(m)), m, atol=1e-12)
    aa = R.quat_to_axis_angle(q)
    assert (R.quat_angle(R.axis_angle_to_quat(aa), q) < 1e-6).all()
    assert torch.allclose(R.wxyz_to_xyzw(R.xyzw_to_wxyz(q)), q)


def test_matrix_to_quat_all_branches():
    # 180-degree rotations about each axis exercise the branches where w is ~0
    for axis in torch.eye(3, dtype=torch.float64):
        q = R.axis_angle_to_quat(axis * math.pi)
        assert torch.allclose(R.quat_to_matrix(R.matrix_to_quat(R.quat_to_matrix(q))), R.quat_to_matrix(q), atol=1e-12)


def test_multiply_matches_matrices():
    a, b = random_quats(50, 1), random_quats(50, 2)
    assert torch.allclose(R.quat_to_matrix(R.quat_multiply(a, b)), R.quat_to_matrix(a) @ R.quat_to_matrix(b), atol=1e-12)
    assert torch.allclose(R.quat_multiply(a, R.quat_conjugate(a)), R.quat_identity(50, dtype=torch.float64), atol=1e-12)


def test_slerp_endpoints_and_constant_speed():
    a, b = random_quats(20, 3), random_quats(20, 4)
    assert (R.quat_angle(R.quat_slerp(a, b, 0.0), a) < 1e-6).all()
    assert (R.quat_angle(R.quat_slerp(a, b, 1.0), b) < 1e-6).all()
    total = R.quat_angle(a, b)
    half = R.quat_angle(a, R.quat_slerp(a, b, 0.5))
    assert torch.allclose(half, total / 2, atol=1e-6)


def test_compose_decompose_with_negative_scale():
    t = torch.randn(10, 3, dtype=torch.float64)
    q = random_quats(10, 5)
    s = torch.rand(10, 3, dtype=torch.float64) + 0.5
    s[3] = -0.7  # a mirrored joint (uniform negative scale, as in OpenUSD's skeleton.usda)
    M = compose_trs(t, q, s)
    t2, q2, s2 = decompose_trs(M)
    assert torch.allclose(compose_trs(t2, q2, s2), M, atol=1e-12)
    assert torch.allclose(t2, t)


def test_fk_matches_hand_composed_chain():
    # parents: 0 <- 1 <- 2, and 0 <- 3; joint 4 is a second root
    parents = [-1, 0, 1, 0, -1]
    local = compose_trs(torch.randn(2, 5, 3, dtype=torch.float64), random_quats(10, 6).reshape(2, 5, 4))
    W = forward_kinematics(local, parents)
    assert torch.allclose(W[:, 0], local[:, 0])
    assert torch.allclose(W[:, 2], local[:, 0] @ local[:, 1] @ local[:, 2])
    assert torch.allclose(W[:, 3], local[:, 0] @ local[:, 3])
    assert torch.allclose(W[:, 4], local[:, 4])


@pytest.mark.parametrize("seed", range(4))
def test_fk_level_by_level_equals_joint_by_joint_on_random_forests(seed):
    """Random forests (several roots, some after other joints; branching; a real rig's order is any topological
    order): the level-by-level composition equals world[j] = world[parent] @ local[j] joint by joint, values and
    gradients."""
    g = torch.Generator().manual_seed(seed)
    J = 12 + seed * 7
    parents = [-1] + [int(torch.randint(-1, j, (1,), generator=g)) if j % 5 == 0 else
                      int(torch.randint(0, j, (1,), generator=g)) for j in range(1, J)]
    local = compose_trs(torch.randn(3, J, 3, dtype=torch.float64, generator=g),
                        random_quats(3 * J, seed).reshape(3, J, 4)).requires_grad_()

    def by_joint(x):
        out = []
        for j, p in enumerate(parents):
            out.append(x[:, j] if p < 0 else out[p] @ x[:, j])
        return torch.stack(out, 1)

    W, ref = forward_kinematics(local, parents), by_joint(local)
    assert torch.allclose(W, ref, atol=1e-12)
    w = torch.randn_like(W)
    ga, = torch.autograd.grad((W * w).sum(), local)
    gb, = torch.autograd.grad((ref * w).sum(), local)
    assert torch.allclose(ga, gb, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_fk_closed_form_backward_equals_the_levels_autograd_under_a_vmapped_jacobian(seed):
    """The closed-form FK backward (what guided IK's Gauss-Newton differentiates through, rows vmapped) against
    plain autograd through the levels, on forests with non-uniform, mirrored and centimetre-sized scales; a joint
    scaled to nothing (a game rig hiding a part) takes the levels' own backward, still exact."""
    from usdposer.core.kinematics import _ClosedFormFK, forward_kinematics_levels

    g = torch.Generator().manual_seed(seed)
    J = 15 + 6 * seed
    parents = [-1] + [int(torch.randint(-1, j, (1,), generator=g)) if j % 6 == 0 else
                      int(torch.randint(0, j, (1,), generator=g)) for j in range(1, J)]
    s = torch.rand(2, J, 3, dtype=torch.float64, generator=g) * 2 + 0.2
    s[:, 3] = -0.7  # mirrored
    s[:, 0] = 0.01  # a centimetre armature under a metre scene
    local = compose_trs(torch.randn(2, J, 3, dtype=torch.float64, generator=g),
                        random_quats(2 * J, seed + 20).reshape(2, J, 4), s)
    w = torch.randn(9, 2, J, 4, 4, dtype=torch.float64, generator=g)  # 9 residual rows mixing everything

    def rows(fk):
        return lambda x: torch.einsum("rbjxy,bjxy->rb", w, fk(x)).sum(1)

    closed = torch.func.jacrev(rows(lambda x: forward_kinematics(x, parents)))(local)
    plain = torch.func.jacrev(rows(lambda x: forward_kinematics_levels(x, tuple(parents))))(local)
    assert torch.allclose(closed, plain, rtol=1e-9, atol=1e-9 * float(plain.abs().max()))
    x = local.clone().requires_grad_()
    seen = []
    hook = _ClosedFormFK.apply
    try:
        _ClosedFormFK.apply = lambda *a: seen.append(1) or hook(*a)
        forward_kinematics(x, parents)
        assert seen, "a differentiable call with invertible transforms should take the closed form"
        seen.clear()
        dead = local.clone()
        dead[:, 5, :3, :3] = 0.0  # a joint scaled to nothing
        dead.requires_grad_()
        out = forward_kinematics(dead, parents)
        assert not seen, "a singular local transform must fall back to the levels"
    finally:
        _ClosedFormFK.apply = hook
    ga, = torch.autograd.grad((out * w[0]).sum(), dead)
    ref = dead.detach().clone().requires_grad_()
    gb, = torch.autograd.grad((forward_kinematics_levels(ref, tuple(parents)) * w[0]).sum(), ref)
    assert torch.allclose(ga, gb)


def test_fk_rejects_children_before_parents():
    with pytest.raises(AssertionError, match="parents must come before children"):
        forward_kinematics(torch.eye(4).expand(1, 2, 4, 4), [1, -1])


def test_fk_is_differentiable():
    local = compose_trs(torch.randn(1, 3, 3, dtype=torch.float64), random_quats(3, 7)[None]).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: forward_kinematics(x, [-1, 0, 1]), (local,))
