"""``usdposer ik``: IK on the manifold (guided sampling under sparse joint handles, ``usdposer.models.guided_ik``),
written as a pose layer with the handles stored as ``IKHandleAPI`` constraint prims; ``replay`` re-runs a stored edit."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import torch
from usdposer.models.guided_ik import EDIT_STRENGTH, SUCCESS_FRACTION, solve_ik
from usdposer.pipelines._base import Progress, Result, preflight
from usdposer.pipelines._session import (
    Session,
    _clip,
    _stage_to_world,
    _take,
    _tcps,
    _world_to_stage,
    keyframe_indices,
    latent_path,
    place,
    resolve_pose,
)

from usdposer.errors import InputError, real, whole


@dataclass(frozen=True)
class IKOptions:
    """``handles``: ``usdposer.core.ik.Handle`` targets; ``pins``: joints kept where they are in the start pose;
    ``pose_from``: edit this pose (time code, ``sample:I``, ``rest``) instead of sampling from noise; ``n``
    candidates; ``frames`` > 1 writes the manifold path from the start pose; ``keyframes``: K listed keyframes."""

    handles: tuple = ()
    pins: tuple[str, ...] = ()
    pose_from: str | None = None
    anim: str | None = None
    n: int = 4
    seed: int = 0
    steps: int = 10
    strength: float | None = None
    frames: int = 1
    keyframes: int = 0
    checkpoint: str | None = None
    skeleton: str | None = None
    device: str = "cpu"
    preview: str | None = None
    arguments: tuple[str, ...] = ()


def ik(asset: str | os.PathLike, out: str | os.PathLike, options: IKOptions = IKOptions(),
       progress: Progress | None = None) -> IKReport:
    """``usdposer ik``: a pose (or path) that reaches the handles along the manifold, as a layer over the asset."""
    preflight([asset], out, [options.preview])
    o = options
    return _ik(asset, out, handles=list(o.handles), pins=list(o.pins), pose_from=o.pose_from, anim=o.anim, n=o.n,
               seed=o.seed, steps=o.steps, strength=o.strength, frames=o.frames, keyframes=o.keyframes,
               checkpoint=o.checkpoint, skeleton=o.skeleton, device=o.device, preview=o.preview,
               arguments=list(o.arguments), progress=progress)


@dataclass
class IKReport(Result):
    """The ``usdposer ik --json`` contract. Errors are fractions of the character's height."""

    asset: str
    output: str
    skeleton: str
    pose_from: str
    handles: list[dict]
    candidates: int
    chosen: int
    seed: int
    steps: int
    strength: float
    handle_errors: list[float]
    mean_handle_error: float
    prior_score: float
    limit_violations: int | None  # joints of the pose outside the range of motion (``limits``), None without one
    frames: int
    keyframes: list[float]
    animation: str
    constraints: str
    height_m: float
    replay_max_angle_deg: float | None = None
    preview: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    limits: str = "none"  # the range of motion: "rig" (the asset's own), "animation" (learned from its clips), "none"
    start_joints_moved: int = 0  # a fresh solve: joints of the rest pose outside that range, brought inside first


def _ik(asset, out, *, handles: list, pins: list[str] = (), pose_from: str | None = None,
             anim: str | None = None, n: int = 4, seed: int = 0, steps: int = 10, strength: float | None = None,
             frames: int = 1, keyframes: int = 0, checkpoint: str | None = None, skeleton: str | None = None,
             device: str = "cpu", preview: str | None = None, arguments: list[str] | None = None,
             progress=None, session: Session | None = None) -> IKReport:
    """IK on the manifold: energy-guided DDIM under sparse handles (and pins), from noise or from an existing pose
    after inversion; ``n`` candidates, the most plausible one that reaches every handle is written. The rig's range
    of motion (:attr:`Session.range_of_motion`) breaks near-ties in plausibility (:func:`models.guided_ik.choose`), and
    a fresh solve edits the rest pose brought inside it (and, where no candidate then reaches, the rest pose as it is).

    ``handles`` are :class:`usdposer.core.ik.Handle` (targets in the stage's world space and units). The layer holds the
    pose (``usdposerIK``; with ``frames > 1`` the manifold path from the start pose to it), the candidates with
    their codes and prior scores (``<Skeleton>/IKCandidates``) and the handles as ``IKHandleAPI`` constraint prims
    (``<Skeleton>/IKHandles``) from which ``usdposer ik --replay`` re-runs the edit. See :func:`solve_ik`.
    ``session``: the asset, rig and prior already loaded (``serve``), else they are loaded here.
    """
    from usdposer.core.ik import Handle, PoseObjective, joint_of
    from usdposer.io.edits import define_ik_handles, set_keyframes, stamp_pose_space
    from usdposer.io.write_skel import define_pose_library, provenance, write_clip_layer

    if not handles:
        raise InputError("give at least one --handle JOINT=x,y,z (pins alone keep the pose as it is)")
    if n < 1 or frames < 1:
        raise InputError(f"-n and --frames must be at least 1 (got {n}, {frames})")
    t0 = time.time()
    s = session or Session.open(asset, skeleton, checkpoint, device)
    rig = s.rig
    start = resolve_pose(s, pose_from or "rest", anim)
    strength = EDIT_STRENGTH if strength is None else strength
    # 1. resolve handles (joint names, units) and pins (where the joint is in the start pose)
    handles = list(handles) + [Handle(p, kind="pin") for p in pins]
    idx = [joint_of(rig, h.joint, "--pin" if h.kind == "pin" else "--handle") for h in handles]
    roots = [joint_of(rig, h.root_joint, "rootJoint") if h.root_joint else None for h in handles]
    weights = torch.tensor([h.weight for h in handles], dtype=torch.float64)
    obj = PoseObjective(rig, torch.tensor(idx), torch.zeros(len(idx), 3), weights, like=start.like)
    start_pos = obj.pose(start.six.double()).positions[0]  # (J, 3)
    targets = torch.stack([start_pos[j] if h.kind == "pin" else _stage_to_world(rig, h.target)
                           for h, j in zip(handles, idx)])
    obj.targets = targets
    obj.check_reachable([h.joint for h in handles], roots)
    # 2.-3. guided sampling from noise and from the start pose inverted part way; pick the most plausible that
    # reaches every handle
    g = torch.Generator().manual_seed(seed)
    limits, limits_from = s.range_of_motion
    begin, moved = start.six, 0
    if not pose_from and limits is not None:  # a fresh solve edits the rest pose brought inside the rig's range
        from usdposer.core.posespace import within_limits

        moved = int(obj.violations(begin, limits).sum())
        begin = within_limits(rig, begin, limits) if moved else begin
    sol = solve_ik(s.prior, s.cond, obj, begin, n=n, steps=steps, strength=strength, edit=bool(pose_from),
                   generator=g, progress=progress, range_limits=limits, fallback=start.six if moved else None)
    six, z, err, score, ok, chosen = sol.six, sol.latents, sol.errors, sol.scores, sol.reached, sol.chosen
    m = len(six)  # n, or one more where the fallback ran
    # 4. the written animation: the pose, or the manifold path from the start pose to it
    if frames > 1:
        path, _, _ = latent_path(s, start.six, six[chosen:chosen + 1], frames, steps)
    else:
        path = six[chosen:chosen + 1]
    pose = place(rig, path, start.like)
    keys = keyframe_indices(len(path), keyframes)
    clip = _clip(rig, pose, "usdposerIK", _tcps(s))
    anim_path, lib, cons = (f"{rig.skeleton_path}/{x}" for x in ("usdposerIK", "IKCandidates", "IKHandles"))
    cand_pose = place(rig, six, start.like)
    stored = [{"joint": rig.joints[j], "root_joint": rig.joints[r] if r is not None else "", "kind": h.kind,
               "weight": h.weight, "target": _world_to_stage(rig, targets[k]).tolist()}
              for k, (h, j, r) in enumerate(zip(handles, idx, roots))]

    def author(stage):
        define_ik_handles(stage, cons, stored)
        define_pose_library(stage, lib, rig, cand_pose, latents=z.reshape(m, -1).numpy(), scores=score.numpy())
        stamp_pose_space(stage, rig.skeleton_path, s.model_id, lib, m)
        if keys:
            set_keyframes(stage, anim_path, [float(k) for k in keys])

    prov = provenance("ik", arguments, seed=seed, checkpoint=s.model_id, steps=steps, strength=strength,
                      candidates=n, chosen=chosen, frames=frames, keyframes=[float(k) for k in keys],
                      poseFrom=pose_from or "", animation=anim or "", skeleton=rig.skeleton_path)
    outp = write_clip_layer(asset, out, rig, [clip], prov=prov, author=author)
    viol = obj.violations(six[chosen:chosen + 1], limits) if limits is not None else None
    rep = IKReport(str(asset), str(outp), rig.skeleton_path, start.label, stored, m, chosen, seed, steps, strength,
                   [round(float(e), 6) for e in err[chosen]], float(err[chosen].mean()), float(score[chosen]),
                   None if viol is None else int(viol.sum()), len(path), [float(k) for k in keys], anim_path, cons,
                   s.height, limits=limits_from, start_joints_moved=moved)
    from usdposer.models.plausibility import familiarity_warning

    unfamiliar = familiarity_warning(s.prior, s.cond, scores=score)
    if unfamiliar:
        rep.warnings.append(unfamiliar)
    if not bool(ok[chosen]):
        rep.warnings.append(f"no candidate reached every handle within {SUCCESS_FRACTION:.1%} of the height "
                            f"(best max error {float(err[chosen].max()):.2%}); try -n 8 or move the targets")
    if preview:
        from usdposer.render.preview import contact_sheet

        contact_sheet(rig, _take(cand_pose, [chosen] + [i for i in range(m) if i != chosen]), preview)
        rep.preview = str(preview)
    rep.seconds = time.time() - t0
    return rep


def replay(layer: str | os.PathLike, out, *, device: str = "cpu", preview: str | None = None,
              arguments: list[str] | None = None, progress=None) -> IKReport:
    """Re-run the edit stored in an ``ik`` layer from its constraint prims and settings, and report how far the new
    pose is from the stored one (``replay_max_angle_deg``; 0 up to float noise with the same seed and checkpoint)."""
    from usdposer.core.ik import Handle
    from usdposer.core.rotations import quat_angle
    from usdposer.io.edits import read_ik_layer
    from usdposer.io.read_skel import read_asset

    prov, source, stored = read_ik_layer(layer)
    skel = prov.get("skeleton") or prov.get("sourceSkeleton")
    handles = [Handle(h["joint"], h["target"], h["weight"], "position", h["root_joint"])
               for h in stored if h["kind"] == "position"]
    pins = [h["joint"] for h in stored if h["kind"] == "pin"]
    ckpt = prov.get("checkpoint")
    from usdposer.models.pose_prior import DEFAULT_CHECKPOINT

    rep = _ik(source, out, handles=handles, pins=pins, pose_from=prov.get("poseFrom") or None,
              anim=prov.get("animation") or None, checkpoint=None if ckpt in (None, "", str(DEFAULT_CHECKPOINT)) else ckpt,
              skeleton=skel, device=device, preview=preview, arguments=arguments, progress=progress,
              **_stored_settings(prov, layer))
    old = read_asset(layer)
    new = read_asset(rep.output)
    rig_old, rig_new = old.rig(skel), new.rig(skel)
    qa = old.clip(rig_old, "usdposerIK").rotations[-1]
    qb = new.clip(rig_new, "usdposerIK").rotations[-1]
    rep.replay_max_angle_deg = float(quat_angle(qa, qb).max() * 180 / math.pi)
    return rep


def _stored_settings(prov: dict, layer) -> dict:
    """The settings an ``ik`` layer's provenance stored (``n``, ``seed``, ``steps``, ``strength``, ``frames``,
    ``keyframes``), checked against the command line's ranges: an edited or corrupt layer gets one line, not a
    replay of 10^9 candidates."""
    fix = "the layer's provenance was edited or is corrupt; run `usdposer ik` again instead of --replay"
    out = {}
    for key, stored, default in (("n", "candidates", 4), ("seed", "seed", 0), ("steps", "steps", 50),
                                 ("frames", "frames", 1)):
        v = prov.get(stored, default)
        if not whole(v, *REQUEST_RANGES[key]):
            lo, hi = REQUEST_RANGES[key]
            raise InputError(f"{layer}: stored {stored} = {v!r} is not a whole number from {lo} to {hi}; {fix}")
        out[key] = v
    strength, keys = prov.get("strength", 1.0), prov.get("keyframes", [])
    if not real(strength) or not 0 < strength <= 1:
        raise InputError(f"{layer}: stored strength = {strength!r} is not in (0, 1]; {fix}")
    if isinstance(keys, (str, bytes)) or not hasattr(keys, "__len__") or len(keys) > REQUEST_RANGES["keyframes"][1]:
        raise InputError(f"{layer}: stored keyframes = {keys!r} is not a list of time codes; {fix}")
    return {**out, "strength": float(strength), "keyframes": len(keys)}


REQUEST_KEYS = {"out", "handles", "pins", "from", "anim", "n", "seed", "steps", "strength", "frames", "keyframes",
                "preview"}
# a request's whole numbers: the command line's ranges (``commands/ik.py``), so a line cannot ask for 10^9 candidates
REQUEST_RANGES = {"n": (1, 10_000), "seed": (0, 2 ** 63 - 1), "steps": (1, 10_000), "frames": (1, 100_000),
                  "keyframes": (0, 100_000)}


@dataclass
class ServeReport(Result):
    """What ``usdposer ik --serve`` did: requests read, answered (a layer written) and refused, the seconds spent
    loading the asset and the model once, and each answered request's own seconds."""

    asset: str
    requests: int
    answered: int
    refused: int
    load_seconds: float
    seconds: list[float] = field(default_factory=list)


def serve(asset: str | os.PathLike, options: IKOptions, requests, respond, progress: Progress | None = None
          ) -> ServeReport:
    """``usdposer ik --serve``: load ``asset``'s rig and the pose space once, then answer one IK request per line of
    ``requests`` (an iterable of JSON text lines) until it ends, calling ``respond(dict)`` once per line: the
    request's IK report (``index`` added), or ``{"index", "error", "exit_code"}`` for a request that is refused (bad
    JSON, an unknown joint, an output that cannot be written: nothing is written for it, and the next line is read).

    A request is an object with ``out`` (required: the layer to write) and any of ``handles`` (``["JOINT=x,y,z[:w]",
    ...]``), ``pins``, ``from``, ``anim``, ``n``, ``seed``, ``steps``, ``strength``, ``frames``, ``keyframes``,
    ``preview``; what it leaves out comes from ``options`` (its handles and pins too, unless the request lists its
    own). Each request's outputs are committed when it is answered
    (its own transaction), so a client reads them at once. Repeated fresh solves on the rig reuse the rest pose's
    inversion (:func:`usdposer.models.guided_ik.inverted_start`)."""
    import json

    from usdposer.core.ik import Handle, parse_handle
    from usdposer.errors import UsdPoserError
    from usdposer.outputs import transaction

    tick = time.time()
    preflight([asset])
    o = options
    s = Session.open(asset, o.skeleton, o.checkpoint, o.device)
    rep = ServeReport(str(asset), 0, 0, 0, round(time.time() - tick, 3))
    for line in requests:
        line = line.strip()
        if not line:
            continue
        index = rep.requests
        rep.requests += 1
        try:
            try:
                req = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"request {index}: not JSON ({e.msg} at column {e.colno}); send one object per "
                                 'line, e.g. {"out": "pose.usdc", "handles": ["Head=0,1.6,0.2"]}') from None
            except RecursionError:
                raise InputError(f"request {index}: nested too deeply to read; send one flat object per line") from None
            if not isinstance(req, dict):
                raise InputError(f"request {index}: expected a JSON object, got {type(req).__name__}")
            unknown = sorted(set(req) - REQUEST_KEYS)
            if unknown:
                raise InputError(f"request {index}: unknown key(s) {', '.join(unknown)}; use "
                                 f"{', '.join(sorted(REQUEST_KEYS))}")
            if not req.get("out"):
                raise InputError(f'request {index}: give "out", the layer to write')
            for k in ("out", "from", "anim", "preview"):  # a time code may come as a number: "from": 12
                v = req.get(k)
                if not (v is None or isinstance(v, str) or (k == "from" and real(v))):
                    raise InputError(f'request {index}: "{k}" must be a string{" or a time code" * (k == "from")} '
                                     f"(got {v!r})")
            for k in ("handles", "pins"):
                if k in req and not (isinstance(req[k], list) and all(isinstance(h, str) for h in req[k])):
                    raise InputError(f'request {index}: "handles" and "pins" are lists of strings, e.g. '
                                     '["Head=0,1.6,0.2"] and ["Foot_L"]')
            handles = req.get("handles", list(o.handles))
            pins = req.get("pins", list(o.pins))
            args = {k: req.get(k, getattr(o, k)) for k in REQUEST_RANGES}
            for k, v in args.items():
                if not whole(v, *REQUEST_RANGES[k]):
                    lo, hi = REQUEST_RANGES[k]
                    raise InputError(f'request {index}: "{k}" must be a whole number from {lo} to {hi} (got {v!r})')
            strength = req.get("strength", o.strength)
            if strength is not None and (not real(strength) or not 0 < strength <= 1):
                raise InputError(f'request {index}: "strength" must be in (0, 1] (got {strength!r})')
            out, preview = req["out"], req.get("preview", None)
            pose_from = req.get("from", o.pose_from)
            pose_from = str(pose_from) if real(pose_from) else pose_from
            with transaction(separate=True):
                preflight([asset], out, [preview])
                r = _ik(asset, out, handles=[h if isinstance(h, Handle) else parse_handle(str(h)) for h in handles],
                        pins=[str(p) for p in pins], pose_from=pose_from,
                        anim=req.get("anim", o.anim), strength=strength, checkpoint=o.checkpoint,
                        skeleton=o.skeleton, device=o.device, preview=preview,
                        arguments=[*o.arguments, "--request", line], progress=progress, session=s, **args)
        except UsdPoserError as e:
            rep.refused += 1
            respond({"index": index, "error": str(e).splitlines()[0], "exit_code": e.exit_code})
            continue
        except OSError as e:
            rep.refused += 1
            respond({"index": index, "error": f"{e.filename or ''}: {e.strerror or e}", "exit_code": 2})
            continue
        except MemoryError:
            rep.refused += 1
            respond({"index": index, "error": "out of memory; ask for fewer candidates, frames or steps",
                     "exit_code": 2})
            continue
        except Exception as e:  # noqa: BLE001 - a bug: this request's line says so, the next one is still answered
            rep.refused += 1
            msg = " ".join(str(e).split())[:300]
            respond({"index": index, "error": f"internal error ({type(e).__name__}: {msg}); nothing was written for "
                     "this request; report it with the request line", "exit_code": 4})
            continue
        rep.answered += 1
        rep.seconds.append(round(r.seconds, 3))
        respond({"index": index, **r.to_json()})
    return rep
