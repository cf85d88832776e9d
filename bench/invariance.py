"""Invariance benchmark: the shipped pose space on characters rigged the way other tools rig them.

For each held-out character of the default pose space (shared Wolf, Velociraptor, Spider, Knight) and each variant of
``usdposer.io.rig_variants`` (joint frames, armature scale 0.01 / 100, centimetres + Z up, facing -Z / +X, T-pose or
clip-frame rest pose, Mixamo / Blender / 3ds Max names, extra joints, joints listed in another order), the variant
is evaluated exactly as a user would: ``usdposer dataset build`` (every character held out) and ``usdposer eval``
(model, random rotations, rest + noise; means and spreads over seeds), and the prior's score of every real frame
(``check``'s Plausibility rule) is compared with the untransformed character's.

``--old DIR`` also runs another checkout's CLI (``DIR/.venv/bin/usdposer``, e.g. the previous main in a git worktree)
on the same variant files, for the before / after table in the same run.

    python bench/invariance.py [--seeds 4] [-n 256] [--kinds joint-frames,armature-0.01] [--old /tmp/old]
           [--json bench/results/invariance_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))
CHARACTERS = ["quaternius/animals/Wolf.glb", "quaternius/dinosaurs/Velociraptor.glb",
              "quaternius/creatures/Spider.glb", "quaternius/humanoids/Knight.glb"]


def run(cli: list[str], *args) -> dict:
    r = subprocess.run([*cli, *map(str, args), "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args[:2]))}: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return json.loads(r.stdout)


def scores(checkpoint: str | None, path: Path) -> list[float]:
    """The prior's score of every frame of the bound clip (what `check --checkpoint` judges)."""
    from usdposer.models.pose_prior import PosePrior, RigCondition

    from usdposer.core.posespace import pose_to_6d
    from usdposer.io.read_skel import read_asset

    a = read_asset(path)
    rig = a.rig()
    prior = PosePrior.load(checkpoint)
    return prior.score(RigCondition.from_rig(rig), pose_to_6d(rig, a.clip(rig).pose()).float()).tolist()


def main() -> None:
    from usdposer.io.rig_variants import KINDS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("-n", type=int, default=256)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--characters", default=",".join(CHARACTERS))
    ap.add_argument("--old", default=None, help="another checkout whose .venv/bin/usdposer runs the same variants")
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args()
    if not SHARED.exists():
        sys.exit(f"shared data set not found at {SHARED}: nothing to measure")
    from usdposer.io.importers import import_any
    from usdposer.io.rig_variants import write_variant

    kinds = ["original"] + [k for k in args.kinds.split(",") if k]
    new_cli = [sys.executable, "-m", "usdposer.commands._entry"]
    old_cli = [str(Path(args.old) / ".venv" / "bin" / "usdposer")] if args.old else None
    ckpt = args.checkpoint or "default"
    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="usdposer-invariance-") as work:
        work = Path(work)
        for ch in args.characters.split(","):
            name = Path(ch).stem
            src = work / name / f"{name}.usdc"
            src.parent.mkdir()
            import_any(SHARED / ch, src)
            files = {"original": src}
            for k in kinds[1:]:
                try:
                    files[k] = Path(write_variant(src, src.parent / f"{name}.{k}.usdc", k, seed=1).path)
                except Exception as exc:  # e.g. a T-pose of a rig without arms
                    print(f"{name} {k}: skipped ({exc})", file=sys.stderr)
            base_scores = None
            for k, f in files.items():
                data = work / name / f"data.{k}"
                holdout = f"{name}/{f.stem}"
                run(new_cli, "dataset", "build", f, "-o", data, "--holdout", holdout)
                ev = run(new_cli, "eval", ckpt, data, "-n", args.n, "--seeds", args.seeds)
                sc = scores(args.checkpoint, f)
                base_scores = base_scores or sc
                row = {"character": name, "variant": k,
                       "score_mean": sum(sc) / len(sc),
                       "score_max_rel_change": max(abs(a - b) / max(abs(b), 1e-9) for a, b in zip(sc, base_scores))}
                for r in ev["rows"]:
                    m = r["method"]
                    row[m] = {key: r[key] for key in ("precision", "precision_sd", "recall", "recall_sd", "coverage")}
                if old_cli:
                    old_data = work / name / f"old.{k}"
                    try:  # the old code's eval needs a training character in the dataset (its baseline's angles)
                        run(old_cli, "dataset", "build", f, ROOT / "assets" / "khronos" / "Fox.glb", "-o", old_data,
                            "--holdout", holdout)
                        old = run(old_cli, "eval", "default", old_data, "-n", args.n, "--seeds", args.seeds)
                        r = next(x for x in old["rows"] if x["method"] == "usdposer")
                        row["before"] = {key: r[key] for key in ("precision", "precision_sd", "recall", "recall_sd")}
                    except Exception as exc:
                        row["before"] = {"error": str(exc)}
                rows.append(row)
                print(_line(row), flush=True)
    print(f"\n{len(rows)} rows in {(time.time() - t0) / 60:.1f} min\n")
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": ckpt, "seeds": args.seeds, "n": args.n, "rows": rows},
                                              indent=1))


def _pm(d: dict, key: str) -> str:
    return f"{d[key]:.2f} ± {d[key + '_sd']:.2f}" if key in d else "n/a"


def _line(r: dict) -> str:
    m = r["usdposer"]
    return (f"{r['character']:<14} {r['variant']:<16} P {_pm(m, 'precision'):<14} R {_pm(m, 'recall'):<14} "
            f"score change {100 * r['score_max_rel_change']:.3f} %")


def format_table(rows: list[dict]) -> str:
    old = any("before" in r for r in rows)
    head = ("| character | variant | precision % | recall % | random-rot. P / R | rest+noise P / R | "
            "prior score, max change |" + (" before: precision % | before: recall % |" if old else ""))
    lines = [head, "|" + "---|" * (9 if old else 7)]
    for r in rows:
        m, rr, rn = r["usdposer"], r["random-rotations"], r["rest+noise"]
        line = (f"| {r['character']} | {r['variant']} | {_pm(m, 'precision')} | {_pm(m, 'recall')} | "
                f"{rr['precision']:.2f} / {rr['recall']:.2f} | {rn['precision']:.2f} / {rn['recall']:.2f} | "
                f"{100 * r['score_max_rel_change']:.3f} % |")
        if old:
            b = r.get("before", {})
            line += (f" {_pm(b, 'precision')} | {_pm(b, 'recall')} |" if "precision" in b else " error | error |")
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
