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


@dataclass
class VideoFitReport(Result):
    """What ``usdposer fit --video`` did (its ``--json`` result): per-frame image loss (mean |I - V|, sRGB 0-1) and
    silhouette IoU."""

    output: str
    video: str
    rig: str
    animation: str
    frames: int
    image_loss: list[float] = field(default_factory=list)
    mask_iou: list[float] = field(default_factory=list)
    mean_image_loss: float = 0.0
    mean_mask_iou: float = 0.0
    prior: str | None = None
    start: str = "rest"
    seconds: float = 0.0
    frames_per_second: float = 0.0
    preview: str | None = None
    source: dict | None = None  # the generating run's record (model, prompt, seed), when the video has one


@dataclass(frozen=True)
class VideoFitOptions:
    """``cfg``: ``usdposer.models.video_fit.VideoFitConfig``; ``cameras``: the cameras.json (default: beside the
    video); ``plate``: an image of the empty scene (default: rendered from the cameras.json's ground); ``prior``: a
    pose-space checkpoint (None: the default one, "none": no prior); ``start``: "rest", "auto" (what the cameras.json
    says the first frame shows) or a SkelAnimation of the asset whose first frame starts the fit."""

    cfg: object = None
    cameras: str | None = None
    plate: str | None = None
    prior: str | None = None
    start: str = "auto"
    skeleton: str | None = None
    name: str = "usdposerFitVideo"
    frames: str | None = None
    preview: str | None = None
    device: str = "cpu"
    arguments: tuple[str, ...] = ()


def fit_video_asset(asset: str | os.PathLike, video: str | os.PathLike, out: str | os.PathLike,
                    options: VideoFitOptions = VideoFitOptions(), progress: Progress | None = None) -> VideoFitReport:
    """Fit ``asset``'s rig to ``video`` seen by its cameras (``usdposer.models.video_fit``); write the SkelAnimation
    (bound) as a layer over the asset with per-frame residuals (``usdposer:fitImageLoss``, ``usdposer:fitMaskIoU``)
    and the video's provenance."""
    import json
    from pathlib import Path

    import numpy as np
    import torch
    from usdposer.pipelines.generate import sidecars

    from usdposer.errors import InputError

    o = options
    side = sidecars(video)
    cams_path = Path(o.cameras) if o.cameras else side["cameras"]
    preflight([asset, video, cams_path, o.plate], out, [o.preview])
    if not cams_path.is_file():
        raise InputError(f"{video}: no cameras for the video ({cams_path} is missing); pass --cameras FILE (the "
                         "cameras.json `usdposer generate` or `render --mode keyframes` writes)")
    from usdposer.models.video_fit import VideoFitConfig, fit_video, read_video

    from usdposer.io.edits import set_custom_doubles
    from usdposer.io.read_skel import read_asset
    from usdposer.io.write_skel import provenance, write_clip_layer
    from usdposer.render.cameras import read_cameras
    from usdposer.types import Clip, Pose

    cfg = o.cfg or VideoFitConfig()
    tick = time.perf_counter()
    cams, rec = read_cameras(cams_path)
    frames, fps = read_video(video)
    fps = float(rec.get("fps") or fps)
    n = min(len(frames), len(cams))
    H, W = frames.shape[1:3]
    if (W, H) != (cams[0].width, cams[0].height):
        raise InputError(f"{video}: frames are {W}x{H} but {cams_path} is for {cams[0].width}x{cams[0].height}; pass "
                         "the cameras.json written with this video")
    pick = list(range(n))
    if o.frames:
        from usdposer.core.selection import parse_frames

        pick = parse_frames(o.frames, torch.arange(n, dtype=torch.float64))
    src = read_asset(asset)
    rig = src.rig(o.skeleton).to(torch.float64)
    if not rig.meshes:
        raise InputError(f"{asset}: the rig has no skinned mesh to render against the video; skin it first "
                         "(`usdposer skin`)")
    # the empty scene: an image the user gives, or the ground the cameras.json records, drawn as generate drew it
    if o.plate:
        from PIL import Image

        try:
            plate = np.asarray(Image.open(o.plate).convert("RGB").resize((W, H)))
        except OSError as exc:
            raise InputError(f"--plate {o.plate}: cannot read the image ({exc}); pass a PNG/JPG of the empty scene") from exc
    else:
        ground = rec.get("ground")
        if not isinstance(ground, dict):
            raise InputError(f"{cams_path}: no ground record to draw the empty scene from; pass --plate IMAGE (a "
                             "frame of the scene without the character)")
        from usdposer.render.raster import Style
        from usdposer.render.raster import plate as draw_plate

        st = ground.get("style", {})
        style = Style(background=tuple(st.get("background", Style.background)),
                      checker=tuple(tuple(c) for c in st.get("checker", Style.checker)),
                      grid=tuple(st.get("grid", Style.grid)), ground=ground.get("kind", "checker") != "none")
        plate = draw_plate(cams[0], float(ground.get("board", 0.25)), style)
    start_name = o.start
    if start_name == "auto":
        start_name = str(rec.get("first_pose") or "rest")
    start = None
    if start_name != "rest":
        c = src.clip(rig, start_name)
        start = Pose(c.rotations[:1].double(), c.translations[:1].double(), c.scales[:1].double())
    prior = None
    if cfg.prior_weight > 0 and o.prior != "none":
        from usdposer.models.pose_prior import PosePrior

        prior = PosePrior.load(o.prior, o.device)
    V = torch.as_tensor(frames[pick]).double() / 255.0
    P = torch.as_tensor(plate.copy()).double() / 255.0
    res = fit_video(rig, V, [cams[i] for i in pick], P, cfg, prior=prior, start=start if pick[0] == 0 else None,
                    progress=progress)
    base = start or Pose.rest(rig)
    trans = res.translations
    tcps = src.time_codes_per_second or 24.0
    clip = Clip(res.rotations, trans, base.scales[:1].expand(len(pick), -1, -1).clone(),
                time_codes=torch.as_tensor(pick, dtype=torch.float64) * tcps / fps, time_codes_per_second=tcps,
                name=o.name)
    path = f"{rig.skeleton_path}/{o.name}"
    record = None
    if side["record"].is_file():
        try:
            record = json.loads(side["record"].read_text())
        except (OSError, ValueError):
            record = None
    record = record if isinstance(record, dict) else None

    def author(stage):
        set_custom_doubles(stage, path, "usdposer:fitImageLoss", res.image_loss)
        set_custom_doubles(stage, path, "usdposer:fitMaskIoU", res.mask_iou)

    gen = record or {}
    prov = provenance("fit", list(o.arguments), seed=cfg.seed, video=str(video), mode="video",
                      iterations=cfg.iterations, prior=(o.prior or "default") if prior is not None else "none",
                      start=start_name, model=gen.get("model"), prompt=gen.get("prompt"),
                      generate_seed=gen.get("seed"), fit_image_loss=float(np.mean(res.image_loss)),
                      fit_mask_iou=float(np.mean(res.mask_iou)))
    write_clip_layer(asset, out, rig, [clip], prov=prov, source_stage=None, author=author)
    secs = time.perf_counter() - tick
    rep = VideoFitReport(str(out), str(video), rig.skeleton_path, path, len(pick),
                         [round(x, 4) for x in res.image_loss], [round(x, 4) for x in res.mask_iou],
                         float(np.mean(res.image_loss)), float(np.mean(res.mask_iou)),
                         (o.prior or "default") if prior is not None else None, start_name, secs, len(pick) / secs,
                         source={k: gen.get(k) for k in ("model", "prompt", "seed", "steps", "guidance")} if record else None)
    if o.preview:
        rep.preview = str(video_preview(rig, clip, frames[pick], [cams[i] for i in pick], o.preview, res.mask_iou))
    return rep


def video_preview(rig, clip, frames, cams, out, ious, columns: int = 8):
    """A sheet: the video's frames (top) over the fitted rig rendered with the same cameras, half transparent (bottom),
    up to ``columns`` frames spread over the clip."""
    import numpy as np
    import torch

    from usdposer.render.encode import write_sheet
    from usdposer.render.raster import Style, render_pose
    from usdposer.types import Pose

    show = torch.linspace(0, len(clip) - 1, min(len(clip), columns)).round().long().unique().tolist()
    pose = Pose(clip.rotations[show].double(), clip.translations[show].double(), clip.scales[show].double())
    fitted = render_pose(rig, pose, [cams[i] for i in show], style=Style(skeleton=True, ground=False))
    images, labels = [], []
    for i in show:
        images.append(frames[i])
        labels.append(f"video {i}")
    for k, i in enumerate(show):
        images.append((0.5 * frames[i].astype(np.float32) + 0.5 * fitted[k].astype(np.float32)).astype(np.uint8))
        labels.append(f"fit {i} IoU {ious[i]:.2f}")
    return write_sheet(images, out, labels, columns=len(show))
