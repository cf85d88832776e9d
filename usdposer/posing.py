"""Rig + Pose -> joint transforms and skinned points (the glue every verb uses; pure torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from usdposer.core.kinematics import forward_kinematics, pose_local_transforms, skinning_transforms
from usdposer.core.skinning import linear_blend_skinning

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

    from usdposer.types import Pose, Rig


def joint_transforms(rig: Rig, pose: Pose) -> Float[Tensor, "B J 4 4"]:
    """Skeleton-space joint transforms of every pose in the batch."""
    return forward_kinematics(pose_local_transforms(pose), rig.parents)


def skin(rig: Rig, pose: Pose, backend: str = "auto") -> list[Float[Tensor, "B V 3"]]:
    """Skinned points of every mesh of ``rig`` for every pose, in skeleton space (metres)."""
    S = skinning_transforms(joint_transforms(rig, pose), rig.bind_world.to(pose.rotations))
    return [linear_blend_skinning(m.points.to(S), m.joint_indices, m.joint_weights.to(S), S, backend=backend)
            for m in rig.meshes]


def character_height(rig: Rig) -> float:
    """Extent along +Y of the rest-pose skinned points (or of the rest joints for a rig without meshes), metres."""
    from usdposer.types import Pose

    pose = Pose.rest(rig)
    pts = [p[0] for p in skin(rig, pose, backend="torch")] or [joint_transforms(rig, pose)[0, :, :3, 3]]
    allp = torch.cat(pts)
    return float(allp[:, 1].max() - allp[:, 1].min()) if len(allp) else 0.0
