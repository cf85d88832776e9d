"""Warp kernels for linear blend skinning, each with its torch twin in ``usdposer.core.skinning``:

    skin_points_kernel       <->  _skin_points_ref   (its adjoint is the backward)
    skin_points_fwd_kernel   <->  _skin_points_ref   (forward: one thread per vertex over all frames,
                                                      non-zero influences only, vertex ranges on every CPU core)
    blend_kernel +
    gaussian_apply_kernel    <->  _skin_gaussians_ref

Accumulation over influences writes into the zero-initialised output array (``out[b, v] += ...``) rather than a
local variable, because Warp's adjoint of a local reassigned inside a dynamic loop is not tracked.
The ``torch.autograd.Function`` wrappers launch the kernels' adjoints in ``backward``.
"""

from __future__ import annotations

import torch

from usdposer.core._warp import get_warp, warp_device

wp = get_warp()


@wp.kernel
def skin_points_kernel(
    points: wp.array(dtype=wp.vec3),  # (V,) bind-pose points
    indices: wp.array2d(dtype=wp.int32),  # (V, K)
    weights: wp.array2d(dtype=wp.float32),  # (V, K)
    mats: wp.array2d(dtype=wp.mat44),  # (B, J) skinning transforms, column-vector convention
    out: wp.array2d(dtype=wp.vec3),  # (B, V) zero-initialised
):
    b, v = wp.tid()
    p = points[v]
    for k in range(indices.shape[1]):
        out[b, v] += weights[v, k] * wp.transform_point(mats[b, indices[v, k]], p)


mat34 = wp.types.matrix(shape=(3, 4), dtype=wp.float32)


@wp.kernel
def skin_points_fwd_kernel(
    points: wp.array(dtype=wp.vec3),  # (V,)
    counts: wp.array(dtype=wp.int32),  # (V,) influences to read; those past the fourth must be sorted first
    indices: wp.array2d(dtype=wp.int32),  # (V, K)
    weights: wp.array2d(dtype=wp.float32),  # (V, K)
    mats: wp.array2d(dtype=mat34),  # (B, J) top three rows of the skinning transforms
    out: wp.array2d(dtype=wp.vec3),  # (B, V)
):
    """Forward-only twin of ``skin_points_kernel`` (same torch reference). One thread per vertex loops over all
    frames: its first four influences are held in registers, any further non-zero ones read in a loop; the 3x4
    matrices are blended, then applied once. About 3x faster than the adjoint-friendly kernel on CPU, but it has
    no usable adjoint."""
    v = wp.tid()
    p = points[v]
    n = counts[v]
    K = indices.shape[1]
    i0 = indices[v, 0]
    w0 = weights[v, 0]
    i1 = int(0)
    w1 = float(0.0)
    i2 = int(0)
    w2 = float(0.0)
    i3 = int(0)
    w3 = float(0.0)
    if K > 1:
        i1 = indices[v, 1]
        w1 = weights[v, 1]
    if K > 2:
        i2 = indices[v, 2]
        w2 = weights[v, 2]
    if K > 3:
        i3 = indices[v, 3]
        w3 = weights[v, 3]
    for b in range(mats.shape[0]):
        M = w0 * mats[b, i0] + w1 * mats[b, i1] + w2 * mats[b, i2] + w3 * mats[b, i3]
        for k in range(4, n):
            M = M + weights[v, k] * mats[b, indices[v, k]]
        out[b, v] = wp.vec3(M[0, 0] * p[0] + M[0, 1] * p[1] + M[0, 2] * p[2] + M[0, 3],
                            M[1, 0] * p[0] + M[1, 1] * p[1] + M[1, 2] * p[2] + M[1, 3],
                            M[2, 0] * p[0] + M[2, 1] * p[1] + M[2, 2] * p[2] + M[2, 3])


def _compact_influences(indices: torch.Tensor, weights: torch.Tensor):
    """Influences as the forward kernel reads them. Up to four per vertex are read as they are; with more, each
    vertex's are sorted by weight, descending, and counted, so the kernel skips padding (the dog skin pads to 11
    influences where most vertices use 2 to 4).

    indices, weights: (V, K) -> (indices (V, K) int32, weights (V, K) float32, counts (V,) int32)"""
    V, K = weights.shape
    if K <= 4:
        counts = torch.full((V,), K, dtype=torch.int32, device=weights.device)
        return indices.to(torch.int32).contiguous(), weights.detach().float().contiguous(), counts
    w, order = torch.sort(weights.detach().float(), dim=1, descending=True, stable=True)
    idx = torch.gather(indices, 1, order).to(torch.int32)
    counts = (w != 0).sum(1).to(torch.int32)
    return idx.contiguous(), w.contiguous(), counts.contiguous()


def _skin_points_forward(points, idx, weights, mats, out, threads: int) -> None:
    """Launch ``skin_points_fwd_kernel``; on CPU, vertex ranges run on ``threads`` threads (Warp's CPU backend
    runs one launch on one core and releases the GIL)."""
    device = warp_device(points)
    idx_s, w_s, counts = _compact_influences(idx, weights)
    m34 = _wp(mats[..., :3, :].contiguous(), mat34)
    V = points.shape[0]
    threads = max(1, min(threads, V // 1024)) if device == "cpu" else 1
    bounds = [(V * i) // threads for i in range(threads + 1)]

    def run(i):
        v0, v1 = bounds[i], bounds[i + 1]
        if v1 > v0:
            wp.launch(skin_points_fwd_kernel, dim=v1 - v0, device=device,
                      inputs=[_wp(points[v0:v1], wp.vec3), _wp(counts[v0:v1], wp.int32), _wp(idx_s[v0:v1], wp.int32),
                              _wp(w_s[v0:v1], wp.float32), m34],
                      outputs=[wp.from_torch(out[:, v0:v1], dtype=wp.vec3)])

    if threads == 1:
        run(0)
        return
    list(_pool(threads).map(run, range(threads)))


_POOLS: dict = {}


def _pool(threads: int):
    """One thread pool per size for the whole process (``check`` skins hundreds of chunks: a pool each cost more
    than the launches). Keyed by process too: a forked worker (``batch``) inherits the pool but not its threads."""
    import os

    key = (os.getpid(), threads)
    if key not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor

        _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="usdposer-skin")
    return _POOLS[key]


@wp.kernel
def blend_kernel(
    indices: wp.array2d(dtype=wp.int32),  # (N, K)
    weights: wp.array2d(dtype=wp.float32),  # (N, K)
    mats: wp.array2d(dtype=wp.mat44),  # (B, J)
    out: wp.array2d(dtype=wp.mat44),  # (B, N) zero-initialised blended transforms
):
    b, n = wp.tid()
    for k in range(indices.shape[1]):
        out[b, n] += weights[n, k] * mats[b, indices[n, k]]


@wp.kernel
def gaussian_apply_kernel(
    means: wp.array(dtype=wp.vec3),  # (N,)
    covs: wp.array(dtype=wp.mat33),  # (N,)
    blended: wp.array2d(dtype=wp.mat44),  # (B, N)
    out_means: wp.array2d(dtype=wp.vec3),  # (B, N)
    out_covs: wp.array2d(dtype=wp.mat33),  # (B, N)
):
    b, n = wp.tid()
    M = blended[b, n]
    A = wp.mat33(M[0, 0], M[0, 1], M[0, 2], M[1, 0], M[1, 1], M[1, 2], M[2, 0], M[2, 1], M[2, 2])
    out_means[b, n] = A * means[n] + wp.vec3(M[0, 3], M[1, 3], M[2, 3])
    out_covs[b, n] = A * covs[n] * wp.transpose(A)


def _wp(t: torch.Tensor, dtype):
    # detached: gradients flow through the autograd.Function below, not through Warp's torch interop
    return wp.from_torch(t.detach().contiguous(), dtype=dtype, requires_grad=False)


def _zeros_like(t: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(t, memory_format=torch.contiguous_format)


class SkinPoints(torch.autograd.Function):
    """``skin_points_kernel`` with its adjoint as backward. Inputs float32, indices any integer dtype."""

    @staticmethod
    def forward(ctx, points, indices, weights, mats):
        idx = indices.to(torch.int32).contiguous()
        B, V = mats.shape[0], points.shape[0]
        out = torch.empty(B, V, 3, dtype=torch.float32, device=points.device)
        _skin_points_forward(points, idx, weights, mats, out, torch.get_num_threads())
        ctx.save_for_backward(points, idx, weights, mats)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        points, idx, weights, mats = ctx.saved_tensors
        device = warp_device(points)
        B, V = mats.shape[0], points.shape[0]
        g_points, g_weights, g_mats = _zeros_like(points), _zeros_like(weights), _zeros_like(mats)
        out = torch.zeros(B, V, 3, dtype=torch.float32, device=points.device)
        wp.launch(skin_points_kernel, dim=(B, V), device=device,
                  inputs=[_wp(points, wp.vec3), _wp(idx, wp.int32), _wp(weights, wp.float32), _wp(mats, wp.mat44)],
                  outputs=[_wp(out, wp.vec3)],
                  adj_inputs=[_wp(g_points, wp.vec3), None, _wp(g_weights, wp.float32), _wp(g_mats, wp.mat44)],
                  adj_outputs=[_wp(grad_out.float(), wp.vec3)], adjoint=True)
        return g_points, None, g_weights, g_mats


class SkinGaussians(torch.autograd.Function):
    """``blend_kernel`` then ``gaussian_apply_kernel``, with both adjoints (in reverse order) as backward."""

    @staticmethod
    def _forward(means, covs, idx, weights, mats):
        device = warp_device(means)
        B, N = mats.shape[0], means.shape[0]
        blended = torch.zeros(B, N, 4, 4, dtype=torch.float32, device=means.device)
        mu = torch.zeros(B, N, 3, dtype=torch.float32, device=means.device)
        cov = torch.zeros(B, N, 3, 3, dtype=torch.float32, device=means.device)
        wp.launch(blend_kernel, dim=(B, N), device=device,
                  inputs=[_wp(idx, wp.int32), _wp(weights, wp.float32), _wp(mats, wp.mat44)],
                  outputs=[_wp(blended, wp.mat44)])
        wp.launch(gaussian_apply_kernel, dim=(B, N), device=device,
                  inputs=[_wp(means, wp.vec3), _wp(covs, wp.mat33), _wp(blended, wp.mat44)],
                  outputs=[_wp(mu, wp.vec3), _wp(cov, wp.mat33)])
        return blended, mu, cov

    @staticmethod
    def forward(ctx, means, covs, indices, weights, mats):
        idx = indices.to(torch.int32).contiguous()
        blended, mu, cov = SkinGaussians._forward(means, covs, idx, weights, mats)
        ctx.save_for_backward(means, covs, idx, weights, mats, blended)
        return mu, cov

    @staticmethod
    def backward(ctx, g_mu, g_cov):
        means, covs, idx, weights, mats, blended = ctx.saved_tensors
        device = warp_device(means)
        B, N = mats.shape[0], means.shape[0]
        g_mu = torch.zeros_like(blended[..., :3, 0]) if g_mu is None else g_mu.float()
        g_cov = torch.zeros_like(blended[..., :3, :3]) if g_cov is None else g_cov.float()
        g_means, g_covs, g_weights, g_mats = map(_zeros_like, (means, covs, weights, mats))
        g_blended = _zeros_like(blended)
        mu = torch.zeros(B, N, 3, dtype=torch.float32, device=means.device)
        cov = torch.zeros(B, N, 3, 3, dtype=torch.float32, device=means.device)
        # 1. adjoint of gaussian_apply_kernel: d/d(means, covs, blended)
        wp.launch(gaussian_apply_kernel, dim=(B, N), device=device,
                  inputs=[_wp(means, wp.vec3), _wp(covs, wp.mat33), _wp(blended, wp.mat44)],
                  outputs=[_wp(mu, wp.vec3), _wp(cov, wp.mat33)],
                  adj_inputs=[_wp(g_means, wp.vec3), _wp(g_covs, wp.mat33), _wp(g_blended, wp.mat44)],
                  adj_outputs=[_wp(g_mu, wp.vec3), _wp(g_cov, wp.mat33)], adjoint=True)
        # 2. adjoint of blend_kernel: d/d(weights, mats)
        wp.launch(blend_kernel, dim=(B, N), device=device,
                  inputs=[_wp(idx, wp.int32), _wp(weights, wp.float32), _wp(mats, wp.mat44)],
                  outputs=[_wp(torch.zeros_like(blended), wp.mat44)],
                  adj_inputs=[None, _wp(g_weights, wp.float32), _wp(g_mats, wp.mat44)],
                  adj_outputs=[_wp(g_blended, wp.mat44)], adjoint=True)
        return g_means, g_covs, None, g_weights, g_mats
