"""``usdposer fit``: per-frame skeleton poses fitted to a mesh or point-cloud sequence (the ViPS data step).

Per frame t, with the rig's skinned surface X(theta_t) and the frame's points Y_t (any topology, no correspondence):

    E(theta_t) = CD(X_s(theta_t), Y_t) / h^2                          symmetric Chamfer, squared, over surface samples
               + w_edge * mean_e ((|e(theta_t)| - |e_0|) / |e_0|)^2    mesh edge lengths against the bind pose
               + w_smooth * (|omega_t|^2 + |delta_t|^2 / h^2)          temporal smoothness

theta_t = (q_t, r_t, e_t): joint-local rotations ``q_t = exp(omega_t) (x) q_{t-1}``, the main root's translation
``r_t = r_{t-1} + delta_t`` and, for a skeleton forest, every secondary root that sits on the main tree at rest (a
horse's hoof IK targets, ``usdposer.core.posing.root_attachments``) placed where its joint holds it plus a small
free offset ``e_t[k]`` (a kick may stretch a leg past its reach), with ``+ w_attach * sum_k |e_t[k]|^2 / h^2`` in E;
each frame initialised from the previous one (the first from the rest pose, its root placed on the frame's
centroid). h is the character's height. Bone lengths are the rig's own (rotations only), so the
ViPS edge-length term acts on the skinned mesh's edges, which keeps LBS from collapsing limbs to reach points.
Adam optimises each frame; the residual reported is the Chamfer RMS distance in % of height.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from usdposer.errors import InputError


@dataclass
class FitConfig:
    iterations: int = 60  # Adam steps per frame
    first_iterations: int = 300  # for the first frame, which starts from the rest pose
    lr: float = 0.03  # radians per step for the rotation deltas
    edge_weight: float = 1e-3  # LBS itself changes edge lengths near joints: a strong term fights the true pose
    smooth_weight: float = 1e-5  # per frame the data term is ~1e-4: a larger weight makes the fit lag the motion
    samples: int = 8000  # rig surface samples in the Chamfer term (and at most twice as many frame points)
    seed: int = 0
    extrapolate: bool = True  # start each frame from a constant-velocity prediction (after the first two)
    attach: float = 0.5  # a secondary root this close to the main tree at rest (x height) rides with its joint
    attach_weight: float = 1e-2  # its free offset from where the joint holds it (/ h, squared)


def chamfer(a: torch.Tensor, b: torch.Tensor, b_tree=None) -> torch.Tensor:
    """Symmetric squared Chamfer distance between point sets a (N, 3) and b (M, 3), the mean over both directions.
    Nearest neighbours come from k-d trees (no gradient; ``b_tree`` may be given), distances are differentiable."""
    from scipy.spatial import cKDTree

    an = a.detach().cpu().numpy()
    b_tree = b_tree or cKDTree(b.detach().cpu().numpy())
    ab = torch.as_tensor(b_tree.query(an)[1], device=a.device)  # (N,) nearest b of each a
    ba = torch.as_tensor(cKDTree(an).query(b.detach().cpu().numpy())[1], device=a.device)  # (M,)
    return ((a - b[ab]) ** 2).sum(-1).mean() + ((b - a[ba]) ** 2).sum(-1).mean()


@dataclass
class RigSurface:
    """The rig's meshes as one skinned surface: bind points (V, 3), indices/weights (V, K), unique edges (E, 2), the
    skinned rest pose ``rest`` (V, 3) and its edge lengths ``rest_len`` (E,) (measured posed, because bind points may
    sit at another scale than the posed skeleton), and fixed surface samples for the Chamfer term: (S, 3) vertex
    indices of their triangles and (S, 3) barycentric coordinates (area-uniform)."""

    points: torch.Tensor
    indices: torch.Tensor
    weights: torch.Tensor
    edges: torch.Tensor
    tri: torch.Tensor
    bary: torch.Tensor
    rest: torch.Tensor | None = None
    rest_len: torch.Tensor | None = None
    main: int = 0  # the main tree's root, whose translation is fitted
    attached: list = ()  # (root, joint, offset (3,)) secondary roots riding their joints (posing.root_attachments)

    def samples(self, X: torch.Tensor) -> torch.Tensor:
        """(S, 3) surface samples of the skinned points X (V, 3)."""
        return (X[self.tri] * self.bary[..., None]).sum(1)

    @classmethod
    def from_rig(cls, rig, samples: int, generator: torch.Generator, attach: float = 0.5) -> RigSurface:
        if not rig.meshes:
            raise InputError(f"{rig.source}: the rig has no skinned mesh to fit; skin it first (`usdposer skin`)")
        K = max(m.num_influences for m in rig.meshes)
        pad = lambda t, v: torch.nn.functional.pad(t, (0, K - t.shape[1]), value=v)  # noqa: E731
        offs = np.cumsum([0] + [m.num_points for m in rig.meshes])
        P = torch.cat([m.points.double() for m in rig.meshes])
        I = torch.cat([pad(m.joint_indices.long(), 0) for m in rig.meshes])
        W = torch.cat([pad(m.joint_weights.double(), 0.0) for m in rig.meshes])
        F = torch.cat([m.faces.long() + int(o) for m, o in zip(rig.meshes, offs)])
        e = torch.cat([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]).sort(1).values.unique(dim=0)  # (E, 2)
        L0 = (P[e[:, 0]] - P[e[:, 1]]).norm(dim=1)
        keep = L0 > 1e-9 * float(P.abs().max())
        area = torch.linalg.cross(P[F[:, 1]] - P[F[:, 0]], P[F[:, 2]] - P[F[:, 0]]).norm(dim=1)
        face = torch.multinomial(area.float(), samples, replacement=True, generator=generator)
        u, v = torch.rand(samples, generator=generator, dtype=torch.float64), torch.rand(samples, generator=generator, dtype=torch.float64)
        flip = u + v > 1
        u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
        bary = torch.stack([1 - u - v, u, v], 1)
        from usdposer.core.posing import main_root, root_attachments
        from usdposer.types import Pose

        base = Pose.rest(rig)
        surf = cls(P, I, W, e[keep], F[face], bary, main=main_root(rig), attached=root_attachments(rig, base, attach))
        X = surf.skin(rig, base.rotations[0], base.translations[0, surf.main], base)  # (V, 3)
        h = float(X[:, 1].max() - X[:, 1].min())  # posing.character_height of the same points
        surf.rest = X
        surf.rest_len = (X[surf.edges[:, 0]] - X[surf.edges[:, 1]]).norm(dim=1).clamp(min=1e-9 * h)
        return surf

    def pose(self, rig, rotations: torch.Tensor, root: torch.Tensor, base, offsets: torch.Tensor | None = None):
        """The Pose (batch 1) of rotations (J, 4), the main root's translation (3,) and the attached roots' offsets
        (A, 3) from where their joints hold them (None: zero); free roots (props) and scales as in ``base``."""
        from usdposer.core.posing import attach_roots
        from usdposer.types import Pose

        t = base.translations.clone()
        t[:, self.main] = root
        pose = attach_roots(rig, Pose(rotations[None], t, base.scales), self.attached)
        if offsets is None or not self.attached:
            return pose
        t = pose.translations.clone()
        t[0, [r for r, _, _ in self.attached]] += offsets
        return Pose(pose.rotations, t, pose.scales)

    def skin(self, rig, rotations: torch.Tensor, root: torch.Tensor, base, offsets: torch.Tensor | None = None
             ) -> torch.Tensor:
        """Skinned points (V, 3) for one pose (:meth:`pose`)."""
        from usdposer.core.kinematics import forward_kinematics, pose_local_transforms, skinning_transforms
        from usdposer.core.skinning import linear_blend_skinning

        pose = self.pose(rig, rotations, root, base, offsets)
        S = skinning_transforms(forward_kinematics(pose_local_transforms(pose), rig.parents), rig.bind_world.to(rotations))
        return linear_blend_skinning(self.points, self.indices, self.weights, S, backend="torch")[0]


def _minimise(surf, rig, base, q, root, Y, tree, omega, delta, offsets, h: float, cfg: FitConfig, first: bool) -> None:
    """L-BFGS on the rotation deltas ``omega`` (J, 3), root delta ``delta`` (3,) and attached roots' offsets
    ``offsets`` (A, 3) of one frame (module docstring)."""
    from usdposer.core.rotations import axis_angle_to_quat, quat_multiply, quat_normalize

    opt = torch.optim.LBFGS([omega, delta, offsets], lr=1.0, max_iter=cfg.first_iterations if first else cfg.iterations,
                            history_size=20, line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                            tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        qt = quat_normalize(quat_multiply(axis_angle_to_quat(omega), q))
        X = surf.skin(rig, qt, root + delta, base, offsets)
        e = (X[surf.edges[:, 0]] - X[surf.edges[:, 1]]).norm(dim=1)
        loss = (chamfer(surf.samples(X), Y, tree) / h**2
                + cfg.edge_weight * (((e - surf.rest_len) / surf.rest_len) ** 2).mean()
                + cfg.attach_weight * (offsets**2).sum() / h**2)
        if not first:
            loss = loss + cfg.smooth_weight * ((omega**2).sum() + (delta**2).sum() / h**2)
        loss.backward()
        return loss

    opt.step(closure)


def fit_frames(rig, frames: Sequence[np.ndarray], cfg: FitConfig | None = None,
               progress: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Fit every frame in order (module docstring). Returns (rotations (T, J, 4), translations (T, J, 3): the main
    root's path, the attached roots where they ride, the rest elsewhere; residuals (T,) Chamfer RMS in % of height)."""
    from scipy.spatial import cKDTree

    from usdposer.core.rotations import axis_angle_to_quat, quat_conjugate, quat_multiply, quat_normalize
    from usdposer.types import Pose

    cfg = cfg or FitConfig()
    rig = rig.to(torch.float64)
    g = torch.Generator().manual_seed(cfg.seed)
    surf = RigSurface.from_rig(rig, cfg.samples, g, cfg.attach)
    h = max(float(surf.rest[:, 1].max() - surf.rest[:, 1].min()), 1e-9)  # the character's height
    base = Pose.rest(rig)
    q = base.rotations[0].clone()  # (J, 4)
    root = base.translations[0, surf.main].clone()  # (3,)
    off = torch.zeros(len(surf.attached), 3, dtype=torch.float64)  # (A, 3) carried from frame to frame
    rest_pts = surf.samples(surf.rest)
    out_q, out_r, out_t, res = [], [], [], []
    it = range(len(frames)) if progress is None else progress(range(len(frames)))
    for t in it:
        Y = torch.as_tensor(frames[t], dtype=torch.float64)
        if len(Y) > 2 * cfg.samples:
            Y = Y[torch.randperm(len(Y), generator=g)[:2 * cfg.samples]]
        tree = cKDTree(Y.numpy())
        if t == 0:
            root = root + (Y.mean(0) - rest_pts.mean(0))
        if t >= 2 and cfg.extrapolate:  # constant velocity from the last two frames
            q = quat_normalize(quat_multiply(q, quat_multiply(quat_conjugate(out_q[-2]), q)))
            root = root + (out_r[-1] - out_r[-2])
        omega = torch.zeros(rig.num_joints, 3, dtype=torch.float64, requires_grad=True)
        delta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        offsets = off.clone().requires_grad_(True)
        _minimise(surf, rig, base, q, root, Y, tree, omega, delta, offsets, h, cfg, first=t == 0)
        with torch.no_grad():
            q = quat_normalize(quat_multiply(axis_angle_to_quat(omega), q))
            root = root + delta
            off = offsets.detach().clone()
            X = surf.skin(rig, q, root, base, off)
            res.append(100 * float(chamfer(surf.samples(X), Y, tree) / 2) ** 0.5 / h)
            out_t.append(surf.pose(rig, q, root, base, off).translations[0])
        out_q.append(q.detach().clone())
        out_r.append(root.detach().clone())
    return torch.stack(out_q), torch.stack(out_t), np.asarray(res)


def as_pose(rig, rotations: torch.Tensor, translations: torch.Tensor):
    """The fitted Pose: rotations (T, J, 4), translations (T, J, 3) (:func:`fit_frames`), the rest scales."""
    from usdposer.types import Pose

    base = Pose.rest(rig.to(torch.float64), len(rotations))
    return Pose(rotations, translations.to(base.translations), base.scales)
