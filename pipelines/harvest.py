"""``usdposer harvest``: ViPS's data engine in one verb. For every (asset, prompt): ``generate`` -> ``fit --video``
(or ``distill`` -> ``track``), each item in its own folder; then ``dataset build`` over every layer that came out, with
the filters. Resumable: an item whose ``done.json`` records the same inputs and options (a hash of the asset's bytes,
the prompt and the options) is skipped; one failing item is recorded and never stops the others.

Layout of ``out``::

    items/<asset>/<prompt-slug>/   ASSET.mp4, ASSET.first.png, ASSET.cameras.json, ASSET.json, ASSET.fit.usdc
                                   (video); ASSET.distill.usdc (+ .json, .loss.png), ASSET.track.usdc,
                                   ASSET.physics.usda (distill)
                                   done.json (what was made, from what), error.txt (when it failed)
    dataset/                       the pose dataset (``usdposer.io.dataset``)
    harvest.json                   every item's status, seconds and outputs, and the dataset's counts
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from usdposer.pipelines._base import Progress, Result

VIAS = ("video", "distill")


@dataclass(frozen=True)
class HarvestOptions:
    """``via``: "video" (generate -> fit --video) or "distill" (distill -> track); ``model``: the video model (a
    generator for "video", a video prior for "distill"); the rest as the verbs take them (None: their defaults)."""

    via: str = "video"
    model: str | None = None
    frames: int | None = None
    size: tuple[int, int] | None = None
    steps: int | None = None
    seed: int = 0
    fit_iterations: int = 40
    fit_first_iterations: int = 150
    fit_max_size: int = 192
    prior: bool = True
    distill_iterations: int = 1000
    track_iterations: int = 200
    device: str = "cpu"
    filters: object = None  # usdposer.pipelines.dataset.DatasetFilters
    build_dataset: bool = True


@dataclass
class HarvestReport(Result):
    """What ``usdposer harvest`` did (its ``--json`` result)."""

    output: str
    items: list[dict] = field(default_factory=list)
    made: int = 0
    skipped: int = 0
    failed: int = 0
    dataset: str | None = None
    dataset_counts: dict | None = None
    dataset_dropped: dict | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts from a text file (one per line; blank lines and ``#`` comments skipped) or a JSON list of strings."""
    from usdposer.errors import InputError

    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--prompts {path}: cannot read it ({exc.__class__.__name__}); pass a text file, one prompt "
                         "per line") from exc
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"--prompts {path}: not JSON ({exc}); pass a JSON list of strings") from exc
        if not isinstance(data, list) or not all(isinstance(x, str) and x.strip() for x in data):
            raise InputError(f"--prompts {path}: expected a JSON list of non-empty strings")
        prompts = [x.strip() for x in data]
    else:
        prompts = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not prompts:
        raise InputError(f"--prompts {path}: no prompts in it; write one motion per line (e.g. 'running')")
    return prompts


def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return s or "prompt"


def item_key(asset: Path, prompt: str, options: HarvestOptions) -> str:
    """The hash an item's outputs are current for: the asset's bytes, the prompt and every option that shapes them."""
    h = hashlib.sha256()
    h.update(asset.read_bytes())
    opts = {k: v for k, v in asdict(options).items() if k not in ("filters", "build_dataset", "device")}
    h.update(json.dumps({"prompt": prompt, **opts}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def harvest_item(asset: Path, prompt: str, folder: Path, options: HarvestOptions) -> dict:
    """Make one item (generate -> fit --video, or distill -> track) in ``folder``; returns its record (also written as
    ``done.json``). Raises what the verbs raise."""
    o = options
    folder.mkdir(parents=True, exist_ok=True)
    tick = time.perf_counter()
    stem = folder.parent.name  # the asset's folder name (unique in the harvest): dataset ids read "prompt/asset.fit"
    if o.via == "video":
        from usdposer.models.video_fit import VideoFitConfig
        from usdposer.pipelines.fit import VideoFitOptions, fit_video_asset
        from usdposer.pipelines.generate import GenerateOptions, generate

        video = folder / f"{stem}.mp4"
        gen = generate(asset, video, GenerateOptions(
            prompt=prompt, model=o.model or "tiny-wan-i2v", frames=o.frames, size=o.size, steps=o.steps, seed=o.seed,
            device=o.device, arguments=("harvest",)))
        cfg = VideoFitConfig(iterations=o.fit_iterations, first_iterations=o.fit_first_iterations,
                             max_size=o.fit_max_size, prior_weight=VideoFitConfig.prior_weight if o.prior else 0.0,
                             seed=o.seed)
        fit = fit_video_asset(asset, video, folder / f"{stem}.fit.usdc",
                              VideoFitOptions(cfg=cfg, device=o.device, arguments=("harvest",)))
        layers = [fit.output]
        facts = {"model": gen.model, "prompt": gen.prompt, "seed": gen.seed, "mask_iou": round(fit.mean_mask_iou, 4),
                 "image_loss": round(fit.mean_image_loss, 4)}
        outputs = gen.outputs + [fit.output]
    else:
        from usdposer.models.distill import DistillConfig
        from usdposer.pipelines.distill import DistillOptions, distill
        from usdposer.pipelines.track import TrackOptions, track

        from usdposer.physics.tracking import TrackConfig

        w, h = o.size or (64, 64)
        dcfg = DistillConfig(iterations=o.distill_iterations, frames=o.frames or 9, width=w, height=h, seed=o.seed)
        dist = distill(asset, folder / f"{stem}.distill.usdc", DistillOptions(prompt=prompt, model=o.model or "tiny-wan",
                                                                      cfg=dcfg, device=o.device,
                                                                      arguments=("harvest",)))
        tr = track(folder / f"{stem}.distill.usdc", folder / f"{stem}.track.usdc",
                   TrackOptions(cfg=TrackConfig(iterations=o.track_iterations, seed=o.seed), arguments=("harvest",)))
        layers = [dist.output, tr.output]
        facts = {"model": dist.model, "prompt": dist.prompt, "seed": o.seed,
                 "tracking_error": tr.after.get("tracking_error")}
        outputs = [dist.output, dist.report, dist.loss_png, tr.output, tr.physics]
    return {"asset": str(asset), "motion": prompt, "folder": str(folder), "via": o.via, "layers": layers,
            "outputs": [str(x) for x in outputs if x], "seconds": round(time.perf_counter() - tick, 2), **facts}


def harvest(assets: list[str], prompts: list[str], out: str | os.PathLike, options: HarvestOptions = HarvestOptions(),
            progress: Progress | None = None) -> HarvestReport:
    """Every (asset, prompt) item (module docstring), then the dataset over their layers."""
    from usdposer.pipelines._base import no_progress

    from usdposer.errors import InputError, failure_line
    from usdposer.outputs import atomic_file, check_writable

    o = options
    if o.via not in VIAS:
        raise InputError(f"--via {o.via!r}: choose one of {', '.join(VIAS)}")
    if not assets:
        raise InputError("no ASSETS given; pass rigged USD assets (import glTF/BVH/MJCF first)")
    paths = []
    for a in assets:
        p = Path(a)
        if not p.is_file():
            raise InputError(f"{a}: no such file; pass rigged USD assets")
        paths.append(p)
    if o.model and not o.model.startswith("tiny-"):  # every item would fail alike: say it once, before any work
        from usdposer.models.video_prior import looks_local

        if looks_local(o.model) and not Path(o.model).expanduser().is_dir():
            raise InputError(f"--model {o.model}: no such folder; pass a local diffusers pipeline folder, a hub id "
                             "already in the local cache, or a tiny-* model")
    out = Path(out)
    check_writable(out, folder=True, what="harvest folder")
    out.mkdir(parents=True, exist_ok=True)
    tick = time.perf_counter()
    progress = progress or no_progress
    rep = HarvestReport(str(out))
    work = [(p, pr) for p in paths for pr in prompts]
    from usdposer.core.selection import unique_stems

    stems = dict(zip(paths, unique_stems(paths)))  # one folder per asset, even where two share a file name
    for p, prompt in progress(work, desc="harvesting", unit="item"):
        folder = out / "items" / stems[p] / slug(prompt)
        done, err = folder / "done.json", folder / "error.txt"
        key = item_key(p, prompt, o)
        if done.is_file():
            try:
                rec = json.loads(done.read_text())
            except ValueError:
                rec = {}
            rec = rec if isinstance(rec, dict) and isinstance(rec.get("layers", []), list) else {}
            if rec.get("key") == key and all(isinstance(x, str) and Path(x).is_file() for x in rec.get("layers", [])):
                rep.items.append({**rec, "status": "skipped"})
                rep.skipped += 1
                continue
        try:
            rec = {**harvest_item(p, prompt, folder, o), "key": key, "status": "made"}
        except Exception as exc:  # noqa: BLE001 - one item fails alone; its one line is recorded
            line = failure_line(exc, InputError)
            folder.mkdir(parents=True, exist_ok=True)
            err.write_text(line + "\n")
            done.unlink(missing_ok=True)
            rep.items.append({"asset": str(p), "prompt": prompt, "folder": str(folder), "status": "failed",
                              "error": line})
            rep.failed += 1
            continue
        err.unlink(missing_ok=True)
        with atomic_file(done) as tmp:
            tmp.write_text(json.dumps(rec, indent=1))
        rep.items.append(rec)
        rep.made += 1
    layers = [x for it in rep.items if it["status"] != "failed" for x in it.get("layers", [])]
    if o.build_dataset and layers:
        from usdposer.pipelines.dataset import DatasetOptions, build

        result = build(layers, out / "dataset", DatasetOptions(filters=o.filters, skip_bad=True))
        rep.dataset = result.output
        rep.dataset_counts = result.manifest["counts"]
        rep.dataset_dropped = (result.manifest.get("filters") or {}).get("dropped")
    rep.seconds = time.perf_counter() - tick
    with atomic_file(out / "harvest.json") as tmp:
        tmp.write_text(json.dumps(rep.to_json(), indent=1, default=str))
    return rep
