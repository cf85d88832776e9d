"""Pictures and differentiable rendering: the rig as Gaussians (``gaussians``), the splatting renderer with a ground
for AKD (``splat``: pure torch, or gsplat on CUDA), the mesh rasteriser (``raster``), sheets / videos / keyframe
proxies (``media``) and the contact sheets every ``--preview`` writes (``preview``)."""
