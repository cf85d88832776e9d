"""``usdposer distill``: AKD, per-frame joint angles and root optimised by score distillation through a video
diffusion model (``usdposer.models.distill``), written as a SkelAnimation layer with a JSON + PNG loss report."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from usdposer.pipelines._base import Progress, Result, preflight


@dataclass
class DistillReport(Result):
    """What ``usdposer distill`` did (its ``--json`` result)."""

    output: str
    animation: str
    prompt: str
    model: str
    iterations: int
    frames: int
    final_loss: dict
    seconds_per_iteration: dict
    seconds: float
    report: str | None = None
    loss_png: str | None = None
    preview: str | None = None
    state: str | None = None
    motion: dict | None = None  # usdposer.core.motion.MotionMetrics of the distilled clip
    peak_memory_bytes: int | None = None  # CUDA peak (on CPU: the process's peak resident memory)


@dataclass(frozen=True)
class DistillOptions:
    """``model``: a local diffusers folder, a hub id the user has, or ``tiny-wan`` / ``tiny-cogvideox``; ``cfg``: the
    optimisation (``usdposer.models.distill.DistillConfig``; None: its defaults); ``state_dir``: save resumable
    state there; ``resume``: continue from a state folder; ``preview``: a GIF/MP4 of the Gaussians."""

    prompt: str = ""
    model: str = "tiny-wan"
    cfg: object = None
    skeleton: str | None = None
    device: str = "cpu"
    state_dir: str | None = None
    resume: str | None = None
    preview: str | None = None
    arguments: tuple[str, ...] = ()


def distill(asset: str | os.PathLike, out: str | os.PathLike, options: DistillOptions = DistillOptions(),
            progress: Progress | None = None) -> DistillReport:
    """``usdposer distill``: AKD, an animation of the asset's rig distilled from a video diffusion model."""
    preflight([asset], out, [options.preview])
    o = options
    return _distill(asset, out, prompt=o.prompt, model=o.model, cfg=o.cfg, skeleton=o.skeleton, device=o.device,
                    state_dir=o.state_dir, resume=o.resume, preview=o.preview, arguments=list(o.arguments),
                    progress=progress)


def _distill(asset, out, *, prompt: str, model: str = "tiny-wan", cfg=None,
             skeleton: str | None = None, device: str = "cpu", state_dir=None, resume=None,
             preview: str | None = None, arguments=None, progress=None) -> DistillReport:
    """Distill a motion for ``asset``'s rig from the video prior ``model`` (a local diffusers folder, a hub id the
    user has, or ``tiny-wan`` / ``tiny-cogvideox``) and write it as a SkelAnimation layer over the asset, with a JSON
    + PNG loss report beside it."""
    import json
    from pathlib import Path

    import torch
    from usdposer.models.distill import DistillConfig, config_dict, distill_motion, load_state, save_state
    from usdposer.models.video_prior import load_prior, tiny_text

    from usdposer.errors import InputError, Interrupted
    from usdposer.io.read_skel import read_asset
    from usdposer.io.write_skel import provenance, write_clip_layer
    from usdposer.outputs import uninterrupted
    from usdposer.types import Clip, Pose

    cfg = cfg or DistillConfig()
    if cfg.width < 16 or cfg.height < 16 or cfg.width % 16 or cfg.height % 16:
        raise InputError(f"--size {cfg.width}x{cfg.height}: width and height must be positive multiples of 16")
    video_vae = model.startswith("tiny-") or "wan" in model.lower() or "cogvideo" in model.lower()
    if cfg.frames < 1 or video_vae and (cfg.frames - 1) % 4:
        raise InputError(f"--frames {cfg.frames}: video VAEs take 4k+1 frames (5, 9, 13, ..., 49)")
    tick = time.perf_counter()
    src = read_asset(asset)
    rig = src.rig(skeleton).to(torch.float64)
    if device != "cpu":
        from dataclasses import replace

        cfg = replace(cfg, device=device)
    prior = load_prior(model, device=device)
    text = tiny_text(cfg.seed) if model.startswith("tiny-") else prior.embed(prompt)
    out = Path(out)
    state = load_state(resume) if resume else None
    if state is not None:
        want = (cfg.frames, rig.num_joints, 3)
        if tuple(state["angles"].shape) != want or tuple(state["root"].shape) != (cfg.frames, 3):
            raise InputError(f"{resume}: the state is of {tuple(state['angles'].shape)} angles (frames, joints, 3), "
                             f"this run needs {want}; resume with the same asset and --frames, or drop --resume")
    start = int(state["iteration"]) if state is not None else 0
    same = state is not None and state_dir and os.path.realpath(resume) == os.path.realpath(state_dir)
    kept = {"at": start if same else None, "now": start}  # the iteration kept in --state, the one reached
    every = max(1, cfg.iterations // 10)

    def saver(i: int, st: dict) -> None:
        kept["now"] = i + 1
        if state_dir and ((i + 1) % every == 0 or i + 1 == cfg.iterations):
            with uninterrupted():  # a Ctrl-C now comes after the save, which is then the one kept
                save_state(state_dir, st, cfg)
                kept["at"] = i + 1

    try:
        res = distill_motion(rig, prior, text, cfg, progress=progress, state=state, on_step=saver)
    except KeyboardInterrupt:  # Ctrl-C: say what is kept, and how to go on from it
        if state_dir and kept["at"] is not None:
            raise Interrupted(f"at iteration {kept['now']}; the optimisation state of iteration {kept['at']} is in "
                              f"{state_dir}: the same command with --resume {state_dir} goes on from there") from None
        if state_dir:
            raise Interrupted(f"at iteration {kept['now']}, before the first save to {state_dir} (every {every} "
                              "iterations); nothing was written") from None
        raise Interrupted(f"at iteration {kept['now']}; nothing was written (--state DIR keeps the optimisation "
                          f"every {every} iterations for --resume)") from None
    from usdposer.core.kinematics import decompose_trs

    _, _, s_rest = decompose_trs(rig.rest_local)
    F = cfg.frames
    pose = Pose(res.rotations, res.translations, s_rest.expand(F, -1, -1).clone())
    tcps = src.time_codes_per_second or 24.0
    clip = Clip(pose.rotations, pose.translations, pose.scales,
                time_codes=torch.arange(F, dtype=torch.float64) * tcps / cfg.fps, time_codes_per_second=tcps,
                name="usdposerDistill")
    from usdposer.core.motion import motion_metrics
    from usdposer.outputs import atomic_file

    metrics = motion_metrics(rig, clip).as_dict()
    prov = provenance("distill", arguments, seed=cfg.seed, prompt=prompt, model=model, iterations=cfg.iterations,
                      skating=metrics["skating"], penetration_max=metrics["penetration_max"], jitter=metrics["jitter"])
    write_clip_layer(asset, out, rig, [clip], prov=prov)
    report_path = out.with_suffix(".json")
    peak = res.peak_memory if res.peak_memory is not None else _peak_rss()
    with atomic_file(report_path) as tmp:
        tmp.write_text(json.dumps({"config": config_dict(cfg), "losses": res.losses,
                                   "seconds_per_iteration": res.seconds, "motion": metrics,
                                   "peak_memory_bytes": peak,
                                   "peak_memory_of": "cuda" if res.peak_memory is not None else "process"},
                                  indent=1))
    png = out.with_suffix(".loss.png")
    from usdposer.render.preview import loss_plot

    loss_plot(res.losses, png, keys=("sds", "smooth", "ground"))
    rep = DistillReport(str(out), f"{rig.skeleton_path}/usdposerDistill", prompt, model, cfg.iterations, F,
                        res.losses[-1] if res.losses else {}, {k: round(v, 4) for k, v in res.seconds.items()},
                        time.perf_counter() - tick, str(report_path), str(png), None,
                        str(state_dir) if state_dir else None, metrics, peak)
    if preview:
        rep.preview = str(render_preview(rig, pose, preview, cfg))
    return rep


def render_preview(rig, pose, out, cfg, size: int = 192):
    """The distilled clip rendered as a video, .gif or .mp4: the same Gaussians, fixed board, shadow and smoothed
    camera as the optimisation (``usdposer.models.distill.render_clip``), at ``size`` pixels."""
    from dataclasses import replace

    import torch
    from usdposer.models.distill import render_clip

    from usdposer.render.encode import write_video

    with torch.no_grad():
        video = render_clip(rig, pose, replace(cfg, width=size, height=size, render_backend="torch"))
    frames = [(((f + 1) / 2).clamp(0, 1) ** (1 / 2.2) * 255).byte().numpy() for f in video[0].permute(1, 2, 3, 0)]
    return write_video(frames, out, cfg.fps)


def _peak_rss() -> int | None:
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # kilobytes on Linux
    except (ImportError, OSError):
        return None
