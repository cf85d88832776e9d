"""``usdposer invert``: DDIM inversion (eta = 0) of an animation's poses into latent codes, stored in a
``PoseSampleLibrary`` with each pose's reconstruction error, plus the decoded poses to compare."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch
from usdposer.pipelines._base import Progress, Result, preflight
from usdposer.pipelines._session import Session, joint_error, place

from usdposer.core.selection import parse_frames


@dataclass(frozen=True)
class InvertOptions:
    """``anim``: the SkelAnimation (default: the bound one); ``frames``: a selection (``0:40``); ``refine``:
    fixed-point iterations per inversion step; ``checkpoint``: None or "default" for the shipped pose space."""

    anim: str | None = None
    frames: str | None = None
    checkpoint: str | None = None
    steps: int = 50
    refine: int = 3
    skeleton: str | None = None
    device: str = "cpu"
    preview: str | None = None
    arguments: tuple[str, ...] = ()


def invert(asset: str | os.PathLike, out: str | os.PathLike, options: InvertOptions = InvertOptions(),
           progress: Progress | None = None) -> InvertReport:
    """``usdposer invert``: the latent codes of an animation's poses, as a layer over the asset."""
    preflight([asset], out, [options.preview])
    o = options
    return _invert(asset, out, anim=o.anim, frames=o.frames, checkpoint=o.checkpoint, steps=o.steps, refine=o.refine,
                   skeleton=o.skeleton, device=o.device, arguments=list(o.arguments), progress=progress,
                   preview=o.preview)


@dataclass
class InvertReport(Result):
    """The ``usdposer invert --json`` contract; errors are fractions of the character's height."""

    asset: str
    output: str
    skeleton: str
    animation: str
    frames: int
    steps: int
    refine: int
    checkpoint: str
    library: str
    reconstruction: str
    height_m: float
    mean_error: float
    max_error: float
    errors: list[float] = field(default_factory=list)
    seconds: float = 0.0
    preview: str | None = None


def _invert(asset, out, *, anim: str | None = None, frames: str | None = None, checkpoint: str | None = None,
                 steps: int = 50, refine: int = 3, skeleton: str | None = None, device: str = "cpu",
                 arguments: list[str] | None = None, progress=None, preview: str | None = None) -> InvertReport:
    """DDIM-invert an animation's poses into latent codes (layout B library ``<Skeleton>/PoseLatents`` with each
    pose's reconstruction error as its score) and write the decoded poses as ``usdposerReconstruction`` (not bound)."""
    from usdposer.core.posespace import pose_to_6d
    from usdposer.io.edits import stamp_pose_space
    from usdposer.io.write_skel import define_pose_library, provenance, write_clip_layer
    from usdposer.types import Pose

    t0 = time.time()
    s = Session.open(asset, skeleton, checkpoint, device)
    clip = s.asset.clip(s.rig, anim)
    idx = parse_frames(frames, clip.time_codes)
    src = Pose(clip.rotations[idx], clip.translations[idx], clip.scales[idx])
    six = pose_to_6d(s.rig, src).float()
    # 1. invert, 2. decode the latents again, 3. compare where the joints land
    latents = s.prior.invert(s.cond, six, steps=steps, refine=refine, progress=progress)
    rec, _ = s.prior.sample(s.cond, len(latents), steps=steps, latents=latents)
    err = (joint_error(s.rig, six, rec) / s.height).float()
    decoded = place(s.rig, rec, src)
    tc = clip.time_codes[idx]
    from usdposer.types import Clip

    rec_clip = Clip(decoded.rotations, decoded.translations, decoded.scales, time_codes=tc.double(),
                    time_codes_per_second=clip.time_codes_per_second, name="usdposerReconstruction")
    lib = f"{s.rig.skeleton_path}/PoseLatents"

    def author(stage):
        prim = define_pose_library(stage, lib, s.rig, src, latents=latents.reshape(len(idx), -1).numpy(),
                                   scores=err.numpy(), time_codes=tc.tolist())
        prim.SetCustomDataByKey("usdposer:scores", "reconstruction error (mean joint distance / character height)")
        prim.SetCustomDataByKey("usdposer:source", clip.path)
        stamp_pose_space(stage, s.rig.skeleton_path, s.model_id, lib, len(idx), sampler="ddim")

    prov = provenance("invert", arguments, checkpoint=s.model_id, steps=steps, refine=refine, animation=clip.path)
    outp = write_clip_layer(asset, out, s.rig, [rec_clip], prov=prov, bind=None, author=author)
    if preview:  # source over decoded, pose by pose (at most 8)
        from usdposer.render.preview import contact_sheet

        show = list(range(0, len(idx), max(1, -(-len(idx) // 8))))
        both = Pose(torch.cat([src.rotations[show].double(), decoded.rotations[show].double()]),
                    torch.cat([src.translations[show].double(), decoded.translations[show].double()]),
                    torch.cat([src.scales[show].double(), decoded.scales[show].double()]))
        labels = [f"{float(tc[i]):g} source" for i in show] + [f"{float(tc[i]):g} decoded" for i in show]
        contact_sheet(s.rig, both, preview, columns=len(show), labels=labels)
    return InvertReport(str(asset), str(outp), s.rig.skeleton_path, clip.path, len(idx), steps, refine, s.model_id,
                        lib, f"{s.rig.skeleton_path}/usdposerReconstruction", s.height, float(err.mean()),
                        float(err.max()), [round(float(e), 6) for e in err], time.time() - t0, preview)
