"""Model cards (README.md of a checkpoint): data, split, training, metrics."""

from __future__ import annotations

import json
from pathlib import Path


def model_card(prior, result, dataset: str, eval_table: str | None = None) -> str:
    """Markdown for a checkpoint trained on ``dataset``."""
    manifest = json.loads((Path(dataset) / "manifest.json").read_text())
    cfg = prior.denoiser.config
    n_params = sum(p.numel() for p in prior.denoiser.parameters())
    lines = [
        "# usdposer pose space",
        "",
        "A diffusion model over a rig's joint rotations (6D, relative to the rest pose, root heading removed), "
        "conditioned per joint on the rest pose, the skin-weighted mesh and the joint name, with tree-distance "
        "attention bias: it works on any skeleton topology. Sampling: DDIM (eta = 0), 50 steps.",
        "",
        f"- Architecture: {cfg.depth} blocks, width {cfg.width}, {cfg.heads} heads, {n_params / 1e6:.2f} M parameters.",
        f"- Training: {result.steps} steps, batch {prior.info.get('training', {}).get('batch_size')}, "
        f"{result.minutes:.1f} min, final train loss {result.train_loss:.4f}"
        + (f", val loss {result.val_loss:.4f}" if result.val_loss is not None else "") + f" (stopped by {result.stopped_by}).",
        "",
        "## Data",
        "",
        "| character | joints | frames | poses kept | split | licence |",
        "|---|---|---|---|---|---|",
    ]
    for c in manifest["characters"]:
        lines.append(f"| {c['id']} | {c['joints']} | {c['frames']} | {c['poses']} | {c['split']} | {c['licence']} |")
    lines += ["", f"Poses: train {manifest['counts']['train']}, val {manifest['counts']['val']}, "
                  f"held out {manifest['counts']['heldout']}. Held-out characters never reached training.", ""]
    if manifest.get("failed"):
        lines += ["Skipped sources: " + "; ".join(f"{f['source']} ({f['error']})" for f in manifest["failed"]), ""]
    if eval_table:
        lines += ["## Evaluation on held-out characters", "", eval_table, ""]
    return "\n".join(lines)
