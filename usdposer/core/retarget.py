"""Moving poses between rigs and picking what to learn from (pure torch): retargeting by joint name through the
canonical frame (``usdposer.core.posespace``), one rig per distinct skeleton, frames that are poses, de-duplication."""

from __future__ import annotations

import numpy as np
import torch


def dedupe(six: torch.Tensor, degrees: float) -> torch.Tensor:
    """Indices of frames kept: the first, then each frame whose largest joint rotation differs from the last kept
    one by more than ``degrees``. six: (T, J, 6) -> (K,) long."""
    from usdposer.core.rotations import sixd_to_matrix

    R = sixd_to_matrix(six.double())
    keep = [0]
    thr = np.cos(np.radians(degrees))
    for t in range(1, len(six)):
        rel = R[keep[-1]].transpose(-1, -2) @ R[t]
        cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).min()
        if cos < thr:
            keep.append(t)
    return torch.tensor(keep, dtype=torch.long)


def posable_frames(rig, clip) -> torch.Tensor:
    """``(T,)`` frames that are poses: the roots keep a scale within 0.2x-5x of their reference (clips that grow the
    character from nothing, like KayKit's spawns, have no meaningful rotation while it is collapsed)."""
    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.posespace import rig_frame

    rf = rig_frame(rig)
    roots = sorted(set(rig.roots) | set(rf.model_roots))
    _, _, s_ref = decompose_trs(rf.ref_local[roots])
    ratio = clip.scales[:, roots].double().abs() / s_ref.abs().clamp(min=1e-12)  # (T, R, 3)
    return ((ratio > 0.2) & (ratio < 5.0)).flatten(1).all(1)


def world_deltas(six: torch.Tensor, model_parents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, J, 3, 3)`` world rotation change of every joint from canonical codes (``Delta_j = Delta_p Q_j``); joints
    outside the model take their model parent's (or the identity)."""
    from usdposer.core.rotations import sixd_to_matrix

    Q = sixd_to_matrix(six.double())
    out = torch.eye(3, dtype=torch.float64).expand(Q.shape).clone()
    mp = model_parents.tolist()
    for j in range(Q.shape[1]):
        base = out[:, mp[j]] if mp[j] >= 0 else None
        if bool(mask[j]):
            out[:, j] = Q[:, j] if base is None else base @ Q[:, j]
        elif base is not None:
            out[:, j] = base
    return out


def match_joints(src_names, dst_names, src_mask=None, dst_mask=None, src_parents=None,
                 dst_parents=None) -> dict[int, int]:
    """Destination joint -> source joint: by identical leaf name, else by the same canonical words and side
    (``upperleg.l`` = ``UpperLeg_L`` = ``mixamorig_LeftUpLeg``); joints sharing a key (``wrist_l`` and ``hand_l`` are
    both hands) pair in tree order when both sides have as many of them."""
    from usdposer.core.posespace import canonical_words, name_side

    def key(n):
        return tuple(canonical_words(n)), name_side(n)

    def usable(mask, i):
        return mask is None or bool(mask[i])

    def depths(parents, n):
        if parents is None:
            return list(range(n))
        d = []
        for p in [int(x) for x in parents]:
            d.append(0 if p < 0 else d[p] + 1)
        return d

    ds, dd = depths(src_parents, len(src_names)), depths(dst_parents, len(dst_names))
    exact = {n: i for i, n in enumerate(src_names) if usable(src_mask, i)}
    out = {k: exact[n] for k, n in enumerate(dst_names) if usable(dst_mask, k) and n in exact}
    taken = set(out.values())
    src_keys: dict = {}
    for i, n in enumerate(src_names):
        if usable(src_mask, i) and i not in taken:
            src_keys.setdefault(key(n), []).append(i)
    dst_keys: dict = {}
    for k, n in enumerate(dst_names):
        if usable(dst_mask, k) and k not in out:
            dst_keys.setdefault(key(n), []).append(k)
    for kk, dst in dst_keys.items():
        src = src_keys.get(kk, [])
        if src and len(src) == len(dst):
            for a, b in zip(sorted(dst, key=lambda k: (dd[k], k)), sorted(src, key=lambda i: (ds[i], i))):
                out[a] = b
    return out


def retarget_codes(src_rig, src_six: torch.Tensor, dst_rig, keep_heading: bool = False,
                    mapping: dict[int, int] | None = None) -> tuple[torch.Tensor, dict]:
    """Canonical codes ``(T, Js, 6)`` of ``src_rig`` -> codes ``(T, Jd, 6)`` of ``dst_rig``, joints matched by name
    (:func:`match_joints`) or by ``mapping`` (destination joint -> source joint, e.g. a template's name map): each
    matched joint takes the source joint's world rotation change (about world-aligned axes, so the two rigs' joint
    frames, scales and facings do not matter), unmatched joints follow their parent.
    Exact when both reference poses agree (a library and the character it was made for); ``residual_pct`` measures
    how far the retargeted joints land from the source's (centred, in % of the matched joints' extent), averaged.
    ``keep_heading`` keeps the roots' heading (for animation; a dataset removes it). Returns (codes, mapping report)."""
    from usdposer.core.posespace import _heading_free, canonical_positions, rig_frame
    from usdposer.core.rotations import matrix_to_6d, matrix_to_quat, quat_to_matrix

    rs, rd = rig_frame(src_rig), rig_frame(dst_rig)
    if mapping is None:
        mapping = match_joints(src_rig.joint_names, dst_rig.joint_names, rs.mask, rd.mask, src_rig.parents,
                               dst_rig.parents)
    ds = world_deltas(src_six, rs.model_parents, rs.mask)  # (T, Js, 3, 3)
    T, Jd = src_six.shape[0], dst_rig.num_joints
    dd = torch.eye(3, dtype=torch.float64).expand(T, Jd, 3, 3).clone()
    mp = rd.model_parents.tolist()
    for k in range(Jd):
        if k in mapping:
            dd[:, k] = ds[:, mapping[k]]
        elif mp[k] >= 0:
            dd[:, k] = dd[:, mp[k]]
    Q = torch.eye(3, dtype=torch.float64).expand(T, Jd, 3, 3).clone()
    for k in range(Jd):
        if bool(rd.mask[k]):
            Q[:, k] = dd[:, k] if mp[k] < 0 else dd[:, mp[k]].transpose(-1, -2) @ dd[:, k]
    roots = rd.model_roots
    kept = matrix_to_6d(Q)  # the heading as transferred, for the residual below
    if not keep_heading:
        Q[:, roots] = quat_to_matrix(_heading_free(matrix_to_quat(Q[:, roots])))
    six = matrix_to_6d(Q).float()
    # how well the shapes agree: matched joints, root-relative, divided by each rig's height
    pairs = sorted(mapping.items())
    residual = None
    if pairs and T:
        ps = canonical_positions(src_six.double(), rs.model_parents, rs.ref_pos, rs.mask)
        pd = canonical_positions(kept, rd.model_parents, rd.ref_pos, rd.mask)
        src_idx, dst_idx = [s for _, s in pairs], [d for d, _ in pairs]
        a = ps[:, src_idx] - ps[:, src_idx].mean(1, keepdim=True)
        b = pd[:, dst_idx] - pd[:, dst_idx].mean(1, keepdim=True)
        # both shapes measured by the extent of their matched joints at the reference
        residual = float(((a / _extent(rs.ref_pos, src_idx) - b / _extent(rd.ref_pos, dst_idx)).norm(dim=-1)).mean() * 100)
    report = {
        "matched": len(mapping),
        "unmatched_character_joints": [dst_rig.joint_names[k] for k in range(Jd) if bool(rd.mask[k]) and k not in mapping],
        "unused_library_joints": sorted(set(src_rig.joint_names[i] for i in range(src_rig.num_joints)
                                            if bool(rs.mask[i])) - {src_rig.joint_names[s] for s in mapping.values()}),
        "mapping": {dst_rig.joint_names[k]: src_rig.joint_names[s] for k, s in pairs},
        "residual_pct": None if residual is None else round(residual, 3),
    }
    return six, report


def _extent(ref_pos: torch.Tensor, idx: list[int]) -> float:
    """Diagonal of the bounding box of some joints' reference positions."""
    return float((ref_pos[idx].max(0).values - ref_pos[idx].min(0).values).norm()) or 1.0


def retarget_clip(src_rig, clip, dst_rig, tcps: float) -> tuple[object, dict]:
    """An animation of ``src_rig`` played by ``dst_rig`` (:func:`retarget_codes` with the heading kept), its root
    motion and the animated translations of other joints carried over (scaled by the ratio of the two skeletons'
    sizes), its time codes converted to ``tcps``. Returns (Clip, mapping report)."""
    from usdposer.core.posespace import pose_from_6d, pose_to_6d, rig_frame
    from usdposer.core.posing import joint_transforms
    from usdposer.types import Clip

    src_rig, dst_rig = src_rig.to(torch.float64), dst_rig.to(torch.float64)
    pose = clip.pose()
    six, report = retarget_codes(src_rig, pose_to_6d(src_rig, pose, canonical_heading=False), dst_rig,
                                 keep_heading=True)
    out = pose_from_6d(dst_rig, six.double(), ground=False)
    rs, rd = rig_frame(src_rig), rig_frame(dst_rig)
    mapping = {dst_rig.joint_names.index(k): src_rig.joint_names.index(v) for k, v in report["mapping"].items()}
    matched_d, matched_s = list(mapping), list(mapping.values())
    ratio = _extent(rd.ref_pos, matched_d) / _extent(rs.ref_pos, matched_s) if mapping else rd.height / rs.height
    t = out.translations.clone()
    # 1. animated translations of joints (a hip sway, a stretch): their displacement from the reference along
    #    world-aligned axes (through the parent's reference frame), scaled, then into the character's parent frame
    t_src0 = rs.ref_local[:, :3, 3]
    for k, m in mapping.items():
        ps, pd = int(src_rig.parents[m]), int(dst_rig.parents[k])
        if ps < 0 or pd < 0:
            continue
        A_s = rs.canon @ rs.ref_world[ps, :3, :3]  # (3, 3) parent's reference frame, with its scale
        A_d = rd.canon @ rd.ref_world[pd, :3, :3]
        w = (pose.translations[:, m].double() - t_src0[m]) @ A_s.T * ratio  # (T, 3) canonical displacement
        t[:, k] = t[:, k] + torch.linalg.solve(A_d, w.T).T
    # 2. root motion: the whole character moved so that its model root goes where the source's matching joint goes
    #    (scaled about the reference)
    k0 = next((r for r in rd.model_roots if r in mapping), matched_d[0] if mapping else None)
    if k0 is not None:
        m0 = mapping[k0]
        src_p = joint_transforms(src_rig, pose)[:, m0, :3, 3] @ rs.canon.T  # (T, 3) canonical
        target = rd.ref_pos[k0] + (src_p - rs.ref_pos[m0]) * ratio
        from usdposer.types import Pose

        now = joint_transforms(dst_rig, Pose(out.rotations, t, out.scales))[:, k0, :3, 3] @ rd.canon.T
        shift = (target - now) @ rd.canon  # (T, 3) in the character's skeleton space
        for r in dst_rig.roots:
            t[:, r] = t[:, r] + shift
    codes = clip.time_codes.double() / clip.time_codes_per_second * tcps
    return Clip(out.rotations, t, out.scales, time_codes=codes, time_codes_per_second=tcps, name=clip.name), report


def distinct_rigs(rigs) -> list[tuple[object, list[str]]]:
    """A file's skeletons with one entry per distinct skeleton (same joints, parents and rest pose count once): the
    one skinning the most vertices, with the paths of the others."""
    groups: list[list] = []
    for rig in rigs:
        for g in groups:
            o = g[0]
            if (o.joints == rig.joints and torch.equal(o.parents, rig.parents)
                    and torch.allclose(o.rest_local.double(), rig.rest_local.double(), atol=1e-6, rtol=1e-5)):
                g.append(rig)
                break
        else:
            groups.append([rig])
    out = []
    for g in groups:
        best = max(g, key=lambda r: sum(m.num_points for m in r.meshes))
        out.append((best, [r.skeleton_path for r in g if r is not best]))
    return out
