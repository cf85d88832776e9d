"""Energies that guide poses: small composable terms, each a weighted residual (Newton's ``IKObjective`` style).

An :class:`Energy` is ``name``, ``weight`` and ``residual(x) -> (B, R)``; :func:`total_energy` sums
``weight * ||residual||^2`` per batch element. Guided sampling (:meth:`PosePrior.guided_sample`) and the damped
least-squares baseline (:func:`usdposer.core.ik.dls_ik`) consume the same terms (physics tracking has its own loss,
``usdposer.physics.tracking``). Pure torch.
Lengths are divided by a ``scale`` (the character's height) so that weights do not depend on the character's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor


@dataclass
class Energy:
    """One term: ``weight * ||residual(x)||^2``; ``residual`` maps a batch to ``(B, R)``."""

    name: str
    residual: Callable[[Tensor], Tensor]
    weight: float = 1.0


def total_energy(terms: list[Energy], x: Tensor) -> Float[Tensor, " B"]:
    """``sum_k w_k ||r_k(x)||^2`` per batch element."""
    out = None
    for term in terms:
        e = term.weight * (term.residual(x) ** 2).sum(-1)  # (B,)
        out = e if out is None else out + e
    assert out is not None, "total_energy needs at least one term"
    return out


def position_residual(
    positions: Float[Tensor, "B J 3"], joints: Int[Tensor, " H"], targets: Float[Tensor, "H 3"],
    weights: Float[Tensor, " H"], scale: float = 1.0,
) -> Float[Tensor, "B R"]:
    """IK handles and pins: ``sqrt(w_h) (p_{j_h} - target_h) / scale``, flattened to ``(B, 3H)``."""
    d = positions[:, joints] - targets.to(positions)  # (B, H, 3)
    return (d * weights.to(positions).sqrt()[:, None] / scale).flatten(1)  # (B, 3H)


GROUND_POINTS = 16  # the ground term keeps this many deepest points


def ground_residual(heights: Float[Tensor, "B N"], scale: float = 1.0, k: int | None = GROUND_POINTS) -> Float[Tensor, "B K"]:
    """Ground penetration: ``max(0, -y) / scale`` for points at heights ``y`` above the ground plane, keeping the
    ``k`` deepest points (None: all) so that a Gauss-Newton Jacobian stays small for meshes of thousands of points."""
    return largest(torch.relu(-heights) / scale, k)


def largest(residual: Float[Tensor, "B R"], k: int | None) -> Float[Tensor, "B K"]:
    """The ``k`` largest entries of a non-negative residual (all when ``k`` is None or R <= k): the energy of the
    worst offenders, with a Jacobian of k rows instead of R (hinge residuals are zero almost everywhere)."""
    if k is None or residual.shape[1] <= k:
        return residual
    return residual.topk(k, dim=1).values  # (B, k)
