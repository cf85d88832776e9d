"""Warp kernel of the PD-target interpolation inside a tracking chunk (torch twin: ``torch.lerp``)."""

from __future__ import annotations

from usdposer.core._warp import get_warp

wp = get_warp()


@wp.kernel
def lerp_kernel(a: wp.array(dtype=float), b: wp.array(dtype=float), s: float, out: wp.array(dtype=float)):
    """out = a + s (b - a), per joint coordinate."""
    i = wp.tid()
    out[i] = a[i] + s * (b[i] - a[i])
