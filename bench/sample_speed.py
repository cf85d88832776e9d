"""`usdposer sample ASSET -n 256` end to end, as a user gets it (the verb's own `seconds`: read, sample, latent codes
stored, layer written), for the Fox (22 joints seen by the model) and the MuJoCo rodent (65), over sampler settings:
DDIM steps x eta x noisy steps. With eta 1 in every step (ancestral, the shipped default before Step 16) the poses'
latent codes are their DDIM inversions (3 refinement passes per step) plus a decode to measure the codes' error: four
to five times the sampling itself. With eta 0 the starting noise is the code, exact by construction, and nothing else
runs. With eta 1 in the first k steps only (the default since Step 16: 12 steps, k = 1, 2 refinement passes) the codes are the state after
them inverted through those k steps.

With `--eval`, each setting's precision and recall (`usdposer eval default data/default -n 256 --seeds 4`, mean over
the four held-out characters and their seed spread) go beside its speed: the step count / sampler trade-off curve.

    python bench/sample_speed.py [--eval | --eval-dir DIR] [--json bench/results/sample_speed.json]

Goal (issue 24): at least 150 poses/s for the Fox and 60 for the rodent on 2 cores end to end, at precision and
recall equal to the shipped setting's within the seed spread.
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
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))
SETTINGS = [(50, 1.0, 50), (20, 1.0, 20), (10, 1.0, 10), (50, 0.0, 0), (20, 0.0, 0), (10, 0.0, 0),  # (steps, eta, k)
            (10, 1.0, 1), (10, 1.0, 2), (10, 1.0, 3), (11, 1.0, 1), (12, 1.0, 1), (12, 1.0, 2), (15, 1.0, 2),
            (15, 1.0, 3), (20, 1.0, 4)]
REFINE = 2  # fixed-point passes per inverted noisy step (usdposer sample's default; 3 for full inversions, as before)
RIGS = {"Fox": ROOT / "assets" / "khronos" / "Fox.glb", "rodent": ROOT / "assets" / "mujoco" / "rodent" / "rodent.xml"}


def evaluate(steps: int, eta: float, noisy: int, saved: Path | None = None) -> dict:
    """Mean precision / recall (and the mean seed spread) of the model over the held-out characters; ``saved``: a
    folder of earlier `eval --json` outputs named ``eval_s{steps}_e{eta:.0f}.json`` to read instead."""
    file = saved / f"eval_s{steps}_e{eta:.0f}_k{noisy}.json" if saved else None
    if file and file.exists():
        text = file.read_text()
    else:
        text = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "eval", "default",
                               str(ROOT / "data" / "default"), "-n", "256", "--steps", str(steps), "--eta", str(eta),
                               "--noisy-steps", str(noisy),
                               "--seeds", "4", "--json", "-q"], capture_output=True, text=True, check=True).stdout
    rows = [r for r in json.loads(text)["rows"] if r["method"] == "usdposer"]
    mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    return {"precision": round(mean("precision"), 2), "precision_sd": round(mean("precision_sd"), 2),
            "recall": round(mean("recall"), 2), "recall_sd": round(mean("recall_sd"), 2),
            "per_character": {r["character"]: {"precision": round(r["precision"], 2), "recall": round(r["recall"], 2)}
                              for r in rows}}


def main() -> None:
    from usdposer.pipelines.sample import SampleOptions, sample

    from usdposer.io.importers import import_any

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", action="store_true", help="also run eval per setting (about 2 minutes each)")
    ap.add_argument("--eval-dir", default=None, help="read eval results saved as eval_s{steps}_e{eta}.json here")
    ap.add_argument("--json", default=None)
    ap.add_argument("-n", type=int, default=256)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        assets = {}
        for name, src in RIGS.items():
            assets[name] = Path(tmp) / f"{name}.usdc"
            import_any(src, assets[name])
            sample(assets[name], Path(tmp) / "warm.usda", SampleOptions(n=4, steps=2))  # imports, kernels, caches
        for steps, eta, noisy in SETTINGS:
            row = {"steps": steps, "eta": eta, "noisy_steps": noisy}
            for name, asset in assets.items():
                t = time.perf_counter()
                rep = sample(asset, Path(tmp) / f"{name}_{steps}_{eta}.usdc", SampleOptions(n=a.n, steps=steps, eta=eta,
                                                                                          noisy_steps=noisy,
                                                                                          refine=REFINE if noisy < steps
                                                                                          else 3))
                wall = time.perf_counter() - t
                row[name] = {"seconds": round(rep.seconds, 2), "poses_per_s": round(a.n / rep.seconds, 1),
                             "wall": round(wall, 2), "latent_error": rep.latent_error}
            if a.eval or a.eval_dir:
                row["eval"] = evaluate(steps, eta, noisy, Path(a.eval_dir) if a.eval_dir else None)
            rows.append(row)
            ev = row.get("eval", {})
            print(f"steps {steps:>3} eta {eta:.0f} noisy {noisy:>2}: Fox {row['Fox']['poses_per_s']:>6.1f} poses/s, rodent "
                  f"{row['rodent']['poses_per_s']:>6.1f} poses/s"
                  + (f"; precision {ev['precision']} ± {ev['precision_sd']}, recall {ev['recall']} ± {ev['recall_sd']}"
                     if ev else ""), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": f"{os.cpu_count()} CPU cores", "n": a.n, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
