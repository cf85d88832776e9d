"""Bad input: a one-line error that names the problem, exit code 2, and no partial output file."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ASSETS, TINY_USDA


def run(*args):
    return subprocess.run([sys.executable, "-m", "usdposer.commands._entry", *args], capture_output=True, text=True)


def assert_clean_failure(proc, pattern: str, out=None):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(err) == 1, proc.stderr  # one line
    assert pattern.lower() in err[0].lower(), err[0]
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.stem}")]  # no temp left over


def test_truncated_glb(tmp_path):
    bad = tmp_path / "fox.glb"
    bad.write_bytes((ASSETS / "khronos" / "Fox.glb").read_bytes()[:50_000])
    out = tmp_path / "fox.usdc"
    assert_clean_failure(run("import", str(bad), "-o", str(out)), "truncated", out)


def test_garbage_glb(tmp_path):
    bad = tmp_path / "x.glb"
    bad.write_bytes(b"not a gltf file at all")
    out = tmp_path / "x.usdc"
    assert_clean_failure(run("import", str(bad), "-o", str(out)), "bad header", out)


def test_gltf_without_skin(tmp_path):
    """A glTF with a morph-target mesh and no skin."""
    import base64

    import numpy as np
    import pygltflib

    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    delta = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 1]], np.float32)
    blob = pos.tobytes() + delta.tobytes()
    g = pygltflib.GLTF2(
        scene=0, scenes=[pygltflib.Scene(nodes=[0])], nodes=[pygltflib.Node(mesh=0)],
        meshes=[pygltflib.Mesh(primitives=[pygltflib.Primitive(attributes=pygltflib.Attributes(POSITION=0),
                                                               targets=[{"POSITION": 1}])], weights=[0.0])],
        accessors=[pygltflib.Accessor(bufferView=0, componentType=5126, count=3, type="VEC3", max=[1, 1, 0], min=[0, 0, 0]),
                   pygltflib.Accessor(bufferView=1, componentType=5126, count=3, type="VEC3")],
        bufferViews=[pygltflib.BufferView(buffer=0, byteOffset=0, byteLength=36),
                     pygltflib.BufferView(buffer=0, byteOffset=36, byteLength=36)],
        buffers=[pygltflib.Buffer(byteLength=len(blob),
                                  uri="data:application/octet-stream;base64," + base64.b64encode(blob).decode())],
    )
    src = tmp_path / "morph.gltf"
    g.save(str(src))
    out = tmp_path / "morph.usdc"
    assert_clean_failure(run("import", str(src), "-o", str(out)), "only morph targets", out)


def test_usd_without_skeleton(tmp_path):
    src = tmp_path / "cube.usda"
    src.write_text('#usda 1.0\ndef Xform "World"\n{\n    def Mesh "Cube"\n    {\n    }\n}\n')
    assert_clean_failure(run("info", str(src)), "no Skeleton prim")


def test_malformed_usd(tmp_path):
    src = tmp_path / "broken.usda"
    src.write_text(TINY_USDA[: len(TINY_USDA) // 2])
    assert_clean_failure(run("info", str(src)), "cannot be read as USD")


def test_misordered_joints(tmp_path):
    src = tmp_path / "order.usda"
    src.write_text(TINY_USDA.replace('["A", "A/B", "A/B/C", "D", "D/E/F"]', '["A/B", "A", "A/B/C", "D", "D/E/F"]', 1))
    assert_clean_failure(run("info", str(src)), "parent joint before its children")


def test_weights_and_indices_of_different_sizes(tmp_path):
    src = tmp_path / "sizes.usda"
    src.write_text(TINY_USDA.replace("[1, 0, 1, 0, 0.5, 0.5, 0.5, 0.5, 1, 0, 0.25, 0.75]", "[1, 0, 1, 0, 0.5, 0.5]"))
    assert_clean_failure(run("info", str(src)), "must have the same length")


def test_nan_points(tmp_path):
    src = tmp_path / "nan.usda"
    src.write_text(TINY_USDA.replace("(1, 0, 0), (-1, 0, 0)", "(nan, 0, 0), (-1, 0, 0)"))
    assert_clean_failure(run("info", str(src)), "NaN")


def test_nan_weights(tmp_path):
    src = tmp_path / "nanw.usda"
    src.write_text(TINY_USDA.replace("[1, 0, 1, 0, 0.5, 0.5, 0.5, 0.5, 1, 0, 0.25, 0.75]",
                                     "[1, 0, nan, 0, 0.5, 0.5, 0.5, 0.5, 1, 0, 0.25, 0.75]"))
    assert_clean_failure(run("info", str(src)), "jointWeights contains NaN")


@pytest.mark.parametrize("target", ["same", "folder"])
def test_import_output_checks(tmp_path, target):
    src = tmp_path / "fox.glb"
    src.write_bytes((ASSETS / "khronos" / "Fox.glb").read_bytes())
    out = tmp_path / "missing" / "fox.usdc" if target == "folder" else tmp_path / "fox.txt"
    assert_clean_failure(run("import", str(src), "-o", str(out)), "does not exist" if target == "folder" else "must end in")


def test_missing_input():
    assert_clean_failure(run("info", "/no/such/file.usda"), "no such file")


def test_influences_of_a_misspelled_type(tmp_path):
    """A skin weight attribute whose type is not a USD type (found by the fuzz test: `abc primvars:skel:jointWeights`)
    reads as an UnregisteredValue: one line naming the primvars, exit 2."""
    text = (ASSETS / "openusd" / "arm.usda").read_text()
    assert "float[] primvars:skel:jointWeights" in text
    bad = tmp_path / "arm.usda"
    bad.write_text(text.replace("float[] primvars:skel:jointWeights", "abc primvars:skel:jointWeights"))
    assert_clean_failure(run("info", str(bad)), "jointweights do not read as")
