"""Pure tensor math, no pxr: rotations, kinematics, skinning, the canonical pose space, retargeting, fitting, bone
heat, IK energies and geometry (the lowest rank after the base modules)."""
