"""The rules. File rules read what the USD reader found (``SkelAsset`` and its coded ``Problem`` rows); clip rules
measure every frame of every SkelAnimation, chunk by chunk, then judge the whole clip (findings cover runs of
consecutive frames, each with its worst frame)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace

import torch

from usdposer.validate.context import ClipContext, FileContext, runs
from usdposer.validate.registry import Finding, Rule, register

# ------------------------------------------------------------------------------------------------- file rules


# the reader's problem kinds (usdposer.io.read_skel.Problem.kind) -> the rule and error name that report them
PROBLEM_RULES = {
    "usd-diagnostic": "UsdDiagnostics.Warning",
    "child-before-parent": "JointOrder.ChildBeforeParent",
    "duplicate-joint": "JointOrder.DuplicateJoint",
    "invalid-joint-path": "JointOrder.InvalidJointPath",
    "no-joints": "SkinBinding.NoJoints",
    "singular-bind": "SkinBinding.SingularBind",
    "invalid-skeleton": "SkinBinding.InvalidSkeleton",
    "missing-rest-transforms": "SkinBinding.MissingRestTransforms",
    "no-skel-root": "SkinBinding.NoSkelRoot",
    "size-mismatch": "SkinBinding.SizeMismatch",
    "missing-influences": "SkinBinding.MissingInfluences",
    "unknown-joint": "SkinBinding.UnknownJoint",
    "index-out-of-range": "SkinBinding.IndexOutOfRange",
    "weights-not-normalized": "SkinBinding.WeightsNotNormalized",
    "bad-topology": "SkinBinding.BadTopology",
    "non-finite-skeleton": "NonFinite.Skeleton",
    "non-finite-points": "NonFinite.Points",
    "non-finite-weights": "NonFinite.Weights",
    "non-finite-animation": "NonFinite.Animation",
    "incomplete-animation": "SkelAnimComplete.MissingJointComponent",
    "animation-size-mismatch": "SkelAnimComplete.SizeMismatch",
    "bad-blend-shapes": "SkinBinding.BadBlendShape",
    "missing-texture": "Looks.MissingTexture",
}


class _ProblemRule(Rule):
    """Findings from the reader's problems, by kind (``PROBLEM_RULES``): reader errors fail; warnings keep the
    severity listed in ``warning_severity`` (default: warning)."""

    warning_severity: dict[str, str] = {}

    def check(self, file: FileContext) -> list[Finding]:
        out = []
        for p in file.asset.problems:
            rule, _, code = PROBLEM_RULES.get(p.kind, "").partition(".")
            if rule != self.name:
                continue
            severity = "failed" if p.severity == "error" else self.warning_severity.get(code, "warning")
            out.append(file.finding(self, code, p.message, severity, prim=p.prim))
        return out


@register
class Readable(Rule):
    """The file exists, opens as USD (or converts from glTF, BVH, MJCF) and has a Skeleton."""

    severity = "error"
    codes = {"CannotOpen": "the file cannot be read or converted", "NotFound": "no such file or pattern",
             "NoSkeleton": "the file has no Skeleton prim, so no rig rule checks it (a warning: a folder of shots "
                           "may hold sets and props; --strict counts it)",
             "Composition": "a sublayer or reference cannot be opened, or the layers form a cycle"}

    def check(self, file: FileContext) -> list[Finding]:
        if file.read_error is not None:  # the finding names the file; the reader's one line often does too
            return [file.finding(self, "CannotOpen", file.read_error.removeprefix(f"{file.path}: "))]
        composition = [file.finding(self, "Composition", p.message, "failed", prim=p.prim)
                       for p in file.asset.problems if p.kind == "composition"]
        if composition:
            return composition
        if not file.asset.rigs and any(p.kind == "no-skeleton" for p in file.asset.problems):
            return [file.finding(self, "NoSkeleton", "no Skeleton prim, nothing for the rig rules to "
                                 "check; import glTF/BVH/MJCF with `usdposer import`", severity="warning", prim="/")]
        return []  # Skeletons that exist but cannot be used are reported by the rule that names why (JointOrder...)


@register
class StageMetadata(Rule):
    """upAxis, metersPerUnit and timeCodesPerSecond are authored (USD's fallbacks are Y, centimetres and 24)."""

    severity = "warning"
    codes = {"MissingUpAxis": "upAxis not authored", "MissingMetersPerUnit": "metersPerUnit not authored",
             "MissingTimeCodesPerSecond": "timeCodesPerSecond not authored"}

    def check(self, file: FileContext) -> list[Finding]:
        have = set(file.asset.authored_metadata)
        fallback = {"upAxis": "Y", "metersPerUnit": "0.01", "timeCodesPerSecond": "24"}
        return [file.finding(self, f"Missing{k[0].upper()}{k[1:]}",
                             f"the root layer does not author {k}; readers fall back to {fallback[k]}. Author it "
                             "(usdposer import does)", prim="/")
                for k in ("upAxis", "metersPerUnit", "timeCodesPerSecond") if k not in have]


@register
class SkinBinding(_ProblemRule):
    """Skin binding sanity: weights normalised and finite, indices in range, array sizes agree, influences present,
    blend shapes usable."""

    codes = {"WeightsNotNormalized": "jointWeights of a point do not sum to 1",
             "IndexOutOfRange": "jointIndices outside the skeleton (or skel:joints)",
             "UnknownJoint": "skel:joints names a joint the skeleton lacks",
             "SizeMismatch": "jointIndices/jointWeights/bindTransforms sizes disagree",
             "MissingInfluences": "bound mesh without jointIndices/jointWeights",
             "MissingRestTransforms": "restTransforms missing or of the wrong length",
             "InvalidSkeleton": "UsdSkel cannot build a query for the skeleton",
             "BadTopology": "faces refer to points that do not exist",
             "NoJoints": "a Skeleton without joints",
             "NoSkelRoot": "meshes bound to the skeleton lie outside every SkelRoot (UsdSkel skins none of them)",
             "SingularBind": "a bind transform that cannot be inverted (scaled to zero)",
             "BadBlendShape": "a blend shape UsdSkel cannot apply (no offsets, sizes disagree, an unpaired target)"}


@register
class Looks(_ProblemRule):
    """Every base-colour texture a mesh's material names can be read (where one cannot, pictures and Gaussians draw
    the display colour)."""

    codes = {"MissingTexture": "a base-colour texture file that is missing or unreadable"}


@register
class SkelAnimComplete(_ProblemRule):
    """Every SkelAnimation authors translations, rotations and scales, one value per joint (UsdSkel silently
    ignores an incomplete one)."""

    codes = {"MissingJointComponent": "translations, rotations or scales not authored",
             "SizeMismatch": "a component has the wrong number of values"}
    warning_severity = {"MissingJointComponent": "failed"}


@register
class JointOrder(_ProblemRule):
    """Joints are listed parents before children, once each, as USD paths."""

    codes = {"ChildBeforeParent": "a joint is listed before its parent",
             "DuplicateJoint": "a joint path listed twice",
             "InvalidJointPath": "a joint token that is not a USD path (UsdSkel makes it a root)"}


@register
class NonFinite(_ProblemRule):
    """No NaN or infinite values in points, skin weights, skeleton matrices or animation."""

    codes = {"Points": "mesh points", "Weights": "skin weights", "Skeleton": "rest/bind transforms",
             "Animation": "SkelAnimation values"}


@register
class UsdDiagnostics(_ProblemRule):
    """USD's own warnings while reading the skeleton bindings (invalid influence interpolation, element size)."""

    severity = "warning"
    codes = {"Warning": "a warning USD emitted while the file was read"}


@register
class UniqueJointNames(Rule):
    """Joint leaf names are unique within a skeleton (Blender names bones by leaf; duplicates merge)."""

    severity = "warning"
    codes = {"DuplicateLeafName": "two joints share a leaf name"}

    def check(self, file: FileContext) -> list[Finding]:
        out = []
        for rig in file.asset.rigs:
            seen: dict[str, list[str]] = defaultdict(list)
            for token, leaf in zip(rig.joints, rig.joint_names):
                seen[leaf].append(token)
            for leaf, tokens in seen.items():
                if len(tokens) > 1:
                    out.append(file.finding(self, "DuplicateLeafName", f"{len(tokens)} joints are named {leaf!r} "
                                            f"({', '.join(tokens[:3])}); rename them so that DCCs keep them apart",
                                            prim=rig.skeleton_path, joint=tokens[0]))
        return out


# ------------------------------------------------------------------------------------------------- clip rules


def concat_measures(measures: list[dict]) -> dict:
    """Per-chunk measures of one rule -> one dict: tensors concatenated along frames, lists joined."""
    out: dict = {}
    for m in measures:
        for k, v in m.items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v) if isinstance(v[0], torch.Tensor) else [x for part in v for x in part] for k, v in out.items()}


def _joint_runs(clip: ClipContext, rule: Rule, bad: torch.Tensor, size: torch.Tensor, describe, severity=None,
                code: str = "") -> list[Finding]:
    """One finding per (joint, run of consecutive bad frames), at the frame where ``size`` is largest."""
    out = []
    for j in torch.nonzero(bad.any(0)).flatten().tolist():
        for first, last in runs(bad[:, j]):
            worst = first + int(size[first:last + 1, j].argmax())
            span = "" if first == last else f"; frames {clip.time(first):g}-{clip.time(last):g}"
            out.append(clip.finding(rule, code, describe(j, worst) + span, severity, joint=j, frame=worst,
                                    run=(first, last), value=float(size[worst, j])))
    return out


def _deg(x: float) -> str:
    return f"{math.degrees(x):.1f}°"


@register
class JointLimits(Rule):
    """Joint rotations stay within their limits per frame: the joint-limits schema / MJCF hinge ranges (per-axis
    Euler, exact for hinges) and limits learned from a dataset (swing-twist: hyperextension = swing past the cone)."""

    scope = "clip"
    codes = {"OutsideRange": "an Euler angle outside the rig's own limits",
             "Hyperextension": "swing beyond the learned cone", "TwistOutsideRange": "twist outside the learned range"}

    def measure(self, clip: ClipContext, chunk) -> dict:
        from usdposer.core.limits import euler_xyz, limit_residual, swing_twist, swing_twist_residual

        tol = math.radians(clip.file.options.limit_tolerance_deg)
        out = {}
        R = chunk.R_rel.double()
        b, J = R.shape[:2]
        if clip.rig.limits is not None:
            excess = limit_residual(R, clip.rig.limits, margin=tol).reshape(b, J, 3)
            out["euler_excess"], out["euler_axis"] = excess.max(-1)
            out["euler"] = euler_xyz(R)  # (b, J, 3) for the messages
        learned = clip.rig_ctx.learned
        if learned is not None:
            axes, lim = learned
            excess = swing_twist_residual(R, axes, lim, margin=tol).reshape(b, J, 2)
            swing, twist = swing_twist(R, axes)  # (b, J) for the messages
            out.update(twist_excess=excess[..., 0], swing_excess=excess[..., 1], swing=swing, twist=twist)
        return out

    def judge(self, clip: ClipContext, m: dict) -> list[Finding]:
        out = []
        rig = clip.rig
        if "euler_excess" in m:
            lim = rig.limits

            def euler_msg(j: int, f: int) -> str:
                ax = int(m["euler_axis"][f, j])
                lo, hi = lim[j, ax].tolist()
                return (f"{rig.joint_names[j]}: rotation {'XYZ'[ax]} {_deg(float(m['euler'][f, j, ax]))} outside "
                        f"[{_deg(lo)}, {_deg(hi)}] at frame {clip.time(f):g}")

            out += _joint_runs(clip, self, m["euler_excess"] > 0, m["euler_excess"], euler_msg, code="OutsideRange")
        if "swing_excess" in m:
            lim = clip.rig_ctx.learned[1]
            out += _joint_runs(
                clip, self, m["swing_excess"] > 0, m["swing_excess"],
                lambda j, f: (f"{rig.joint_names[j]}: swing {_deg(float(m['swing'][f, j]))} beyond the learned "
                              f"{_deg(float(lim[j, 2]))} at frame {clip.time(f):g}"), code="Hyperextension")
            out += _joint_runs(
                clip, self, m["twist_excess"] > 0, m["twist_excess"],
                lambda j, f: (f"{rig.joint_names[j]}: twist {_deg(float(m['twist'][f, j]))} outside the learned "
                              f"[{_deg(float(lim[j, 0]))}, {_deg(float(lim[j, 1]))}] at frame {clip.time(f):g}"),
                code="TwistOutsideRange")
        return out


@register
class SelfIntersection(Rule):
    """The skinned mesh does not cross itself between parts that are not skeleton neighbours (exact
    triangle-triangle test); reports the joint pairs and the depth. Deeper than --depth warns, deeper than
    --depth-fail fails."""

    scope = "clip"
    needs_mesh = True
    codes = {"Penetration": "two non-adjacent parts of the skinned mesh cross"}

    def measure(self, clip: ClipContext, chunk) -> dict:
        parts = clip.rig_ctx.parts
        if parts is None:
            return {"contacts": []}
        contacts = parts.find(chunk.points)
        return {"contacts": [(c.frame + chunk.start, c.a, c.b, c.depth, c.crossings) for c in contacts]}

    def judge(self, clip: ClipContext, m: dict) -> list[Finding]:
        by_pair: dict[tuple[int, int], dict[int, tuple[float, int]]] = defaultdict(dict)
        for f, a, b, depth, n in m["contacts"]:
            by_pair[(a, b)][f] = (depth, n)
        out = []
        names = clip.rig.joint_names
        limit = clip.file.options.depth_fail * clip.height
        T = len(clip.clip)
        for (a, b), frames in sorted(by_pair.items()):
            mask = torch.zeros(T, dtype=torch.bool)
            mask[list(frames)] = True
            for first, last in runs(mask):
                worst = max(range(first, last + 1), key=lambda f: frames[f][0])
                depth, n = frames[worst]
                span = "" if first == last else f"; frames {clip.time(first):g}-{clip.time(last):g}"
                if depth < clip.file.options.depth * clip.height:
                    continue
                sev = "failed" if depth > limit else "warning"
                f = clip.finding(self, "Penetration", f"{names[a]} crosses {names[b]}: {n} triangle pairs, "
                                 f"{_length(depth)} deep ({depth / clip.height:.1%} of the height) at frame "
                                 f"{clip.time(worst):g}{span}", sev, joint=a, frame=worst, run=(first, last), value=depth)
                out.append(replace(f, joint=f"{clip.rig.joints[a]} & {clip.rig.joints[b]}"))
        return out


@register
class Ground(Rule):
    """The lowest skinned point (joint, for rigs without a mesh) stays on the ground plane y = 0 (rigs whose rest pose
    stands on it): sinking deeper than --penetration warns, deeper than --penetration-fail fails; a whole clip
    hovering above --floating warns (flying and swimming clips do)."""

    scope = "clip"
    codes = {"Penetration": "the character sinks below the ground", "Floating": "the whole clip stays above ground"}

    def measure(self, clip: ClipContext, chunk) -> dict:
        if clip.rig_ctx.ground is None:
            return {}
        pts = chunk.points if clip.rig.meshes else chunk.world[..., :3, 3]
        return {"lowest": pts[..., 1].amin(-1) - clip.rig_ctx.ground}  # (b,)

    def judge(self, clip: ClipContext, m: dict) -> list[Finding]:
        if "lowest" not in m:
            return []
        low = m["lowest"]
        h, opt = clip.height, clip.file.options
        out = []
        for first, last in runs(low < -opt.penetration * h):
            worst = first + int(low[first:last + 1].argmin())
            d = -float(low[worst])
            span = "" if first == last else f"; frames {clip.time(first):g}-{clip.time(last):g}"
            sev = "failed" if d > opt.penetration_fail * h else "warning"
            out.append(clip.finding(self, "Penetration", f"lowest point {_length(d)} below the ground "
                                    f"({d / h:.1%} of the height) at frame {clip.time(worst):g}{span}", sev,
                                    frame=worst, run=(first, last), value=d))
        if len(low) and float(low.min()) > opt.floating * h:
            f = int(low.argmin())
            out.append(clip.finding(self, "Floating", f"the clip never comes within {_length(float(low.min()))} "
                                    f"({float(low.min()) / h:.1%} of the height) of the ground (closest at frame "
                                    f"{clip.time(f):g})", "warning", frame=f, run=(0, len(low) - 1),
                                    value=float(low.min())))
        return out


@register
class FootSkating(Rule):
    """Points on the ground stay put: the mean horizontal speed of the skinned points within --contact of the ground
    at two consecutive frames (the feet in contact) above --skating heights per second warns (a walk cycle played in
    place skates; ``usdposer track`` grounds it). Frame pairs that straddle two chunks are not measured."""

    severity = "warning"
    scope = "clip"
    codes = {"Skating": "points in contact with the ground slide"}

    def measure(self, clip: ClipContext, chunk) -> dict:
        if clip.rig_ctx.ground is None or len(clip.clip) < 2:
            return {}
        from usdposer.core.motion import skating_per_frame

        pts = chunk.points if clip.rig.meshes else chunk.world[..., :3, 3]
        return {"speed": skating_per_frame(pts, clip.clip.fps, clip.file.options.contact * clip.height, clip.height,
                                           clip.rig_ctx.ground)}  # (b,) heights / s

    def judge(self, clip: ClipContext, m: dict) -> list[Finding]:
        if "speed" not in m:
            return []
        v, tol = m["speed"], clip.file.options.skating
        out = []
        for first, last in runs(v > tol):
            worst = first + int(v[first:last + 1].argmax())
            span = "" if first == last else f"; frames {clip.time(first):g}-{clip.time(last):g}"
            out.append(clip.finding(self, "Skating", f"feet on the ground slide at {float(v[worst]):.2f} heights/s "
                                    f"at frame {clip.time(worst):g}{span} (mean {float(v[first:last + 1].mean()):.2f})",
                                    frame=worst, run=(first, last), value=float(v[worst])))
        return out


@register
class Jitter(Rule):
    """Joints move smoothly. Pop: a joint whose frame-to-frame rotation changes by more than --pop degrees between
    consecutive frame steps (the angle of d_{t+1} d_t^-1, d_t = q_t q_{t-1}^-1: a snap, a flipped joint) warns.
    Trembling: the clip's jitter (the mean absolute second difference of the joint rotations, degrees per frame^2, as
    ``distill`` and ``track`` report it) above --jitter warns. Frames at the ends of a chunk are not measured."""

    severity = "warning"
    scope = "clip"
    codes = {"Pop": "a joint's rotation changes abruptly between frames",
             "Trembling": "the whole clip trembles (mean second difference of joint rotations)"}

    def measure(self, clip: ClipContext, chunk) -> dict:
        from usdposer.core.motion import jitter_per_frame, rotation_acceleration

        pose = chunk.pose
        return {"accel": rotation_acceleration(pose.rotations.double()).float(),  # (b, J) degrees / frame^2
                "jitter": jitter_per_frame(clip.rig, pose).float()}  # (b,)

    def judge(self, clip: ClipContext, m: dict) -> list[Finding]:
        a, opts = m["accel"], clip.file.options
        names = clip.rig.joint_names
        out = _joint_runs(clip, self, a > opts.pop, a.nan_to_num(0.0),
                          lambda j, f: f"{names[j]}: rotation snaps by {float(a[f, j]):.1f}° between frame steps at "
                                       f"frame {clip.time(f):g}", code="Pop")
        per_frame = m["jitter"]
        measured = per_frame[~per_frame.isnan()]
        if len(measured) and float(measured.mean()) > opts.jitter:
            worst = int(per_frame.nan_to_num(-1.0).argmax())
            out.append(clip.finding(self, "Trembling", f"the clip trembles: jitter {float(measured.mean()):.1f}°/frame² "
                                    f"(above {opts.jitter:g}), worst at frame {clip.time(worst):g}", frame=worst,
                                    run=(0, len(per_frame) - 1), value=float(measured.mean())))
        return out


def _length(metres: float) -> str:
    return f"{metres * 100:.1f} cm" if abs(metres) < 10 else f"{metres:.1f} m"


@register
class BoneDrift(Rule):
    """Bone lengths and joint scales hold across an animation: stretch beyond --drift of the rest length or rest
    scale warns (bones from a root down to the first branching joint, the hips, are skipped: they carry root
    motion)."""

    severity = "warning"
    scope = "clip"
    codes = {"LengthDrift": "a bone's length departs from its rest length", "ScaleDrift": "a joint scale departs from its rest scale"}

    def measure(self, clip: ClipContext, chunk) -> dict:
        from usdposer.validate.context import _bone_lengths

        rig = clip.rig
        rest = clip.rig_ctx.bone_lengths.to(chunk.world)
        L = _bone_lengths(rig, chunk.world)
        has = (rest > 1e-4 * clip.height) & ~clip.rig_ctx.root_chain
        rel = torch.where(has, (L / rest.clamp(min=1e-12) - 1).abs(), torch.zeros_like(L))  # (b, J)
        rest_scale = clip.rig_ctx.rest_scales.to(chunk.pose.scales)
        scale = (chunk.pose.scales / rest_scale.clamp(min=1e-12) - 1).abs().amax(-1)  # (b, J)
        return {"length": rel, "scale": scale}

    def judge(self, clip: ClipContext, m: dict) -> list[Finding]:
        tol = clip.file.options.drift
        names = clip.rig.joint_names
        out = _joint_runs(clip, self, m["length"] > tol, m["length"],
                          lambda j, f: f"{names[j]}: bone length off its rest length by {float(m['length'][f, j]):.1%} "
                                       f"at frame {clip.time(f):g}", code="LengthDrift")
        out += _joint_runs(clip, self, m["scale"] > tol, m["scale"],
                           lambda j, f: f"{names[j]}: joint scale off its rest scale by {float(m['scale'][f, j]):.1%} at frame "
                                        f"{clip.time(f):g}", code="ScaleDrift")
        return out


@register
class Plausibility(Rule):
    """Poses lie on the pose manifold: the pose prior's score (denoising error) stays under the threshold calibrated
    on held-in data. Runs only with --checkpoint."""

    severity = "warning"
    scope = "clip"
    codes = {"Implausible": "the prior scores the pose above its calibrated threshold"}

    def measure(self, clip: ClipContext, chunk) -> dict:
        from usdposer.core.posespace import pose_to_6d

        scorer = clip.file.options.scorer
        if scorer is None:
            return {}
        rig = clip.rig
        return {"score": scorer(rig, pose_to_6d(rig, chunk.pose).float()).float()}  # (b,)

    def judge(self, clip: ClipContext, m: dict) -> list[Finding]:
        thr = clip.file.options.score_threshold
        if "score" not in m or thr is None:
            return []
        s = m["score"][:, None]
        found = _joint_runs(clip, self, s > thr, s, lambda j, f: f"prior score {float(s[f, 0]):.3f} above the "
                            f"calibrated {thr:.3f} at frame {clip.time(f):g}", code="Implausible")
        return [replace(f, joint="") for f in found]
