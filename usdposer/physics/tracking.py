"""Physics-based tracking (AKD section 4.5): find the PD targets and initial velocity whose simulation follows a
reference clip, so that the result is a motion the body can perform (on the ground, no skating, upright).

Per frame k of the reference (F frames at the clip's rate, K = 1 / (fps dt) substeps each):
    q_ref[k]      joint coordinates of the reference pose (newton's ``eval_ik`` on its body frames)
    u[k]          optimised PD targets of the D6 joints, linearly interpolated over the substeps of frame k -> k+1;
                  initialised to q_ref
    qd0           optimised initial body twists, initialised from the reference's first frame difference
    start         the reference's first frame lowered (or raised) so that its lowest box corner touches y = 0
    L             = mean_k |q_sim[k] - q_ref[k]|_1 (angles, radians) + |root_sim[k] - root_ref[k]|_1 / height
                    + 2 |quat_sim[k] - quat_ref[k]| (root orientation, about its angle) + w_up |up_sim - up_ref|
                    + l3 MAE(u[k+1] - 2 u[k] + u[k-1])          (l3 = 0.2; up: the world up at rest carried by the
                    root body, the virtual penalty that keeps it upright)
The virtual penalty that keeps the root upright acts twice: in the loss above, and (``upright_assist``) as a
virtual torque on the root body pulling its rest up direction towards the reference's, with no torque about that
direction (``usdposer.physics.contact.upright_torque_ref``): an external aid, as residual forces are, reported in
the config. Gradients: ``SimChunk``, a ``torch.autograd.Function`` over the K substeps of one frame, runs the chunk without a
tape forward and, in backward, re-simulates it from its saved inputs under a ``wp.Tape`` and replays it (so no state
is stored across chunks), then clips the gradient it hands to the previous chunk (fine-grained clipping every K
substeps). Optimiser: Adam.

Shapes: J bodies (= joints), C joint coordinates, F frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from usdposer.physics.articulation import from_newton, to_newton
from usdposer.physics.coordinates import frames_to_clip, reference_coordinates
from usdposer.physics.simulation import ChunkSimulator, simulate

if TYPE_CHECKING:
    from usdposer.physics.articulation import Articulation
    from usdposer.types import Clip


# ------------------------------------------------------------------------------------------------ simulation chunks


# ------------------------------------------------------------------------------------------------ reference and result


# ------------------------------------------------------------------------------------------------ the optimisation
@dataclass
class TrackConfig:
    iterations: int = 200  # the paper's
    lr: float = 0.01  # Adam, radians of PD target per step
    lr_velocity: float = 0.05  # Adam, m/s (and rad/s) of initial twist per step
    smooth_weight: float = 0.2  # l3
    root_weight: float = 1.0
    upright_weight: float = 1.0
    clip: float = 1.0  # gradient norm handed from chunk to chunk
    upright_assist: float = 1.0  # virtual root torque per radian of tilt, x weight x height (0: none)
    cosine: bool = False  # anneal the steps to 0 over the iterations
    contact: bool = True
    seed: int = 0


@dataclass
class TrackResult:
    """Frames are in the simulation's world (``Articulation.scale`` times the rig's); the clip in the rig's."""

    clip: Clip  # the tracked animation (the reference's time codes)
    frames: Tensor  # (F, B, 4, 4) simulated body frames
    reference: Tensor  # (F, B, 4, 4) the reference's body frames
    start: Tensor  # (F, B, 4, 4) the reference's body frames lowered onto the ground
    losses: list[dict] = field(default_factory=list)
    seconds_per_iteration: float = 0.0
    substeps: int = 0


def _chord(a: Tensor, b: Tensor) -> Tensor:
    """|a - b| over the last axis, smooth at 0: for unit vectors about the angle between them (for unit quaternions,
    half the rotation angle), so that small orientation errors keep a gradient (1 - cos would flatten it)."""
    return torch.sqrt(((a - b) ** 2).sum(-1) + 1e-12)


def _root_up(body_q: Tensor, root: int, up_local: Tensor) -> Tensor:
    """(…, 3) the world direction of ``up_local`` (the root body's rest up, in its own frame) at every body pose."""
    from usdposer.physics.contact import _rotate

    return _rotate(body_q[..., root, 3:], up_local.to(body_q).expand(*body_q.shape[:-2], 3))


def track_clip(art: Articulation, clip: Clip, cfg: TrackConfig | None = None, *,
               progress: Callable | None = None, on_step: Callable[[int, dict], None] | None = None) -> TrackResult:
    """Track ``clip`` with the articulation ``art`` (module docstring)."""
    from usdposer.physics.articulation import rigid_frames
    from usdposer.physics.contact import box_corners
    from usdposer.types import Pose

    cfg = cfg or TrackConfig()
    rig = art.rig
    torch.manual_seed(cfg.seed)
    fps = clip.fps if len(clip) > 1 else 24.0
    K = max(1, round(1.0 / (fps * art.cfg.dt)))
    scaled = replace(clip, translations=clip.translations.double() * art.scale, rotations=clip.rotations.double(),
                     scales=clip.scales.double())
    ref = rigid_frames(rig, Pose(scaled.rotations, scaled.translations, scaled.scales))[:, art.joints]  # (F, B, 4, 4)
    ref_q = to_newton(ref).float()  # (F, B, 7)
    # 1. the start: the first frame lowered onto the ground, moving like the reference
    corners = box_corners(ref_q[0].double(), torch.from_numpy(art.centers), torch.from_numpy(art.halves))
    lift = -float(corners[..., 1].min())
    ref_q[..., 1] += lift  # the whole reference moves with its first frame (a clip sunk into the ground comes out)
    q0 = ref_q[0].clone()
    qd0 = torch.zeros(len(q0), 6)
    if len(ref_q) > 1:  # every body moving with the root body's mean velocity over the first frames
        n = min(len(ref_q) - 1, 4)
        r0 = art.root_bodies[0]
        qd0[:, :3] = ((ref_q[n, r0, :3] - ref_q[0, r0, :3]) * fps / n).float()
    q_ref = reference_coordinates(art, ref_q)  # (F, C)
    d6 = torch.from_numpy(art.d6_coords).long()
    root = art.root_bodies[0]
    cs = int(art.coord_start[root])
    R0 = torch.from_numpy(art.rest[root, :3, :3])
    up_local = (R0.T @ torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)).float()  # world up at rest, body frame
    up_ref = _root_up(ref_q, root, up_local)  # (F, 3)
    h = art.height
    targets = q_ref.clone().requires_grad_(True)
    upright = None
    if cfg.upright_assist > 0:  # ke: the fraction of the torque that holds the whole weight a height off-balance
        I_root = float(np.linalg.eigvalsh(art.model.body_inertia.numpy()[root].astype(np.float64))[0])
        w_max = art.cfg.max_omega_dt / art.cfg.dt
        ke = min(cfg.upright_assist * float(art.mass.sum()) * abs(art.cfg.gravity) * h, I_root * w_max * w_max)
        kd = min(2 * math.sqrt(ke * I_root), art.cfg.max_damping * I_root / art.cfg.dt)
        upright = (root, up_local.double(), up_ref.double(), ke, kd)
    sim = ChunkSimulator(art, K, contact=cfg.contact, upright=upright)
    qd_init = qd0.clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [targets], "lr": cfg.lr}, {"params": [qd_init], "lr": cfg.lr_velocity}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.iterations), eta_min=0.0) \
        if cfg.cosine else None  # large steps to find the motion, small ones to settle the joints
    losses: list[dict] = []
    best = (math.inf, None)
    tick = time.perf_counter()
    steps = range(cfg.iterations)
    for i in progress(steps) if progress else steps:
        body_q, _, jq = simulate(sim, q0, qd_init, targets, cfg.clip)
        coord = (jq[:, d6] - q_ref[1:, d6]).abs().mean()
        qs, qr = jq[:, cs + 3:cs + 7], q_ref[1:, cs + 3:cs + 7]
        qr = qr * torch.sign((qs * qr).sum(-1, keepdim=True)).detach()  # the nearer of q and -q
        root_err = (jq[:, cs:cs + 3] - q_ref[1:, cs:cs + 3]).abs().mean() / h + 2 * _chord(qs, qr).mean()
        up = _chord(_root_up(body_q[1:], root, up_local), up_ref[1:]).mean()
        smooth = (targets[2:, d6] - 2 * targets[1:-1, d6] + targets[:-2, d6]).abs().mean() if len(targets) > 2 \
            else torch.zeros(())
        loss = coord + cfg.root_weight * root_err + cfg.upright_weight * up + cfg.smooth_weight * smooth
        rec = {"iteration": i, "loss": float(loss.detach()), "coords": float(coord.detach()),
               "root": float(root_err.detach()), "upright": float(up.detach()), "smooth": float(smooth.detach())}
        if math.isfinite(rec["loss"]) and rec["loss"] < best[0]:
            best = (rec["loss"], body_q.detach().clone())
        if i + 1 < cfg.iterations or cfg.iterations == 1:
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched:
                sched.step()
        losses.append(rec)
        if on_step:
            on_step(i, rec)
    if best[1] is None:  # every iteration diverged: report the last
        best = (math.nan, body_q.detach().clone())
    frames = from_newton(best[1])
    start = ref.clone()
    start[..., 1, 3] += lift
    tracked = frames_to_clip(art, frames, scaled)
    tracked = replace(tracked, translations=tracked.translations / art.scale)
    n = max(1, cfg.iterations)
    return TrackResult(tracked, frames, ref, start, losses, (time.perf_counter() - tick) / n, sim.substeps_run)


# ------------------------------------------------------------------------------------------------ files and verb
