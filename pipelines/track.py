"""``usdposer track``: AKD's physics tracking (``usdposer.physics``): the tracked SkelAnimation over the asset, the
articulation as a UsdPhysics layer beside it, a JSON + PNG report with before / after motion metrics."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from usdposer.pipelines._base import Progress, Result, preflight


@dataclass
class TrackReport(Result):
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


@dataclass(frozen=True)
class TrackOptions:
    """``anim``: the SkelAnimation (default: the bound one); ``cfg``: the optimisation
    (``usdposer.physics.tracking.TrackConfig``; None: its defaults); ``art_cfg``: the articulation
    (``usdposer.physics.articulation.ArticulationConfig``); ``physics_out``: the UsdPhysics layer (default
    OUT_STEM.physics.usda); ``frames``: a selection; ``preview``: a sheet (.png) or video of the tracked motion."""

    anim: str | None = None
    skeleton: str | None = None
    cfg: object = None
    art_cfg: object = None
    physics_out: str | None = None
    frames: str | None = None
    preview: str | None = None
    arguments: tuple[str, ...] = ()


def track(asset: str | os.PathLike, out: str | os.PathLike, options: TrackOptions = TrackOptions(),
          progress: Progress | None = None, on_step: Callable[[int, dict], None] | None = None) -> TrackReport:
    """``usdposer track``: the nearest motion a body can perform (Newton), over the asset; ``on_step(iteration,
    losses)`` after every optimisation step."""
    preflight([asset], out, [options.preview, options.physics_out])
    o = options
    return _track(asset, out, anim=o.anim, skeleton=o.skeleton, cfg=o.cfg, art_cfg=o.art_cfg,
                  physics_out=o.physics_out, frames=o.frames, arguments=list(o.arguments), progress=progress,
                  on_step=on_step, preview=o.preview)


def _track(asset, out, *, anim: str | None = None, skeleton: str | None = None, cfg=None,
           art_cfg=None, physics_out=None, frames: str | None = None, arguments=None,
           progress=None, on_step: Callable[[int, dict], None] | None = None, preview=None) -> TrackReport:
    """Track ``asset``'s animation ``anim`` (the bound one by default) and write the tracked SkelAnimation over the
    asset at ``out``, the UsdPhysics layer beside it (``physics_out``, default OUT_STEM.physics.usda) and a JSON + PNG
    report (loss curve, before/after metrics)."""
    import json
    from dataclasses import replace
    from pathlib import Path

    import torch

    from usdposer.core.motion import motion_metrics
    from usdposer.io.physics_layer import write_physics_layer
    from usdposer.io.read_skel import read_asset
    from usdposer.io.write_skel import provenance, write_clip_layer
    from usdposer.physics.articulation import build_articulation
    from usdposer.physics.tracking import TrackConfig, track_clip

    cfg = cfg or TrackConfig()
    tick = time.perf_counter()
    src = read_asset(asset)
    rig = src.rig(skeleton).to(torch.float64)
    clip = src.clip(rig, anim)
    if frames:
        from usdposer.core.selection import parse_frames

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
    before, after = motion_metrics(rig, clip), motion_metrics(rig, res.clip, clip)
    from usdposer.io.provenance import layer_provenance

    upstream = layer_provenance(asset) or {}  # a distilled or fitted clip keeps its model and prompt downstream
    prov = provenance("track", arguments, seed=cfg.seed, source_animation=clip.path or clip.name,
                      iterations=cfg.iterations, tracking_error=after.tracking_error, skating=after.skating,
                      penetration_max=after.penetration_max, jitter=after.jitter,
                      source_verb=upstream.get("verb"), source_model=upstream.get("model"),
                      source_prompt=upstream.get("prompt"))
    write_clip_layer(asset, out, rig, [res.clip], prov=prov)
    write_physics_layer(asset, physics_out, art, prov=prov)
    report = out.with_suffix(".json")
    from usdposer.outputs import atomic_file

    with atomic_file(report) as tmp:
        tmp.write_text(json.dumps({"config": {k: v for k, v in cfg.__dict__.items()}, "before": before.as_dict(),
                                      "after": after.as_dict(), "losses": res.losses}, indent=1))
    png = out.with_suffix(".loss.png")
    from usdposer.render.preview import loss_plot

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
