"""The pose prior as a plausibility check: a scorer for ``usdposer check`` and the threshold calibrated on held-in
data (the ``quantile`` of the scores of the training characters' own poses), stored in the checkpoint's config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from usdposer.errors import InputError


def calibrate_plausibility(checkpoint: str | os.PathLike | None, dataset: str | os.PathLike, *, quantile: float = 0.99,
                           max_poses: int = 4000, seed: int = 0, device: str = "cpu") -> dict:
    """Score up to ``max_poses`` held-in poses (train split) and return ``{"threshold", "quantile", "poses"}``."""
    from usdposer.models.pose_prior import PosePrior, RigCondition

    from usdposer.io.dataset import load_dataset

    prior = PosePrior.load(checkpoint, device=device)
    chars = [c for c in load_dataset(dataset, ("train",)) if len(c.poses)]
    if not chars:
        raise InputError(f"{dataset}: no training characters to calibrate on")
    g = torch.Generator().manual_seed(seed)
    per = max(1, max_poses // len(chars))
    scores = []
    for ch in chars:
        idx = torch.randperm(len(ch.poses), generator=g)[:per]
        scores.append(prior.score(RigCondition(ch.features.float(), ch.tree, ch.mask), ch.poses[idx].float(), seed=seed))
    s = torch.cat(scores).double()
    return {"threshold": float(torch.quantile(s, quantile)), "quantile": quantile, "poses": len(s),
            "median": float(s.median()), "dataset": str(dataset)}


def store_calibration(checkpoint: str | os.PathLike, calibration: dict) -> None:
    """Write the calibration into ``config.json`` (``prior.plausibility``), atomically."""
    cfg_file = Path(checkpoint) / "config.json"
    config = json.loads(cfg_file.read_text())
    config.setdefault("prior", {})["plausibility"] = calibration
    tmp = cfg_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, cfg_file)


def make_scorer(checkpoint: str | os.PathLike | None, device: str = "cpu", threshold: float | None = None):
    """(scorer(rig, six) -> (n,) scores, threshold) for ``usdposer check --checkpoint``."""
    from usdposer.models.pose_prior import PosePrior, RigCondition

    prior = PosePrior.load(checkpoint, device=device)
    if threshold is None:
        cal = prior.info.get("plausibility")
        if not cal:
            raise InputError(f"{checkpoint}: the checkpoint has no calibrated plausibility threshold; pass "
                             "--score-threshold or calibrate it (models.plausibility.calibrate_plausibility)")
        threshold = float(cal["threshold"])
    conds: dict[int, RigCondition] = {}

    def scorer(rig, six: torch.Tensor) -> torch.Tensor:
        key = id(rig)
        if key not in conds:
            conds[key] = RigCondition.from_rig(rig)
        return prior.score(conds[key], six)

    return scorer, threshold


def familiarity_warning(prior, cond, scores: torch.Tensor | None = None, six: torch.Tensor | None = None,
                        max_poses: int = 16) -> str | None:
    """A one-line warning when the pose space does not know a rig: the median prior score of its own samples (or of
    the given ``scores``) is above the threshold calibrated on real poses of its training characters. A studio rig
    unlike anything trained on (a convention the canonical frame cannot undo, a new kind of creature) shows up here
    instead of as silently tumbling poses. None when the rig looks familiar or the checkpoint has no calibration."""
    cal = prior.info.get("plausibility")
    if not cal:
        return None
    if scores is None:
        scores = prior.score(cond, six[:max_poses])
    s, thr = float(scores.median()), float(cal["threshold"])
    if s <= thr:
        return None
    return (f"the pose space is unsure of this rig: its poses score {s:.3f} (median) where real poses of the characters "
            f"it was trained on score under {thr:.3f}; check them before use (`usdposer info` says how the rig was "
            "made; a pose space trained on characters like it fits better)")
