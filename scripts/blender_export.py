"""Export a glTF through Blender 5's own USD exporter (bpy 5.0.1), as an artist's DCC would write it: the test data
``tests/data/blender/fox_blender.usdc`` (and its ``textures/``) was made from the bundled Fox this way.

    python3.11 -m venv V && V/bin/pip install bpy==5.0.1
    V/bin/python scripts/blender_export.py assets/khronos/Fox.glb tests/data/blender/fox_blender.usdc

Blender writes Z up, face-varying ``st`` UVs, the armature's active action only (the Fox's Survey, from frame 1),
``bindTransforms`` in the mesh's space and UsdPreviewSurface materials with the textures beside the file.
"""

import sys

import bpy

src, out = sys.argv[-2], sys.argv[-1]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=src)
bpy.ops.wm.usd_export(filepath=out, export_animation=True, export_armatures=True, export_shapekeys=True,
                      export_materials=True, export_textures_mode="NEW", generate_preview_surface=True)
print("exported", out)
