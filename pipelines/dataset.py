"""``usdposer dataset build``: a pose dataset from animated assets (see ``usdposer.io.dataset`` for the layout)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from usdposer.pipelines._base import Progress, Result

from usdposer._version import __version__
from usdposer.errors import InputError, failure_line


@dataclass(frozen=True)
class DatasetOptions:
    """``holdout`` / ``val``: characters (file stem or folder/stem) kept out of training / used for validation;
    ``dedupe_degrees``: frames closer than this to the last kept one are dropped; ``anim_from``: (library files or
    glob, character) pairs binding animation libraries to characters by joint name."""

    holdout: tuple[str, ...] = ()
    val: tuple[str, ...] = ()
    dedupe_degrees: float = 2.0
    anim_from: tuple[tuple[str, str], ...] = ()
    licences: tuple[tuple[str, str], ...] = ()  # (glob PATTERN, TEXT): the licence of matching sources
    skip_bad: bool = False  # build from the readable sources when some fail (default: fail, write nothing)
    filters: DatasetFilters | None = None  # frames dropped from generated clips (distill / track / fit layers)


@dataclass(frozen=True)
class DatasetFilters:
    """Frames left out of the generated clips of a dataset (layers written by ``distill``, ``track``, ``fit``; artist
    and mocap clips are kept whole), per clip and frame (the manifest counts what each dropped):

    ``max_fit_residual``  a fitted frame's residual above this (% of height for ``fit`` to meshes; for ``fit --video``
                          100 (1 - silhouette IoU))
    ``max_skating``       the points in contact sliding faster than this into the frame (heights per second)
    ``max_penetration``   the lowest point deeper than this below the ground (% of height)
    ``plausibility``      the pose prior's score above this ("calibrated": the checkpoint's calibrated threshold)
    ``check``             frames inside a failed finding of ``usdposer check``'s rules
    """

    max_fit_residual: float | None = None
    max_skating: float | None = None
    max_penetration: float | None = None
    plausibility: float | str | None = None
    checkpoint: str | None = None
    check: bool = False

    def active(self) -> bool:
        return any(v not in (None, False) for v in (self.max_fit_residual, self.max_skating, self.max_penetration,
                                                   self.plausibility, self.check))

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, False)}


class SourcesFailed(InputError):
    """Some sources could not be read, and ``skip_bad`` is off: nothing was written. ``manifest`` holds what the
    build would have been (its ``characters`` and ``failed``), so a caller can report every file."""

    def __init__(self, message: str, manifest: dict):
        super().__init__(message)
        self.manifest = manifest


@dataclass
class DatasetResult(Result):
    """The dataset directory and its manifest (``--json``: the manifest with ``output``)."""

    output: str
    manifest: dict

    def to_json(self) -> dict:
        return {**self.manifest, "output": self.output}


def build(sources: list[str], out_dir: str | os.PathLike, options: DatasetOptions = DatasetOptions(),
          progress: Progress | None = None) -> DatasetResult:
    """``usdposer dataset build``: a dataset directory from animated assets (``usdposer.io.dataset``), built in a
    temporary folder beside ``out_dir`` and moved into place whole. A source that fails to read fails only itself:
    every source is read and reported; then, unless ``skip_bad``, :class:`SourcesFailed` is raised and nothing is
    written (with ``skip_bad`` the failures are listed in the manifest's ``failed``)."""
    o = options
    created = [p for p in reversed(Path(out_dir).absolute().parents) if not p.exists()]  # made here, undone on failure
    for p in created:
        p.mkdir()
    try:
        return _build_into(list(sources), out_dir, o, progress)
    except BaseException:
        for p in reversed(created):
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


def _build_into(sources, out_dir, o: DatasetOptions, progress) -> DatasetResult:
    from usdposer.outputs import atomic_dir, check_writable

    check_writable(out_dir, folder=True, what="dataset")
    with atomic_dir(out_dir) as tmp:
        manifest = _build_dataset(list(sources), tmp, holdout=list(o.holdout), val=list(o.val),
                                  dedupe_degrees=o.dedupe_degrees, anim_from=list(o.anim_from),
                                  licences=list(o.licences), progress=progress, filters=o.filters)
        if manifest["failed"] and not o.skip_bad:
            n, m = len(manifest["failed"]), len(manifest["failed"]) + len({c["source"] for c in manifest["characters"]})
            raise SourcesFailed(f"{n} of {m} sources could not be read (each listed above); fix or remove them, or "
                                "pass --skip-bad to build from the others", manifest)
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=2))  # last: a dataset is whole
    return DatasetResult(str(out_dir), manifest)


def _resolve_libraries(anim_from, sources: list[Path]) -> tuple[list[tuple[list[Path], str]], set[Path]]:
    """``[(library files, target)]`` and the set of library files (which are not characters themselves)."""
    from usdposer.io.dataset import expand_sources

    libs, files = [], set()
    for pattern, target in anim_from:
        found = expand_sources([pattern]) if pattern else []
        if not found:
            raise InputError(f"--anim-from {pattern}={target}: no animation files match {pattern}")
        libs.append((found, target))
        files |= {f.resolve() for f in found}
    return libs, files


def _build_dataset(sources: list[str], out_dir: str | os.PathLike, *, holdout: list[str] = (), val: list[str] = (),
                  dedupe_degrees: float = 2.0, anim_from: list[tuple[str, str]] = (), licences=(),
                  progress=None, filters: DatasetFilters | None = None) -> dict:
    """Build a dataset directory (see the module docstring); returns the manifest. Sources that fail to read are
    reported in ``manifest["failed"]`` and do not stop the build. ``anim_from``: ``[(library files or glob, target)]``
    binds each library's clips to the character read from the ``target`` file (a path or a character name)."""
    from usdposer.io.dataset import CharacterRecord, expand_sources

    out_dir = Path(out_dir)
    libraries, library_files = _resolve_libraries(anim_from, [])
    files = [f for f in expand_sources(sources) if f.resolve() not in library_files]
    if not files:
        raise InputError("no USD, glTF, BVH or MJCF files among the sources")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "shards").mkdir(exist_ok=True)
    wanted_holdout = {h.lower() for h in holdout}
    wanted_val = {v.lower() for v in val}
    records: list[CharacterRecord] = []
    failed: list[dict] = []
    used_ids: set[str] = set()
    matched: set[str] = set()  # every name a --holdout / --val may use for the characters read
    bound: set[int] = set()  # libraries that found their character
    judge = FrameFilter(filters) if filters is not None and filters.active() else None
    with tempfile.TemporaryDirectory(prefix="usdposer-dataset-") as work:
        for f in (progress(files) if progress else files):
            try:
                records += _character_records(f, Path(work), out_dir, libraries, licences, dedupe_degrees,
                                              wanted_holdout, wanted_val, used_ids, matched, bound, judge)
            except Exception as exc:  # one bad asset fails only itself
                failed.append({"source": str(f), "error": failure_line(exc, InputError)})
    manifest = _finish(records, failed, wanted_holdout, wanted_val, matched, libraries, bound, dedupe_degrees)
    if filters is not None and filters.active():
        dropped: dict[str, int] = {}
        for r in records:
            for k, v in r.dropped.items():
                dropped[k] = dropped.get(k, 0) + v
        manifest["filters"] = {**filters.as_dict(), "dropped": dropped,
                               "plausibility_threshold": judge.threshold if judge else None}
    return manifest


class FrameFilter:
    """The frames of a clip that pass ``DatasetFilters``: ``keep(path, rig, clip, arrays)`` -> ((T,) bool, counts of
    the frames each filter dropped; a frame failing two filters counts for both)."""

    def __init__(self, filters: DatasetFilters):
        self.f = filters
        self.scorer = self.threshold = None
        if filters.plausibility is not None:
            from usdposer.models.plausibility import make_scorer

            thr = None if filters.plausibility == "calibrated" else float(filters.plausibility)
            self.scorer, self.threshold = make_scorer(filters.checkpoint, "cpu", thr)
        self._findings: dict[str, list] = {}

    def keep(self, path, rig, clip, arrays: dict) -> tuple:
        import torch

        from usdposer.core.motion import ground_penetration, skating_per_frame, world_hull
        from usdposer.core.posing import character_height

        f, T = self.f, len(clip)
        keep = torch.ones(T, dtype=torch.bool)
        counts: dict[str, int] = {}

        def drop(name: str, bad) -> None:
            bad = torch.as_tensor(bad, dtype=torch.bool)
            counts[name] = int(bad.sum())
            keep.logical_and_(~bad)

        if f.max_fit_residual is not None:
            if "fitResiduals" in arrays:
                res = torch.tensor(arrays["fitResiduals"], dtype=torch.float64)
            elif "fitMaskIoU" in arrays:
                res = 100 * (1 - torch.tensor(arrays["fitMaskIoU"], dtype=torch.float64))
            else:
                res = None
            if res is not None and len(res) == T:
                drop("fit_residual", res > f.max_fit_residual)
        h = character_height(rig) or 1.0
        if f.max_skating is not None or f.max_penetration is not None:
            pose = clip.pose()
            from usdposer.types import Pose

            pts = world_hull(rig, Pose(pose.rotations.double(), pose.translations.double(), pose.scales.double()))
            if f.max_penetration is not None:
                drop("penetration", ground_penetration(pts) / h * 100 > f.max_penetration)
            if f.max_skating is not None and T > 1:
                drop("skating", skating_per_frame(pts, clip.fps, 0.02 * h, h) > f.max_skating)
        if self.scorer is not None:
            from usdposer.core.posespace import pose_to_6d

            scores = self.scorer(rig, pose_to_6d(rig, clip.pose()).float())
            drop("plausibility", scores > self.threshold)
        if f.check:
            drop("check", self._failed_frames(path, clip))
        return keep, counts

    def _failed_frames(self, path, clip):
        import torch

        from usdposer.validate import check_paths

        key = str(path)
        if key not in self._findings:
            report = check_paths([key])
            self._findings[key] = [x for x in report.findings if x.severity in ("failed", "error")]
        bad = torch.zeros(len(clip), dtype=torch.bool)
        tc = clip.time_codes.double()
        for x in self._findings[key]:
            if clip.path and x.prim != clip.path:
                continue
            if x.frames is not None:
                bad |= (tc >= x.frames[0] - 1e-6) & (tc <= x.frames[1] + 1e-6)
            elif x.frame is not None:
                bad |= (tc - x.frame).abs() < 1e-6
            else:  # a finding on the whole clip or file
                bad[:] = True
        return bad


def _character_records(f, work, out_dir, libraries, licences, dedupe_degrees, wanted_holdout, wanted_val, used_ids,
                       matched, bound, judge=None) -> list:
    """The characters of one source file, their shards written into ``out_dir``."""
    from safetensors.torch import save_file

    from usdposer.core.posespace import REPRESENTATION, rig_frame
    from usdposer.core.retarget import distinct_rigs
    from usdposer.io.dataset import CharacterRecord, _match_keys, character_tensors, licence_of, read_any
    from usdposer.io.provenance import GENERATED_VERBS, authored_animations, frame_arrays, layer_provenance

    records = []
    asset = read_any(f, Path(work))
    if not asset.rigs:
        raise InputError(f"{f}: no usable skeleton, so no poses; " + "; ".join(p.message for p in asset.problems[:1]))
    prov = layer_provenance(f)
    generated = prov is not None and prov.get("verb") in GENERATED_VERBS
    own = authored_animations(f) if generated else set()
    for k, (rig, merged) in enumerate(distinct_rigs(asset.rigs)):
        cid = f"{f.parent.name}/{f.stem}" + (f"_{k}" if k else "")
        base, n = cid, 1
        while cid in used_ids:
            cid, n = f"{base}_{n}", n + 1
        used_ids.add(cid)
        clips = asset.clips.get(rig.skeleton_path, [])
        masks, dropped, provenance = None, {}, None
        if generated:  # a layer over an asset: its own clips, not the asset's below it
            clips = [c for c in clips if c.path in own]
            arrays = [frame_arrays(f, c.path) for c in clips]  # per clip: the residual arrays the verb wrote
            provenance = {k: prov[k] for k in ("verb", "model", "prompt", "seed", "video", "mode", "generate_seed",
                                               "source_animation", "source_verb", "source_model", "source_prompt",
                                               "fit_image_loss", "fit_mask_iou", "tracking_error", "iterations",
                                               "skating", "penetration_max", "jitter") if k in prov}
            provenance["clips"] = {}
            for c, a in zip(clips, arrays):
                summary = {k: round(sum(v) / len(v), 4) for k, v in a.items() if v}
                if summary:
                    provenance["clips"][c.name] = summary
            if judge is not None:  # artist and mocap clips are kept whole
                masks = []
                for c, a in zip(clips, arrays):
                    keep, counts = judge.keep(f, rig, c, a)
                    masks.append(keep)
                    for kk, v in counts.items():
                        dropped[kk] = dropped.get(kk, 0) + v
        keys = _match_keys(cid, f)
        extra, anim_sources = [], []
        for li, (lib_files, target) in enumerate(libraries):
            if k == 0 and (Path(target).resolve() == f.resolve() or target.lower() in keys):
                bound.add(li)
                for lf in lib_files:
                    six, rep = _library_codes(lf, Path(work), rig)
                    extra += six
                    lib_licence, lib_where = licence_of(lf, licences)
                    anim_sources.append({"library": str(lf), "licence": lib_licence,
                                         "licence_source": lib_where, **rep})
        tensors, frames = character_tensors(rig, clips, dedupe_degrees, extra, keep=masks)
        matched |= keys
        split = "heldout" if keys & wanted_holdout else "val" if keys & wanted_val else "train"
        shard = f"shards/{cid.replace('/', '__')}.safetensors"
        rf = rig_frame(rig)
        meta = {"id": cid, "joints": json.dumps(list(rig.joints)), "source": str(f),
                "skeleton": rig.skeleton_path, "height": repr(rf.height), "representation": REPRESENTATION}
        save_file(tensors, str(out_dir / shard), metadata=meta)
        licence, licence_source = licence_of(f, licences)
        records.append(CharacterRecord(
            id=cid, source=str(f), skeleton=rig.skeleton_path, licence=licence, licence_source=licence_source,
            joints=rig.num_joints,
            frames=frames, poses=int(tensors["poses"].shape[0]),
            clips=[c.name for c in clips] + [c for a in anim_sources for c in a["clips"]], split=split,
            has_mesh=bool(rig.meshes), has_limits=rig.limits is not None, shard=shard,
            model_joints=rf.num_model_joints, mirrorable=_mirror_of(rig) is not None, facing=rf.facing,
            merged_skeletons=merged, anim_sources=anim_sources, provenance=provenance, dropped=dropped))
    return records


def _finish(records, failed, wanted_holdout, wanted_val, matched, libraries, bound, dedupe_degrees) -> dict:
    from usdposer.core.posespace import FEATURE_DIM, REPRESENTATION
    from usdposer.io.dataset import FORMAT

    missing = sorted((wanted_holdout | wanted_val) - matched)
    if missing:
        raise InputError(f"held-out / validation characters not found among the sources: {', '.join(missing)}")
    unbound = [f"{libraries[i][1]}" for i in range(len(libraries)) if i not in bound]
    if unbound:
        raise InputError(f"--anim-from: no character read from {', '.join(unbound)}; pass the character file among the "
                         "sources and name it (path or file stem) after the '='")
    manifest = {
        "format": FORMAT,
        "usdposer": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "feature_dim": FEATURE_DIM,
        "pose_representation": REPRESENTATION,
        "dedupe_degrees": dedupe_degrees,
        "characters": [r.__dict__ for r in records],
        "splits": {s: [r.id for r in records if r.split == s] for s in ("train", "val", "heldout")},
        "counts": {s: sum(r.poses for r in records if r.split == s) for s in ("train", "val", "heldout")},
        "failed": failed,
    }
    return manifest


def _library_codes(path: Path, work: Path, rig) -> tuple[list, dict]:
    """The clips of an animation library file retargeted to ``rig``: ([codes (T, J, 6) per clip], report)."""
    import numpy as np
    import torch

    from usdposer.core.posespace import pose_to_6d
    from usdposer.core.retarget import posable_frames, retarget_codes
    from usdposer.io.dataset import read_any

    asset = read_any(path, work)
    if not asset.rigs:
        raise InputError(f"{path}: no skeleton in the animation library")
    src = max(asset.rigs, key=lambda r: len(asset.clips.get(r.skeleton_path, [])))
    out, names, residuals, report = [], [], [], {}
    for clip in asset.clips.get(src.skeleton_path, []):
        six = pose_to_6d(src, clip.pose())
        ok = torch.isfinite(six).all(-1).all(-1) & posable_frames(src, clip)
        if not bool(ok.any()):
            continue
        codes, report = retarget_codes(src, six[ok], rig)
        out.append(codes)
        names.append(clip.name)
        if report["residual_pct"] is not None:
            residuals.append(report["residual_pct"])
    report = {k: v for k, v in report.items() if k != "residual_pct"}
    report["clips"] = names
    report["residual_pct"] = round(float(np.mean(residuals)), 3) if residuals else None
    return out, report


def _mirror_of(rig):
    from usdposer.core.posespace import mirror_permutation, rig_frame

    rf = rig_frame(rig)
    return mirror_permutation(rig.joint_names, rf.pairs, rf.mask, rf.ref_pos, rf.height, rf.model_parents)
