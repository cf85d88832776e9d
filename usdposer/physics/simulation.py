"""Differentiable chunked simulation of an articulation (Newton, ``SolverSemiImplicit``): ``ChunkSimulator`` steps
one frame's substeps without a tape, and ``SimChunk`` (a ``torch.autograd.Function``) re-simulates the chunk under a
``wp.Tape`` in backward, replays it and clips the gradient it hands to the previous chunk, so no state is stored
across chunks. ``simulate`` chains the chunks over a clip.

Shapes: J bodies (= joints), C joint coordinates, F frames.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from usdposer.physics.articulation import Articulation


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
