"""A rig as a physical body (AKD section 4.5): one rigid box per joint, a free root and 3-axis D6 joints with PD drives,
built directly with newton's ``ModelBuilder`` (newton's USD importer drops spherical cone limits, so the model comes
from the Rig and ``usdposer.io.physics_layer`` writes the same articulation as UsdPhysics).

Conventions (world = the rig's stage converted to metres, +Y up, ground at y = 0):
    bodies        one per joint that is the largest influence of some vertex or lies between two such joints, in the
                  tree (massless joints at the ends of the tree, such as a scene root or an end site, get none and
                  follow their parent rigidly; a tree with no body above it, such as an IK-target root carrying the
                  hooves, hangs from the body nearest to it at rest); body b sits at the rigid frame of its
                  joint (its world transform with any scale removed) and its box is the robust bounding box, in that
                  frame, of those vertices, at least ``min_half`` (a fraction of the height) on every side, weighing
                  at least ``min_mass`` of the whole (light bodies between heavy ones make penalty joints explode)
    joints        a free joint for the first body; every other body hangs from its parent body by a D6
                  with locked translation and rotX / rotY / rotZ in the child's rest frame expressed in the parent
                  body (``parent_xform`` = rest relative transform), so its coordinates are 0 at rest and rotate
                  about the joint's own local axes (``Rig.limits`` use the same axes)
    PD gains      tau = ke (target - q) - kd qd per axis, as stiff as the explicit integrator allows at dt = 1/1200 s
                  (stance legs carry the whole weight, far beyond their own inertia): ke = I w^2 with w dt =
                  ``max_omega_dt``, kd = min(2 zeta I w, I / (2 dt)), I the smallest principal moment about the joint
                  of the lighter of its two bodies divided by the number of joints acting on that body
    attachment    the solver's penalty springs holding joints together (``joint_attach_ke/kd``), sized from the
                  lightest body for the same stability bound

Shapes: J rig joints, B bodies, F frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from usdposer.types import Pose, Rig


@dataclass
class ArticulationConfig:
    dt: float = 1.0 / 1200.0  # simulation substep, seconds
    density: float = 1000.0  # kg / m^3 of the bone boxes
    min_half: float = 0.02  # smallest box half-extent, in heights
    min_mass: float = 0.05  # smallest body mass, as a fraction of the boxes' total
    inertia_pad: float = 3.0  # thin bodies' inertia padded so that r^2 m / I <= this at every joint anchor
    quantile: float = 0.0  # robust box: this fraction of the vertices trimmed on each side (0: the whole part)
    pd_zeta: float = 1.0  # PD damping ratio
    max_damping: float = 0.5  # kd dt / I cap (explicit damping stability)
    max_omega_dt: float = 0.5  # stability bound for any spring on any body (omega dt, explicit integration)
    limit_gain: float = 4.0  # joint-limit stiffness as a multiple of ke
    scale: float | None = None  # world scale of the simulation; None: 1, or 1 m tall for rigs outside 0.1-5 m
    use_limits: bool = True
    angular_damping: float = 0.05
    gravity: float = -9.81
    # ground contact (usdposer.physics.contact): penetration depth that carries the weight, friction
    contact_depth: float = 0.01  # in heights, under the full weight shared by four contact points
    friction: float = 0.8  # Coulomb coefficient
    friction_stiffness: float = 1.0  # viscous friction, as a fraction of the body's effective mass per substep


@dataclass
class Articulation:
    """A newton model of a rig and what tracking needs to drive it."""

    model: object  # newton.Model
    rig: Rig
    cfg: ArticulationConfig
    height: float
    joints: np.ndarray  # (B,) the rig joint of each body
    rest: np.ndarray  # (B, 4, 4) the bodies' rest frames (world, metres, at the simulation's scale)
    parent_body: np.ndarray  # (B,) the body of each body's nearest ancestor joint with one (-1: a free root)
    centers: np.ndarray  # (B, 3) box centres in the body frames
    halves: np.ndarray  # (B, 3) box half-extents
    mass: np.ndarray  # (B,)
    ke: np.ndarray  # (B,) PD stiffness per axis (0 for roots)
    kd: np.ndarray  # (B,)
    attach_ke: float
    attach_kd: float
    contact: dict = field(default_factory=dict)  # ke, kd, kf, mu (B,) of the ground contact per body
    coord_start: np.ndarray = None  # (B,) first joint_q index of body b's joint (7 coordinates for roots, 3 for D6)
    scale: float = 1.0  # the simulated rig is the source rig scaled by this (``rig`` is the scaled one)

    @property
    def num_bodies(self) -> int:
        return len(self.mass)

    @property
    def d6_coords(self) -> np.ndarray:
        """Indices into ``joint_q`` of every D6 angle, bodies in order (3 per body with a parent)."""
        return np.array([self.coord_start[b] + k for b in range(self.num_bodies) if self.parent_body[b] >= 0
                         for k in range(3)], dtype=np.int64)

    @property
    def root_bodies(self) -> list[int]:
        return [b for b in range(self.num_bodies) if self.parent_body[b] < 0]

    def solver(self):
        import newton

        return newton.solvers.SolverSemiImplicit(self.model, angular_damping=self.cfg.angular_damping,
                                                 joint_attach_ke=self.attach_ke, joint_attach_kd=self.attach_kd)


def scale_rig(rig: Rig, s: float) -> Rig:
    """``rig`` uniformly scaled by ``s`` about the world origin (translations and points)."""
    from dataclasses import replace

    if s == 1.0:
        return rig

    def tr(M):
        M = M.clone()
        M[..., :3, 3] *= s
        return M

    meshes = tuple(replace(m, points=m.points * s) for m in rig.meshes)
    return replace(rig, rest_local=tr(rig.rest_local), bind_world=tr(rig.bind_world), skel_to_world=tr(rig.skel_to_world),
                   meshes=meshes)


def sim_scale(height: float, cfg: ArticulationConfig) -> float:
    """The world scale the simulation runs at (``ArticulationConfig.scale``): characters authored at implausible
    sizes (the Khronos Fox is 79 m tall in metres) are simulated 1 m tall, since gravity does not scale."""
    if cfg.scale is not None:
        return float(cfg.scale)
    return 1.0 if 0.1 <= height <= 5.0 else 1.0 / height


def to_newton(frames: torch.Tensor) -> torch.Tensor:
    """(…, 4, 4) rigid frames -> (…, 7) newton transforms (position, quaternion x, y, z, w)."""
    from usdposer.core.rotations import matrix_to_quat

    q = matrix_to_quat(frames[..., :3, :3])
    return torch.cat([frames[..., :3, 3], q[..., 1:], q[..., :1]], -1)


def from_newton(tq: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_newton`: (…, 7) -> (…, 4, 4) float64."""
    from usdposer.core.rotations import quat_to_matrix

    q = torch.cat([tq[..., 6:7], tq[..., 3:6]], -1).double()
    M = torch.zeros(*tq.shape[:-1], 4, 4, dtype=torch.float64)
    M[..., :3, :3] = quat_to_matrix(q)
    M[..., :3, 3] = tq[..., :3].double()
    M[..., 3, 3] = 1
    return M


def rigid_frames(rig: Rig, pose: Pose) -> torch.Tensor:
    """(B, J, 4, 4) world frames of the joints with any scale or shear removed (the polar rotation), metres, +Y up."""
    from usdposer.core.posing import joint_transforms

    G = rig.skel_to_world.to(pose.rotations) @ joint_transforms(rig, pose)
    U, _, Vh = torch.linalg.svd(G[..., :3, :3])
    R = U @ Vh
    fix = torch.ones_like(R[..., :1, :1]).expand(*R.shape[:-2], 3, 1).clone()
    fix[..., 2, 0] = torch.sign(torch.det(R))
    out = G.clone()
    out[..., :3, :3] = (U * fix.transpose(-1, -2)) @ Vh
    out[..., 3, :] = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=G.dtype)
    return out


def rigid_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation nearest a 3x3 matrix with scale or shear (the polar factor, a proper rotation)."""
    U, _, Vh = np.linalg.svd(M)
    R = U @ Vh
    return U @ np.diag([1, 1, -1]) @ Vh if np.linalg.det(R) < 0 else R


def body_boxes(rig: Rig, min_half: float, quantile: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres (J, 3), half-extents (J, 3), moves (J,) bool) of the bone boxes in the joints' bind frames (module
    docstring): ``moves[j]`` says whether joint j is the largest influence of any vertex. Metres."""
    J = rig.num_joints
    S2W = rig.skel_to_world.double().numpy()
    pts = [[] for _ in range(J)]
    for m in rig.meshes:
        owner = m.joint_indices.gather(1, m.joint_weights.argmax(1, keepdim=True))[:, 0].numpy()
        P = np.c_[m.points.double().numpy(), np.ones(len(m.points))] @ S2W.T  # bind-pose points, world
        for j in np.unique(owner):
            pts[j].append(P[owner == j])
    bind_world = S2W @ rig.bind_world.double().numpy()
    centers, halves = np.zeros((J, 3)), np.full((J, 3), min_half)
    moves = np.array([bool(p) for p in pts])
    for j in range(J):
        if not pts[j]:
            continue
        R = rigid_rotation(bind_world[j, :3, :3])
        local = (np.concatenate(pts[j])[:, :3] - bind_world[j, :3, 3]) @ R  # R^T (p - o)
        lo, hi = np.quantile(local, quantile, axis=0), np.quantile(local, 1 - quantile, axis=0)
        centers[j] = (lo + hi) / 2
        halves[j] = np.maximum((hi - lo) / 2, min_half)
    return centers, halves, moves


def build_articulation(rig: Rig, cfg: ArticulationConfig | None = None, *, requires_grad: bool = True,
                       device: str | None = None) -> Articulation:
    """The newton model of ``rig`` at its rest pose (module docstring)."""
    from usdposer._deps import require
    from usdposer.core._warp import get_warp
    from usdposer.core.posing import character_height
    from usdposer.types import Pose

    wp = get_warp()
    newton = require("newton", extra="physics")
    cfg = cfg or ArticulationConfig()
    rig = rig.to(torch.float64)
    scale = sim_scale(character_height(rig) or 1.0, cfg)
    rig = scale_rig(rig, scale)
    h = character_height(rig) or 1.0
    J = rig.num_joints
    parents = [int(p) for p in rig.parents]
    centers, halves, moves = body_boxes(rig, cfg.min_half * h, cfg.quantile)
    if not moves.any():  # no mesh: every joint is a body
        moves[:] = True
    # a massless joint between two bodies still rotates them: it gets a (minimal) body of its own
    below = np.zeros(J, bool)
    for j in reversed(range(J)):
        if parents[j] >= 0 and (moves[j] or below[j]):
            below[parents[j]] = True
    above = np.zeros(J, bool)
    for j in range(J):
        p = parents[j]
        above[j] = p >= 0 and (moves[p] or above[p])
    moves = moves | (below & above)
    joints = np.nonzero(moves)[0]  # the rig joints that get bodies, in order (parents first)
    B = len(joints)
    body_of = np.full(J, -1)
    body_of[joints] = np.arange(B)
    parent_body = np.full(B, -1)  # nearest ancestor with a body
    for b, j in enumerate(joints):
        p = parents[j]
        while p >= 0 and body_of[p] < 0:
            p = parents[p]
        parent_body[b] = body_of[p] if p >= 0 else -1
    # one articulation: a tree with no body above it (an IK-target root carrying the hooves, say) hangs from the
    # nearest earlier body at rest
    rest_all = rigid_frames(rig, Pose.rest(rig))[0].numpy()
    main_tree = np.zeros(B, bool)
    for b in range(B):
        main_tree[b] = b == 0 or (parent_body[b] >= 0 and main_tree[parent_body[b]])
    for b in range(1, B):
        if parent_body[b] < 0:  # the distance from its joint to each main-tree box
            o = rest_all[joints[b], :3, 3]
            d = []
            for c in range(b):
                F = rest_all[joints[c]]
                local = F[:3, :3].T @ (o - F[:3, 3])
                lo, hi = centers[joints[c]] - halves[joints[c]], centers[joints[c]] + halves[joints[c]]
                d.append(np.linalg.norm(local - np.clip(local, lo, hi)) if main_tree[c] else np.inf)
            parent_body[b] = int(np.argmin(d))
    centers, halves = centers[joints], halves[joints]
    rest = rest_all[joints]  # (B, 4, 4)
    vol = 8 * np.prod(halves, 1)
    mass = np.maximum(cfg.density * vol, cfg.min_mass * cfg.density * vol.sum())
    # inertia of each box about its centre, of a body about its joint and of a subtree about its joint
    I_box = np.stack([mass[b] / 3 * np.diag([halves[b, 1]**2 + halves[b, 2]**2, halves[b, 0]**2 + halves[b, 2]**2,
                                             halves[b, 0]**2 + halves[b, 1]**2]) for b in range(B)])
    com_world = np.einsum("bij,bj->bi", rest[:, :3, :3], centers) + rest[:, :3, 3]
    # pad thin bodies' inertia so that every joint anchor on a body sees an effective mass of at least m / (1 + pad)
    anchors = [[rest[b, :3, 3]] + [rest[c, :3, 3] for c in range(B) if parent_body[c] == b] for b in range(B)]
    for b in range(B):
        r2 = max(float((o - com_world[b]) @ (o - com_world[b])) for o in anchors[b])
        I_min = float(np.linalg.eigvalsh(I_box[b])[0])
        I_box[b] += max(0.0, mass[b] * r2 / cfg.inertia_pad - I_min) * np.eye(3)

    def inertia_about(b: int, members: list[int]) -> float:
        o = rest[b, :3, 3]
        total = np.zeros((3, 3))
        for k in members:
            Rk = rest[k, :3, :3]
            d = com_world[k] - o
            total += Rk @ I_box[k] @ Rk.T + mass[k] * (d @ d * np.eye(3) - np.outer(d, d))
        return float(np.linalg.eigvalsh(total)[0])

    w_max = cfg.max_omega_dt / cfg.dt
    ke, kd = np.zeros(B), np.zeros(B)
    deg = np.array([int(parent_body[b] >= 0) + int((parent_body == b).sum()) for b in range(B)])  # joints per body
    for b in range(B):
        p = parent_body[b]
        if p < 0:
            continue
        # the torque acts on both bodies, each also driven by its other joints: share the stability budget
        I_own = min(inertia_about(b, [b]) / deg[b], inertia_about(p, [p]) / deg[p])
        # as stiff as the explicit integrator allows: gravity loads the stance legs far beyond their own inertia
        ke[b] = I_own * w_max * w_max
        kd[b] = min(2 * cfg.pd_zeta * I_own * w_max, cfg.max_damping * I_own / cfg.dt)
    # effective mass of each body at each joint anchor on it (its own joint, its children's): 1 / (1/m + |r|^2 / I_min)
    m_eff = mass.copy()
    for b in range(B):
        I_min = float(np.linalg.eigvalsh(I_box[b])[0])
        for o in anchors[b]:
            r = o - com_world[b]
            m_eff[b] = min(m_eff[b], 1.0 / (1.0 / mass[b] + float(r @ r) / I_min))
    m_min = float((m_eff / np.maximum(deg, 1)).min())
    attach_ke = m_min * w_max * w_max
    attach_kd = 0.2 * m_min / cfg.dt
    # ground contact per body (four corners down at once): as stiff as the body allows, up to carrying the whole weight
    # at ``contact_depth``; viscous friction as a fraction of what the body can take per substep
    weight = float(mass.sum()) * abs(cfg.gravity)
    c_ke = np.minimum(weight / (4 * cfg.contact_depth * h), m_eff * w_max * w_max / 4)
    contact = {"ke": c_ke, "kd": np.minimum(2 * np.sqrt(c_ke * m_eff), 0.5 * m_eff / cfg.dt / 4),
               "kf": cfg.friction_stiffness * m_eff / cfg.dt / 4, "mu": np.full(B, cfg.friction),
               "margin": float(weight / (4 * float(np.median(c_ke))))}  # what the weight sinks in at rest

    builder = newton.ModelBuilder(up_axis=newton.Axis.Y, gravity=(0.0, cfg.gravity, 0.0))

    def xform(M: np.ndarray):
        t = to_newton(torch.from_numpy(M.copy())).tolist()
        return wp.transform(wp.vec3(*t[:3]), wp.quat(*t[3:]))

    limits = rig.limits.double().numpy() if (cfg.use_limits and rig.limits is not None) else None
    new_joints = []
    for b, j in enumerate(joints):
        body = builder.add_link(xform=xform(rest[b]), com=wp.vec3(*centers[b].tolist()), mass=float(mass[b]),
                                inertia=wp.mat33(*I_box[b].flatten().tolist()), lock_inertia=True, label=rig.joints[j])
        builder.add_shape_box(body, xform=wp.transform(wp.vec3(*centers[b].tolist()), wp.quat_identity()),
                              hx=float(halves[b, 0]), hy=float(halves[b, 1]), hz=float(halves[b, 2]),
                              cfg=newton.ModelBuilder.ShapeConfig(density=0.0))
        assert body == b
        p = int(parent_body[b])
        if p < 0:
            new_joints.append(builder.add_joint_free(body, label=rig.joints[j]))  # coordinates = the body's pose
            continue
        axes = []
        for a, axis in enumerate((newton.Axis.X, newton.Axis.Y, newton.Axis.Z)):
            lo, hi = (limits[j, a] if limits is not None else (math.nan, math.nan))
            lo = -1e10 if not math.isfinite(lo) else float(lo)
            hi = 1e10 if not math.isfinite(hi) else float(hi)
            axes.append(newton.ModelBuilder.JointDofConfig(
                axis=axis, limit_lower=lo, limit_upper=hi, limit_ke=cfg.limit_gain * ke[b], limit_kd=kd[b],
                target_ke=float(ke[b]), target_kd=float(kd[b]), target_q=0.0))
        rel = np.linalg.inv(rest[p]) @ rest[b]
        new_joints.append(builder.add_joint_d6(p, body, angular_axes=axes, parent_xform=xform(rel),
                                               child_xform=wp.transform_identity(), label=rig.joints[j],
                                               collision_filter_parent=True))
    builder.add_articulation(new_joints, label=rig.name)
    model = builder.finalize(device=device, requires_grad=requires_grad)
    coord_start = model.joint_q_start.numpy()[:B]
    return Articulation(model=model, rig=rig, cfg=cfg, height=h, joints=joints, rest=rest, parent_body=parent_body,
                        centers=centers, halves=halves, mass=model.body_mass.numpy().astype(np.float64), ke=ke, kd=kd,
                        attach_ke=attach_ke, attach_kd=attach_kd, contact=contact, coord_start=coord_start,
                        scale=scale)
