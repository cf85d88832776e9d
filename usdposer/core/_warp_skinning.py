"""Warp kernels for linear blend skinning, each with its torch twin in ``usdposer.core.skinning``:

    skin_points_kernel       <->  _skin_points_ref   (its adjoint is the backward)
    skin_points_fwd_kernel   <->  _skin_points_ref   (forward: local accumulator, zero weights skipped, frame
                                                      chunks on every CPU core)
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


@wp.kernel
def skin_points_fwd_kernel(
    points: wp.array(dtype=wp.vec3),  # (V,)
    indices: wp.array2d(dtype=wp.int32),  # (V, K)
    weights: wp.array2d(dtype=wp.float32),  # (V, K)
    mats: wp.array2d(dtype=wp.mat44),  # (B, J)
    out: wp.array2d(dtype=wp.vec3),  # (B, V)
):
    """Forward-only twin of ``skin_points_kernel`` (same torch reference): a local accumulator and zero weights
    skipped, which is faster but has no usable adjoint."""
    b, v = wp.tid()
    p = points[v]
    acc = wp.vec3(0.0, 0.0, 0.0)
    for k in range(indices.shape[1]):
        w = weights[v, k]
        if w != 0.0:
            acc = acc + w * wp.transform_point(mats[b, indices[v, k]], p)
    out[b, v] = acc


def _launch_chunked(kernel, B: int, V: int, device: str, arrays_b: list, arrays_shared: list, threads: int) -> None:
    """Launch ``kernel`` over (B, V) in frame chunks on several threads: Warp's CPU backend runs one launch on one
    core and releases the GIL, so chunks over frames use every core. ``arrays_b`` are sliced along frames."""
    if device != "cpu" or threads <= 1 or B < 2:
        full = [_wp(t, dt) for t, dt in arrays_b]
        wp.launch(kernel, dim=(B, V), device=device, inputs=arrays_shared + full[:-1], outputs=full[-1:])
        return
    from concurrent.futures import ThreadPoolExecutor

    bounds = [(B * i) // threads for i in range(threads + 1)]

    def run(i):
        b0, b1 = bounds[i], bounds[i + 1]
        if b1 > b0:
            sliced = [_wp(t[b0:b1], dt) for t, dt in arrays_b]
            wp.launch(kernel, dim=(b1 - b0, V), device=device, inputs=arrays_shared + sliced[:-1], outputs=sliced[-1:])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))


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
        device = warp_device(points)
        idx = indices.to(torch.int32).contiguous()
        B, V = mats.shape[0], points.shape[0]
        out = torch.empty(B, V, 3, dtype=torch.float32, device=points.device)
        shared = [_wp(points, wp.vec3), _wp(idx, wp.int32), _wp(weights, wp.float32)]
        if device == "cpu":
            _launch_chunked(skin_points_fwd_kernel, B, V, device, [(mats.contiguous(), wp.mat44), (out, wp.vec3)],
                            shared, torch.get_num_threads())
        else:
            wp.launch(skin_points_fwd_kernel, dim=(B, V), device=device, inputs=shared + [_wp(mats, wp.mat44)],
                      outputs=[_wp(out, wp.vec3)])
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
