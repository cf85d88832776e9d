"""Differentiable Gaussian splatting with a checkerboard ground (AKD section 4.2), behind one functional entry,
:func:`render`, with two backends:

    "torch"  a tiled pure-PyTorch rasteriser (CPU or GPU, autograd by torch); :func:`_rasterize_ref` is its brute
             force twin (every Gaussian against every pixel), used by the tests;
    "gsplat" gsplat's CUDA ``rasterization`` (loaded only when called; CUDA tensors only).

Conventions follow gsplat so that the two backends agree: ``viewmat`` is world-to-camera in OpenCV axes (x right,
y down, z forward), ``K`` the pinhole intrinsics, pixel centres at ``(x + 0.5, y + 0.5)``. Per Gaussian (EWA,
Zwicker et al. 2002):

    t      = W mu + w                                        camera-space mean
    J      = [[fx / t_z, 0, -fx t_x / t_z^2], [0, fy / t_z, -fy t_y / t_z^2]]
    S2     = J W Sigma W^T J^T + eps2d I                      screen covariance (eps2d = 0.3 px^2 low-pass)
    alpha  = min(0.999, o exp(-d^T S2^-1 d / 2)),  0 below 1/255
    C      = sum_i c_i alpha_i T_i,  T_i = prod_{j < i} (1 - alpha_j)   front to back by t_z, stopping before the
             Gaussian that would take T to 1e-4 or below (gsplat's early termination)
A Gaussian reaches alpha >= 1/255 only within Mahalanobis distance e = sqrt(2 ln(255 o)) (at most 3.33), i.e. inside
the box m +- e sqrt(diag S2): the tiled rasteriser and gsplat test Gaussians against tiles with that box, so both
equal the brute-force sum over every Gaussian.

The ground y = ``ground`` (world, metres) is ray cast per pixel and shows through the remaining transmittance:
``C += T_N * ground_colour``. It is a checkerboard fixed in the world (AKD: the board is what lets the video model
see the feet slide): squares of ``checker`` metres from the world origin, the same for every frame of a clip
(:func:`board_size`: a quarter of the rig's rest height), never rescaled with the pose. It is darkened by the
heuristic shadow ``s(P) = 1 - s_max exp(-beta d(P))``, d(P) the height of the asset above the ground point P (the
lowest Gaussian mean within ``footprint`` of P horizontally; no shadow where nothing is above), and Gaussians below
the ground are given zero opacity. :func:`camera_path` follows a clip's bounding-box centre smoothly at a fixed
distance.

Shapes: N Gaussians, H x W pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
EPS2D = 0.3
T_MIN = 1e-4
EXTEND_MAX = 3.33


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``viewmat`` (4, 4) world-to-camera (OpenCV axes), ``K`` (3, 3), image ``width`` x ``height``."""

    viewmat: Float[Tensor, "4 4"]
    K: Float[Tensor, "3 3"]
    width: int
    height: int


def look_at(eye: Tensor, target: Tensor, width: int, height: int, fov_deg: float = 40.0) -> Camera:
    """Camera at ``eye`` looking at ``target`` with +Y up in the world (OpenCV camera axes), vertical field of view
    ``fov_deg``."""
    eye, target = eye.double(), target.double()
    fwd = target - eye
    fwd = fwd / fwd.norm().clamp(min=1e-12)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    right = torch.linalg.cross(fwd, up)
    if right.norm() < 1e-6:  # looking straight down or up
        right = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd])  # rows: camera axes in world
    V = torch.eye(4, dtype=torch.float64)
    V[:3, :3], V[:3, 3] = R, -R @ eye
    f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float64)
    return Camera(V, K, width, height)


def follow_camera(means: Tensor, width: int, height: int, *, yaw_deg: float = 30.0, pitch_deg: float = 15.0,
                  fov_deg: float = 40.0, margin: float = 1.3) -> Camera:
    """A camera that frames the bounding box of ``means`` (N, 3) from the given yaw and pitch (degrees) and
    follows its centre (AKD: the camera follows the character)."""
    m = means.detach().double().cpu()  # cameras live on the CPU
    center = (m.amin(0) + m.amax(0)) / 2
    dist = framing_distance(m, fov_deg, margin)
    return look_at(center + dist * _view_direction(yaw_deg, pitch_deg), center, width, height, fov_deg)


def _view_direction(yaw_deg: float, pitch_deg: float) -> Tensor:
    """(3,) unit vector from the target to the eye for a yaw about +Y (0: from +Z) and a pitch above the ground."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    return torch.tensor([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)],
                        dtype=torch.float64)


BOARD_HEIGHTS = 0.25  # board squares, in rest heights


def board_size(height: float) -> float:
    """The checkerboard's square size in metres for a character of rest ``height`` metres (fixed for a clip)."""
    return BOARD_HEIGHTS * (height if height > 0 else 1.0)


def camera_path(centers: Float[Tensor, "F 3"], distance: float, width: int, height: int, *, yaw_deg: float = 30.0,
                pitch_deg: float = 15.0, fov_deg: float = 40.0, smoothing: float = 0.3) -> list[Camera]:
    """Cameras that follow a clip's bounding-box ``centers`` (F, 3) smoothly, at a fixed ``distance`` (metres, e.g.
    from the rest pose, so the zoom does not pump with the pose), from the given yaw and pitch. The path is the
    centres filtered by a zero-phase exponential filter (``smoothing`` in [0, 1): 0 none; forward then backward, so
    it neither lags nor leads)."""
    c = centers.detach().double().cpu()
    if 0 < smoothing < 1 and len(c) > 2:
        a = 1 - smoothing
        fwd = c.clone()
        for f in range(1, len(c)):
            fwd[f] = a * c[f] + smoothing * fwd[f - 1]
        c = fwd.clone()
        for f in range(len(c) - 2, -1, -1):
            c[f] = a * fwd[f] + smoothing * c[f + 1]
    offset = _view_direction(yaw_deg, pitch_deg)
    return [look_at(p + distance * offset, p, width, height, fov_deg) for p in c]


def framing_distance(means: Float[Tensor, "N 3"], fov_deg: float = 40.0, margin: float = 1.3) -> float:
    """The distance at which a camera of vertical field of view ``fov_deg`` frames the bounding box of ``means``."""
    lo, hi = means.detach().double().amin(0), means.detach().double().amax(0)
    radius = float((hi - lo).norm()) / 2 or 1.0
    return margin * radius / math.tan(math.radians(fov_deg) / 2)


def project(means: Float[Tensor, "N 3"], covs: Float[Tensor, "N 3 3"], cam: Camera, near: float = 0.01):
    """EWA projection (module docstring): (mean2d (N, 2), conic (N, 3) = upper triangle of S2^-1, depth (N,),
    radius (N, 2) = 3.33 sqrt(diag S2), the half-extents of the largest box a Gaussian can touch, valid (N,) in front
    of the near plane)."""
    Vm = cam.viewmat.to(means)
    R, w = Vm[:3, :3], Vm[:3, 3]
    t = means @ R.T + w  # (N, 3)
    tz = t[:, 2].clamp(min=near)
    fx, fy, cx, cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
    Jm = torch.zeros(len(means), 2, 3, dtype=means.dtype, device=means.device)
    Jm[:, 0, 0], Jm[:, 0, 2] = fx / tz, -fx * t[:, 0] / tz**2
    Jm[:, 1, 1], Jm[:, 1, 2] = fy / tz, -fy * t[:, 1] / tz**2
    T = Jm @ R  # (N, 2, 3)
    S2 = T @ covs @ T.transpose(1, 2) + EPS2D * torch.eye(2, dtype=means.dtype, device=means.device)  # (N, 2, 2)
    a, b, c = S2[:, 0, 0], S2[:, 0, 1], S2[:, 1, 1]
    det = (a * c - b * b).clamp(min=1e-12)
    conic = torch.stack([c / det, -b / det, a / det], 1)  # (N, 3)
    radius = EXTEND_MAX * torch.stack([a, c], 1).sqrt()
    mean2d = torch.stack([fx * t[:, 0] / tz + cx, fy * t[:, 1] / tz + cy], 1)
    return mean2d, conic, t[:, 2], radius, t[:, 2] > near


def _alpha(px: Tensor, mean2d: Tensor, conic: Tensor, opac: Tensor) -> Tensor:
    """(n, P) opacities of n Gaussians at P pixel centres (module docstring)."""
    d = px[None] - mean2d[:, None]  # (n, P, 2)
    power = -0.5 * (conic[:, None, 0] * d[..., 0] ** 2 + conic[:, None, 2] * d[..., 1] ** 2) \
        - conic[:, None, 1] * d[..., 0] * d[..., 1]
    a = (opac[:, None] * power.clamp(max=0.0).exp()).clamp(max=ALPHA_MAX)
    return torch.where((a >= ALPHA_MIN) & (power <= 0), a, torch.zeros_like(a))


def _extent(radius: Tensor, opac: Tensor) -> Tensor:
    """(n, 2) half-extents of the boxes outside which alpha < 1/255 (module docstring)."""
    e = (2 * torch.log((opac.detach() / ALPHA_MIN).clamp(min=1.0))).sqrt().clamp(max=EXTEND_MAX)
    return radius.detach() * (e / EXTEND_MAX)[:, None]


def _composite(alpha: Tensor, colors: Tensor) -> tuple[Tensor, Tensor]:
    """Front-to-back compositing of depth-sorted (n, P) alphas, stopping where gsplat stops (T_MIN): (rgb (P, 3),
    transmittance (P,))."""
    keep = torch.cumprod(1 - alpha.detach(), 0) > T_MIN  # a prefix along the depth order
    alpha = alpha * keep
    one_minus = 1 - alpha
    T = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), one_minus[:-1]]), 0)  # (n, P) exclusive
    rgb = ((alpha * T)[..., None] * colors[:, None]).sum(0)  # (P, 3)
    return rgb, T[-1] * one_minus[-1] if len(alpha) else torch.ones(alpha.shape[1], dtype=alpha.dtype)


def _pixels(cam: Camera, dtype, device) -> Tensor:
    ys, xs = torch.meshgrid(torch.arange(cam.height, dtype=dtype, device=device),
                            torch.arange(cam.width, dtype=dtype, device=device), indexing="ij")
    return torch.stack([xs + 0.5, ys + 0.5], -1).reshape(-1, 2)  # (H W, 2)


def _rasterize_ref(means, covs, colors, opacities, cam: Camera) -> tuple[Tensor, Tensor]:
    """Brute-force twin of :func:`_rasterize_torch`: every Gaussian against every pixel. (rgb (H, W, 3),
    transmittance (H, W))."""
    mean2d, conic, depth, radius, valid = project(means, covs, cam)
    order = torch.argsort(depth.detach())
    order = order[valid[order]]
    px = _pixels(cam, means.dtype, means.device)
    a = _alpha(px, mean2d[order], conic[order], opacities[order])
    if not len(order):
        return torch.zeros(cam.height, cam.width, 3, dtype=means.dtype), torch.ones(cam.height, cam.width, dtype=means.dtype)
    rgb, T = _composite(a, colors[order])
    return rgb.reshape(cam.height, cam.width, 3), T.reshape(cam.height, cam.width)


def _rasterize_torch(means, covs, colors, opacities, cam: Camera, tile: int = 16) -> tuple[Tensor, Tensor]:
    """Tiled pure-PyTorch rasteriser: per ``tile`` x ``tile`` block only the Gaussians whose 3-sigma square
    overlaps it, depth-sorted once. Same result as :func:`_rasterize_ref`."""
    H, W = cam.height, cam.width
    mean2d, conic, depth, radius, valid = project(means, covs, cam)
    order = torch.argsort(depth.detach())
    order = order[valid[order]]
    m2, co, op, rad, col = mean2d[order], conic[order], opacities[order], radius[order], colors[order]
    ext = _extent(rad, op)
    lo, hi = m2.detach() - ext, m2.detach() + ext  # (n, 2) pixel boxes
    px_all = _pixels(cam, means.dtype, means.device).reshape(H, W, 2)
    rgb = torch.zeros(H, W, 3, dtype=means.dtype, device=means.device)
    trans = torch.ones(H, W, dtype=means.dtype, device=means.device)
    rows = []
    for y0 in range(0, H, tile):
        cols = []
        for x0 in range(0, W, tile):
            y1, x1 = min(y0 + tile, H), min(x0 + tile, W)
            hit = (hi[:, 0] >= x0) & (lo[:, 0] <= x1) & (hi[:, 1] >= y0) & (lo[:, 1] <= y1)
            idx = torch.nonzero(hit).flatten()
            px = px_all[y0:y1, x0:x1].reshape(-1, 2)
            if len(idx):
                c, t = _composite(_alpha(px, m2[idx], co[idx], op[idx]), col[idx])
            else:
                c, t = rgb[y0:y1, x0:x1].reshape(-1, 3), trans[y0:y1, x0:x1].reshape(-1)
            cols.append((c.reshape(y1 - y0, x1 - x0, 3), t.reshape(y1 - y0, x1 - x0)))
        rows.append((torch.cat([c for c, _ in cols], 1), torch.cat([t for _, t in cols], 1)))
    return torch.cat([r for r, _ in rows], 0), torch.cat([t for _, t in rows], 0)


def _rasterize_gsplat(means, covs, colors, opacities, cam: Camera) -> tuple[Tensor, Tensor]:
    from usdposer._deps import require

    gsplat = require("gsplat", extra="render")
    rgb, alpha, _ = gsplat.rasterization(
        means.float(), None, None, opacities.float(), colors.float(), cam.viewmat.float().to(means.device)[None],
        cam.K.float().to(means.device)[None], cam.width, cam.height, covars=covs.float(), packed=False)
    return rgb[0].to(means.dtype), (1 - alpha[0, ..., 0]).to(means.dtype)


def ground_rays(cam: Camera, ground: float, dtype=torch.float64, device=None) -> tuple[Tensor, Tensor]:
    """Where each pixel's ray meets the plane y = ``ground``: (points (H, W, 3), hit (H, W) in front of the
    camera)."""
    V = cam.viewmat.to(dtype=dtype, device=device)
    R, w = V[:3, :3], V[:3, 3]
    eye = -R.T @ w
    px = _pixels(cam, dtype, device)
    K = cam.K.to(dtype=dtype, device=device)
    d_cam = torch.stack([(px[:, 0] - K[0, 2]) / K[0, 0], (px[:, 1] - K[1, 2]) / K[1, 1], torch.ones(len(px), dtype=dtype,
                                                                                                   device=device)], 1)
    d = d_cam @ R  # (P, 3) world directions (R^T d_cam)
    s = (ground - eye[1]) / torch.where(d[:, 1].abs() > 1e-12, d[:, 1], torch.full_like(d[:, 1], 1e-12))
    P = eye + s[:, None] * d
    return P.reshape(cam.height, cam.width, 3), (s > 0).reshape(cam.height, cam.width)


def checkerboard(points: Tensor, size: float, colors=((0.85, 0.85, 0.85), (0.55, 0.55, 0.55))) -> Tensor:
    """(…, 3) ground colours of a checkerboard of ``size`` metre squares at ground points (…, 3)."""
    parity = (torch.floor(points[..., 0] / size) + torch.floor(points[..., 2] / size)).remainder(2)
    a = torch.tensor(colors[0], dtype=points.dtype, device=points.device)
    b = torch.tensor(colors[1], dtype=points.dtype, device=points.device)
    return torch.where(parity[..., None] < 0.5, a, b)


def shadow(points: Tensor, means: Tensor, s_max: float, beta: float, footprint: float, ground: float = 0.0,
           max_means: int = 2048) -> Tensor:
    """AKD's heuristic shadow ``1 - s_max exp(-beta d(P))`` at ground points (…, 3): d(P) is the height above the
    ground of the lowest Gaussian mean within ``footprint`` metres of P horizontally (at most ``max_means`` means,
    evenly picked), infinite (no shadow) where none is. ``beta`` per metre."""
    step = max(1, len(means) // max_means)
    m = means[::step]
    above = (m[:, 1] - ground).clamp(min=0)  # (n,)
    flat = points.reshape(-1, 3)
    out = torch.ones(len(flat), dtype=above.dtype, device=flat.device)
    # only ground points under the asset's horizontal footprint can be shaded: the rest of the image costs nothing
    lo, hi = m[:, [0, 2]].detach().amin(0) - footprint, m[:, [0, 2]].detach().amax(0) + footprint
    under = ((flat[:, [0, 2]] >= lo) & (flat[:, [0, 2]] <= hi)).all(1)
    idx = torch.nonzero(under).flatten()
    vals = []
    for i in range(0, len(idx), 4096):
        near = torch.cdist(flat[idx[i:i + 4096]][:, [0, 2]], m[:, [0, 2]]) < footprint  # (p, n)
        d = torch.where(near, above[None], torch.full_like(near, math.inf, dtype=above.dtype)).amin(1)
        vals.append(1 - s_max * torch.exp(-beta * d))
    if vals:
        out = out.index_put((idx,), torch.cat(vals))
    return out.reshape(points.shape[:-1])


def render(means: Float[Tensor, "N 3"], covs: Float[Tensor, "N 3 3"], colors: Float[Tensor, "N 3"],
           opacities: Float[Tensor, " N"], cam: Camera, *, ground: float | None = 0.0, checker: float | str = 0.25,
           shadow_strength: float = 0.0, shadow_beta: float = 10.0, shadow_footprint: float = 0.05,
           background=(1.0, 1.0, 1.0), backend: str = "auto", tile: int = 16
           ) -> tuple[Float[Tensor, "H W 3"], Float[Tensor, "H W"]]:
    """Render Gaussians over a checkerboard ground (module docstring). Returns (rgb (H, W, 3), alpha (H, W) of the
    splats). ``ground=None`` renders no ground (an ablation); ``checker`` is the square size in metres, fixed in the
    world (:func:`board_size` for a rig), or ``"per-frame"``, the ablation that rescales it to a quarter of these
    Gaussians' bounding-box diagonal; ``shadow_beta`` (1/m) and ``shadow_footprint`` (m) shape the shadow;
    ``backend``: "auto" (gsplat on CUDA tensors when installed, else torch), "torch", "gsplat"."""
    N = means.shape[0]
    assert means.shape == (N, 3) and covs.shape == (N, 3, 3) and colors.shape == (N, 3) and opacities.shape == (N,)
    if ground is not None:
        opacities = torch.where(means[:, 1] >= ground, opacities, torch.zeros_like(opacities))  # below ground: none
    if backend == "auto":
        backend = "torch"
        if means.is_cuda:
            try:
                import gsplat  # noqa: F401

                backend = "gsplat"
            except ImportError:
                pass
    if backend == "gsplat":
        rgb, T = _rasterize_gsplat(means, covs, colors, opacities, cam)
    elif backend == "torch":
        rgb, T = _rasterize_torch(means, covs, colors, opacities, cam, tile)
    else:
        raise ValueError(f"unknown backend {backend!r}; use auto, torch or gsplat")
    bg = torch.tensor(background, dtype=rgb.dtype, device=rgb.device).expand_as(rgb)
    if ground is not None:
        if checker == "per-frame":  # the ablation: the board rescales with the pose (usdposer before Step 12)
            checker = 0.25 * (float((means.detach().amax(0) - means.detach().amin(0)).norm()) or 1.0)
        P, hit = ground_rays(cam, ground, rgb.dtype, rgb.device)
        floor = checkerboard(P, float(checker))
        if shadow_strength > 0:
            floor = floor * shadow(P, means.to(rgb.dtype), shadow_strength, shadow_beta, shadow_footprint,
                                   ground)[..., None]
        bg = torch.where(hit[..., None], floor, bg)
    return rgb + T[..., None] * bg, 1 - T
