"""``usdposer sample``: plausible poses of any rig from the pose space, written as a layer over the asset."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from usdposer.pipelines._base import Progress, Result, preflight

from usdposer.errors import InputError

CHECKED_CODES = 16  # samples whose inverted codes are decoded again to measure their error


@dataclass
class SampleReport(Result):
    """The ``usdposer sample --json`` contract."""

    asset: str
    output: str
    skeleton: str
    joints: int
    samples: int
    steps: int
    seed: int
    checkpoint: str
    animation: str
    library: str
    preview: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    eta: float = 0.0
    sampler: str = "ddim"
    noisy_steps: int | None = None  # eta > 0: the steps that added noise (the first ones; None: all)
    latent_error: float | None = None  # eta > 0: max |decode(codes) - poses| (6D) of the inverted codes, over
    latent_error_checked: int | None = None  # the first this many samples


@dataclass(frozen=True)
class SampleOptions:
    """``n`` poses with ``steps`` DDIM steps from ``checkpoint`` (None or "default": the shipped one); ``eta`` None
    takes the checkpoint's own, applied to the first ``noisy_steps`` steps (None: all; the rest deterministic);
    ``preview``: a PNG contact sheet; ``arguments``: the command line, for provenance.

    ``refine``: fixed-point passes per inverted step of the codes. The defaults (12 steps, the first ancestral,
    2 passes) are the README's trade-off curve's choice: the 50-step ancestral sampler's precision and recall within
    their seed spread, about 12 times faster end to end (``bench/sample_speed.py``)."""

    n: int = 16
    seed: int = 0
    checkpoint: str | None = None
    steps: int = 12
    noisy_steps: int | None = 1
    refine: int = 2
    skeleton: str | None = None
    preview: str | None = None
    device: str = "cpu"
    eta: float | None = None
    arguments: tuple[str, ...] = ()


def sample(asset: str | os.PathLike, out: str | os.PathLike, options: SampleOptions = SampleOptions(),
           progress: Progress | None = None) -> SampleReport:
    """Sample ``n`` poses of the asset's rig and write them as a layer over it (two layouts: a SkelAnimation any DCC scrubs, and packed arrays):

    * A: one SkelAnimation ``usdposerSamples`` under the Skeleton, pose i at time code i, bound (scrub in a DCC);
    * B: a packed ``PoseSampleLibrary`` prim ``<Skeleton>/PoseSamples`` with the DDIM latent codes (N, J*6);
    * the Skeleton gets ``PoseSpaceAPI`` naming the model, the sampler and the library.

    ``eta`` None takes the checkpoint's own. With ``eta`` > 0 the first ``noisy_steps`` steps are ancestral and the
    codes stored are DDIM inversions (eta = 0) of the state after them, so that ``interpolate`` and ``invert``
    treat them like any code (their error, measured on the first samples, is in the report).
    """
    preflight([asset], out, [options.preview])
    import time

    import torch
    from usdposer.models.pose_prior import PosePrior, RigCondition, checkpoint_dir, noisy_steps_of

    from usdposer.core.posespace import pose_from_6d
    from usdposer.io.edits import stamp_pose_space
    from usdposer.io.write_skel import define_pose_library, provenance, write_clip_layer
    from usdposer.types import Clip

    o = options
    n, seed, checkpoint, steps, skeleton, preview, device, eta = (o.n, o.seed, o.checkpoint, o.steps, o.skeleton,
                                                                   o.preview, o.device, o.eta)
    arguments = list(o.arguments)
    if n < 1:
        raise InputError(f"-n must be at least 1 (got {n})")
    t0 = time.time()
    from usdposer.io.read_skel import open_rig

    src, rig = open_rig(asset, skeleton)
    prior = PosePrior.load(checkpoint, device)
    cond = RigCondition.from_rig(rig)
    g = torch.Generator().manual_seed(seed)
    eta = prior.sampling_eta if eta is None else float(eta)
    if o.noisy_steps is not None and o.noisy_steps < 0:
        raise InputError(f"--noisy-steps must be at least 0 (got {o.noisy_steps})")
    noisy = noisy_steps_of(eta, o.noisy_steps, steps)
    six, latents = prior.sample(cond, n, steps=steps, generator=g, eta=eta, noisy_steps=noisy, codes=True,
                                refine=o.refine, progress=progress)
    latent_error = None
    if eta > 0 and noisy != 0:  # the codes decode to these poses under the deterministic sampler: how closely
        k = min(n, CHECKED_CODES)  # the codes' error, measured on a fixed subset: a full decode cost a fifth of the verb
        back, _ = prior.sample(cond, k, steps=steps, latents=latents[:k])
        latent_error = float((back - six[:k]).abs().max())
    from usdposer.models.plausibility import familiarity_warning

    unfamiliar = familiarity_warning(prior, cond, six=six)
    pose = pose_from_6d(rig.to(torch.float64), six.double())
    clip = Clip(pose.rotations, pose.translations, pose.scales, time_codes=torch.arange(n, dtype=torch.float64),
                time_codes_per_second=src.time_codes_per_second or 24.0, name="usdposerSamples")
    lib_path = f"{rig.skeleton_path}/PoseSamples"
    model_id = str(checkpoint_dir(checkpoint))
    sampler = "ddpm" if eta == 1 and noisy is None else "ddim"  # the schema's tokens; ddim: any other schedule

    def author(stage):
        define_pose_library(stage, lib_path, rig, pose, latents=latents.reshape(n, -1).numpy(),
                            time_codes=list(range(n)))
        stamp_pose_space(stage, rig.skeleton_path, model_id, lib_path, n, sampler=sampler)

    prov = provenance("sample", arguments, seed=seed, checkpoint=model_id, steps=steps, samples=n, eta=eta,
                      noisy_steps=noisy)
    out = write_clip_layer(asset, out, rig, [clip], prov=prov, author=author)
    report = SampleReport(str(asset), str(out), rig.skeleton_path, rig.num_joints, n, steps, seed, model_id,
                          f"{rig.skeleton_path}/usdposerSamples", lib_path, eta=eta, sampler=sampler,
                          noisy_steps=noisy,
                          latent_error=latent_error,
                          latent_error_checked=min(n, CHECKED_CODES) if latent_error is not None else None)
    if unfamiliar:
        report.warnings.append(unfamiliar)
    if preview:
        from usdposer.render.preview import contact_sheet

        show = min(n, 64)
        if show < n:
            report.warnings.append(f"the preview shows the first {show} of {n} samples")
        contact_sheet(rig, _slice(pose, show), preview)
        report.preview = str(preview)
    report.seconds = time.time() - t0
    return report


def _slice(pose, n):
    from usdposer.types import Pose


    return Pose(pose.rotations[:n], pose.translations[:n], pose.scales[:n])
