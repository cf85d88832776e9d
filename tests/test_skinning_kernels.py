"""Warp skinning kernels vs their torch twins: forward and vector-Jacobian products; float64 gradcheck of the
reference; the Gaussian covariance transform against its definition."""

from __future__ import annotations

import pytest
import torch
from conftest import devices

from usdposer.core.skinning import (
    _skin_gaussians_ref,
    _skin_points_ref,
    linear_blend_skinning,
    skin_gaussians,
    skinned_heights,
)


def random_case(V=300, K=4, B=3, J=7, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(V, 3, generator=g, dtype=dtype)
    idx = torch.randint(0, J, (V, K), generator=g)
    w = torch.rand(V, K, generator=g, dtype=dtype)
    w = w / w.sum(1, keepdim=True)
    M = torch.randn(B, J, 4, 4, generator=g, dtype=dtype)
    M[..., 3, :] = torch.tensor([0, 0, 0, 1], dtype=dtype)
    return [t.to(device) for t in (pts, idx, w, M)]


@pytest.mark.parametrize("device", devices())
def test_warp_points_forward_and_vjp(device):
    pts, idx, w, M = random_case(device=device)
    pts.requires_grad_(), w.requires_grad_(), M.requires_grad_()
    out_w = linear_blend_skinning(pts, idx, w, M, backend="warp")
    out_r = _skin_points_ref(pts, idx, w, M)
    # float32, sums of 4 products of O(1) values: a few ulps of the O(10) outputs
    assert torch.allclose(out_w, out_r, atol=1e-5, rtol=1e-5)
    v = torch.randn_like(out_r)
    g_w = torch.autograd.grad((out_w * v).sum(), (pts, w, M))
    g_r = torch.autograd.grad((out_r * v).sum(), (pts, w, M))
    for a, b in zip(g_w, g_r):
        # gradients accumulate over B x V terms in float32 (atomics in a different order): 1e-4 relative
        assert torch.allclose(a, b, atol=1e-4 * b.abs().max().item(), rtol=1e-4)


@pytest.mark.parametrize("device", devices())
def test_warp_gaussians_forward_and_vjp(device):
    means, idx, w, M = random_case(V=200, device=device, seed=1)
    A = torch.randn(200, 3, 3, device=device)
    covs = A @ A.transpose(1, 2) + 0.1 * torch.eye(3, device=device)
    for t in (means, covs, w, M):
        t.requires_grad_()
    mu_w, cov_w = skin_gaussians(means, covs, idx, w, M, backend="warp")
    mu_r, cov_r = _skin_gaussians_ref(means, covs, idx, w, M)
    assert torch.allclose(mu_w, mu_r, atol=1e-5, rtol=1e-5)
    assert torch.allclose(cov_w, cov_r, atol=1e-4, rtol=1e-4)
    v1, v2 = torch.randn_like(mu_r), torch.randn_like(cov_r)
    g_w = torch.autograd.grad((mu_w * v1).sum() + (cov_w * v2).sum(), (means, covs, w, M))
    g_r = torch.autograd.grad((mu_r * v1).sum() + (cov_r * v2).sum(), (means, covs, w, M))
    for a, b in zip(g_w, g_r):
        assert torch.allclose(a, b, atol=1e-4 * b.abs().max().item(), rtol=1e-4)


@pytest.mark.parametrize("K", [1, 3, 4, 5, 11])
def test_warp_forward_padding_and_threads(K):
    """The forward kernel holds four influences in registers and sorts longer rows: zero weights anywhere in a
    row (padding), all-zero rows and vertex ranges split over threads must all match the reference."""
    from usdposer.core._warp_skinning import _skin_points_forward

    pts, idx, w, M = random_case(V=2500, K=K, B=4, seed=K)
    w = w * (torch.rand(w.shape, generator=torch.Generator().manual_seed(7)) > 0.4)  # interleaved zeros
    w[:5] = 0.0
    ref = _skin_points_ref(pts, idx, w, M)
    for threads in (1, 2, 3):
        out = torch.full_like(ref, float("nan"))
        _skin_points_forward(pts, idx, w, M, out, threads)
        assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5), threads


def test_skinned_heights_are_the_y_of_full_skinning_with_the_same_gradients():
    """Guided IK's ground terms skin only the y row: values and gradients equal full skinning's y (float64)."""
    pts, idx, w, M = random_case(V=50, K=3, B=2, J=5, dtype=torch.float64)
    M1 = M.clone().requires_grad_(True)
    M2 = M.clone().requires_grad_(True)
    y1 = skinned_heights(pts, idx, w, M1)
    y2 = _skin_points_ref(pts, idx, w, M2)[..., 1]
    assert torch.allclose(y1, y2, atol=1e-12)
    up = torch.randn_like(y1)
    (g1,), (g2,) = torch.autograd.grad(y1, M1, up), torch.autograd.grad(y2, M2, up)
    assert torch.allclose(g1, g2, atol=1e-12)


def test_reference_gradcheck_float64():
    pts, idx, w, M = random_case(V=6, K=2, B=2, J=3, dtype=torch.float64)
    for t in (pts, w, M):
        t.requires_grad_()
    assert torch.autograd.gradcheck(lambda p, ww, m: _skin_points_ref(p, idx, ww, m), (pts, w, M))
    covs = torch.eye(3, dtype=torch.float64).repeat(6, 1, 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, c, ww, m: _skin_gaussians_ref(p, c, idx, ww, m), (pts, covs, w, M))


def test_covariance_transform_is_lbs_jacobian():
    """Sigma' = J Sigma J^T with J = sum_k w_k R_k equals the covariance of points pushed through the (affine) LBS map."""
    means, idx, w, M = random_case(V=1, K=3, B=1, J=4, dtype=torch.float64, seed=3)
    L = torch.randn(3, 3, dtype=torch.float64)
    cov = L @ L.T
    mu2, cov2 = _skin_gaussians_ref(means, cov[None], idx, w, M)
    # sample the Gaussian, skin every sample with the same influences, measure the covariance
    g = torch.Generator().manual_seed(0)
    samples = means + torch.randn(200_000, 3, generator=g, dtype=torch.float64) @ L.T
    skinned = _skin_points_ref(samples, idx.expand(200_000, -1), w.expand(200_000, -1), M)[0]
    assert torch.allclose(skinned.mean(0), mu2[0, 0], atol=0.02 * cov2.diagonal(dim1=-2, dim2=-1).max().sqrt())
    emp = torch.cov(skinned.T)
    assert torch.allclose(emp, cov2[0, 0], rtol=0.03, atol=0.03 * cov2.abs().max())


def test_warp_matches_usdskel_on_real_asset():
    """The Warp path on the bundled Fox against OpenUSD's own skinning of the imported stage."""
    import tempfile
    from pathlib import Path

    import numpy as np
    from conftest import ASSETS
    from usd_golden import to_stage_points, usd_joint_and_points

    from usdposer.core.kinematics import skinning_transforms
    from usdposer.core.posing import joint_transforms
    from usdposer.io.gltf_import import import_gltf
    from usdposer.io.read_skel import read_asset
    from usdposer.io.stage import open_stage

    out = Path(tempfile.mkdtemp()) / "fox.usdc"
    import_gltf(ASSETS / "khronos" / "Fox.glb", out)
    asset = read_asset(out)
    rig = asset.rigs[0]
    clip = asset.clips[rig.skeleton_path][0]
    stage = open_stage(out)
    _, ref = usd_joint_and_points(stage, rig.skeleton_path, clip.time_codes.tolist(), raw=True)
    S = skinning_transforms(joint_transforms(rig, clip.pose()), rig.bind_world)
    mesh = rig.meshes[0]
    ours = linear_blend_skinning(mesh.points.float(), mesh.joint_indices, mesh.joint_weights.float(), S.float(),
                                 backend="warp")
    r = ref[mesh.path]
    diag = np.linalg.norm(r.reshape(-1, 3).max(0) - r.reshape(-1, 3).min(0))
    assert np.abs(to_stage_points(stage, ours.double().numpy()) - r).max() / diag < 1e-5
