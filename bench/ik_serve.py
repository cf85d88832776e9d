"""What an artist dragging a handle waits for: `usdposer ik` run once per target (a new process each time: imports,
the asset, the model) against `usdposer ik --serve` (one process answering a request per line), on the bundled Fox
with the default pose space, in the same run.

The targets walk the Fox's head along a small arc, as a dragged handle does; each one-shot call and each served
answer is timed from sending the request to the answer (wall clock, 2-core machine). Served answers are checked to
reach the handle like the one-shot ones.

    python bench/ik_serve.py [--targets 8] [--json bench/results/ik_serve.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))
CLI = [sys.executable, "-m", "usdposer.commands._entry"]


def targets(k: int) -> list[str]:
    """``k`` head targets on an arc around the Fox's head (stage units, about 80 tall)."""
    return [f"b_Head_05={8 * math.sin(2 * math.pi * i / k):.3f},{58 + 3 * math.cos(2 * math.pi * i / k):.3f},40"
            for i in range(k)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--one-shot", type=int, default=3, help="one-shot calls timed (each a new process)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    goals = targets(a.targets)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fox = work / "fox.usdc"
        subprocess.run(CLI + ["import", str(ROOT / "assets" / "khronos" / "Fox.glb"), "-o", str(fox)], check=True,
                       capture_output=True)
        one, one_err = [], []
        for i, t in enumerate(goals[: a.one_shot]):
            tick = time.perf_counter()
            r = subprocess.run(CLI + ["ik", str(fox), "--handle", t, "-o", str(work / f"one{i}.usdc"), "--json"],
                               capture_output=True, text=True, check=True)
            one.append(time.perf_counter() - tick)
            rep = json.loads(r.stdout)
            one_err.append(rep["mean_handle_error"])
            print(f"one-shot {i}: {one[-1]:.2f} s (the verb's own {rep['seconds']:.2f} s)", flush=True)
        tick = time.perf_counter()
        p = subprocess.Popen(CLI + ["ik", str(fox), "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, bufsize=1)
        served, served_err, solve = [], [], []
        for i, t in enumerate(goals):
            start = time.perf_counter()
            p.stdin.write(json.dumps({"out": str(work / f"served{i}.usdc"), "handles": [t]}) + "\n")
            p.stdin.flush()
            ans = json.loads(p.stdout.readline())
            if "error" in ans:
                sys.exit(f"served request {i} failed: {ans['error']}")
            took = time.perf_counter() - start
            if i == 0:
                first = time.perf_counter() - tick  # process start, imports, loading and the first answer
            served.append(took)
            served_err.append(ans["mean_handle_error"])
            solve.append(ans["seconds"])
            print(f"served {i}: {took:.2f} s (solve {ans['seconds']:.2f} s)", flush=True)
        p.stdin.close()
        p.wait(timeout=60)
        summary = p.stderr.read().strip().splitlines()[-1:]
    row = {
        "asset": "khronos/Fox.glb (bundled)", "model": "default", "targets": len(goals),
        "one_shot_seconds": [round(x, 3) for x in one], "one_shot_median": round(statistics.median(one), 3),
        "served_first_answer_after_start": round(first, 3),
        "served_seconds": [round(x, 3) for x in served],
        "served_median_after_first": round(statistics.median(served[1:] or served), 3),
        "served_solve_median": round(statistics.median(solve), 3),
        "speedup_median": round(statistics.median(one) / statistics.median(served[1:] or served), 2),
        "handle_error_one_shot_mean": round(statistics.fmean(one_err), 5),
        "handle_error_served_mean": round(statistics.fmean(served_err), 5),
        "server_summary": summary[0] if summary else "",
        "machine": f"{os.cpu_count()} CPU cores",
    }
    print(json.dumps(row, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
