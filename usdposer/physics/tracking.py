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

if TYPE_CHECKING:
    from usdposer.physics.articulation import Articulation
    from usdposer.types import Clip


# ------------------------------------------------------------------------------------------------ simulation chunks
class ChunkSimulator:
    """K substeps of one articulation, forward without a tape or replayed under one (module docstring)."""

    def __init__(self, art: Articulation, substeps: int, *, contact: bool = True, upright: tuple | None = None):
        import newton

        from usdposer.core._warp import get_warp

        self.wp = wp = get_warp()
        self.newton = newton
        self.art, self.K, self.contact = art, substeps, contact
        # (root body, up_local (3,), reference up directions (F, 3), ke, kd) of the virtual uprightness torque
        self.upright = upright
        self.frame = 0  # the chunk's first frame (for the reference up directions)
        m = self.model = art.model
        self.solver = art.solver()
        self.states = [m.state(requires_grad=True) for _ in range(substeps + 1)]
        self.controls = [m.control(clone_variables=True, requires_grad=True) for _ in range(substeps)]
        C, D = m.joint_coord_count, m.joint_dof_count
        self.ta = wp.zeros(C, dtype=float, requires_grad=True)
        self.tb = wp.zeros(C, dtype=float, requires_grad=True)
        self.jq = wp.zeros(C, dtype=float, requires_grad=True)
        self.jqd = wp.zeros(D, dtype=float, requires_grad=True)
        self.gains = [wp.array(np.asarray(art.contact[k], dtype=np.float32), dtype=float) for k in ("ke", "kd", "kf", "mu")]
        self.centers = wp.array(art.centers.astype(np.float32), dtype=wp.vec3)
        self.halves = wp.array(art.halves.astype(np.float32), dtype=wp.vec3)
        self.substeps_run = 0

    def _load(self, q0: Tensor, qd0: Tensor, ta: Tensor, tb: Tensor) -> None:
        s = self.states[0]
        s.body_q.assign(q0.detach().float().contiguous().numpy())
        s.body_qd.assign(qd0.detach().float().contiguous().numpy())
        self.ta.assign(ta.detach().float().contiguous().numpy())
        self.tb.assign(tb.detach().float().contiguous().numpy())

    def _run(self) -> None:
        from usdposer.physics._warp_contact import ground_contact_kernel, upright_kernel
        from usdposer.physics._warp_tracking import lerp_kernel

        wp, m = self.wp, self.model
        for k in range(self.K):
            s0, s1 = self.states[k], self.states[k + 1]
            s0.clear_forces()
            wp.launch(lerp_kernel, dim=m.joint_coord_count, inputs=[self.ta, self.tb, float(k + 1) / self.K],
                      outputs=[self.controls[k].joint_target_q])
            if self.contact:
                wp.launch(ground_contact_kernel, dim=m.body_count * 8,
                          inputs=[s0.body_q, s0.body_qd, m.body_com, self.centers, self.halves, *self.gains,
                                  float(self.art.contact["margin"])],
                          outputs=[s0.body_f])
            if self.upright is not None:
                r, up_local, ups, ke, kd = self.upright
                a_, b_ = ups[self.frame], ups[min(self.frame + 1, len(ups) - 1)]
                wp.launch(upright_kernel, dim=1, inputs=[s0.body_q, s0.body_qd, int(r), wp.vec3(*up_local.tolist()),
                                                         wp.vec3(*a_.tolist()), wp.vec3(*b_.tolist()),
                                                         float(k) / self.K, float(ke), float(kd)],
                          outputs=[s0.body_f])
            self.solver.step(s0, s1, self.controls[k], None, self.art.cfg.dt)
        self.newton.eval_ik(m, self.states[self.K], self.jq, self.jqd)
        self.substeps_run += self.K

    def forward(self, q0: Tensor, qd0: Tensor, ta: Tensor, tb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(body_q (J, 7), body_qd (J, 6), joint_q (C,)) after K substeps from (q0, qd0) towards targets ta -> tb."""
        self._load(q0, qd0, ta, tb)
        self._run()
        end = self.states[self.K]
        return (torch.from_numpy(end.body_q.numpy().copy()), torch.from_numpy(end.body_qd.numpy().copy()),
                torch.from_numpy(self.jq.numpy().copy()))

    def backward(self, inputs: tuple[Tensor, ...], grads: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Vector-Jacobian product of :meth:`forward` at ``inputs`` for output gradients ``grads``, by re-simulating
        under a tape."""
        wp = self.wp
        self._load(*inputs)
        tape = wp.Tape()
        with tape:
            self._run()
        end = self.states[self.K]
        out_grads = {}
        for arr, g, dtype in ((end.body_q, grads[0], wp.transform), (end.body_qd, grads[1], wp.spatial_vector),
                              (self.jq, grads[2], float)):
            if g is not None:
                out_grads[arr] = wp.array(g.detach().float().contiguous().numpy(), dtype=dtype)
        tape.backward(grads=out_grads)
        s0 = self.states[0]
        res = tuple(torch.from_numpy(a.grad.numpy().copy()) for a in (s0.body_q, s0.body_qd, self.ta, self.tb))
        tape.zero()
        return res


class SimChunk(torch.autograd.Function):
    """One chunk of substeps as an autograd node; backward re-simulates under a ``wp.Tape`` and clips."""

    @staticmethod
    def forward(ctx, sim: ChunkSimulator, clip: float, frame: int, q0: Tensor, qd0: Tensor, ta: Tensor, tb: Tensor):
        ctx.sim, ctx.clip, ctx.frame = sim, clip, frame
        ctx.save_for_backward(q0, qd0, ta, tb)
        sim.frame = frame
        return sim.forward(q0, qd0, ta, tb)

    @staticmethod
    def backward(ctx, g_q: Tensor, g_qd: Tensor, g_jq: Tensor):
        inputs = ctx.saved_tensors
        ctx.sim.frame = ctx.frame
        grads = ctx.sim.backward(inputs, (g_q, g_qd, g_jq))
        grads = tuple(torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) for g in grads)
        if ctx.clip and ctx.clip > 0:
            norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
            if norm > ctx.clip:
                grads = tuple(g * (ctx.clip / norm) for g in grads)
        return (None, None, None, *(g.to(x.dtype) for g, x in zip(grads, inputs)))


def simulate(sim: ChunkSimulator, q0: Tensor, qd0: Tensor, targets: Tensor, clip: float = 0.0):
    """Run ``len(targets) - 1`` chunks from (q0, qd0) with per-frame PD ``targets`` (F, C): (body_q (F, J, 7),
    body_qd (F, J, 6), joint_q (F - 1, C) after each chunk), differentiable through :class:`SimChunk`."""
    qs, qds, jqs = [q0], [qd0], []
    q, qd = q0, qd0
    for k in range(len(targets) - 1):
        q, qd, jq = SimChunk.apply(sim, clip, k, q, qd, targets[k], targets[k + 1])
        qs.append(q)
        qds.append(qd)
        jqs.append(jq)
    return torch.stack(qs), torch.stack(qds), torch.stack(jqs) if jqs else torch.zeros(0, len(targets[0]))


# ------------------------------------------------------------------------------------------------ reference and result
def reference_coordinates(art: Articulation, body_q: Tensor) -> Tensor:
    """(F, C) newton joint coordinates of reference body poses (F, J, 7)."""
    import newton

    from usdposer.core._warp import get_warp

    wp = get_warp()
    m = art.model
    state = m.state()
    jq = wp.zeros(m.joint_coord_count, dtype=float)
    jqd = wp.zeros(m.joint_dof_count, dtype=float)
    out = []
    for f in range(len(body_q)):
        state.body_q.assign(body_q[f].float().contiguous().numpy())
        newton.eval_ik(m, state, jq, jqd)
        out.append(torch.from_numpy(jq.numpy().copy()))
    return torch.stack(out)


def _ancestors(parents: Tensor, j: int) -> list[int]:
    out, p = [], int(parents[j])
    while p >= 0:
        out.append(p)
        p = int(parents[p])
    return out


def frames_to_clip(art: Articulation, body_frames: Tensor, ref: Clip, name: str = "usdposerTrack") -> Clip:
    """The Clip of simulated body frames (F, B, 4, 4) in the articulation's (scaled) rig: every joint with a body
    takes its rotation from its frame relative to its parent joint's output frame (q = polar(W_p^-1 W_b)); a joint
    with no simulated joint above it (the free root, an IK-target root) takes its translation the same way; every
    other joint keeps the reference's
    local transform, so bone lengths stay exact whatever the penalty joints stretched and massless joints follow their
    parents. ``ref`` is the reference clip in the same (scaled) units."""
    from usdposer.core.kinematics import compose_trs
    from usdposer.core.rotations import matrix_to_quat
    from usdposer.types import Clip

    rig = art.rig
    F, J = body_frames.shape[0], rig.num_joints
    body_of = {int(j): b for b, j in enumerate(art.joints)}
    q_out, t_out, s_ref = ref.rotations.double().clone(), ref.translations.double().clone(), ref.scales.double()
    world: list[Tensor | None] = [None] * J
    S2W = rig.skel_to_world.double().expand(F, 4, 4)
    for j in range(J):
        p = int(rig.parents[j])
        Wp = world[p] if p >= 0 else S2W
        if j in body_of:
            b = body_of[j]
            local = torch.linalg.solve(Wp, body_frames[:, b].double())
            U, _, Vh = torch.linalg.svd(local[:, :3, :3])
            d = torch.sign(torch.det(U @ Vh))
            U = torch.cat([U[..., :2], U[..., 2:] * d[:, None, None]], -1)
            q_out[:, j] = matrix_to_quat(U @ Vh)
            if not any(int(a) in body_of for a in _ancestors(rig.parents, j)):  # the top of a simulated tree
                t_out[:, j] = local[:, :3, 3]
        world[j] = Wp @ compose_trs(t_out[:, j], q_out[:, j], s_ref[:, j])
    return Clip(q_out, t_out, s_ref.clone(), time_codes=ref.time_codes.clone(),
                time_codes_per_second=ref.time_codes_per_second, name=name)


# ------------------------------------------------------------------------------------------------ the optimisation
@dataclass
class TrackConfig:
    iterations: int = 50
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
@dataclass
class TrackReport:
    """What ``usdposer track`` did (its ``--json`` result)."""

    output: str
    animation: str
    physics: str
    source_animation: str
    iterations: int
    frames: int
    substeps_per_frame: int
    simulation_scale: float
    before: dict
    after: dict
    final_loss: dict
    seconds_per_iteration: float
    seconds: float
    report: str | None = None
    loss_png: str | None = None
    preview: str | None = None


def track_asset(asset, out, *, anim: str | None = None, skeleton: str | None = None, cfg: TrackConfig | None = None,
                art_cfg=None, physics_out=None, frames: str | None = None, arguments=None,
                progress=None, on_step: Callable[[int, dict], None] | None = None, preview=None) -> TrackReport:
    """Track ``asset``'s animation ``anim`` (the bound one by default) and write the tracked SkelAnimation over the
    asset at ``out``, the UsdPhysics layer beside it (``physics_out``, default OUT_STEM.physics.usda) and a JSON + PNG
    report (loss curve, before/after metrics)."""
    import json
    from pathlib import Path

    from usdposer.io.physics_layer import write_physics_layer
    from usdposer.io.read_skel import read_asset
    from usdposer.io.write_skel import provenance, write_clip_layer
    from usdposer.physics.articulation import build_articulation
    from usdposer.physics.metrics import motion_metrics

    cfg = cfg or TrackConfig()
    tick = time.perf_counter()
    src = read_asset(asset)
    rig = src.rig(skeleton).to(torch.float64)
    clip = src.clip(rig, anim)
    if frames:
        from usdposer.selection import parse_frames

        idx = parse_frames(frames, clip.time_codes)
        clip = replace(clip, rotations=clip.rotations[idx], translations=clip.translations[idx],
                       scales=clip.scales[idx], time_codes=clip.time_codes[idx])
    if len(clip) < 2:
        from usdposer.errors import InputError

        raise InputError(f"{asset}: {clip.path or clip.name} has {len(clip)} frame(s) selected; tracking needs at least "
                         "2 (widen --frames or pick another --anim)")
    art = build_articulation(rig, art_cfg)
    res = track_clip(art, clip, cfg, progress=progress, on_step=on_step)
    out = Path(out)
    physics_out = Path(physics_out) if physics_out else out.with_name(out.name.split(".")[0] + ".physics.usda")
    prov = provenance("track", arguments, seed=cfg.seed, source_animation=clip.path or clip.name,
                      iterations=cfg.iterations)
    write_clip_layer(asset, out, rig, [res.clip], prov=prov)
    write_physics_layer(asset, physics_out, art, prov=prov)
    before, after = motion_metrics(rig, clip), motion_metrics(rig, res.clip, clip)
    report = out.with_suffix(".json")
    report.write_text(json.dumps({"config": {k: v for k, v in cfg.__dict__.items()}, "before": before.as_dict(),
                                  "after": after.as_dict(), "losses": res.losses}, indent=1))
    png = out.with_suffix(".loss.png")
    from usdposer.preview import loss_plot

    loss_plot(res.losses, png, keys=("loss", "coords", "root", "upright"))
    if preview:
        from usdposer.render.media import render_clip

        mode = "sheet" if str(preview).lower().endswith(".png") else "video"
        preview = render_clip(rig, res.clip, preview, mode=mode, width=192 if mode == "sheet" else 384,
                              height=192 if mode == "sheet" else 384).outputs[0]
    fps = clip.fps if len(clip) > 1 else 24.0
    return TrackReport(str(out), f"{rig.skeleton_path}/{res.clip.name}", str(physics_out), clip.path or clip.name,
                       cfg.iterations, len(clip), max(1, round(1.0 / (fps * art.cfg.dt))), art.scale, before.as_dict(),
                       after.as_dict(), res.losses[-1] if res.losses else {}, res.seconds_per_iteration,
                       time.perf_counter() - tick, str(report), str(png), preview)
