"""Between clips and the articulation: the reference joint coordinates of a clip's body frames (newton's ``eval_ik``)
and simulated body frames back to a SkelAnimation clip of the rig."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from usdposer.physics.articulation import Articulation
    from usdposer.types import Clip


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
