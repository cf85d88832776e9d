"""What rules look at: a file (its ``SkelAsset``), a clip of one rig, and chunks of that clip's frames.

Per-rig data that several rules share (height, twist axes, the triangle parts of the self-intersection test) is
computed once per rig and cached on the :class:`RigContext`. Chunks compute world joint transforms and skinned points
lazily, in float32, ``CheckOptions.chunk`` frames at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch

from usdposer.validate.registry import Finding

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

    from usdposer.io.read_skel import SkelAsset
    from usdposer.types import Clip, Rig
    from usdposer.validate.selfintersect import TriangleParts


@dataclass
class CheckOptions:
    """Thresholds (fractions of the character's height unless stated) and optional inputs of the rules."""

    learned_limits: dict | None = None  # contents of a `usdposer limits learn` file
    scorer: Callable[[Rig, Tensor], Tensor] | None = None  # (rig, six (n, J, 6)) -> (n,) prior score, lower = better
    score_threshold: float | None = None  # calibrated on held-in data
    chunk: int = 128  # frames per chunk
    limit_tolerance_deg: float = 1.0
    penetration: float = 0.02  # lowest point below the ground by more than this warns
    penetration_fail: float = 0.10  # ... and by more than this fails
    floating: float = 0.05  # a whole clip above the ground by more than this warns
    contact: float = 0.02  # points this close to the ground touch it
    skating: float = 1.0  # contact points sliding faster than this (heights per second) warns
    pop: float = 90.0  # a joint's frame-to-frame rotation changing by more than this (degrees per frame^2) warns
    jitter: float = 15.0  # a clip's mean jitter (degrees per frame^2) above this warns
    depth: float = 0.01  # self-intersection deeper than this warns
    depth_fail: float = 0.15  # ... and deeper than this fails
    drift: float = 0.01  # bone length off its rest length by more than this (relative) warns
    min_tree_distance: int = 3  # parts this far apart in the skeleton may not touch


@dataclass
class FileContext:
    """One file being checked."""

    path: str
    asset: SkelAsset | None
    options: CheckOptions
    read_error: str | None = None  # the one-line reason the file could not be read (then ``asset`` is None)

    def finding(self, rule, code: str, message: str, severity: str | None = None, **where) -> Finding:
        return Finding(rule=rule.name, code=code, severity=severity or rule.severity, message=message, file=self.path,
                       **where)


class RigContext:
    """One rig and what the per-frame rules share about it."""

    def __init__(self, file: FileContext, rig: Rig):
        self.file, self.rig = file, rig

    @cached_property
    def height(self) -> float:
        from usdposer.core.posing import character_height

        return max(character_height(self.rig), 1e-6)

    @cached_property
    def rest_rotations(self) -> Float[Tensor, "J 3 3"]:
        from usdposer.core.kinematics import decompose_trs
        from usdposer.core.rotations import quat_to_matrix

        return quat_to_matrix(decompose_trs(self.rig.rest_local)[1]).float()

    @cached_property
    def ground(self) -> float | None:
        """Height of the ground plane (0), or None when the rest pose does not stand on y = 0 (within 1% of the
        height: test geometry, BVH skeletons rooted at the origin), where a ground check means nothing."""
        from usdposer.types import Pose

        rest = Pose.rest(self.rig)
        pts = world_points(self.rig, rest)[0] if self.rig.meshes else _world(self.rig, rest)[0, :, :3, 3]
        low = float(pts[:, 1].min()) if len(pts) else 0.0
        return 0.0 if abs(low) <= 0.01 * self.height and self.height > 1e-3 else None

    @cached_property
    def root_chain(self) -> Tensor:
        """(J,) bool: each root, its children, and the chain below down to the first joint with two or more
        children (the hips): the joints that carry root motion."""
        parents = self.rig.parents.tolist()
        children: list[list[int]] = [[] for _ in parents]
        for j, p in enumerate(parents):
            if p >= 0:
                children[p].append(j)
        chain = torch.zeros(len(parents), dtype=torch.bool)
        for r in self.rig.roots:
            j = r
            while True:
                chain[j] = True
                if len(children[j]) != 1:
                    break
                j = children[j][0]
            chain[children[r]] = True  # a root's own children too (several rigs hang the hips off the root)
        return chain

    @cached_property
    def rest_scales(self) -> Float[Tensor, "J 3"]:
        from usdposer.core.kinematics import decompose_trs

        return decompose_trs(self.rig.rest_local)[2].float()

    @cached_property
    def bone_lengths(self) -> Float[Tensor, " J"]:
        """Rest length of each joint's bone (distance to its parent, metres; 0 for roots)."""
        from usdposer.types import Pose

        return _bone_lengths(self.rig, _world(self.rig, Pose.rest(self.rig)))[0]

    @cached_property
    def learned(self) -> tuple[Float[Tensor, "J 3"], Float[Tensor, "J 3"]] | None:
        """(twist axes, swing-twist limits in radians) for this rig from ``--limits``, or None."""
        from usdposer.validate.learned import limits_for

        data = self.file.options.learned_limits
        return limits_for(data, self.rig) if data else None

    @cached_property
    def parts(self) -> TriangleParts | None:
        from usdposer.validate.selfintersect import TriangleParts

        return TriangleParts.from_rig(self.rig, self.file.options.min_tree_distance) if self.rig.meshes else None


@dataclass
class ClipContext:
    """One clip of one rig."""

    rig_ctx: RigContext
    clip: Clip

    @property
    def rig(self) -> Rig:
        return self.rig_ctx.rig

    @property
    def file(self) -> FileContext:
        return self.rig_ctx.file

    @property
    def height(self) -> float:
        return self.rig_ctx.height

    def time(self, i: int) -> float:
        return float(self.clip.time_codes[i])

    def chunks(self) -> Iterator[Chunk]:
        # frames per chunk, fewer for a heavy mesh: a chunk's skinned points and triangle boxes stay near 100 MB each
        n = max(1, min(self.file.options.chunk, 4_000_000 // max(1, self.rig.num_points)))
        for start in range(0, len(self.clip), n):
            yield Chunk(self, start, min(start + n, len(self.clip)))

    def finding(self, rule, code: str, message: str, severity: str | None = None, *, joint: int | None = None,
                frame: int | None = None, run: tuple[int, int] | None = None, value: float | None = None) -> Finding:
        """A finding on this clip; ``frame`` and ``run`` are frame indices, converted to time codes."""
        return self.file.finding(
            rule, code, message, severity, prim=self.clip.path or self.rig.skeleton_path,
            joint=self.rig.joints[joint] if joint is not None else "",
            frame=self.time(frame) if frame is not None else None,
            frames=(self.time(run[0]), self.time(run[1])) if run is not None else None, value=value)


@dataclass
class Chunk:
    """Frames ``start:stop`` of a clip, with lazily computed world-space data (float32, metres, +Y up)."""

    clip_ctx: ClipContext
    start: int
    stop: int

    @cached_property
    def pose(self):
        from usdposer.types import Pose

        c = self.clip_ctx.clip
        s = slice(self.start, self.stop)
        return Pose(c.rotations[s].float(), c.translations[s].float(), c.scales[s].float())

    @cached_property
    def world(self) -> Float[Tensor, "b J 4 4"]:
        return _world(self.clip_ctx.rig, self.pose)

    @cached_property
    def points(self) -> Float[Tensor, "b V 3"]:
        """Skinned points of every mesh, concatenated, in world space."""
        return world_points(self.clip_ctx.rig, self.pose)

    @cached_property
    def R_rel(self) -> Float[Tensor, "b J 3 3"]:
        """Joint-local rotations relative to rest."""
        from usdposer.core.rotations import quat_to_matrix

        return self.clip_ctx.rig_ctx.rest_rotations.transpose(-1, -2) @ quat_to_matrix(self.pose.rotations)


def _world(rig: Rig, pose) -> Float[Tensor, "B J 4 4"]:
    from usdposer.core.posing import joint_transforms

    W = joint_transforms(rig, pose)
    return rig.skel_to_world.to(W) @ W


def world_points(rig: Rig, pose) -> Float[Tensor, "B V 3"]:
    """Skinned points of every mesh of ``rig`` (concatenated) in world space, in the pose's dtype."""
    from usdposer.core.posing import skin

    pts = skin(rig, pose, backend="auto")  # the Warp kernel (float32, all frames in one launch), torch without Warp
    if not pts:
        return torch.zeros(len(pose), 0, 3, dtype=pose.rotations.dtype)
    pts = pts[0] if len(pts) == 1 else torch.cat(pts, 1)
    to_world = rig.skel_to_world.to(pose.rotations)
    if torch.equal(to_world, torch.eye(4, dtype=to_world.dtype)):
        return pts  # most skeletons sit at the world's origin: no (B, V, 3) copy
    return pts @ to_world[:3, :3].T + to_world[:3, 3]


def _bone_lengths(rig: Rig, world: Tensor) -> Tensor:
    pos = world[..., :3, 3]  # (B, J, 3)
    parents = rig.parents.clamp(min=0)
    L = (pos - pos[:, parents]).norm(dim=-1)  # (B, J)
    return torch.where(rig.parents >= 0, L, torch.zeros_like(L))


def runs(mask: Tensor) -> list[tuple[int, int]]:
    """Contiguous runs of True in a 1-D bool tensor as inclusive (first, last) index pairs."""
    idx = torch.nonzero(mask).flatten().tolist()
    out: list[tuple[int, int]] = []
    for i in idx:
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out
