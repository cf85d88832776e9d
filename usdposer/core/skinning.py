"""Linear blend skinning of points and of 3D Gaussians (means and covariances).

Two backends behind one function each:
    - torch reference (``_skin_points_ref``, ``_skin_gaussians_ref``): any dtype and device, autograd by torch;
    - Warp kernels (``usdposer.core._warp_skinning``), float32, CPU and CUDA, wrapped in ``torch.autograd.Function``
      whose backward launches the kernels' adjoints. Tests compare forward and vector-Jacobian products of the two.

Notation (per point v, influences k):
    p'_v = sum_k w_vk M_{j_vk} [p_v; 1]                     (M = world @ inv(bind), the skinning transforms)
    Gaussians: A_v = sum_k w_vk M_{j_vk}[:3, :3] (the LBS Jacobian), mu'_v = A_v mu_v + sum_k w_vk M[:3, 3],
               Sigma'_v = A_v Sigma_v A_v^T
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor

BACKENDS = ("auto", "torch", "warp")


def _check(points: Tensor, indices: Tensor, weights: Tensor, mats: Tensor) -> None:
    V, K = indices.shape
    assert points.shape == (V, 3), f"points {tuple(points.shape)} vs indices {tuple(indices.shape)}"
    assert weights.shape == (V, K), f"weights {tuple(weights.shape)} vs indices {tuple(indices.shape)}"
    assert mats.dim() == 4 and mats.shape[-2:] == (4, 4), f"skinning transforms {tuple(mats.shape)} != (B, J, 4, 4)"


def _blend(indices: Tensor, weights: Tensor, mats: Tensor) -> Float[Tensor, "B V 3 4"]:
    """``sum_k w_vk M_{j_vk}[:3, :]`` for every vertex (the shared first step of both references)."""
    blended = None
    for k in range(indices.shape[1]):
        Mk = mats[:, indices[:, k], :3, :]  # (B, V, 3, 4)
        term = weights[None, :, k, None, None] * Mk
        blended = term if blended is None else blended + term
    return blended


def _skin_points_ref(
    points: Float[Tensor, "V 3"], indices: Int[Tensor, "V K"], weights: Float[Tensor, "V K"],
    mats: Float[Tensor, "B J 4 4"],
) -> Float[Tensor, "B V 3"]:
    """Torch reference of the Warp kernel ``skin_points_kernel``."""
    A = _blend(indices, weights, mats)  # (B, V, 3, 4)
    return (A[..., :3] @ points[None, :, :, None]).squeeze(-1) + A[..., 3]  # (B, V, 3)


def skin_vectors(
    vectors: Float[Tensor, "B V 3"], indices: Int[Tensor, "V K"], weights: Float[Tensor, "V K"],
    mats: Float[Tensor, "B J 4 4"],
) -> Float[Tensor, "B V 3"]:
    """Per-frame bind-pose displacements (blend-shape offsets) carried by the skinning's linear part: linear blend
    skinning is linear in the points, so ``LBS(p + d) = LBS(p) + skin_vectors(d)``."""
    A = _blend(indices, weights, mats)  # (B, V, 3, 4)
    return (A[..., :3] @ vectors[..., None]).squeeze(-1)


def skinned_heights(
    points: Float[Tensor, "V 3"], indices: Int[Tensor, "V K"], weights: Float[Tensor, "V K"],
    mats: Float[Tensor, "B J 4 4"], select: Int[Tensor, "B S"] | None = None,
) -> Float[Tensor, "B V"]:
    """The y coordinate of :func:`linear_blend_skinning` alone, from row 1 of each transform (the ground terms of
    guided IK need no more; a third of the work, and of the backward pass). ``select``: per batch element, the
    ``S`` vertices to skin (``(B, S)`` heights in that order)."""
    import torch

    _check(points, indices, weights, mats)
    ph = torch.cat([points, torch.ones_like(points[:, :1])], -1).to(mats)  # (V, 4)
    rows = mats[:, :, 1, :]  # (B, J, 4)
    w = weights.to(mats)
    if select is None:
        return ((rows[:, indices] * ph[None, :, None, :]).sum(-1) * w).sum(-1)  # (B, V)
    b = torch.arange(len(mats), device=mats.device)[:, None, None]
    picked = rows[b, indices[select]]  # (B, S, K, 4)
    return ((picked * ph[select][:, :, None, :]).sum(-1) * w[select]).sum(-1)  # (B, S)


def _skin_gaussians_ref(
    means: Float[Tensor, "N 3"], covs: Float[Tensor, "N 3 3"], indices: Int[Tensor, "N K"],
    weights: Float[Tensor, "N K"], mats: Float[Tensor, "B J 4 4"],
) -> tuple[Float[Tensor, "B N 3"], Float[Tensor, "B N 3 3"]]:
    """Torch reference of the Warp kernels ``blend_kernel`` + ``gaussian_apply_kernel``."""
    A = _blend(indices, weights, mats)  # (B, N, 3, 4)
    J = A[..., :3]  # (B, N, 3, 3) LBS Jacobian
    mu = (J @ means[None, :, :, None]).squeeze(-1) + A[..., 3]  # (B, N, 3)
    cov = J @ covs[None] @ J.transpose(-1, -2)  # (B, N, 3, 3)
    return mu, cov


def _use_warp(backend: str, *tensors: Tensor) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"unknown skinning backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return False
    if backend == "warp":
        return True
    # auto: Warp when it imports and the device is one Warp runs on
    try:
        import warp  # noqa: F401
    except ImportError:
        return False
    return all(t.device.type in ("cpu", "cuda") for t in tensors)


def linear_blend_skinning(
    points: Float[Tensor, "V 3"],
    indices: Int[Tensor, "V K"],
    weights: Float[Tensor, "V K"],
    skin_mats: Float[Tensor, "B J 4 4"],
    backend: str = "auto",
) -> Float[Tensor, "B V 3"]:
    """Skin bind-pose points with per-frame skinning transforms.

    Args:
        points: ``(V, 3)`` bind-pose points in skeleton space.
        indices: ``(V, K)`` joint index per influence.
        weights: ``(V, K)`` weight per influence (not renormalised here).
        skin_mats: ``(B, J, 4, 4)`` ``world @ inv(bind)`` per frame and joint.
        backend: ``"torch"``, ``"warp"`` (float32 compute; other dtypes are cast and cast back) or ``"auto"``.

    Returns:
        ``(B, V, 3)`` skinned points in skeleton space, differentiable w.r.t. points, weights and transforms.
    """
    _check(points, indices, weights, skin_mats)
    if not _use_warp(backend, points, skin_mats):
        return _skin_points_ref(points, indices, weights, skin_mats)
    from usdposer.core._warp_skinning import SkinPoints

    dtype = points.dtype
    out = SkinPoints.apply(points.float(), indices, weights.float(), skin_mats.float())
    return out.to(dtype)


def skin_gaussians(
    means: Float[Tensor, "N 3"],
    covs: Float[Tensor, "N 3 3"],
    indices: Int[Tensor, "N K"],
    weights: Float[Tensor, "N K"],
    skin_mats: Float[Tensor, "B J 4 4"],
    backend: str = "auto",
) -> tuple[Float[Tensor, "B N 3"], Float[Tensor, "B N 3 3"]]:
    """Move Gaussians with LBS: ``mu' = A mu + b`` and ``Sigma' = A Sigma A^T`` with ``A = sum_k w_k R_k``.

    Args:
        means: ``(N, 3)`` bind-pose means; ``covs``: ``(N, 3, 3)`` bind-pose covariances.
        indices, weights: ``(N, K)`` influences; ``skin_mats``: ``(B, J, 4, 4)``.

    Returns:
        ``(B, N, 3)`` means and ``(B, N, 3, 3)`` covariances, differentiable w.r.t. every floating input.
    """
    _check(means, indices, weights, skin_mats)
    assert covs.shape == (means.shape[0], 3, 3), f"covs {tuple(covs.shape)} vs means {tuple(means.shape)}"
    if not _use_warp(backend, means, skin_mats):
        return _skin_gaussians_ref(means, covs, indices, weights, skin_mats)
    from usdposer.core._warp_skinning import SkinGaussians

    dtype = means.dtype
    mu, cov = SkinGaussians.apply(means.float(), covs.float(), indices, weights.float(), skin_mats.float())
    return mu.to(dtype), cov.to(dtype)
