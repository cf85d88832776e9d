"""IK on the manifold vs plain damped-least-squares IK, side by side on real assets (the Step 3 goal).

For each character, trials pick 3 random end joints (leaves of the skeleton) and take their positions in a real
pose as targets (reachable by construction; for a rig without animation, in a pose sampled from the prior). Two
scenarios:

* fresh: ``usdposer ik`` without --from (best of ``-n`` candidates: one edited from the rest pose, the others
  sampled from noise) vs DLS from the rest pose;
* edit:  guided editing of another real frame after DDIM inversion (``usdposer ik --from``) vs DLS from that frame.

Reported per method: handle error (mean and max, % of the character's height; success = every handle within 1.5%),
joints outside their limits per pose (the asset's own limits, e.g. MJCF, or else limits learned from the
character's animation with ``usdposer.core.limits.learn_limits``) and the prior score (denoising error, lower is
more plausible), with the default checkpoint. Shared-data characters are used where ../shared/data exists (said so
otherwise).

    python bench/ik.py [--trials 6] [-n 4] [--steps 10] [--baseline-steps 50] [--profile] [--json bench/results/ik.json]

``--profile`` splits each character's guided solves (at ``--steps``) into the denoiser's calls, Gauss-Newton's
Jacobians, the rest of Gauss-Newton (residual evaluations for the step acceptance, the small solves) and everything
else, per solve.

Trials (targets, start frames, handles) come from their own generator and each solve's noise from a generator seeded
by its trial, so runs at different step counts solve the same problems from the same noise: ``--baseline-steps 50``
solves every trial again with the Step 15 default (50 DDIM steps; the Step 16 changes were each checked to give the
same solutions per step) and prints paired differences (10-step minus 50-step) with 95 % bootstrap intervals. The
``--steps`` solves use the rig's range of motion (the limits above) as ``usdposer ik`` does: a fresh solve edits the
rest pose clamped into it (``core.posespace.within_limits``; where no candidate then reaches, the rest pose as it is
too), and the candidate is chosen by the prior score up to its
noise, then by the fewest joints outside it (``models.guided_ik.choose``); the baseline solves, and every solve with
``--no-range``, edit the rest pose as it is and choose by the prior score alone, as Step 15 did.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))
ASSETS = [("Fox (train)", ROOT / "assets" / "khronos" / "Fox.glb"),
          ("CMU walk (train)", ROOT / "assets" / "cmu" / "cmu_walk.bvh"),
          ("CesiumMan (train)", ROOT / "assets" / "khronos" / "CesiumMan.glb"),
          ("rodent (train, MJCF limits)", ROOT / "assets" / "mujoco" / "rodent" / "rodent.xml"),
          ("Wolf (held out)", SHARED / "quaternius" / "animals" / "Wolf.glb"),
          ("Knight (held out)", SHARED / "quaternius" / "humanoids" / "Knight.glb"),
          ("dog (train, MJCF limits)", SHARED / "mujoco" / "dog" / "dog.xml")]


def trial_poses(asset, rig, prior, cond, g):
    """Real 6D poses of the character, or prior samples for a rig without animation."""
    import torch

    from usdposer.core.posespace import pose_to_6d

    clips = asset.clips.get(rig.skeleton_path, [])
    if clips:
        return torch.cat([pose_to_6d(rig, c.pose()) for c in clips]).float(), "animation"
    six, _ = prior.sample(cond, 64, generator=g)
    if rig.limits is not None and torch.isfinite(rig.limits).any():
        from usdposer.core.posespace import within_limits

        return within_limits(rig, six, rig.limits), "prior samples within the asset's limits"
    return six, "prior samples"


def run_character(label, path, prior, args, work, steps_list, profile=None):
    import torch
    from usdposer.models.guided_ik import solve_ik
    from usdposer.models.pose_prior import RigCondition

    from usdposer.core.ik import PoseObjective, dls_ik
    from usdposer.core.limits import learn_limits
    from usdposer.core.posespace import IDENTITY_6D, relative_rotations, within_limits
    from usdposer.io.dataset import read_any
    from usdposer.types import Pose

    asset = read_any(path, work)
    rig = asset.rig()
    cond = RigCondition.from_rig(rig)
    g = torch.Generator().manual_seed(args.seed)
    poses, origin = trial_poses(asset, rig, prior, cond, g)
    limits, lim_src = rig.limits, "asset"
    if limits is None or not torch.isfinite(limits).any():
        limits, lim_src = learn_limits(relative_rotations(rig, poses.double())), "learned"
    par = rig.parents.tolist()
    leaves = [j for j in range(rig.num_joints) if j not in par]
    rest = torch.tensor(IDENTITY_6D).expand(1, rig.num_joints, 6).clone()
    keys = [f"{sc}/{m}" for sc in ("fresh", "edit") for m in ("ours", "DLS", *(f"ours@{s}" for s in steps_list[1:]))]
    rows = {k: {"err": [], "max": [], "viol": [], "score": [], "sec": 0.0} for k in keys}
    for trial in range(args.trials):
        fa, fb = torch.randint(0, len(poses), (2,), generator=g).tolist()
        ends = [leaves[i] for i in torch.randperm(len(leaves), generator=g)[:3]]
        for scen in ("fresh", "edit"):
            like = None
            if scen == "edit" and origin == "animation":
                clip = asset.clips[rig.skeleton_path]
                flat = torch.cat([c.rotations for c in clip]), torch.cat([c.translations for c in clip])
                scales = torch.cat([c.scales for c in clip])
                like = Pose(flat[0][fa:fa + 1], flat[1][fa:fa + 1], scales[fa:fa + 1])
            obj = PoseObjective(rig, torch.tensor(ends), torch.zeros(3, 3), torch.ones(3), like=like)
            obj.targets = obj.pose(poses[fb:fb + 1].double()).positions[0, ends]
            h = obj.height
            runs = []
            for i, steps in enumerate(steps_list):
                new = i == 0 and not args.no_range  # the baseline: Step 15's start and choice
                start = (within_limits(rig, rest, limits) if new else rest) if scen == "fresh" else poses[fa:fa + 1]
                gs = torch.Generator().manual_seed(args.seed * 100003 + trial * 2 + (scen == "edit"))
                t0 = time.time()
                if profile is not None and i == 0:
                    profile.active = True
                rng = limits if new else None
                n = args.n if i == 0 else (args.baseline_n or args.n)
                sol = solve_ik(prior, cond, obj, start, n=n, steps=steps, edit=scen == "edit", generator=gs,
                               range_limits=rng, fallback=rest if new and scen == "fresh" else None)
                if profile is not None:
                    profile.active = False
                    profile.solves += i == 0
                runs.append((f"{scen}/ours" if i == 0 else f"{scen}/ours@{steps}", sol.six[sol.chosen:sol.chosen + 1],
                             time.time() - t0))
            t1 = time.time()
            six_d = dls_ik(obj, rest if scen == "fresh" else poses[fa:fa + 1], iterations=100).float()
            runs.append((f"{scen}/DLS", six_d, time.time() - t1))
            for key, s, sec in runs:
                e = obj.handle_errors(s)[0] / h
                r = rows[key]
                r["err"].append(float(e.mean()))
                r["max"].append(float(e.max()))
                r["viol"].append(int(obj.violations(s, limits).sum()))
                r["score"].append(float(prior.score(cond, s)[0]))
                r["sec"] += sec
    return rig, origin, lim_src, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("-n", type=int, default=4, help="candidates per guided solve")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--baseline-steps", type=int, default=None, metavar="N",
                    help="also solve every trial with N steps (the Step 15 default: 50) and print paired differences")
    ap.add_argument("--baseline-n", type=int, default=None, metavar="N",
                    help="candidates of the --baseline-steps solves (default: -n)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="only characters whose label contains this text")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the rows here (e.g. bench/results/ik.json)")
    ap.add_argument("--profile", action="store_true", help="where each character's guided solves spend their time")
    ap.add_argument("--no-range", action="store_true",
                    help="solve without the rig's range of motion, as Step 15 did: fresh solves edit the rest pose as "
                         "it is and the candidate is chosen by prior score alone (the --baseline-steps solves always "
                         "do)")
    ap.add_argument("--plain-fk", action="store_true",
                    help="differentiate forward kinematics by plain autograd through its levels (before Step 16's "
                         "closed-form backward), for a same-machine comparison")
    args = ap.parse_args()
    import torch

    import usdposer.core.kinematics

    usdposer.core.kinematics.CLOSED_FORM_BACKWARD = not args.plain_fk
    from usdposer.models.pose_prior import PosePrior

    prior = PosePrior.load(None)
    print(f"torch threads {torch.get_num_threads()}; default checkpoint; {args.trials} trials x 3 handles per "
          f"character, {args.n} candidates, {args.steps} DDIM steps")
    if not SHARED.exists():
        print(f"NOTE: shared data set not found at {SHARED}: the held-out characters and the dog are NOT benchmarked")
    steps_list = [args.steps] + ([args.baseline_steps] if args.baseline_steps else [])
    hdr = (f"{'character':<30}{'scenario':<8}{'method':<6}{'err% mean':>10}{'err% max':>10}{'success':>9}"
           f"{'limit viol/pose':>16}{'prior score':>12}{'s/solve':>9}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    totals: dict[str, dict[str, list[float]]] = {}
    record: list[dict] = []
    with tempfile.TemporaryDirectory() as work:
        for label, path in ASSETS:
            if args.only and args.only.lower() not in label.lower():
                continue
            if not path.exists():
                print(f"{label:<30}(missing: {path})")
                continue
            profile = _Profile() if args.profile else None
            with profile or contextlib.nullcontext():
                rig, origin, lim_src, rows = run_character(label, path, prior, args, Path(work), steps_list, profile)
            record.append({"character": label, "joints": rig.num_joints, "targets": origin, "limits": lim_src,
                           **{key: _summary(r) for key, r in rows.items()},
                           **({"profile": profile.summary()} if profile else {})})
            name = f"{label}"
            for key, r in rows.items():
                scen, meth = key.split("/")
                print(_row(name, scen, meth, r) + f"{r['sec'] / len(r['err']):>9.2f}")
                t = totals.setdefault(key, {"err": [], "max": [], "viol": [], "score": []})
                for k in t:
                    t[k] += r[k]
                name = f"  ({rig.num_joints} joints, targets from {origin}, {lim_src} limits)" if scen == "fresh" and meth == "ours" else ""
            if profile:
                print(f"  profile, {args.steps} steps, per solve: {profile.line()}")
    print("-" * len(hdr))
    for key, t in totals.items():
        print(_row("all", *key.split("/"), t))
    paired = {}
    if args.baseline_steps:
        print(f"\npaired differences, {args.steps} steps minus {args.baseline_steps} (mean [95% bootstrap interval]; "
              "an interval containing 0 is no measurable difference)")
        for scen in ("fresh", "edit"):
            a, b = totals[f"{scen}/ours"], totals[f"{scen}/ours@{args.baseline_steps}"]
            paired[scen] = {}
            for k, scale in (("err", 100.0), ("viol", 1.0), ("score", 1.0)):
                d = torch.tensor(a[k], dtype=torch.float64) - torch.tensor(b[k], dtype=torch.float64)
                m, lo, hi = _bootstrap(d * scale, args.seed)
                paired[scen][k] = {"mean": round(m, 4), "ci95": [round(lo, 4), round(hi, 4)]}
                print(f"  {scen:<6}{ {'err': 'handle error %', 'viol': 'violations/pose', 'score': 'prior score'}[k]:<18}"
                      f"{m:>+9.3f}  [{lo:+.3f}, {hi:+.3f}]")
    if args.json:
        import json

        out = {"torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "trials": args.trials,
               "fk_backward": "levels (autograd)" if args.plain_fk else "closed form",
               "candidates": args.n, "steps": args.steps, "seed": args.seed, "rows": record,
               "baseline_steps": args.baseline_steps, "all": {key: _summary(t) for key, t in totals.items()},
               **({"paired": paired} if paired else {})}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")


class _Profile:
    """Timers around the denoiser (``PosePrior._eps``), Gauss-Newton and its Jacobians (``models.pose_prior``), counted
    only while ``active`` (the timed guided solves); ``with`` installs and removes them."""

    def __init__(self):
        self.active, self.solves = False, 0
        self.sec = {"total": 0.0, "denoiser": 0.0, "gauss_newton": 0.0, "jacobians": 0.0}
        self.calls = {"denoiser": 0, "jacobians": 0}

    def _timed(self, key, fn):
        def wrapper(*a, **k):
            if not self.active:
                return fn(*a, **k)
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.sec[key] += time.perf_counter() - t
                if key in self.calls:
                    self.calls[key] += 1
        return wrapper

    def __enter__(self):
        import usdposer.models.guided_ik as gi
        import usdposer.models.pose_prior as pp

        self._saved = [(pp, "_jac_and_value"), (pp, "gauss_newton"), (pp.PosePrior, "_eps"), (gi, "solve_ik")]
        self._saved = [(m, n, getattr(m, n)) for m, n in self._saved]
        pp._jac_and_value = self._timed("jacobians", pp._jac_and_value)
        pp.gauss_newton = self._timed("gauss_newton", pp.gauss_newton)
        pp.PosePrior._eps = self._timed("denoiser", pp.PosePrior._eps)
        gi.solve_ik = self._timed("total", gi.solve_ik)
        return self

    def __exit__(self, *exc):
        for m, n, f in self._saved:
            setattr(m, n, f)

    def summary(self) -> dict:
        n = max(self.solves, 1)
        s, c = self.sec, self.calls
        return {"solves": self.solves, "seconds_per_solve": round(s["total"] / n, 4),
                "denoiser": round(s["denoiser"] / n, 4), "denoiser_calls": round(c["denoiser"] / n, 1),
                "jacobians": round(s["jacobians"] / n, 4), "jacobian_calls": round(c["jacobians"] / n, 1),
                "gauss_newton_rest": round((s["gauss_newton"] - s["jacobians"]) / n, 4),
                "other": round((s["total"] - s["denoiser"] - s["gauss_newton"]) / n, 4)}

    def line(self) -> str:
        p = self.summary()
        each = 1e3 * p["jacobians"] / max(p["jacobian_calls"], 1)
        return (f"{p['seconds_per_solve']:.3f} s = denoiser {p['denoiser']:.3f} ({p['denoiser_calls']:g} calls) + "
                f"Jacobians {p['jacobians']:.3f} ({p['jacobian_calls']:g} x {each:.1f} ms) + rest of Gauss-Newton "
                f"{p['gauss_newton_rest']:.3f} + other {p['other']:.3f}")


def _bootstrap(d, seed: int, draws: int = 10000) -> tuple[float, float, float]:
    """Mean of paired differences d (N,) and its 95% percentile-bootstrap interval."""
    import torch

    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(d), (draws, len(d)), generator=g)
    means = d[idx].mean(1)
    return float(d.mean()), float(means.quantile(0.025)), float(means.quantile(0.975))


def _summary(r: dict) -> dict:
    """One row as numbers: handle error (% of height, mean and max), success rate, violations, score, s/solve."""
    n = len(r["err"])
    return {"err_pct_mean": round(100 * sum(r["err"]) / n, 3), "err_pct_max": round(100 * max(r["max"]), 3),
            "success": round(sum(m < 0.015 for m in r["max"]) / n, 3), "violations_per_pose": round(sum(r["viol"]) / n, 3),
            "prior_score": round(sum(r["score"]) / n, 4),
            "seconds_per_solve": round(r["sec"] / n, 3) if "sec" in r else None}


def _row(name: str, scen: str, meth: str, r: dict) -> str:
    """One table row: mean and max handle error (% of height), success rate, violations and prior score."""
    n = len(r["err"])
    succ = sum(m < 0.015 for m in r["max"]) / n
    return (f"{name:<30}{scen:<8}{meth:<6}{100 * sum(r['err']) / n:>10.2f}{100 * max(r['max']):>10.2f}{succ:>9.0%}"
            f"{sum(r['viol']) / n:>16.2f}{sum(r['score']) / n:>12.3f}")

if __name__ == "__main__":
    main()
