"""Model cards (README.md of a checkpoint): data, split, training, metrics."""

from __future__ import annotations

import json
from pathlib import Path


def model_card(prior, result, dataset: str, eval_table: str | None = None) -> str:
    """Markdown for a checkpoint trained on ``dataset``."""
    manifest = json.loads((Path(dataset) / "manifest.json").read_text())
    cfg = prior.denoiser.config
    n_params = sum(p.numel() for p in prior.denoiser.parameters())
    eta = float(prior.info.get("sampling", {}).get("eta", 0.0))
    sampler = "ancestral (DDPM-like)" if eta == 1 else "deterministic DDIM" if eta == 0 else "DDIM"
    mirrored = prior.info.get("augmentation", {}).get("mirror", [])
    cal = prior.info.get("plausibility")
    lines = [
        "# usdposer pose space",
        "",
        "A diffusion model over a rig's joint rotations in a canonical frame that undoes how the rig was made (each "
        "joint's rotation about world-aligned axes relative to the bind pose, facing +Z, +Y up, heights as units; "
        "root heading removed; `usdposer.core.posespace`), conditioned per joint on the reference pose, the "
        "skin-weighted mesh and the joint name (canonical body-part words), with tree-distance attention bias over "
        "the joints that move vertices: it works on any skeleton topology and any rig convention. "
        f"Sampling: DDIM with eta = {eta:g} ({sampler}), 50 steps; latent codes are those of the deterministic "
        "sampler (eta = 0).",
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
    try:
        lines += _data_lines(manifest, mirrored, cal)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:  # an edited manifest: say so, go on
        lines += [f"(The dataset manifest's summary cannot be read: {type(exc).__name__}: {exc}. The checkpoint does "
                  "not depend on it; rebuild the dataset for a full card.)", ""]
    if eval_table:
        lines += ["## Evaluation on held-out characters", "", eval_table, ""]
    return "\n".join(lines)


def _data_lines(manifest: dict, mirrored: list, cal: dict | None) -> list[str]:
    """The card's data section from the dataset manifest: characters, counts, libraries, augmentation, licences,
    calibration, skipped sources."""
    lines: list[str] = []
    for c in manifest["characters"]:
        lines.append(f"| {c['id']} | {c['joints']} | {c['frames']} | {c['poses']} | {c['split']} | {c['licence']} |")
    lines += ["", f"Poses: train {manifest['counts']['train']}, val {manifest['counts']['val']}, "
                  f"held out {manifest['counts']['heldout']}. Held-out characters never reached training.", ""]
    libs = [(c["id"], a) for c in manifest["characters"] for a in c.get("anim_sources", [])]
    if libs:
        lines += ["Animation libraries bound to a character by joint name (`dataset build --anim-from`):", ""]
        lines += [f"- {a['library']} -> {cid}: {len(a['clips'])} clips, {a['matched']} joints matched, retarget "
                  f"residual {a['residual_pct']} %; {a.get('licence', '')}" for cid, a in libs]
        lines.append("")
    if mirrored:
        lines += [f"Augmentation: left/right mirror images of the {len(mirrored)} characters whose reference pose is "
                  "mirror-symmetric (" + ", ".join(mirrored) + ").", ""]
    unknown = sorted({c["id"] for c in manifest["characters"] if c["licence"].startswith("unknown")})
    if unknown:
        lines += ["Licence unknown (not read from the source; check before redistributing): " + ", ".join(unknown), ""]
    if cal:
        lines += [f"Plausibility threshold (`usdposer check --checkpoint`): {cal['threshold']:.4f}, the "
                  f"{100 * cal['quantile']:g}th percentile of the prior's score over {cal['poses']} training poses "
                  f"(median {cal['median']:.4f}).", ""]
    if manifest.get("failed"):
        lines += ["Skipped sources: " + "; ".join(f"{f['source']} ({f['error']})" for f in manifest["failed"]), ""]
    return lines
