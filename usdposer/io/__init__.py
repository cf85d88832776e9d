"""The only code that touches pxr and pygltflib: readers, writers, importers (glTF, BVH, MJCF), USD layers,
units and up axes (``stage.StageUnits``), datasets on disk."""
