"""What a usdposer layer says about where its poses came from: the ``customLayerData["usdposer"]`` provenance every
verb writes (verb, arguments, model, prompt, seed, residuals, tracking error), the SkelAnimations the layer itself
authors (not those of the asset below it), and the per-frame residual arrays verbs put on them
(``usdposer:fitResiduals``, ``usdposer:fitImageLoss``, ``usdposer:fitMaskIoU``)."""

from __future__ import annotations

import os

# verbs whose layers are generated motion over an asset: a dataset takes only the clips the layer authors
GENERATED_VERBS = ("distill", "track", "fit")
FRAME_ARRAYS = ("usdposer:fitResiduals", "usdposer:fitImageLoss", "usdposer:fitMaskIoU")


def layer_provenance(path: str | os.PathLike) -> dict | None:
    """The root layer's ``customLayerData["usdposer"]`` as plain Python values, or None (not a usdposer layer, or
    not a USD file)."""
    from pathlib import Path

    from pxr import Sdf

    if Path(path).suffix.lower() not in (".usd", ".usda", ".usdc", ".usdz"):
        return None
    try:
        layer = Sdf.Layer.FindOrOpen(str(path))
    except Exception:  # noqa: BLE001 - pxr raises Tf errors of its own kinds; unreadable means no provenance
        return None
    if layer is None:
        return None
    data = dict(layer.customLayerData or {}).get("usdposer")
    if not isinstance(data, dict):
        return None
    return {k: (list(v) if hasattr(v, "__len__") and not isinstance(v, (str, dict)) else v) for k, v in data.items()}


def authored_animations(path: str | os.PathLike) -> set[str]:
    """Paths of the SkelAnimation prims the root layer of ``path`` defines itself (``def SkelAnimation``)."""
    from pxr import Sdf

    layer = Sdf.Layer.FindOrOpen(str(path))
    found: set[str] = set()
    if layer is None:
        return found

    def visit(p):
        spec = layer.GetPrimAtPath(p)
        if spec and spec.typeName == "SkelAnimation" and spec.specifier == Sdf.SpecifierDef:
            found.add(str(p))

    layer.Traverse(Sdf.Path.absoluteRootPath, visit)
    return found


def frame_arrays(path: str | os.PathLike, prim: str) -> dict[str, list[float]]:
    """The per-frame arrays (``FRAME_ARRAYS``) authored on the animation prim ``prim`` of ``path``."""
    from pxr import Usd

    stage = Usd.Stage.Open(str(path), Usd.Stage.LoadNone)
    p = stage.GetPrimAtPath(prim) if stage else None
    out: dict[str, list[float]] = {}
    if not p:
        return out
    for name in FRAME_ARRAYS:
        attr = p.GetAttribute(name)
        if attr and attr.HasAuthoredValue():
            out[name.split(":")[-1]] = [float(x) for x in attr.Get()]
    return out
