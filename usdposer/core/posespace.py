"""What the pose-space model sees of a rig and of a pose, in a frame that undoes how the rig was made (pure torch).

A studio's rig differs from the shared set's in ways that do not change how it deforms: joint-local axes, armature
scale (Mixamo's 0.01 root with centimetre children, Blender's 100), stage units and up axis, which way the character
faces, the rest pose it was saved in, joint names, and extra joints that move nothing (end sites, sockets, IK targets,
unskinned finger chains). :func:`rig_frame` removes all of these:

* **reference pose**: the bind pose (the pose the mesh was modelled in), brought into skeleton space. Importers put
  ``bindTransforms`` in the skinned mesh's space as often as in the skeleton's (glTF's inverse bind matrices are
  relative to the mesh node: Quaternius' armatures are rotated 90 degrees and scaled 100x against them), so a global
  similarity ``X`` (an axis-aligned rotation and a uniform scale) that maps bind to rest is voted on by the joints and
  applied. ``restTransforms`` play no other part: editing them changes nothing here.
* **canonical frame**: +Y up (the stage's up axis, converted by ``usdposer.io``), facing +Z (found from the
  left/right joint pairs: left x up = forward; the file's own +Z where the joints have no sides), lengths divided
  by the character's height.
* **model joints**: the joints that move vertices and their ancestors (every joint for a rig without meshes);
  non-deforming single-child roots are folded into their child. Other joints are masked out of the model and keep
  their reference rotation.
* **names**: split into words and mapped through a synonym table (``UpLeg`` / ``upperleg`` / ``Thigh`` -> thigh),
  prefixes such as ``mixamorig`` and ``Bip01`` dropped, side words kept apart.

A pose is represented per joint by ``Q_j = G_p D_j G_p^T`` with ``D_j = R_j R0_j^T`` the change of the joint's local
rotation from the reference (in its parent's frame) and ``G_p`` the parent's canonical world orientation at the
reference: the rotation of the joint's subtree relative to its parent, about world-aligned axes. Any re-orientation
or scaling of joint frames cancels in ``Q`` (``D`` and ``G`` change by the same frame), and ``Delta_j = Delta_p Q_j``
gives each joint's world rotation change, so positions follow from the reference positions alone
(:func:`canonical_positions`). Model roots lose their heading (the twist about +Y) and keep their tilt; the root is
placed afterwards (ground contact).

* :func:`joint_features` ``(J, F)``: per model joint, the reference pose (position relative to the root and bone
  vector to the model parent, divided by the height; depth; child count; root flag), the mesh (skin-weighted vertex
  statistics about the joint along canonical axes: weight share, mean offset, spread) and semantics (canonical name
  words as hashed character 3-grams; left / right / centre side). Zero rows for joints outside the model.
* :func:`pose_to_6d` / :func:`pose_from_6d` / :func:`local_from_6d`: poses <-> ``(B, J, 6)`` (identity =
  ``IDENTITY_6D`` = the reference pose).
"""

from __future__ import annotations

import re
import weakref
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from usdposer.core.kinematics import decompose_trs, forward_kinematics
from usdposer.core.rotations import (
    matrix_to_6d,
    matrix_to_quat,
    quat_conjugate,
    quat_multiply,
    quat_normalize,
    quat_to_matrix,
    sixd_to_matrix,
)

if TYPE_CHECKING:
    from jaxtyping import Bool, Float, Int
    from torch import Tensor

    from usdposer.types import Pose, Rig

NAME_BUCKETS = 32
FEATURE_DIM = 3 + 3 + 3 + 7 + NAME_BUCKETS + 3
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
REPRESENTATION = "usdposer-canonical-6d/2"  # recorded in datasets and checkpoints; older ones are refused

# ------------------------------------------------------------------------------------------------------ names
_PREFIXES = {"mixamorig", "bip", "biped", "def", "jnt", "joint", "bone", "b", "mch", "org", "rig", "skel", "j",
             "base", "end", "bn", "sk", "c", "ctrl", "grp"}
_SIDES = {"left", "right", "l", "r", "lft", "rgt"}
# a word (or two words joined) -> the canonical body-part word; anything else is kept as it is
_SYNONYMS = {
    "upleg": "thigh", "upperleg": "thigh", "thigh": "thigh", "femur": "thigh",
    "lowerleg": "shin", "lowleg": "shin", "leg": "shin", "calf": "shin", "shin": "shin", "knee": "shin",
    "tibia": "shin", "upperarm": "upperarm", "uparm": "upperarm", "arm": "upperarm", "humerus": "upperarm",
    "forearm": "forearm", "lowerarm": "forearm", "lowarm": "forearm", "elbow": "forearm", "radius": "forearm",
    "shoulder": "clavicle", "clavicle": "clavicle", "collar": "clavicle", "scapula": "clavicle",
    "hand": "hand", "palm": "hand", "wrist": "hand", "fist": "hand",
    "foot": "foot", "ankle": "foot", "toe": "toe", "toes": "toe", "ball": "toe", "toebase": "toe",
    "hips": "hips", "hip": "hips", "pelvis": "hips",
    "spine": "spine", "abdomen": "spine", "back": "spine", "lowerback": "spine", "vertebra": "spine",
    "torso": "chest", "chest": "chest", "thorax": "chest", "upperchest": "chest",
    "neck": "neck", "cervical": "neck", "head": "head", "skull": "head",
    "finger": "finger", "fingers": "finger", "tail": "tail", "ear": "ear", "ears": "ear",
}
_PAIRS = {("up", "leg"): "upleg", ("upper", "leg"): "upperleg", ("low", "leg"): "lowleg",
          ("lower", "leg"): "lowerleg", ("up", "arm"): "uparm", ("upper", "arm"): "upperarm",
          ("fore", "arm"): "forearm", ("lower", "arm"): "lowerarm", ("low", "arm"): "lowarm",
          ("toe", "base"): "toebase", ("lower", "back"): "lowerback", ("upper", "chest"): "upperchest"}


def name_words(name: str) -> list[str]:
    """``"mixamorig:LeftUpLeg"`` -> ``["mixamorig", "left", "up", "leg"]`` (camel case, digits and separators split)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [w for w in re.split(r"[^A-Za-z]+", spaced.lower()) if w]


def canonical_words(name: str) -> list[str]:
    """The body-part words of a joint name, the same across naming conventions: ``"mixamorig:LeftUpLeg"``,
    ``"upperleg.l"``, ``"Bip01 L Thigh"`` and ``"UpperLeg_L"`` all give ``["thigh"]`` (side and prefixes dropped)."""
    words = [w for w in name_words(name) if w not in _PREFIXES and w not in _SIDES]
    out, i = [], 0
    while i < len(words):
        pair = tuple(words[i:i + 2])
        if pair in _PAIRS:
            out.append(_SYNONYMS.get(_PAIRS[pair], _PAIRS[pair]))
            i += 2
            continue
        out.append(_SYNONYMS.get(words[i], words[i]))
        i += 1
    return out


def name_side(name: str) -> int:
    """-1 left, +1 right, 0 centre or unknown, from the joint name (``L_``, ``_R``, ``Left``, ``.l``, ``Bip01 L``)."""
    words = name_words(name)
    if "left" in words or "l" in words or "lft" in words or re.search(r"(^|[_.\-: ])L($|[_.\-0-9 ])", name):
        return -1
    if "right" in words or "r" in words or "rgt" in words or re.search(r"(^|[_.\-: ])R($|[_.\-0-9 ])", name):
        return 1
    return 0


def name_hash(name: str, buckets: int = NAME_BUCKETS) -> Float[Tensor, " buckets"]:
    """Hashed character 3-grams of the name's canonical words (:func:`canonical_words`), L2-normalised."""
    v = torch.zeros(buckets)
    for w in canonical_words(name):
        padded = f"^{w}$"
        for i in range(len(padded) - 2):
            v[zlib.crc32(padded[i:i + 3].encode()) % buckets] += 1.0
    n = v.norm()
    return v / n if n > 0 else v


def canonical_order(features: Float[Tensor, "M F"]) -> Int[Tensor, " M"]:
    """The joints in an order that does not depend on where the rig lists them: by a fixed random projection of
    their conditioning features (which are themselves invariant to the rig's conventions). A per-joint random draw
    made in this order (draw ``i`` to joint ``order[i]``) gives each joint the same numbers however an exporter
    ordered the skeleton, so a seed's samples and the prior's score do not change with the joint order."""
    w = torch.randn(features.shape[-1], generator=torch.Generator().manual_seed(20_26), dtype=torch.float64)
    return torch.argsort(features.double() @ w, stable=True)


def tree_distance(parents: Int[Tensor, " J"]) -> Int[Tensor, "J J"]:
    """Number of edges on the tree path between every pair of joints (separate trees: J)."""
    from usdposer.core.posing import roots_of

    J = len(parents)
    par = parents.tolist()
    root = roots_of(par)
    D = torch.full((J, J), J, dtype=torch.long)
    for a in range(J):
        anc = {}
        x, d = a, 0
        while x >= 0:
            anc[x] = d
            x, d = par[x], d + 1
        for b in range(J):
            if root[a] != root[b]:
                continue
            y, e = b, 0
            while y not in anc:
                y, e = par[y], e + 1
            D[a, b] = anc[y] + e
    return D


# ------------------------------------------------------------------------------------------------------ the frame
@dataclass(frozen=True)
class RigFrame:
    """How the pose space sees one rig (see the module docstring). Tensors are float64 on the CPU.

    Attributes:
        mask: ``(J,)`` joints the model sees.
        model_parents: ``(J,)`` nearest model ancestor of each joint, -1 for model roots and joints outside.
        chains: ``(joint, (excluded ancestors top-down))`` for model joints whose rig parent was folded away.
        ref_world: ``(J, 4, 4)`` skeleton-space reference (bind) transforms.
        ref_local: ``(J, 4, 4)`` their parent-relative transforms.
        ref_local_rot: ``(J, 3, 3)`` rotation part of ``ref_local`` (``R0``).
        joint_rot: ``(J, 3, 3)`` canonical world orientation of each joint's frame at the reference (``G``).
        parent_rot: ``(J, 3, 3)`` ``G`` of the rig parent (``canon`` for roots).
        rest_rot: ``(J, 3, 3)`` rotation part of ``rest_local`` (for limits, which are relative to rest).
        ref_pos: ``(J, 3)`` canonical joint positions at the reference, skeleton units.
        canon: ``(3, 3)`` skeleton space -> canonical frame rotation (``C``).
        bind_fix: ``(4, 4)`` ``X``: bindTransforms space -> skeleton space.
        height: extent along canonical +Y of the reference mesh (or joints), skeleton units.
        deforming: ``(J,)`` joints with skin weight (all joints for a rig without meshes).
        pairs: ``((left, right), ...)`` model joints that mirror each other by name.
        facing: how the facing was found; ``up``: how the up axis was found.
        attach: ``((root, joint), ...)`` a skeleton forest's secondary roots (a horse's hoof IK targets) and the
            main-tree joint each rides (``usdposer.core.posing.root_attachments``): decoded poses carry them along.
        riders: ``(J, A)`` 1 where a joint belongs to the tree of the a-th attached root.
    """

    mask: Tensor
    model_parents: Tensor
    chains: tuple
    ref_world: Tensor
    ref_local: Tensor
    ref_local_rot: Tensor
    joint_rot: Tensor
    parent_rot: Tensor
    rest_rot: Tensor
    ref_pos: Tensor
    canon: Tensor
    bind_fix: Tensor
    height: float
    deforming: Tensor
    pairs: tuple
    facing: str
    up: str
    attach: tuple = ()
    riders: Tensor | None = None

    @property
    def model_roots(self) -> list[int]:
        return [j for j in range(len(self.mask)) if bool(self.mask[j]) and int(self.model_parents[j]) < 0]

    @property
    def num_model_joints(self) -> int:
        return int(self.mask.sum())


_FRAMES: dict[int, tuple[weakref.ref, RigFrame]] = {}


def rig_frame(rig: Rig) -> RigFrame:
    """The rig's :class:`RigFrame`, computed once per Rig object."""
    hit = _FRAMES.get(id(rig))
    if hit is not None and hit[0]() is rig:
        return hit[1]
    frame = _compute_frame(rig)
    key = id(rig)
    _FRAMES[key] = (weakref.ref(rig, lambda _r, k=key: _FRAMES.pop(k, None)), frame)
    return frame


def deforming_joints(rig: Rig, min_weight: float = 1e-4) -> Bool[Tensor, " J"]:
    """``(J,)`` joints that carry skin weight on any mesh; every joint for a rig without meshes."""
    J = rig.num_joints
    meshes = [m for m in rig.meshes if m.num_points]
    if not meshes:
        return torch.ones(J, dtype=torch.bool)
    used = torch.zeros(J, dtype=torch.bool)
    for m in meshes:
        used[m.joint_indices[m.joint_weights > min_weight].long()] = True
    return used


def _axis_rotations() -> Tensor:
    """The 24 rotations that map coordinate axes onto coordinate axes, ``(24, 3, 3)``."""
    import itertools

    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            R = torch.zeros(3, 3, dtype=torch.float64)
            for i, (p, s) in enumerate(zip(perm, signs)):
                R[i, p] = s
            if torch.det(R) > 0:
                out.append(R)
    return torch.stack(out)


def _polar(A: Tensor) -> Tensor:
    """Nearest rotation to each ``(..., 3, 3)`` matrix (polar decomposition by SVD)."""
    U, _, Vh = torch.linalg.svd(A)
    d = torch.det(U @ Vh)
    U = U.clone()
    U[..., :, 2] = U[..., :, 2] * d[..., None]
    return U @ Vh


def bind_to_skeleton(rest_world: Tensor, bind: Tensor, use: Tensor, parents: Tensor) -> Tensor:
    """``X (4, 4)``: the similarity (axis-aligned rotation, uniform scale, translation) that maps the ``bind`` joint
    positions onto the ``rest_world`` ones for most of the ``use`` joints; the identity where bind and rest agree.

    The scale is the median ratio of bone lengths (the same in any pose); the rotation is the one of the 24 that
    places most joints within 5 % of the skeleton's size (ties go to the identity), so that a rest pose that differs
    from the bind pose in its limbs does not matter. ``rest_world``, ``bind``: ``(J, 4, 4)``; ``use``: ``(J,)`` bool.
    """
    eye = torch.eye(4, dtype=torch.float64)
    ok = use & torch.isfinite(bind).all(-1).all(-1)
    idx = ok.nonzero().flatten()
    if len(idx) < 2:
        return eye
    r, b = rest_world[:, :3, 3], bind[:, :3, 3]
    par = parents.tolist()
    ratios = [float((r[j] - r[par[j]]).norm() / (b[j] - b[par[j]]).norm())
              for j in idx.tolist() if par[j] >= 0 and bool(ok[par[j]]) and float((b[j] - b[par[j]]).norm()) > 0
              and float((r[j] - r[par[j]]).norm()) > 0]
    if not ratios:
        return eye
    scale = float(torch.tensor(ratios, dtype=torch.float64).median())
    size = float((r[idx].max(0).values - r[idx].min(0).values).norm()) or 1.0
    rotations = _axis_rotations()  # (24, 3, 3); index 0 is the identity
    moved = scale * torch.einsum("kab,nb->kna", rotations, b[idx])  # (24, n, 3)
    t = r[idx][None] - moved  # (24, n, 3): the translation each joint proposes
    resid = (r[idx][None, None] - moved[:, None] - t[:, :, None]).norm(dim=-1)  # (24, n proposals, n joints)
    inliers = (resid < 0.05 * size).sum(-1)  # (24, n)
    per_rot = inliers.max(1).values  # (24,)
    best = int(per_rot.argmax()) if int(per_rot.max()) > int(per_rot[0]) else 0
    anchor = int(inliers[best].argmax())
    members = resid[best, anchor] < 0.05 * size
    R = rotations[best]
    t = (r[idx][members] - moved[best][members]).mean(0)
    X = eye.clone()
    X[:3, :3] = scale * R
    X[:3, 3] = t
    if best == 0 and abs(scale - 1) < 1e-6 and float(t.norm()) < 1e-6 * size:
        return eye
    return X


def _bind_trusted(rest_world: Tensor, bind: Tensor, deforming: Tensor) -> Tensor:
    """``(J,)`` joints whose bind transform can be the reference: every finite, invertible one, except the identity
    an exporter leaves on a joint that moves nothing while its rest places it away from the origin. (Comparing with
    the rest pose in any other way would make the reference depend on the rest pose, which may be any frame.)"""
    ok = torch.isfinite(bind).all(-1).all(-1) & (torch.det(bind[:, :3, :3]).abs() > 1e-30)
    r = rest_world[:, :3, 3]
    size = float((r.max(0).values - r.min(0).values).norm()) or 1.0
    eye = torch.eye(4, dtype=bind.dtype)
    placeholder = (bind - eye).abs().amax((-1, -2)) < 1e-9
    return ok & ~(placeholder & ~deforming & (r.norm(dim=-1) > 0.01 * size))


def _yaw_to_plus_z(forward: Tensor) -> Tensor:
    """Rotation about +Y that turns the horizontal direction ``forward (3,)`` into +Z."""
    f = forward.clone()
    f[1] = 0.0
    f = f / f.norm().clamp(min=1e-12)
    # R maps f -> z: its third row is f, its first row is y x f... build columns of R^T = [x', y, f]
    x = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], dtype=f.dtype), f)
    return torch.stack([x, torch.tensor([0.0, 1.0, 0.0], dtype=f.dtype), f])  # rows: maps f onto +Z


def _compute_frame(rig: Rig) -> RigFrame:
    J = rig.num_joints
    par = rig.parents.tolist()
    children = [[] for _ in range(J)]
    for j, p in enumerate(par):
        if p >= 0:
            children[p].append(j)
    meshes = [m for m in rig.meshes if m.num_points]
    deforming = deforming_joints(rig)

    # 1. model joints: deforming joints and their ancestors; non-deforming single-child roots folded away
    keep = deforming.clone()
    for j in reversed(range(J)):
        if keep[j] and par[j] >= 0:
            keep[par[j]] = True
    if meshes:
        for r in [j for j in range(J) if par[j] < 0]:
            while keep[r] and not deforming[r]:
                kids = [c for c in children[r] if keep[c]]
                if len(kids) != 1:
                    break
                keep[r] = False
                r = kids[0]
    model_parents = torch.full((J,), -1, dtype=torch.long)
    chains = []
    for j in range(J):
        if not keep[j]:
            continue
        skipped, p = [], par[j]
        while p >= 0 and not keep[p]:
            skipped.append(p)
            p = par[p]
        model_parents[j] = p
        if skipped:
            chains.append((j, tuple(reversed(skipped))))

    # 2. the reference pose: bind, brought into skeleton space by the voted similarity X
    rest_local = rig.rest_local.double()
    rest_world = forward_kinematics(rest_local[None], rig.parents)[0]  # (J, 4, 4)
    bind = rig.bind_world.double()
    X = bind_to_skeleton(rest_world, bind, deforming, rig.parents)
    ref_world = rest_world.clone()
    trusted = _bind_trusted(rest_world, bind, deforming)
    for j in range(J):
        if trusted[j]:
            ref_world[j] = X @ bind[j]
        elif par[j] >= 0:  # no usable bind: follow the parent as at rest
            ref_world[j] = ref_world[par[j]] @ rest_local[j]
        else:
            ref_world[j] = rest_world[j]
    ref_local = ref_world.clone()
    for j in range(J):
        if par[j] >= 0:
            ref_local[j] = torch.linalg.solve(ref_world[par[j]], ref_world[j])
    _, q0, _ = decompose_trs(ref_local)
    R0 = quat_to_matrix(q0)  # (J, 3, 3)
    _, qr, _ = decompose_trs(rest_local)
    rest_rot = quat_to_matrix(qr)

    # 3. the canonical frame: the stage's up (io converted it to +Y), facing from the left/right pairs
    U = _polar(rig.skel_to_world.double()[:3, :3])
    pos_u = ref_world[:, :3, 3] @ U.T  # (J, 3)
    names = rig.joint_names
    pairs = _mirror_pairs(names, keep, pos_u)
    lateral = torch.zeros(3, dtype=torch.float64)
    for a, b in pairs:
        lateral = lateral + (pos_u[a] - pos_u[b])
    lateral[1] = 0.0
    span = float((pos_u.max(0).values - pos_u.min(0).values).norm()) or 1.0
    if pairs and float(lateral.norm()) > 1e-3 * span * len(pairs):
        forward = torch.linalg.cross(lateral, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
        F = _yaw_to_plus_z(forward)
        facing = f"left/right joints ({len(pairs)} pairs)"
    else:
        F = torch.eye(3, dtype=torch.float64)
        facing = "file convention (+Z; no left/right joint pairs)"
    C = F @ U
    up = "stage upAxis " + (rig.up_axis or "Y")

    _, qw, _ = decompose_trs(ref_world)
    G = C @ quat_to_matrix(qw)  # (J, 3, 3)
    parent_rot = torch.stack([G[p] if p >= 0 else C for p in par]) if J else G
    ref_pos = ref_world[:, :3, 3] @ C.T  # (J, 3)
    if meshes:
        pts = torch.cat([m.points.double() for m in meshes]) @ X[:3, :3].T + X[:3, 3]
        y = pts @ C[1]
    else:
        y = ref_pos[:, 1]
    height = float(y.max() - y.min()) if len(y) else 0.0
    if height <= 0:
        height = span if span > 0 else 1.0
    from usdposer.core.posing import root_attachments, tree_roots
    from usdposer.types import Pose

    rig64 = rig.to(torch.float64)
    attach = tuple((r, j) for r, j, _ in root_attachments(rig64, Pose.rest(rig64), 0.5))
    top = tree_roots(rig)
    riders = torch.tensor([[float(top[k] == r) for r, _ in attach] for k in range(J)], dtype=torch.float64)
    return RigFrame(keep, model_parents, tuple(chains), ref_world, ref_local, R0, G, parent_rot, rest_rot, ref_pos, C,
                    X, height, deforming, tuple(pairs), facing, up, attach, riders.reshape(J, len(attach)))


def _side_key(name: str) -> tuple:
    return tuple(canonical_words(name)) or tuple(w for w in name_words(name) if w not in _SIDES)


def _mirror_pairs(names, keep: Tensor, pos: Tensor) -> list[tuple[int, int]]:
    """(left, right) model joints whose names differ only by side. A key with one joint per side pairs directly; the
    lateral direction those pairs give then matches keys with several joints per side (``Ear1_L``..``Ear4_L``,
    ``b_LeftLeg01_015``) by nearest mirror image."""
    by_key: dict[tuple, tuple[list[int], list[int]]] = {}
    for j, n in enumerate(names):
        s = name_side(n) if keep[j] else 0
        if s:
            by_key.setdefault(_side_key(n), ([], []))[0 if s < 0 else 1].append(j)
    pairs = [(ls[0], rs[0]) for ls, rs in by_key.values() if len(ls) == 1 and len(rs) == 1]
    lateral = sum((pos[a] - pos[b] for a, b in pairs), torch.zeros(3, dtype=pos.dtype))
    lateral[1] = 0.0
    n = lateral / lateral.norm().clamp(min=1e-12) if float(lateral.norm()) > 0 else None
    centre = pos[keep].mean(0) if bool(keep.any()) else torch.zeros(3, dtype=pos.dtype)
    for lefts, rights in by_key.values():
        if len(lefts) == 1 and len(rights) == 1:
            continue
        free = list(rights)
        for a in lefts:
            if not free:
                break
            if n is not None:  # mirror a across the plane through the centre with normal n
                d = pos[a] - centre
                image = pos[a] - 2 * float(d @ n) * n
                b = min(free, key=lambda r: float((pos[r] - image).norm()))
            else:  # same height and same horizontal distance from the centre
                b = min(free, key=lambda r: abs(float(pos[a, 1] - pos[r, 1])) +
                        abs(float((pos[a] - centre)[[0, 2]].norm() - (pos[r] - centre)[[0, 2]].norm())))
            free.remove(b)
            pairs.append((a, b))
    return pairs


# ------------------------------------------------------------------------------------------------------ features
def model_tree(rig: Rig) -> Int[Tensor, "J J"]:
    """Tree distances between model joints (:func:`tree_distance` over ``model_parents``)."""
    return tree_distance(rig_frame(rig).model_parents)


BODY_WORDS = ("hips", "body", "root", "spine", "chest")  # a root named as one of these is the body's


def body_root(names, model_parents: Int[Tensor, " J"], mask: Bool[Tensor, " J"]) -> int | None:
    """The model root that positions are measured from in a skeleton forest (a body beside IK-target roots, a head
    and a body as two trees): of the model roots whose name starts with a body word (``BODY_WORDS``, after
    :func:`canonical_words`; else of all of them), the one with the most model joints below it (the first listed on
    a tie); None without model joints. Chosen by what the roots are, not by the order the rig lists them in; on every
    shared character it is the root listed first, which is what the default model was trained with."""
    from usdposer.core.posing import roots_of

    mp = model_parents.tolist()
    roots = [j for j in range(len(mp)) if bool(mask[j]) and mp[j] < 0]
    if not roots:
        return None
    size = Counter(t for t, m in zip(roots_of(mp), mask.tolist()) if m)
    named = [r for r in roots if (canonical_words(names[r]) or [""])[0] in BODY_WORDS]
    return max(named or roots, key=lambda r: (size[r], -roots.index(r)))


def joint_features(rig: Rig, height: float | None = None) -> Float[Tensor, "J F"]:
    """Per-joint conditioning features (see the module docstring), float32; zero rows outside the model."""
    rf = rig_frame(rig)
    J = rig.num_joints
    h = height or rf.height or 1.0
    keep = rf.mask
    mp = rf.model_parents.tolist()
    pos = rf.ref_pos
    root = body_root(rig.joint_names, rf.model_parents, keep)
    origin = pos[root] if root is not None else torch.zeros(3, dtype=torch.float64)
    bone = torch.stack([pos[j] - pos[p] if p >= 0 else torch.zeros(3, dtype=pos.dtype) for j, p in enumerate(mp)])
    depth = torch.zeros(J)
    children = torch.zeros(J)
    for j in range(J):  # parents come first, so depth[mp] is final
        if keep[j] and mp[j] >= 0:
            depth[j] = depth[mp[j]] + 1
            children[mp[j]] += 1
    topo = torch.stack([depth / 10.0, children / 4.0, (keep & (rf.model_parents < 0)).float()], 1)
    mesh = torch.zeros(J, 7, dtype=torch.float64)
    total = 0.0
    X, C = rf.bind_fix, rf.canon
    for m in rig.meshes:
        if not m.num_points:
            continue
        w = torch.zeros(m.points.shape[0], J, dtype=torch.float64)
        w.scatter_add_(1, m.joint_indices.long(), m.joint_weights.double())
        p = (m.points.double() @ X[:3, :3].T + X[:3, 3]) @ C.T  # (V, 3) canonical, at the reference
        ws = w.sum(0)  # (J,)
        first = (w.T @ p) / ws.clamp(min=1e-12)[:, None]  # (J, 3) weighted mean position
        second = (w.T @ (p * p)) / ws.clamp(min=1e-12)[:, None]
        var = (second - first * first).clamp(min=0.0)
        mesh[:, 0] += ws
        mesh[:, 1:4] += ws[:, None] * (first - pos)
        mesh[:, 4:7] += ws[:, None] * var.sqrt()
        total += float(m.points.shape[0])
    if total > 0:
        ws = mesh[:, :1].clamp(min=1e-12)
        mesh[:, 1:7] = mesh[:, 1:7] / ws / h
        mesh[:, 0] = mesh[:, 0] / total * 10.0
    names = rig.joint_names
    sem = torch.stack([name_hash(n) for n in names]) if J else torch.zeros(0, NAME_BUCKETS)
    side = torch.zeros(J, 3)
    for j, n in enumerate(names):
        side[j, name_side(n) + 1] = 1.0
    out = torch.cat([((pos - origin) / h).float(), (bone / h).float(), topo, mesh.float(), sem, side], 1)
    return out * keep[:, None].float()


# ------------------------------------------------------------------------------------------------------ poses
def _heading_free(q: Float[Tensor, "... 4"]) -> Float[Tensor, "... 4"]:
    """Remove the twist about +Y (the heading) from rotations (swing-twist decomposition)."""
    return quat_multiply(quat_conjugate(_heading(q)), q)


def _heading(q: Float[Tensor, "... 4"]) -> Float[Tensor, "... 4"]:
    """The twist about +Y of rotations ``(..., 4)``."""
    twist = torch.zeros_like(q)
    twist[..., 0], twist[..., 2] = q[..., 0], q[..., 2]
    n = twist.norm(dim=-1, keepdim=True)
    ident = torch.tensor([1.0, 0, 0, 0], dtype=q.dtype, device=q.device)
    return torch.where(n > 1e-9, twist / n.clamp(min=1e-12), ident)


def _canonical_matrices(rig: Rig, rotations: Float[Tensor, "B J 4"]) -> Float[Tensor, "B J 3 3"]:
    """``Q`` of every joint with the model roots' heading kept (joints outside the model: identity)."""
    rf = rig_frame(rig)
    dt = rotations.dtype
    R = quat_to_matrix(quat_normalize(rotations))  # (B, J, 3, 3) local rotations
    Gp = rf.parent_rot.to(dt)
    D = R @ rf.ref_local_rot.to(dt).transpose(-1, -2)  # (B, J, 3, 3) change from the reference, parent frame
    Q = Gp @ D @ Gp.transpose(-1, -2)  # (B, J, 3, 3) about world-aligned axes
    if rf.chains:  # read from the unchanged rotations (skipped joints are never chain ends), so autograd can too
        src, Q = Q, Q.clone()
        for j, skipped in rf.chains:
            M = src[:, j]
            for e in reversed(skipped):
                M = src[:, e] @ M
            Q[:, j] = M
    eye = torch.eye(3, dtype=dt)
    return torch.where(rf.mask[None, :, None, None], Q, eye)


def pose_to_6d(rig: Rig, pose: Pose, canonical_heading: bool = True) -> Float[Tensor, "B J 6"]:
    """Poses -> ``(B, J, 6)`` canonical codes (identity = the reference pose); the model roots' heading removed."""
    Q = _canonical_matrices(rig, pose.rotations)
    if canonical_heading:
        roots = rig_frame(rig).model_roots
        if roots:
            Q = Q.clone()
            q = _heading_free(matrix_to_quat(Q[:, roots]))
            Q[:, roots] = quat_to_matrix(q)
    return matrix_to_6d(Q)


def root_heading(rig: Rig, pose: Pose) -> Float[Tensor, "B R 4"]:
    """The heading (twist about canonical +Y) of every model root of ``pose``: what :func:`pose_to_6d` removes."""
    roots = rig_frame(rig).model_roots
    Q = _canonical_matrices(rig, pose.rotations)
    return _heading(matrix_to_quat(Q[:, roots]))


def _decoded_rotations(rig: Rig, six: Float[Tensor, "B J 6"], heading: Tensor | None,
                       like: Pose | None = None, Q: Tensor | None = None) -> Float[Tensor, "B J 3 3"]:
    """Local joint rotations ``R_j = G_p^T Q_j G_p R0_j`` of canonical codes (differentiable). Joints folded out of
    the model (a non-deforming root above the model root) stay at the reference, or take ``like``'s rotation, the
    model joint below them taking the rest of its code (so a pose taken out of an animation pivots where it did).
    ``Q``: ``sixd_to_matrix(six)`` where the caller has it already."""
    rf = rig_frame(rig)
    dt = six.dtype
    Q = sixd_to_matrix(six) if Q is None else Q
    eye = torch.eye(3, dtype=dt, device=six.device)
    Q = torch.where(rf.mask.to(six.device)[None, :, None, None], Q, eye)
    if heading is not None:
        roots = rf.model_roots
        Hm = quat_to_matrix(heading.to(dt)).expand(six.shape[0], len(roots), 3, 3)
        Q = Q.index_copy(1, torch.tensor(roots, device=six.device), Hm @ Q[:, roots])
    if like is not None and rf.chains:
        Gp = rf.parent_rot.to(dt)
        R_like = quat_to_matrix(quat_normalize(like.rotations.to(dt))).expand(six.shape[0], -1, -1, -1)
        Q_like = Gp @ R_like @ rf.ref_local_rot.to(dt).transpose(-1, -2) @ Gp.transpose(-1, -2)  # raw, per joint
        for j, skipped in rf.chains:
            chain = Q_like[:, skipped[0]]
            for e in skipped[1:]:
                chain = chain @ Q_like[:, e]
            Q = Q.index_copy(1, torch.tensor(list(skipped) + [j], device=six.device),
                             torch.cat([Q_like[:, list(skipped)], (chain.transpose(-1, -2) @ Q[:, j])[:, None]], 1))
    Gp = rf.parent_rot.to(dt)
    return Gp.transpose(-1, -2) @ Q @ Gp @ rf.ref_local_rot.to(dt)


def local_from_6d(rig: Rig, six: Float[Tensor, "B J 6"], heading: Tensor | None = None,
                  like: Pose | None = None) -> Float[Tensor, "B J 4 4"]:
    """Differentiable local transforms of canonical codes: decoded rotations with the reference translations and
    scales (roots at their reference position, no grounding), or ``like``'s (a Pose of batch 1 or B: a pose taken out
    of an animation keeps where its joints were); ``heading`` ``(B or 1, R, 4)`` turns the model roots; a skeleton
    forest's attached secondary roots ride their joints (:func:`ride`). Built from matrices so that gradients never
    pass through a matrix-to-quaternion branch."""
    local = _local(rig, six, heading, like)
    if not rig_frame(rig).attach:
        return local
    G = ride(rig, forward_kinematics(local, rig.parents), ride_offsets(rig, like))
    roots = [r for r, _ in rig_frame(rig).attach]
    t = local[..., :3, 3].clone()
    t[:, roots] = G[:, roots, :3, 3]  # a root's local translation is its skeleton-space position
    return torch.cat([torch.cat([local[..., :3, :3], t[..., None]], -1), local[..., 3:, :]], -2)


def world_from_6d(rig: Rig, six: Float[Tensor, "B J 6"], heading: Tensor | None = None, like: Pose | None = None,
                  offsets: Tensor | None = None) -> Float[Tensor, "B J 4 4"]:
    """Skeleton-space joint transforms of canonical codes (:func:`local_from_6d` then forward kinematics, in one
    pass: the attached roots' subtrees are shifted after it). ``offsets`` (:func:`ride_offsets`) may be given once
    for many calls with the same ``like``."""
    return _world(rig, _local(rig, six, heading, like), like, offsets)


def world_and_relative(rig: Rig, six: Float[Tensor, "B J 6"], heading: Tensor | None = None,
                       like: Pose | None = None, offsets: Tensor | None = None
                       ) -> tuple[Float[Tensor, "B J 4 4"], Float[Tensor, "B J 3 3"]]:
    """:func:`world_from_6d` and :func:`relative_rotations` of the same codes, decoding them once (the guided-IK
    energy wants both, through a Jacobian)."""
    Q = sixd_to_matrix(six)
    return _world(rig, _local(rig, six, heading, like, Q), like, offsets), _relative(rig, six, Q)


def _world(rig: Rig, local: Tensor, like: Pose | None, offsets: Tensor | None) -> Tensor:
    G = forward_kinematics(local, rig.parents)
    if not rig_frame(rig).attach:
        return G
    return ride(rig, G, ride_offsets(rig, like) if offsets is None else offsets)


def _local(rig: Rig, six: Tensor, heading: Tensor | None, like: Pose | None, Q: Tensor | None = None) -> Tensor:
    R = _decoded_rotations(rig, six, heading, like, Q)  # (B, J, 3, 3)
    t, s = _placement(rig, six, like)
    top = torch.cat([R * s[..., None, :], t[..., None]], -1)  # (B, J, 3, 4)
    bottom = torch.zeros(*top.shape[:2], 1, 4, dtype=six.dtype, device=six.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], -2)  # (B, J, 4, 4)


def ride_offsets(rig: Rig, like: Pose | None = None) -> Tensor | None:
    """``(1 or B, A, 4, 1)`` each attached secondary root's origin (``RigFrame.attach``) in its joint's frame at the
    reference, or in ``like``'s poses; None for a rig without any."""
    from usdposer.core.kinematics import pose_local_transforms

    attach = rig_frame(rig).attach
    if not attach:
        return None
    roots, joints = [r for r, _ in attach], [j for _, j in attach]
    ref = (rig_frame(rig).ref_world[None] if like is None else
           forward_kinematics(pose_local_transforms(like).double(), rig.parents))  # (1 or B, J, 4, 4)
    return torch.linalg.inv(ref[:, joints]) @ ref[:, roots, :, 3:]


def ride(rig: Rig, G: Float[Tensor, "B J 4 4"], offsets: Tensor) -> Float[Tensor, "B J 4 4"]:
    """Skeleton-space transforms ``G`` with every attached secondary root's tree shifted so that the root sits where
    its joint holds it, ``G_joint offset`` (a root's rotation is its own, so its tree moves rigidly). Differentiable."""
    attach = rig_frame(rig).attach
    roots, joints = [r for r, _ in attach], [j for _, j in attach]
    held = (G[:, joints] @ offsets.to(G))[..., :3, 0]  # (B, A, 3)
    shift = torch.einsum("ja,bac->bjc", rig_frame(rig).riders.to(G), held - G[:, roots, :3, 3])  # (B, J, 3)
    return torch.cat([torch.cat([G[..., :3, :3], (G[..., :3, 3] + shift)[..., None]], -1), G[..., 3:, :]], -2)


def _placement(rig: Rig, six: Tensor, like: Pose | None) -> tuple[Tensor, Tensor]:
    """``(B, J, 3)`` translations and scales: the reference's, or ``like``'s."""
    B = six.shape[0]
    if like is not None:
        return (like.translations.to(six).expand(B, -1, -1).clone(), like.scales.to(six).expand(B, -1, -1).clone())
    t_ref, _, s_ref = decompose_trs(rig_frame(rig).ref_local.to(six))
    return t_ref.expand(B, -1, -1).clone(), s_ref.expand(B, -1, -1).clone()


def pose_from_6d(rig: Rig, six: Float[Tensor, "B J 6"], ground: bool = True, like: Pose | None = None) -> Pose:
    """Inverse of :func:`pose_to_6d`: reference translations and scales, the roots at their reference position with
    the lowest skinned point (or joint, for a rig without meshes) on the ground plane y = 0 when ``ground``.

    ``like`` (a Pose of batch 1 or B) gives the model roots back their heading and every joint its translation and
    scale instead (no grounding): a pose taken out of an animation returns to where it was.
    """
    from usdposer.types import Pose

    heading = root_heading(rig, like).to(six) if like is not None else None
    q = matrix_to_quat(_decoded_rotations(rig, six, heading, like))
    t, s = _placement(rig, six, like)
    pose = Pose(q, t, s)
    if rig_frame(rig).attach:  # secondary roots (hoof IK targets) ride the joints they sit on
        from usdposer.core.kinematics import pose_local_transforms

        roots = [r for r, _ in rig_frame(rig).attach]
        G = ride(rig, forward_kinematics(pose_local_transforms(pose), rig.parents), ride_offsets(rig, like))
        t = t.clone()
        t[:, roots] = G[:, roots, :3, 3]
        pose = Pose(q, t, s)
    return place_on_ground(rig, pose) if ground and like is None else pose


def reference_pose(rig: Rig) -> Pose:
    """The reference pose (batch 1, not grounded): every joint at its bind transform where the file has a usable one
    (:func:`rig_frame`), else following its parent as at rest. The pose the mesh was modelled in; a glTF's rest pose
    may be a frame of an animation instead (Quaternius' characters rest with their arms down, bound in a T-pose)."""
    dt = rig.bind_world.dtype
    return pose_from_6d(rig, torch.tensor(IDENTITY_6D, dtype=dt).expand(1, rig.num_joints, 6), ground=False)


def reference_world(rig: Rig) -> tuple[Tensor, list[Tensor]]:
    """:func:`usdposer.core.posing.rest_world` in the reference (bind) pose: joint transforms (J, 4, 4) and every
    mesh's skinned points (V_m, 3), float64, in the rig's world: the mesh as it was modelled."""
    from usdposer.core.posing import rest_world

    rig = rig.to(torch.float64)
    return rest_world(rig, reference_pose(rig))


def relative_rotations(rig: Rig, six: Float[Tensor, "B J 6"]) -> Float[Tensor, "B J 3 3"]:
    """Joint-local rotations relative to the rest pose (``R_rest^T R``) of canonical codes: what joint limits (MJCF
    hinges, UsdPhysics, learned swing-twist) are stated in. Differentiable."""
    return _relative(rig, six)


def _relative(rig: Rig, six: Tensor, Q: Tensor | None = None) -> Tensor:
    return rig_frame(rig).rest_rot.to(six).transpose(-1, -2) @ _decoded_rotations(rig, six, None, None, Q)


def within_limits(rig: Rig, six: Float[Tensor, "B J 6"], limits: Float[Tensor, "J 3 2"]) -> Float[Tensor, "B J 6"]:
    """Canonical codes with every joint's rotation relative to rest clamped into ``limits`` (per-axis Euler limits,
    stated as :func:`relative_rotations` is; :func:`usdposer.core.limits.clamp_to_limits`), roots where they rest, the
    heading kept. Poses inside the limits come back as they are (to float precision)."""
    from usdposer.core.limits import clamp_to_limits
    from usdposer.types import Pose

    R = clamp_to_limits(relative_rotations(rig, six.double()), limits)
    q = matrix_to_quat(rig_frame(rig).rest_rot.to(R) @ R)  # back to joint-local rotations
    return pose_to_6d(rig, Pose.from_rotations(rig, q), canonical_heading=False).to(six.dtype)


def canonical_positions(six: Float[Tensor, "B J 6"], model_parents: Tensor, ref_pos: Float[Tensor, "J 3"],
                        mask: Tensor) -> Float[Tensor, "B J 3"]:
    """Joint positions of canonical codes in the canonical frame (roots at their reference position, heading as
    coded): ``Delta_j = Delta_p Q_j``, ``p_j = p_p + Delta_p (r_j - r_p)`` over the model tree. Joints outside the
    model are left at their reference position (they are not compared)."""
    Q = sixd_to_matrix(six)
    B, J = six.shape[:2]
    ref = ref_pos.to(six)
    delta = torch.empty(B, J, 3, 3, dtype=six.dtype)
    pos = ref.expand(B, -1, -1).clone()
    mp = model_parents.tolist()
    for j in range(J):
        if not mask[j]:
            continue
        p = mp[j]
        if p < 0:
            delta[:, j] = Q[:, j]
        else:
            delta[:, j] = delta[:, p] @ Q[:, j]
            pos[:, j] = pos[:, p] + (delta[:, p] @ (ref[j] - ref[p])[:, None])[..., 0]
    return pos


def mirror_codes(six: Float[Tensor, "N J 6"], perm: Tensor) -> Float[Tensor, "N J 6"]:
    """Left/right mirror images of canonical codes: joints swapped by ``perm`` and every rotation reflected across
    the canonical sagittal plane (x -> -x): ``Q' = M Q M``, ``M = diag(-1, 1, 1)``."""
    M = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=six.dtype))
    return matrix_to_6d(M @ sixd_to_matrix(six[:, perm]) @ M)


def mirror_permutation(names, pairs, mask: Tensor, ref_pos: Tensor, height: float, model_parents: Tensor,
                       tol: float = 0.05) -> Tensor | None:
    """``(J,)`` the left/right swap of a rig's joints when its reference pose is mirror-symmetric (paired joints at
    mirrored positions, unpaired model joints on the sagittal plane, within ``tol`` of the height); else None."""
    J = len(names)
    if not pairs:
        return None
    perm = torch.arange(J)
    paired = set()
    for a, b in pairs:
        perm[a], perm[b] = b, a
        paired |= {a, b}
    M = torch.tensor([-1.0, 1.0, 1.0], dtype=ref_pos.dtype)
    root = body_root(names, model_parents, mask)
    if root is None:
        return None
    rel = ref_pos - ref_pos[root]
    err = ((rel * M)[perm] - rel).norm(dim=-1)  # (J,)
    err = torch.where(mask, err, torch.zeros_like(err))
    return perm if float(err.max()) <= tol * height else None


GROUND_TORCH_WORK = 4_000_000  # poses x vertices x influences under which grounding skins with torch, not Warp


def place_on_ground(rig: Rig, pose: Pose) -> Pose:
    """Shift every root so that the lowest skinned point (or joint) of each pose is at y = 0 in world space."""
    from usdposer.core.kinematics import skinning_transforms
    from usdposer.core.posing import joint_transforms
    from usdposer.core.skinning import linear_blend_skinning, skinned_heights
    from usdposer.types import Pose

    with torch.no_grad():
        G = joint_transforms(rig, pose)  # (B, J, 4, 4)
        S = rig.skel_to_world.to(G)
        if rig.meshes:  # the world-space y row of the skinned points
            M = S @ skinning_transforms(G, rig.bind_world.to(G))
            work = len(G) * sum(m.points.shape[0] * m.num_influences for m in rig.meshes)
            if work <= GROUND_TORCH_WORK:  # small: torch's y row alone, in the rig's precision
                world_y = torch.cat([skinned_heights(m.points.to(M), m.joint_indices, m.joint_weights.to(M), M)
                                     for m in rig.meshes], 1)
            else:  # large: the Warp kernel (float32; 256 rodent poses of 6,880 vertices x 14 influences in 0.03 s
                # against 2.2 s for the float64 reference, once Warp has started: 0.3 s per process)
                world_y = torch.cat([linear_blend_skinning(m.points.float(), m.joint_indices, m.joint_weights.float(),
                                                           M.float())[..., 1] for m in rig.meshes], 1).to(G)  # (B, N)
        else:
            world_y = G[:, :, :3, 3] @ S[1, :3] + S[1, 3]  # (B, J)
        lowest = world_y.min(1).values  # (B,)
        up_in_skel = torch.linalg.solve(S[:3, :3], torch.tensor([0.0, 1.0, 0.0], dtype=G.dtype))
    t = pose.translations.clone()
    for r in rig.roots:
        t[:, r] = t[:, r] - lowest[:, None] * up_in_skel
    return Pose(pose.rotations, t, pose.scales)


def describe_conventions(rig: Rig) -> dict:
    """What :func:`rig_frame` found about how the rig was made (``usdposer info``)."""
    rf = rig_frame(rig)
    X = rf.bind_fix
    s = float(torch.det(X[:3, :3]).abs().pow(1 / 3))
    rest_world = forward_kinematics(rig.rest_local.double()[None], rig.parents)[0]
    scale = rest_world[:, :3, :3].norm(dim=1).mean(-1)  # (J,) joint-frame scale in skeleton units
    dpos = (rest_world[:, :3, 3] - rf.ref_world[:, :3, 3]).norm(dim=-1)
    fwd = rf.canon.T @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)  # canonical +Z in skeleton space
    return {
        "up": rf.up,
        "facing": rf.facing,
        "forward_in_skeleton_space": [round(float(v), 3) for v in fwd],
        "joint_frame_scale": [round(float(scale.min()), 6), round(float(scale.max()), 6)],
        "bind_space": ("skeleton space" if torch.allclose(X, torch.eye(4, dtype=X.dtype)) else
                       f"the mesh's space (corrected by an axis rotation and a scale of {s:.4g})"),
        "rest_differs_from_bind": bool(float(dpos.max()) > 1e-3 * rf.height),
        "rest_vs_bind_max_offset_pct": round(100 * float(dpos.max()) / rf.height, 3),
        "model_joints": rf.num_model_joints,
        "non_deforming_joints": [rig.joint_names[j] for j in range(rig.num_joints) if not bool(rf.mask[j])],
        "mirror_pairs": len(rf.pairs),
        "height_units": round(rf.height, 6),
    }
