"""Physics-grounded animation (AKD section 4.5): a rig as a newton articulation, ground contact, differentiable PD
tracking through chunked simulation, and motion metrics (ground penetration, foot skating, tracking error, root
uprightness)."""
