"""A rigged asset as 3D Gaussians (AKD section 3): flat Gaussians on the mesh surface, skinned with the mesh.

Each Gaussian sits at an area-uniform sample of a triangle, oriented with the triangle (two in-plane axes of
length ``sqrt(area per Gaussian)`` times ``spread``, a thin normal axis), coloured by the base-colour texture at the
sample's UV (or the mesh's display colour), and skinned by the barycentric interpolation of its triangle's vertex
weights (top K kept, renormalised). LBS then moves means and covariances together: ``mu' = A mu + b``,
``Sigma' = A Sigma A^T`` with ``A = sum_k w_k R_k`` (``usdposer.core.skinning.skin_gaussians``, Warp with a torch
twin).

Shapes: N Gaussians, K influences, B poses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from usdposer.io.texture import albedo, readable

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor

    from usdposer.types import Pose, Rig


@dataclass(frozen=True)
class GaussianAsset:
    """Gaussians of a rig in skeleton space at bind time (metres).

    Attributes:
        means: (N, 3) centres.
        covs: (N, 3, 3) covariances.
        colors: (N, 3) linear RGB in [0, 1].
        opacities: (N,) in [0, 1].
        indices: (N, K) joint indices; weights: (N, K) skin weights summing to 1.
        normals: (N, 3) unit normals of the source triangles.
    """

    means: Float[Tensor, "N 3"]
    covs: Float[Tensor, "N 3 3"]
    colors: Float[Tensor, "N 3"]
    opacities: Float[Tensor, " N"]
    indices: Int[Tensor, "N K"]
    weights: Float[Tensor, "N K"]
    normals: Float[Tensor, "N 3"]

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GaussianAsset:
        """Copy with the floating tensors cast to ``dtype`` and every tensor moved to ``device``."""
        from dataclasses import fields, replace

        def cast(t):
            return t.to(device=device, dtype=dtype if t.is_floating_point() and dtype is not None else t.dtype)

        return replace(self, **{f.name: cast(getattr(self, f.name)) for f in fields(self)})

    def posed(self, rig: Rig, pose: Pose, backend: str = "auto") -> tuple[Float[Tensor, "B N 3"], Float[Tensor, "B N 3 3"]]:
        """Means (B, N, 3) and covariances (B, N, 3, 3) of every pose, differentiable in the pose."""
        from usdposer.core.kinematics import skinning_transforms
        from usdposer.core.posing import joint_transforms
        from usdposer.core.skinning import skin_gaussians

        S = skinning_transforms(joint_transforms(rig, pose), rig.bind_world.to(pose.rotations))
        return skin_gaussians(self.means.to(S), self.covs.to(S), self.indices, self.weights.to(S), S, backend=backend)


def _colors(m, face: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """(n, 3) linear colours of points on triangles ``face`` (n,) at barycentrics ``bary`` (n, 3): the texel of their
    look's texture at the interpolated UV, or the look's display colour (the mesh's or its GeomSubset's)."""
    corners = m.face_uvs()  # (F, 3, 2)
    col = torch.empty(len(face), 3, dtype=torch.float64)
    look_of = torch.empty(len(m.faces), dtype=torch.long)
    looks = m.looks()
    for k, look in enumerate(looks):
        look_of[look.faces] = k
    for k, look in enumerate(looks):
        sel = look_of[face] == k
        if not sel.any():
            continue
        col[sel] = torch.tensor(look.color, dtype=torch.float64)
        if corners is None or not readable(look.texture):
            continue
        uv = (corners.double()[face[sel]] * bary[sel][..., None]).sum(1).numpy()  # (n, 2), origin bottom-left
        lin = torch.from_numpy(albedo(look.texture, uv, look.sampler))  # linear, tinted, wrapped
        col[sel] = torch.where(lin.isnan(), col[sel], lin)  # no texel (a missing tile): the colour
    return col


def gaussians_from_rig(rig: Rig, count: int = 20_000, *, influences: int = 4, spread: float = 0.7,
                       thickness: float = 0.05, opacity: float = 0.9,
                       generator: torch.Generator | None = None) -> GaussianAsset:
    """Sample ``count`` flat Gaussians over every mesh of ``rig`` (module docstring), split by surface area.

    ``spread`` scales the in-plane standard deviation relative to the sample spacing ``sqrt(area / count)``;
    ``thickness`` is the normal-axis deviation relative to the in-plane one."""
    from usdposer.errors import RigError

    if not rig.meshes:
        raise RigError(f"{rig.source or rig.name}: the rig has no skinned mesh to turn into Gaussians")
    g = generator or torch.Generator().manual_seed(0)
    J = rig.num_joints
    areas = []
    for m in rig.meshes:
        P, F = m.points.double(), m.faces.long()
        areas.append(torch.linalg.cross(P[F[:, 1]] - P[F[:, 0]], P[F[:, 2]] - P[F[:, 0]]).norm(dim=1) / 2)
    total = float(sum(a.sum() for a in areas)) or 1.0
    sigma = spread * (total / count) ** 0.5  # in-plane standard deviation, metres
    parts = []
    for m, area in zip(rig.meshes, areas):
        n = max(1, round(count * float(area.sum()) / total))
        P, F = m.points.double(), m.faces.long()
        face = torch.multinomial(area.float().clamp(min=1e-30), n, replacement=True, generator=g)  # (n,)
        u, v = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64)
        flip = u + v > 1
        u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
        bary = torch.stack([1 - u - v, u, v], 1)  # (n, 3)
        tri = F[face]  # (n, 3)
        mean = (P[tri] * bary[..., None]).sum(1)  # (n, 3)
        # 1. frame of the triangle: e1 along an edge, normal, e2 = n x e1
        e1 = P[tri[:, 1]] - P[tri[:, 0]]
        nrm = torch.linalg.cross(e1, P[tri[:, 2]] - P[tri[:, 0]])
        nrm = nrm / nrm.norm(dim=1, keepdim=True).clamp(min=1e-30)
        e1 = e1 / e1.norm(dim=1, keepdim=True).clamp(min=1e-30)
        e2 = torch.linalg.cross(nrm, e1)
        R = torch.stack([e1, e2, nrm], 2)  # (n, 3, 3) columns = axes
        s = torch.tensor([sigma, sigma, sigma * thickness], dtype=torch.float64)
        cov = R @ torch.diag_embed(s.expand(n, 3) ** 2) @ R.transpose(1, 2)  # (n, 3, 3)
        # 2. colour: texture at the interpolated UV, or the display colour
        col = _colors(m, face, bary)
        # 3. skin weights: barycentric blend of the triangle's vertex weights, top K
        w = torch.zeros(len(m.points), J, dtype=torch.float64)
        w.scatter_add_(1, m.joint_indices.long(), m.joint_weights.double())  # (V, J)
        wb = (w[tri] * bary[..., None]).sum(1)  # (n, J)
        top_w, top_i = wb.topk(min(influences, J), dim=1)
        top_w = top_w / top_w.sum(1, keepdim=True).clamp(min=1e-12)
        parts.append((mean, cov, col, top_i, top_w, nrm))
    cat = lambda k: torch.cat([p[k] for p in parts])  # noqa: E731
    N = sum(len(p[0]) for p in parts)
    return GaussianAsset(means=cat(0), covs=cat(1), colors=cat(2).clamp(0, 1), opacities=torch.full((N,), opacity,
                         dtype=torch.float64), indices=cat(3), weights=cat(4), normals=cat(5))
