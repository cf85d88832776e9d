"""``usdposer fit``: a rig's poses fitted to a mesh / point-cloud sequence (the algorithm is
``usdposer.core.fitting``), written as a bound SkelAnimation over the rig asset with per-frame residuals."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from usdposer.pipelines._base import Progress, Result, preflight


@dataclass
class FitReport(Result):
    """What ``usdposer fit`` did (its ``--json`` result). Residuals are Chamfer RMS distances in % of height."""

    output: str
    sequence: str
    rig: str
    animation: str
    frames: int
    residuals: list[float] = field(default_factory=list)
    mean_residual: float = 0.0
    max_residual: float = 0.0
    seconds: float = 0.0
    frames_per_second: float = 0.0
    preview: str | None = None


@dataclass(frozen=True)
class FitOptions:
    """``cfg``: the optimisation (iterations, sample count, weights); ``prim``: the mesh prim of a USD sequence;
    ``name``: the SkelAnimation written; ``frames``: a selection of the sequence (``0:40``)."""

    cfg: object = None  # usdposer.core.fitting.FitConfig; None: its defaults
    skeleton: str | None = None
    prim: str | None = None
    name: str = "usdposerFit"
    frames: str | None = None
    preview: str | None = None
    arguments: tuple[str, ...] = ()


def fit(meshseq: str | os.PathLike, rig_asset: str | os.PathLike, out: str | os.PathLike,
        options: FitOptions = FitOptions(), progress: Progress | None = None) -> FitReport:
    """Fit the rig of ``rig_asset`` to the sequence ``meshseq`` and write the SkelAnimation (bound) as a layer over
    the rig asset at ``out``, with the per-frame residuals on the animation (``usdposer:fitResiduals``)."""
    preflight([meshseq, rig_asset], out, [options.preview])
    import torch

    from usdposer.core.fitting import FitConfig, as_pose, fit_frames
    from usdposer.io.edits import set_custom_doubles
    from usdposer.io.meshseq import read_mesh_sequence
    from usdposer.io.read_skel import read_asset
    from usdposer.io.write_skel import provenance, write_clip_layer
    from usdposer.types import Clip, Pose

    cfg, skeleton, prim, name, frames, preview = (options.cfg or FitConfig(), options.skeleton, options.prim,
                                                   options.name, options.frames, options.preview)
    arguments = list(options.arguments)
    tick = time.perf_counter()
    asset = read_asset(rig_asset)
    rig = asset.rig(skeleton)
    seq = read_mesh_sequence(meshseq, meters_per_unit=rig.meters_per_unit, up_axis=rig.up_axis, prim=prim)
    pick = list(range(len(seq.frames)))
    if frames:
        from usdposer.core.selection import parse_frames

        pick = parse_frames(frames, torch.as_tensor(seq.time_codes))
    q, r, res = fit_frames(rig, [seq.frames[i] for i in pick], cfg, progress=progress)
    pose = as_pose(rig, q, r)
    clip = Clip(pose.rotations, pose.translations, pose.scales, time_codes=torch.as_tensor(seq.time_codes[pick]),
                time_codes_per_second=seq.time_codes_per_second, name=name)
    path = f"{rig.skeleton_path}/{name}"

    def author(stage):
        set_custom_doubles(stage, path, "usdposer:fitResiduals", res)

    prov = provenance("fit", arguments, sequence=str(meshseq), seed=cfg.seed, iterations=cfg.iterations)
    write_clip_layer(rig_asset, out, rig, [clip], prov=prov, source_stage=None, author=author)
    secs = time.perf_counter() - tick
    rep = FitReport(output=str(out), sequence=seq.source, rig=rig.skeleton_path, animation=path, frames=len(pick),
                    residuals=[round(float(x), 4) for x in res], mean_residual=float(res.mean()),
                    max_residual=float(res.max()), seconds=secs, frames_per_second=len(pick) / secs)
    if preview:
        from usdposer.render.preview import contact_sheet

        show = torch.linspace(0, len(pick) - 1, min(len(pick), 12)).round().long().unique()
        contact_sheet(rig.to(torch.float64), Pose(clip.rotations[show], clip.translations[show], clip.scales[show]),
                      preview, labels=[f"t={float(clip.time_codes[i]):g} {res[i]:.1f}%" for i in show.tolist()])
        rep.preview = str(preview)
    return rep
