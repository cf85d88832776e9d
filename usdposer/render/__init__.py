"""Rendering for AKD: the rig as Gaussians (gaussians.py) and a differentiable splatting renderer with a ground
(splat.py)."""
