"""Opening stages and writing layers safely; unit and axis conversion between a stage and usdposer's frame.

This module registers usdposer's schema plugin on import, which must happen before any stage is opened in the
process (USD builds its schema registry once). Inside a DCC, set ``PXR_PLUGINPATH_NAME`` to
``usdposer.schemas.PLUGIN_DIR`` instead.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pxr import Plug, Sdf, Tf, Usd, UsdGeom

from usdposer.errors import InputError
from usdposer.outputs import atomic_file, check_writable
from usdposer.schemas import PLUGIN_DIR, SCHEMA_NAMES

USD_EXTENSIONS = (".usd", ".usda", ".usdc", ".usdz")


def register_schemas() -> bool:
    """Register the schema plugin (idempotent). Returns True when the schemas are known to USD.

    Only ``Plug`` is touched before registering: querying ``Usd.SchemaRegistry`` first would build the registry
    without our types, and a later registration would not be seen (USD builds that registry once per process).
    """
    if Plug.Registry().GetPluginWithName("usdPoser") is None:
        Plug.Registry().RegisterPlugins(str(PLUGIN_DIR))
    return Usd.SchemaRegistry().FindConcretePrimDefinition("PoseSampleLibrary") is not None


SCHEMAS_REGISTERED = register_schemas()


def open_stage(path: str | os.PathLike) -> Usd.Stage:
    """Open a USD stage read-only in spirit (usdposer never saves it), with a one-line error on failure."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() not in USD_EXTENSIONS:
        raise InputError(f"{path}: not a USD file ({', '.join(USD_EXTENSIONS)}); import glTF with `usdposer import`")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a USD file")
    from pxr import UsdUtils

    delegate = UsdUtils.CoalescingDiagnosticDelegate()  # USD's warnings become problems, not stderr noise
    try:
        stage = Usd.Stage.Open(str(path), Usd.Stage.LoadAll)
    except Tf.ErrorException as exc:
        try:
            detail = first_line(str(exc))
        except UnicodeDecodeError:  # USD's message quotes the file's bytes
            detail = "it holds bytes that are not valid text"
        raise InputError(f"{path}: cannot be read as USD ({detail}); check the file is complete") from None
    finally:
        diagnostics = [" ".join(d.commentary.split()) for d in delegate.TakeUncoalescedDiagnostics()
                       if d.commentary.strip()]  # whole, on one line (a cycle's spans six)
        del delegate
    if stage is None:
        raise InputError(f"{path}: cannot be read as USD; check the file is complete")
    OPEN_DIAGNOSTICS[stage.GetRootLayer().identifier] = diagnostics
    return stage


# root layer identifier -> the warnings USD gave while opening it (read_skel reports them as problems)
OPEN_DIAGNOSTICS: dict[str, list[str]] = {}


def composition_problems(stage: Usd.Stage) -> list[str]:
    """Composition errors of a stage (a sublayer or reference that cannot be opened, a cycle), one line each."""
    out = []
    for e in stage.GetCompositionErrors():
        msg = e.GetMessage() if hasattr(e, "GetMessage") else str(e)
        out.append(" ".join(msg.split())[:300])
    return out


def first_line(text: str) -> str:
    """The message part of a Tf error (``Error in '...' at line N in file F : 'MESSAGE'``), shortened."""
    import re

    for line in text.strip().splitlines():
        m = re.search(r" : '(.*)'\s*$", line.strip())
        if m:
            return m.group(1)[:200]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0][:200] if lines else text


# --------------------------------------------------------------------------------------------------------------
# Units and axes. usdposer works in metres, +Y up (types.py). For a stage with metersPerUnit m and up axis u:
#     internal = C @ D @ stage @ inv(D)   for skeleton-space transforms (roots, binds, skel_to_world),
#     internal = D @ local @ inv(D)        for parent-relative transforms of non-root joints,
#     p_internal = C @ (m * p_stage)       for points,
# with D = diag(m, m, m, 1) and C the rotation taking u to +Y (identity for Y-up, -90 degrees about X for Z-up).
# --------------------------------------------------------------------------------------------------------------

def axis_matrix(up_axis: str) -> np.ndarray:
    """(4, 4) rotation taking the stage's up axis to +Y (column-vector convention)."""
    C = np.eye(4)
    if up_axis.upper() == "Z":
        C[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # (x, y, z) -> (x, z, -y)
    elif up_axis.upper() != "Y":
        raise InputError(f"unsupported upAxis {up_axis!r}; USD allows Y or Z")
    return C


class StageUnits:
    """A stage's ``metersPerUnit`` and ``upAxis`` against usdposer's frame (metres, +Y up): every conversion between
    the two, in one place. ``C`` (4, 4) rotates the stage's axes onto +Y up; ``m`` is the stage unit in metres.

    Points and positions ``p_usdposer = C (m p_stage)``; skeleton-space transforms are conjugated by ``C D``
    (``D = diag(m, m, m, 1)``); joint-local transforms are scaled by ``D`` and roots also rotated by ``C``; animated
    root translations and rotations follow the roots'."""

    def __init__(self, meters_per_unit: float = 1.0, up_axis: str = "Y"):
        self.m = float(meters_per_unit)
        self.up = str(up_axis)
        self.C = axis_matrix(up_axis)
        self.D = np.diag([self.m, self.m, self.m, 1.0])
        self.Dinv = np.diag([1 / self.m, 1 / self.m, 1 / self.m, 1.0])

    @classmethod
    def of(cls, stage: Usd.Stage) -> StageUnits:
        return cls(*stage_units(stage))

    @property
    def R(self) -> np.ndarray:
        """(3, 3) stage axes -> +Y up."""
        return self.C[:3, :3]

    # points and positions (N, 3)
    def points(self, P: np.ndarray) -> np.ndarray:
        return (np.asarray(P, dtype=np.float64) * self.m) @ self.R.T

    def to_stage(self, P: np.ndarray) -> np.ndarray:
        return (np.asarray(P, dtype=np.float64) @ self.R) / self.m

    # 4x4 transforms (..., 4, 4), column vectors
    def skel_space(self, M: np.ndarray) -> np.ndarray:
        return self.C @ self.D @ M @ self.Dinv

    def local(self, L: np.ndarray, is_root: np.ndarray) -> np.ndarray:
        out = self.D @ L @ self.Dinv
        out[is_root] = self.C @ out[is_root]
        return out

    def world(self, X: np.ndarray) -> np.ndarray:
        A = self.C @ self.D
        return A @ X @ np.linalg.inv(A)

    # animated root translations (..., 3) and (w, x, y, z) rotations (..., 4), torch
    def root_quat(self):
        """The (w, x, y, z) quaternion of ``R`` (computed once: readers ask for it per frame)."""
        if getattr(self, "_root_quat", None) is None:
            import torch

            from usdposer.core.rotations import matrix_to_quat

            self._root_quat = matrix_to_quat(torch.from_numpy(np.ascontiguousarray(self.R)))
        return self._root_quat

    def roots_from_stage(self, t, q):
        """Root translations ``(..., 3)`` and rotations ``(..., 4)`` of an animation: stage units -> usdposer."""
        from usdposer.core.rotations import quat_multiply

        c = self.root_quat().to(q)
        return (t * self.m) @ _t(self.R, t).T, quat_multiply(c.expand_as(q), q)

    def roots_to_stage(self, t, q):
        """Inverse of :meth:`roots_from_stage`."""
        from usdposer.core.rotations import quat_conjugate, quat_multiply

        c = quat_conjugate(self.root_quat().to(q))
        return (t @ _t(self.R, t)) / self.m, quat_multiply(c.expand_as(q), q)


def _t(R: np.ndarray, like):
    """``R`` as a tensor like ``like``."""
    import torch

    return torch.as_tensor(R, dtype=like.dtype, device=like.device)


MPU_RANGE = (1e-6, 1e6)


def stage_units(stage: Usd.Stage) -> tuple[float, str]:
    """(metersPerUnit, upAxis), with USD's fallbacks (0.01, "Y") for unauthored metadata. An :class:`InputError`
    where the stage's metadata cannot be meant: a ``metersPerUnit`` or ``timeCodesPerSecond`` that is not a positive
    finite number (0 divides every length or time, a negative one mirrors them), a ``metersPerUnit`` outside
    ``MPU_RANGE`` (a micrometre to a thousand kilometres: beyond, a character's lengths leave float32), an ``upAxis``
    other than Y or Z."""
    mpu, up = float(UsdGeom.GetStageMetersPerUnit(stage)), str(UsdGeom.GetStageUpAxis(stage))
    tcps = float(stage.GetTimeCodesPerSecond())
    where = stage.GetRootLayer().identifier
    if not (math.isfinite(mpu) and MPU_RANGE[0] <= mpu <= MPU_RANGE[1]):
        raise InputError(f"{where}: metersPerUnit is {mpu:g}; it must be the metres per stage unit, between "
                         f"{MPU_RANGE[0]:g} and {MPU_RANGE[1]:g} (0.01 for centimetres, 1 for metres): fix the layer's "
                         "metadata")
    if not (math.isfinite(tcps) and tcps > 0):
        raise InputError(f"{where}: timeCodesPerSecond is {tcps:g}; it must be a positive number of time codes per "
                         "second (24 for film): fix the layer's metadata")
    if up not in ("Y", "Z"):
        raise InputError(f"{where}: upAxis is {up!r}; USD allows Y or Z: fix the layer's metadata")
    return mpu, up


def unregistered(value) -> bool:
    """Is an attribute's value something other than an array? An attribute whose declared type is misspelled in a
    .usda (``int[]`` written ``nan``) reads as an ``UnregisteredValue``, which has no length and no items."""
    return value is not None and not hasattr(value, "__len__")


def gf_to_np(matrices) -> np.ndarray:
    """Gf.Matrix4d / Vt.Matrix4dArray (row-vector) to (..., 4, 4) column-vector numpy float64."""
    return np.swapaxes(np.asarray(matrices, dtype=np.float64), -1, -2).copy()


def np_to_gf_array(matrices: np.ndarray):
    """(N, 4, 4) column-vector numpy to Vt.Matrix4dArray (row-vector)."""
    from pxr import Vt

    return Vt.Matrix4dArray.FromNumpy(np.ascontiguousarray(np.swapaxes(np.asarray(matrices, np.float64), -1, -2)))


# --------------------------------------------------------------------------------------------------------------
# Writing: every output goes to a temporary file in the destination folder and is moved into place, so a crash or
# an error never leaves a partial file, and the input is never opened for writing.
# --------------------------------------------------------------------------------------------------------------

def check_output_path(out: str | os.PathLike, inputs: list[str | os.PathLike] = ()) -> Path:
    """Validate an output path: a USD extension, a writable folder, and not one of the inputs."""
    out = Path(out)
    if out.suffix.lower() not in (".usda", ".usdc", ".usd"):
        raise InputError(f"{out}: output must end in .usdc, .usda or .usd")
    for i in inputs:
        if i is not None and Path(i).resolve() == out.resolve():
            raise InputError(f"{out}: refusing to overwrite the input; choose another output path")
    return check_writable(out)


def atomic_path(out: str | os.PathLike):
    """A temporary path beside ``out`` (same extension: USD picks the file format from it), moved onto ``out`` when
    the block succeeds and journalled by the command's transaction (``usdposer.outputs.atomic_file``)."""
    return atomic_file(out)


def author_stage_metadata(stage: Usd.Stage, *, up_axis: str, meters_per_unit: float, tcps: float,
                          start: float | None, end: float | None, default_prim: str | None) -> None:
    """Author upAxis, metersPerUnit, time codes and defaultPrim in a root layer (USD reads them from the root layer only)."""
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y if up_axis.upper() == "Y" else UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, meters_per_unit)
    stage.SetTimeCodesPerSecond(tcps)
    stage.SetFramesPerSecond(tcps)
    if start is not None and end is not None:
        stage.SetStartTimeCode(start)
        stage.SetEndTimeCode(end)
    if default_prim:
        stage.GetRootLayer().defaultPrim = default_prim


@contextlib.contextmanager
def layer_over(source: str | os.PathLike, out: str | os.PathLike, *, up_axis: str | None = None,
               meters_per_unit: float | None = None, time_range: tuple[float, float] | str | None = "source",
               source_stage: Usd.Stage | None = None) -> Iterator[tuple[Usd.Stage, Sdf.Layer, Path]]:
    """A new layer that sublayers ``source``, written to a temporary file beside ``out`` and moved into place when the
    block succeeds: yields (stage, layer, out). The root layer's metadata (read from the root layer only) follows the source
    (units and up axis unless given; time codes per second and default prim always; ``time_range`` "source", a
    (start, end) pair, or None for none). The layer is saved after the block."""
    out = check_output_path(out, [source])
    src = source_stage or Usd.Stage.Open(str(source))
    mpu, up = stage_units(src)
    if time_range == "source":
        time_range = (src.GetStartTimeCode(), src.GetEndTimeCode())
    with atomic_path(out) as tmp:
        layer = Sdf.Layer.CreateNew(str(tmp))
        layer.subLayerPaths.append(relative_asset_path(source, out.parent))
        stage = Usd.Stage.Open(layer)
        author_stage_metadata(stage, up_axis=up_axis or up, meters_per_unit=meters_per_unit or mpu,
                              tcps=src.GetTimeCodesPerSecond(), start=time_range[0] if time_range else None,
                              end=time_range[1] if time_range else None,
                              default_prim=src.GetDefaultPrim().GetName() if src.GetDefaultPrim() else None)
        yield stage, layer, out
        layer.Save()


def make_editable(stage: Usd.Stage, path: str | Sdf.Path) -> list[str]:
    """Let the stage's edit target author at ``path`` when it lies inside an instance (a shot that references a
    character with ``instanceable = true``: USD refuses opinions on instance proxies): author ``instanceable =
    false`` on each enclosing instance, outermost first (nested instances too). The other instances stay shared.
    Returns the prim paths so uninstanced."""
    path = Sdf.Path(str(path))
    done = []
    for prefix in path.GetPrefixes():
        prim = stage.GetPrimAtPath(prefix)
        if prim and prim.IsInstance():
            prim.SetInstanceable(False)
            done.append(str(prefix))
    return done


def relative_asset_path(target: str | os.PathLike, start_dir: str | os.PathLike) -> str:
    rel = os.path.relpath(Path(target).resolve(), Path(start_dir).resolve())
    return rel if rel.startswith(".") else "./" + rel


__all__ = [
    "SCHEMAS_REGISTERED", "SCHEMA_NAMES", "Sdf", "atomic_path", "author_stage_metadata", "axis_matrix",
    "check_output_path", "gf_to_np", "make_editable", "np_to_gf_array", "open_stage", "register_schemas", "relative_asset_path",
    "stage_units",
]


def nearest_of_type(prim: Usd.Prim, schema, *, above: bool = False) -> Usd.Prim | None:
    """The nearest prim of ``schema`` (``UsdSkel.Root``, ``UsdSkel.Skeleton``...) at ``prim`` or above it (strictly
    above with ``above``), or None."""
    prim = prim.GetParent() if above else prim
    while prim and not prim.IsPseudoRoot():
        if prim.IsA(schema):
            return prim
        prim = prim.GetParent()
    return None
