"""AKD rendering: the Fox as skinned Gaussians (texture colours, weights, flat covariances), the tiled torch splatting
rasteriser against its brute-force twin (forward and vector-Jacobian products), float64 gradcheck, the checkerboard
ground and the below-ground rule, and gsplat against the torch backend when CUDA is present."""

from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture(scope="module")
def fox(fox_usdc):
    from usdposer.io.read_skel import read_asset
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.types import Pose

    asset = read_asset(fox_usdc)
    rig = asset.rig().to(torch.float64)
    clip = asset.clip(rig)
    pose = Pose(clip.rotations[30:31].double(), clip.translations[30:31].double(), clip.scales[30:31].double())
    ga = gaussians_from_rig(rig, 3000)
    return rig, ga, pose


def test_fox_gaussians_are_flat_textured_and_skinned(fox):
    rig, ga, pose = fox
    assert len(ga) == 3000
    assert torch.allclose(ga.weights.sum(1), torch.ones(len(ga), dtype=ga.weights.dtype))
    # flat: the smallest eigenvector of each covariance is its triangle's normal
    evals, evecs = torch.linalg.eigh(ga.covs)
    assert (evals[:, 0] < 0.01 * evals[:, 2]).all()
    assert (evecs[:, :, 0] * ga.normals).sum(1).abs().min() > 0.99
    # colours from the Fox's texture: mostly orange, some white, never the grey display colour everywhere
    assert ga.colors[:, 0].mean() > 1.5 * ga.colors[:, 2].mean()
    assert ga.colors.std(0).min() > 0.05
    # LBS moves means and covariances: Warp and torch agree, covariances stay symmetric positive definite
    mu_w, cov_w = ga.posed(rig, pose, backend="warp")
    mu_t, cov_t = ga.posed(rig, pose, backend="torch")
    assert (mu_w - mu_t).abs().max() < 1e-4 * float(mu_t.abs().max()) and (cov_w - cov_t).abs().max() < 1e-6
    assert torch.linalg.eigvalsh(cov_t[0]).min() > 0


def test_tiled_rasteriser_matches_brute_force_forward_and_backward(fox):
    from usdposer.render.splat import _rasterize_ref, _rasterize_torch, follow_camera

    rig, ga, pose = fox
    mu, cov = ga.posed(rig, pose, backend="torch")
    cam = follow_camera(mu[0], 40, 32)
    ins = [mu[0].detach().clone().requires_grad_(), cov[0].detach().clone().requires_grad_(),
           ga.colors.clone().requires_grad_(), ga.opacities.clone().requires_grad_()]
    v = torch.rand(32, 40, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    outs = []
    for fn in (_rasterize_ref, _rasterize_torch):
        rgb, T = fn(*ins, cam)
        grads = torch.autograd.grad((rgb * v).sum() + T.sum(), ins)
        outs.append((rgb.detach(), T.detach(), grads))
    (r1, t1, g1), (r2, t2, g2) = outs
    assert t1.min() < 0.5 and t1.max() == 1  # the fox covers part of the frame, not all of it
    assert (r1 - r2).abs().max() < 1e-12 and (t1 - t2).abs().max() < 1e-12
    for a, b in zip(g1, g2):
        assert (a - b).abs().max() <= 1e-9 * max(1.0, float(a.abs().max()))


def test_torch_rasteriser_gradcheck_float64():
    from usdposer.render.splat import _rasterize_torch, look_at

    cam = look_at(torch.tensor([0.0, 0.0, -4.0]), torch.zeros(3), 7, 6, fov_deg=30)
    means = torch.tensor([[0.1, 0.05, 0.0], [-0.2, 0.0, 0.3], [0.0, -0.15, -0.2]], dtype=torch.float64)
    L = torch.tensor([[[0.3, 0, 0], [0.05, 0.25, 0], [0, 0.02, 0.2]]], dtype=torch.float64).expand(3, 3, 3)
    covs = L @ L.transpose(1, 2)
    colors = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.8, 0.2], [0.2, 0.3, 0.9]], dtype=torch.float64)
    opac = torch.tensor([0.5, 0.6, 0.4], dtype=torch.float64)

    def f(m, c, col, o):
        rgb, T = _rasterize_torch(m, c, col, o, cam, tile=4)
        return rgb, T

    assert torch.autograd.gradcheck(f, tuple(x.clone().requires_grad_() for x in (means, covs, colors, opac)),
                                    eps=1e-6, atol=1e-6)


def test_ground_checkerboard_shows_through_and_hides_gaussians_below_it():
    from usdposer.render.splat import ground_rays, look_at, render

    cam = look_at(torch.tensor([0.0, 2.0, 3.0]), torch.zeros(3), 48, 32)
    P, hit = ground_rays(cam, 0.0)
    assert hit[-1].all() and torch.allclose(P[hit][:, 1], torch.zeros(int(hit.sum()), dtype=P.dtype), atol=1e-9)
    cov = (0.05**2 * torch.eye(3, dtype=torch.float64))[None]
    col = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    above = render(torch.tensor([[0.0, 0.2, 0.0]], dtype=torch.float64), cov, col, torch.tensor([0.9],
                   dtype=torch.float64), cam, checker=0.5)
    below = render(torch.tensor([[0.0, -0.2, 0.0]], dtype=torch.float64), cov, col, torch.tensor([0.9],
                   dtype=torch.float64), cam, checker=0.5)
    assert above[1].max() > 0.5 and below[1].max() == 0  # a Gaussian under the floor is not drawn
    floor = below[0]
    assert len(torch.unique(floor[hit].round(decimals=3), dim=0)) == 2  # two checker colours
    assert (floor[~hit] == 1).all()  # sky: the white background
    shaded = render(torch.tensor([[0.0, 0.05, 0.0]], dtype=torch.float64), cov, col, torch.tensor([0.0],
                    dtype=torch.float64), cam, checker=0.5, shadow_strength=0.6, shadow_footprint=0.5)[0]
    plain = render(torch.tensor([[0.0, 0.05, 0.0]], dtype=torch.float64), cov, col, torch.tensor([0.0],
                   dtype=torch.float64), cam, checker=0.5)[0]
    assert (shaded <= plain + 1e-12).all() and (plain - shaded).max() > 0.15  # darker under the object


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat's rasteriser needs CUDA; the torch backend runs here")
def test_gsplat_matches_torch_backend_forward_and_backward(fox):
    from usdposer.render.splat import follow_camera, render

    rig, ga, pose = fox
    mu, cov = ga.posed(rig, pose, backend="torch")
    cam = follow_camera(mu[0], 64, 48)
    out = {}
    for backend, dev in (("torch", "cuda"), ("gsplat", "cuda")):
        ins = [x.float().to(dev).requires_grad_() for x in (mu[0], cov[0], ga.colors, ga.opacities)]
        rgb, a = render(*ins, cam, ground=None, backend=backend)
        g = torch.autograd.grad(rgb.sum(), ins)
        out[backend] = (rgb.detach(), g)
    assert (out["torch"][0] - out["gsplat"][0]).abs().max() < 2e-3
    for a, b in zip(out["torch"][1], out["gsplat"][1]):
        if a.ndim == 3:  # covariances: gsplat reads the upper triangle, so compare gradients on symmetric matrices
            a, b = (symmetric_gradient(x) for x in (a, b))
        assert (a - b).norm() <= 0.01 * a.norm() + 1e-6


def symmetric_gradient(g):
    """The gradient w.r.t. the 6 unique entries of symmetric (…, 3, 3) matrices, g_ij + g_ji off the diagonal: what
    any two parameterisations of a symmetric input agree on (gsplat puts it in the upper triangle, autograd spreads it
    over both)."""
    return torch.triu(g + g.transpose(-1, -2)) - torch.diag_embed(torch.diagonal(g, dim1=-2, dim2=-1))


def test_follow_camera_frames_the_character(fox):
    from usdposer.render.splat import follow_camera, project, render

    rig, ga, pose = fox
    mu, cov = ga.posed(rig, pose, backend="torch")
    cam = follow_camera(mu[0], 64, 64)
    m2, _, depth, _, valid = project(mu[0], cov[0], cam)
    assert valid.all() and (m2 > 0).all() and (m2 < 64).all()
    _, alpha = render(mu[0], cov[0], ga.colors, ga.opacities, cam)
    ys, xs = torch.nonzero(alpha > 0.5, as_tuple=True)
    # the silhouette's box is the projected means' box (within the splats' own radius)
    assert abs(float(xs.min()) - float(m2[:, 0].min())) < 4 and abs(float(xs.max()) - float(m2[:, 0].max())) < 4
    assert abs(float(ys.min()) - float(m2[:, 1].min())) < 4 and abs(float(ys.max()) - float(m2[:, 1].max())) < 4
    assert math.isfinite(float(depth.max()))
